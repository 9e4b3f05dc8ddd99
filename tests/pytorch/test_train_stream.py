"""``shim.pytorch.train_stream``: the same batches as Determined's repeating loader, with torch's
iterators (and so their draws from the global RNG) created once per run or once per epoch."""

from __future__ import annotations

import inspect
import itertools
from typing import Any, cast

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils import data

from shim.pytorch.data import DataLoader
from shim.pytorch.train_stream import TrainStream, _with_batch_sampler


def stream(
    size: int = 10,
    batch_size: int = 3,
    *,
    per_epoch: bool = True,
    first_early: bool = False,
    shuffle: bool = True,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    **loader_args: Any,
) -> tuple[TrainStream, DataLoader, int]:
    loader = DataLoader(
        cast(data.Dataset, torch.arange(size)),  # a tensor indexes like a dataset
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        **loader_args,
    )
    loader.set_shuffle_seed(5)
    epoch_len = len(loader.get_data_loader(num_replicas=num_replicas, rank=rank))
    train = TrainStream(
        loader,
        epoch_len=epoch_len,
        num_replicas=num_replicas,
        rank=rank,
        per_epoch=per_epoch,
        first_early=first_early,
    )
    return train, loader, epoch_len


def read(train: TrainStream, start: int, count: int, epoch_len: int) -> list[list[int]]:
    """``count`` batches from step ``start``, opening an iterator at each epoch start as the
    controller does."""
    out: list[list[int]] = []
    iterator = train.open(start)
    for idx in range(start, start + count):
        if idx % epoch_len == 0:
            iterator = train.open(idx)
        out.append(next(iterator).tolist())
    return out


def determined_batches(
    loader: DataLoader, start: int, count: int, num_replicas: int = 1, rank: int = 0
) -> list[list[int]]:
    torch_loader = loader.get_data_loader(
        repeat=True, skip=start, num_replicas=num_replicas, rank=rank
    )
    return [b.tolist() for b in itertools.islice(iter(torch_loader), count)]


