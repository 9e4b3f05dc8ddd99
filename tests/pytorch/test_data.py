"""``shim.pytorch.data`` and ``shim.pytorch.samplers`` against Determined's own DataLoader."""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import determined.pytorch as det_pytorch
import determined.pytorch.samplers as det_samplers
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler, Dataset, IterableDataset, SequentialSampler

from shim.pytorch import samplers
from shim.pytorch.data import (
    DataLoader,
    DataLoaderError,
    adapt_batch_sampler,
    data_length,
    to_device,
)


class CountingDataset(Dataset):
    """Item ``i`` is ``i``; remembers which items were loaded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> int:
        self.loaded.append(idx)
        return idx


class Stream(IterableDataset):
    def __iter__(self) -> Any:
        return iter(range(3))


def index_batches(loader: torch.utils.data.DataLoader, count: int) -> list[list[int]]:
    """The index batches a torch loader would load, without loading them."""
    return [list(b) for b in itertools.islice(iter(loader.batch_sampler), count)]


def data_batches(batches: Iterable[torch.Tensor], count: int) -> list[list[int]]:
    return [b.tolist() for b in itertools.islice(iter(batches), count)]


def describe(sig: inspect.Signature) -> list[tuple[str, str, Any]]:
    return [(p.name, p.kind.name, p.default) for p in sig.parameters.values()]


# (ours, Determined's); every public callable of Determined's _data.py and samplers.py.
# Ours adds DataLoader.set_shuffle_seed and the Seeded* samplers, which Determined lacks.
SIGNATURES = [
    (DataLoader.__init__, det_pytorch.DataLoader.__init__),
    (DataLoader.get_data_loader, det_pytorch.DataLoader.get_data_loader),
    (adapt_batch_sampler, det_pytorch.adapt_batch_sampler),
    (data_length, det_pytorch.data_length),
] + [
    (getattr(samplers, name).__init__, getattr(det_samplers, name).__init__)
    for name in [
        "RepeatSampler",
        "RepeatBatchSampler",
        "DistributedSampler",
        "DistributedBatchSampler",
        "SkipSampler",
        "SkipBatchSampler",
        "ReproducibleShuffleSampler",
        "ReproducibleShuffleBatchSampler",
    ]
]


@pytest.mark.parametrize(("ours", "theirs"), SIGNATURES, ids=lambda f: f.__qualname__)
def test_signatures_match_determined(ours: Any, theirs: Any) -> None:
    assert describe(inspect.signature(ours)) == describe(inspect.signature(theirs))


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 20),
    batch_size=st.integers(1, 5),
    drop_last=st.booleans(),
    repeat=st.booleans(),
    skip=st.integers(0, 10),
    replicas_and_rank=st.integers(1, 3).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1))
    ),
)
def test_sharding_and_skipping_give_determined_batches_when_not_shuffled(
    size: int,
    batch_size: int,
    drop_last: bool,
    repeat: bool,
    skip: int,
    replicas_and_rank: tuple[int, int],
) -> None:
    num_replicas, rank = replicas_and_rank
    # Determined's repeating sampler spins forever when an epoch has no batch.
    assume(size >= batch_size or not drop_last)
    args = {"repeat": repeat, "skip": skip, "num_replicas": num_replicas, "rank": rank}
    ours = DataLoader(range(size), batch_size=batch_size, drop_last=drop_last)
    theirs = det_pytorch.DataLoader(range(size), batch_size=batch_size, drop_last=drop_last)
    mine, real = ours.get_data_loader(**args), theirs.get_data_loader(**args)
    assert index_batches(mine, 15) == index_batches(real, 15)
    assert len(mine) == len(real)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize(("skip", "num_replicas", "rank"), [(0, 1, 0), (5, 2, 1), (7, 3, 2)])
def test_loaded_tensors_match_determined_when_not_shuffled(
    skip: int, num_replicas: int, rank: int
) -> None:
    args = {"repeat": True, "skip": skip, "num_replicas": num_replicas, "rank": rank}
    mine = DataLoader(range(11), batch_size=3).get_data_loader(**args)
    real = det_pytorch.DataLoader(range(11), batch_size=3).get_data_loader(**args)
    assert data_batches(mine, 6) == data_batches(real, 6)


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(1, 17),
    batch_size=st.integers(1, 4),
    drop_last=st.booleans(),
    skip=st.integers(0, 30),
    seed=st.integers(0, 2**32),
    replicas_and_rank=st.integers(1, 3).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n - 1))
    ),
)
def test_a_shuffled_run_resumed_at_any_step_sees_the_uninterrupted_batches(
    size: int,
    batch_size: int,
    drop_last: bool,
    skip: int,
    seed: int,
    replicas_and_rank: tuple[int, int],
) -> None:
    num_replicas, rank = replicas_and_rank
    assume(size >= batch_size or not drop_last)

    def stream(skip: int) -> torch.utils.data.DataLoader:
        loader = DataLoader(range(size), batch_size=batch_size, shuffle=True, drop_last=drop_last)
        loader.set_shuffle_seed(seed)
        return loader.get_data_loader(True, skip, num_replicas, rank)

    uninterrupted = index_batches(stream(0), skip + 6)
    assert index_batches(stream(skip), 6) == uninterrupted[skip:]


def test_a_resumed_shuffled_loader_yields_the_uninterrupted_tensors() -> None:
    def stream(skip: int) -> torch.utils.data.DataLoader:
        loader = DataLoader(range(10), batch_size=3, shuffle=True)
        loader.set_shuffle_seed(7)
        return loader.get_data_loader(repeat=True, skip=skip, num_replicas=2, rank=1)

    assert data_batches(stream(5), 4) == data_batches(stream(0), 9)[5:]


def test_each_epoch_has_its_own_permutation_and_fresh_loaders_repeat_them() -> None:
    def epochs() -> list[list[int]]:
        # One batch per epoch: each batch is that epoch's whole permutation.
        return index_batches(
            DataLoader(range(40), batch_size=40, shuffle=True).get_data_loader(True), 4
        )

    first = epochs()
    assert all(sorted(epoch) == list(range(40)) for epoch in first)
    assert len({tuple(epoch) for epoch in first}) == 4
    assert epochs() == first


def test_the_shuffle_seed_picks_the_permutations() -> None:
    def first_epoch(seed: int) -> list[int]:
        loader = DataLoader(range(40), batch_size=40, shuffle=True)
        loader.set_shuffle_seed(seed)
        return index_batches(loader.get_data_loader(repeat=True), 1)[0]

    assert first_epoch(0) == first_epoch(0)
    assert first_epoch(1) != first_epoch(2)


def test_the_shuffle_neither_reads_nor_advances_the_global_torch_rng() -> None:
    def batches(global_seed: int) -> list[list[int]]:
        torch.manual_seed(global_seed)
        loader = DataLoader(range(30), batch_size=4, shuffle=True).get_data_loader(repeat=True)
        state = torch.get_rng_state()
        taken = index_batches(loader, 20)
        assert torch.equal(torch.get_rng_state(), state)
        return taken

    assert batches(1) == batches(2)


def test_skipping_into_a_later_epoch_loads_only_the_batches_it_yields() -> None:
    dataset = CountingDataset(12)
    loader = DataLoader(dataset, batch_size=2, shuffle=True)
    batches = data_batches(loader.get_data_loader(repeat=True, skip=2 * len(loader) + 3), 2)
    epoch_two = samplers.epoch_batches(loader.batch_sampler, 2)
    assert batches == epoch_two[3:5]
    assert dataset.loaded == [i for batch in batches for i in batch]


def test_skipping_unshuffled_batches_loads_only_the_batches_it_yields() -> None:
    dataset = CountingDataset(12)
    loader = DataLoader(dataset, batch_size=2).get_data_loader(repeat=True, skip=7)
    assert data_batches(loader, 2) == [[2, 3], [4, 5]]
    assert dataset.loaded == [2, 3, 4, 5]


def test_each_plain_pass_over_a_shuffled_loader_is_reshuffled_reproducibly() -> None:
    def passes() -> list[list[list[int]]]:
        loader = DataLoader(range(20), batch_size=5, shuffle=True)
        return [data_batches(loader, 4) for _ in range(3)]

    first = passes()
    assert first[0] != first[1] != first[2]
    assert passes() == first


def test_two_worker_processes_load_the_same_batches_as_the_main_process() -> None:
    def batches(num_workers: int) -> list[list[int]]:
        loader = DataLoader(range(13), batch_size=3, shuffle=True, num_workers=num_workers)
        return data_batches(loader.get_data_loader(repeat=True, skip=3), 6)

    assert batches(2) == batches(0)


@pytest.mark.parametrize(("drop_last", "sizes"), [(True, [3, 3, 3] * 2), (False, [3, 3, 3, 1] * 2)])
def test_drop_last_shapes_every_epoch_of_a_shuffled_stream(
    drop_last: bool, sizes: list[int]
) -> None:
    loader = DataLoader(range(10), batch_size=3, shuffle=True, drop_last=drop_last)
    assert len(loader) == len(sizes) // 2
    stream = index_batches(loader.get_data_loader(repeat=True), len(sizes))
    assert [len(batch) for batch in stream] == sizes


def test_a_user_generator_keeps_determined_shuffling() -> None:
    mine = DataLoader(
        range(20), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    real = det_pytorch.DataLoader(
        range(20), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    mine.set_shuffle_seed(99)
    assert index_batches(mine.get_data_loader(True, 2), 12) == index_batches(
        real.get_data_loader(True, 2), 12
    )


def test_a_user_sampler_or_batch_sampler_is_used_as_determined_uses_it() -> None:
    backwards = list(reversed(range(9)))
    batch_sampler = BatchSampler(SequentialSampler(range(9)), 4, drop_last=False)
    for kwargs in ({"sampler": backwards, "batch_size": 2}, {"batch_sampler": batch_sampler}):
        mine = DataLoader(range(9), **kwargs).get_data_loader(True, 1, 2, 0)  # type: ignore[arg-type]
        real = det_pytorch.DataLoader(range(9), **kwargs).get_data_loader(True, 1, 2, 0)
        assert index_batches(mine, 8) == index_batches(real, 8)


def test_the_shuffle_seed_does_not_change_an_unshuffled_loader() -> None:
    loader = DataLoader(range(7), batch_size=2)
    loader.set_shuffle_seed(3)
    assert data_batches(loader, 4) == [[0, 1], [2, 3], [4, 5], [6]]


def test_len_counts_the_batches_of_one_unsharded_epoch() -> None:
    loader = DataLoader(range(10), batch_size=3, shuffle=True)
    assert len(loader) == 4
    assert len(loader.get_data_loader(repeat=True, skip=9, num_replicas=3, rank=2)) == 1


def test_an_empty_epoch_ends_a_repeating_shuffled_stream_instead_of_spinning() -> None:
    loader = DataLoader(range(2), batch_size=3, shuffle=True, drop_last=True)
    assert index_batches(loader.get_data_loader(repeat=True), 3) == []


BAD_ARGS = [
    ({"dataset": Stream()}, r"test_data\.py:\d+: DataLoader got an IterableDataset \(Stream\)"),
    ({"batch_size": None}, "batch_size=None"),
    ({"num_workers": -1}, r"num_workers=-1"),
    ({"timeout": -1}, "timeout must be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor=...\\) needs num_workers > 0"),
    ({"prefetch_factor": -1, "num_workers": 1}, r"prefetch_factor=-1\) must be non-negative"),
    ({"persistent_workers": True}, "persistent_workers=True\\) needs num_workers > 0"),
    ({"sampler": [0, 1], "shuffle": True}, "sampler and shuffle=True are mutually exclusive"),
    (
        {"batch_sampler": [[0]], "batch_size": 2},
        "batch_sampler is mutually exclusive with batch_size",
    ),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_ARGS)
def test_arguments_torch_cannot_honour_are_rejected_with_the_call_site(
    kwargs: dict[str, Any], match: str
) -> None:
    kwargs = {"dataset": range(4), **kwargs}
    with pytest.raises(DataLoaderError, match=match):
        DataLoader(**kwargs)


def test_loader_errors_are_value_errors_as_in_determined() -> None:
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream())


@pytest.mark.parametrize("seed", [-1, True, "1", 1.0])
def test_a_shuffle_seed_that_is_not_a_non_negative_int_is_rejected(seed: Any) -> None:
    with pytest.raises(DataLoaderError, match="the seed must be a non-negative int"):
        DataLoader(range(4), shuffle=True).set_shuffle_seed(seed)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((False, -1, 1, 0), r"skip=-1"),
        ((False, 0, 0, 0), r"num_replicas=0"),
        ((False, 0, 2, 2), r"rank=2, num_replicas=2\): rank must be in \[0, num_replicas\)"),
        ((False, 0, 2, -1), r"rank=-1"),
    ],
)
def test_impossible_shards_are_rejected(args: tuple[bool, int, int, int], match: str) -> None:
    with pytest.raises(DataLoaderError, match=match):
        DataLoader(range(4)).get_data_loader(*args)


def test_samplers_reject_what_determined_rejects() -> None:
    inner = BatchSampler(SequentialSampler(range(4)), 2, False)
    with pytest.raises(ValueError, match="rank must be less than num_workers"):
        samplers.DistributedBatchSampler(inner, 2, 2)
    with pytest.raises(ValueError, match="start must be non-negative"):
        samplers.SeededRepeatBatchSampler(inner, -1)
    with pytest.raises(TypeError, match="over a SeededRandomSampler"):
        samplers.epoch_batches(inner, 0)


@pytest.mark.parametrize(
    "build",
    [
        lambda m, s: m.RepeatSampler(s),
        lambda m, s: m.DistributedSampler(s, 3, 1),
        lambda m, s: m.SkipSampler(s, 4),
        lambda m, s: m.ReproducibleShuffleSampler(s, 3),
        lambda m, s: m.RepeatBatchSampler(BatchSampler(s, 2, False)),
        lambda m, s: m.SkipBatchSampler(BatchSampler(s, 2, True), 2),
        lambda m, s: m.ReproducibleShuffleBatchSampler(BatchSampler(s, 2, False), 3),
    ],
)
def test_record_level_samplers_yield_what_determined_yields(build: Any) -> None:
    mine = build(samplers, SequentialSampler(range(9)))
    real = build(det_samplers, SequentialSampler(range(9)))
    taken = [list(itertools.islice(iter(mine), 20)) for _ in range(2)]
    assert taken == [list(itertools.islice(iter(real), 20)) for _ in range(2)]
    assert len(mine) == len(real)


@pytest.mark.parametrize(
    "batch",
    [
        torch.zeros(3, 2),
        {"x": torch.zeros(4), "y": torch.zeros(4)},
        [torch.zeros(5)],
        (torch.zeros(2),),
    ],
)
def test_data_length_is_the_first_leaf_length_as_in_determined(batch: Any) -> None:
    assert data_length(batch) == det_pytorch.data_length(batch)


def test_data_length_of_an_empty_or_unknown_batch_is_an_error() -> None:
    with pytest.raises(DataLoaderError, match="batch is an empty dict"):
        data_length({})
    with pytest.raises(TypeError, match="cannot measure the length of a batch of type int"):
        data_length(3)  # type: ignore[arg-type]


class Point(NamedTuple):
    x: torch.Tensor
    label: str


class Movable:
    def __init__(self) -> None:
        self.moved_to: Any = None

    def to(self, device: Any) -> Movable:
        self.moved_to = device
        return self


META = torch.device("meta")


def test_to_device_moves_tensors_and_numeric_arrays_at_any_depth() -> None:
    batch = {"x": [torch.ones(2), (np.zeros(3, dtype=np.float32),)], "n": np.arange(2)}
    moved = to_device(batch, META)
    assert moved["x"][0].device == META and moved["x"][1][0].device == META  # type: ignore[index]
    assert moved["n"].device == META and moved["n"].dtype == torch.int64  # type: ignore[index,union-attr]
    assert isinstance(moved["x"][1], tuple)  # type: ignore[index]


def test_to_device_gives_determined_structure_and_types() -> None:
    batch = {"a": [torch.ones(1), (np.ones(2), "tag")], "b": np.array(["s"])}
    mine, real = to_device(batch, META), det_pytorch.to_device(batch, META)

    def shape(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(shape(v) for v in x)
        return (type(x), getattr(x, "device", None))

    assert shape(mine) == shape(real)


def test_to_device_keeps_namedtuples_where_determined_flattens_them_to_tuples() -> None:
    moved = to_device(Point(torch.ones(1), "cat"), META)  # type: ignore[arg-type]
    assert isinstance(moved, Point)
    assert moved.x.device == META and moved.label == "cat"


def test_to_device_calls_the_to_method_of_other_objects() -> None:
    item = Movable()
    assert to_device([item], META) == [item]  # type: ignore[list-item]
    assert item.moved_to == META


def test_to_device_warns_once_per_type_it_cannot_move(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="shim.pytorch")
    assert to_device(["a", "b", 3], META) == ["a", "b", 3]  # type: ignore[list-item]
    assert [r.getMessage() for r in caplog.records] == [
        "Was not able to move data item of type 'str' to device.",
        "Was not able to move data item of type 'int' to device.",
    ]


def test_to_device_signature_matches_determined() -> None:
    assert describe(inspect.signature(to_device)) == describe(
        inspect.signature(det_pytorch.to_device)
    )


@pytest.mark.gpu
def test_to_device_moves_a_nested_batch_onto_the_gpu() -> None:
    batch = {"x": [torch.ones(2), np.zeros(3, dtype=np.float32)], "p": Point(torch.ones(1), "c")}
    moved: Any = to_device(batch, torch.device("cuda"))  # type: ignore[arg-type]
    assert moved["x"][0].is_cuda and moved["x"][1].is_cuda
    assert isinstance(moved["p"], Point) and moved["p"].x.is_cuda


@pytest.mark.gpu
def test_pinned_worker_batches_equal_the_main_process_batches() -> None:
    def batches(num_workers: int, pin_memory: bool) -> list[torch.Tensor]:
        loader = DataLoader(
            range(13), batch_size=3, shuffle=True, num_workers=num_workers, pin_memory=pin_memory
        )
        return list(itertools.islice(loader.get_data_loader(repeat=True, skip=3), 6))

    pinned = batches(2, True)
    assert all(batch.is_pinned() for batch in pinned)
    assert [b.tolist() for b in pinned] == [b.tolist() for b in batches(0, False)]