def one_draw_from(seed: int) -> torch.Tensor:
    """The global RNG state after seeding and creating one torch iterator's base seed."""
    torch.manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_()
    return torch.get_rng_state()


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 17),
    batch_size=st.integers(1, 4),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    start=st.integers(0, 12),
    replicas_and_rank=st.integers(1, 3).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1))
    ),
)
def test_epoch_by_epoch_iterators_yield_determineds_batches_from_any_step(
    size: int,
    batch_size: int,
    drop_last: bool,
    shuffle: bool,
    start: int,
    replicas_and_rank: tuple[int, int],
) -> None:
    num_replicas, rank = replicas_and_rank
    if (size // batch_size if drop_last else -(-size // batch_size)) < num_replicas:
        return  # a shard without a batch: the controller refuses an empty epoch
    train, loader, epoch_len = stream(
        size,
        batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_replicas=num_replicas,
        rank=rank,
    )
    train.seek(start)
    count = 3 * epoch_len + 1
    expected = determined_batches(loader, start, count, num_replicas, rank)
    assert read(train, start, count, epoch_len) == expected


def test_one_repeating_iterator_draws_once_when_seeked_as_determined_does() -> None:
    train, loader, epoch_len = stream(per_epoch=False)
    expected = determined_batches(loader, 0, 3 * epoch_len)
    torch.manual_seed(3)
    train.seek(0)
    assert torch.equal(torch.get_rng_state(), one_draw_from(3))
    torch.manual_seed(3)
    train.seek(0)
    assert read(train, 0, 3 * epoch_len, epoch_len) == expected
    assert torch.equal(torch.get_rng_state(), one_draw_from(3)), "no draw at epoch starts"


def test_opening_an_epoch_draws_what_iter_on_a_dataloader_draws() -> None:
    train, _, epoch_len = stream()
    torch.manual_seed(9)
    train.seek(0)
    assert torch.equal(torch.get_rng_state(), torch.manual_seed(9).get_state()), "seek: none"
    for epoch in range(3):
        torch.manual_seed(epoch)
        iterator = train.open(epoch * epoch_len)
        assert torch.equal(torch.get_rng_state(), one_draw_from(epoch))
        train.open(epoch * epoch_len + 1)  # the same epoch: nothing more is drawn
        assert torch.equal(torch.get_rng_state(), one_draw_from(epoch))
        list(iterator)  # a seeded shuffle draws nothing while it yields
        assert torch.equal(torch.get_rng_state(), one_draw_from(epoch))


def test_a_users_generator_gives_the_base_seed_and_the_global_rng_is_left_alone() -> None:
    generator = torch.Generator().manual_seed(0)
    train, _, _ = stream(generator=generator)
    train.seek(0)
    torch.manual_seed(1)
    before, owned = torch.get_rng_state(), generator.get_state()
    list(train.open(0))
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(generator.get_state(), owned)


def test_an_epoch_iterator_stops_at_its_epochs_end() -> None:
    train, loader, _ = stream(10, 3)
    train.seek(5)
    assert [b.tolist() for b in train.open(5)] == determined_batches(loader, 5, 3)
    assert [b.tolist() for b in train.open(8)] == determined_batches(loader, 8, 4)


def test_an_epoch_ended_early_skips_its_rest_without_loading_it() -> None:
    dataset = CountingDataset(12)
    loader = DataLoader(dataset, batch_size=2, shuffle=True)
    train = TrainStream(loader, epoch_len=6, num_replicas=1, rank=0, per_epoch=True)
    train.seek(0)
    iterator = train.open(0)
    next(iterator), next(iterator)
    assert train.end_epoch(6) is None
    assert len(dataset.loaded) == 4
    nxt = [b.tolist() for b in train.open(6)]
    assert nxt == [b.tolist() for b in itertools.islice(iter(loader.get_data_loader(True)), 6, 12)]


def test_an_epoch_ended_early_without_epoch_iterators_seeks_a_new_repeating_one() -> None:
    train, loader, _ = stream(per_epoch=False)
    train.seek(0)
    next(train.open(0))
    iterator = train.end_epoch(4)
    assert iterator is not None
    assert [next(iterator).tolist() for _ in range(4)] == determined_batches(loader, 4, 4)


@pytest.mark.parametrize(
    ("batches", "first_early", "expected"),
    [
        (5, False, True),  # mid-epoch: the epoch's iterator exists
        (4, False, False),  # epoch boundary: the next one comes after on_train_epoch_start
        (0, False, False),  # Lightning 1.x: after on_train_epoch_start, epoch 0 too
        (0, True, True),  # Lightning 2.x: epoch 0's before on_train_start
        (4, True, False),
    ],
)
def test_which_checkpoint_positions_already_had_their_iterator(
    batches: int, first_early: bool, expected: bool
) -> None:
    train, _, epoch_len = stream(first_early=first_early)
    assert epoch_len == 4
    assert train.open_at_checkpoint(batches) is expected
    assert stream(per_epoch=False)[0].open_at_checkpoint(batches) is True


def test_only_lightning_2_opens_epoch_0_before_training_starts() -> None:
    early, _, _ = stream(first_early=True)
    early.seek(0)
    assert early.opens_early(0) and not early.opens_early(4)
    early.open(0)
    assert not early.opens_early(0), "already open"
    assert not stream(first_early=False)[0].opens_early(0)
    assert not stream(per_epoch=False, first_early=True)[0].opens_early(0)


def test_persistent_workers_keep_their_first_base_seed_as_in_lightning() -> None:
    train, loader, epoch_len = stream(num_workers=1, persistent_workers=True)
    train.seek(0)
    torch.manual_seed(4)
    first = read(train, 0, epoch_len, epoch_len)
    assert torch.equal(torch.get_rng_state(), one_draw_from(4))
    second = read(train, epoch_len, epoch_len, epoch_len)
    assert torch.equal(torch.get_rng_state(), one_draw_from(4)), "a reused iterator draws none"
    assert first + second == determined_batches(loader, 0, 2 * epoch_len)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_run_resumed_at_an_epoch_boundary_draws_what_the_uninterrupted_run_draws(
    persistent: bool,
) -> None:
    worker_args: dict[str, Any] = {"num_workers": 1, "persistent_workers": persistent}
    uninterrupted, loader, epoch_len = stream(**worker_args)
    uninterrupted.seek(0)
    torch.manual_seed(4)
    read(uninterrupted, 0, epoch_len, epoch_len)
    saved = torch.get_rng_state()  # the checkpoint at step E holds the RNG as it is here
    expected = read(uninterrupted, epoch_len, epoch_len, epoch_len)
    after = torch.get_rng_state()

    resumed, _, _ = stream(**worker_args)
    resumed.seek(epoch_len)  # as the controller: open, restore the RNG, then open at the start
    torch.manual_seed(8)
    if resumed.open_at_checkpoint(epoch_len):
        resumed.open(epoch_len)
    torch.set_rng_state(saved)
    assert read(resumed, epoch_len, epoch_len, epoch_len) == expected
    assert torch.equal(torch.get_rng_state(), after)
    assert expected == determined_batches(loader, epoch_len, epoch_len)


@pytest.mark.parametrize(
    ("batches", "first_early", "expected"),
    [
        (5, False, True),
        (4, False, True),  # the workers' iterator was created at epoch 0 and is only reset now
        (8, True, True),
        (0, False, False),  # Lightning 1.x: the first iterator comes after on_train_epoch_start
        (0, True, True),
    ],
)
def test_persistent_workers_have_their_iterator_at_every_checkpoint_past_the_first_opening(
    batches: int, first_early: bool, expected: bool
) -> None:
    train, _, epoch_len = stream(first_early=first_early, num_workers=1, persistent_workers=True)
    assert epoch_len == 4
    train.seek(batches)
    assert train.open_at_checkpoint(batches) is expected


def test_a_rebuilt_loader_keeps_every_setting_but_the_sampling() -> None:
    def collate(items: list[Any]) -> Any:
        return items

    def init(worker: int) -> None:
        pass

    original: data.DataLoader[Any] = data.DataLoader(
        data.TensorDataset(torch.arange(6)),
        batch_size=2,
        num_workers=2,
        collate_fn=collate,
        timeout=3.0,
        worker_init_fn=init,
        multiprocessing_context="spawn",
        generator=torch.Generator(),
        prefetch_factor=5,
        persistent_workers=True,
        in_order=False,
    )
    sampler = data.BatchSampler(data.SequentialSampler(range(6)), 3, False)
    rebuilt = _with_batch_sampler(original, sampler)
    assert rebuilt.batch_sampler is sampler
    sampling = {"batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"}
    for name in inspect.signature(data.DataLoader).parameters:
        if name not in sampling:
            assert getattr(rebuilt, name) is getattr(original, name), name


class CountingDataset(data.Dataset):
    def __init__(self, size: int) -> None:
        self.size = size
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        self.loaded.append(index)
        return index
