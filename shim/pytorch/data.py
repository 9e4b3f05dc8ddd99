"""``DataLoader`` and ``to_device``: Determined 0.38's ``determined.pytorch._data``.

One deliberate difference: with ``shuffle=True`` (and no user ``sampler``, ``batch_sampler`` or
``generator``) the permutation of epoch ``e`` is a pure function of ``(seed, e)``, where the seed
comes from :meth:`DataLoader.set_shuffle_seed` (default 0). Determined draws it from the global
torch RNG, so a run resumed mid-epoch sees other batches than an uninterrupted one; here
``get_data_loader(repeat=True, skip=k)`` yields exactly the uninterrupted stream from step ``k``,
and skipped batches are never built, so their samples are never loaded.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch.utils import data
from torch.utils.data._utils import collate

from shim.errors import ShimError
from shim.pytorch import samplers

__all__ = [
    "BatchTypeError",
    "DataLoader",
    "DataLoaderError",
    "TorchData",
    "adapt_batch_sampler",
    "data_length",
    "to_device",
]

logger = logging.getLogger("shim.pytorch")

_Array = np.ndarray | torch.Tensor
_Data = dict[str, _Array] | Sequence[_Array] | _Array
TorchData = dict[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor

T = TypeVar("T")
_collate_fn_t = Callable[[list[T]], Any] | None
_worker_init_fn_t = Callable[[int], None] | None


class DataLoaderError(ShimError, ValueError):
    """A ``DataLoader`` built or sharded with arguments it cannot honour."""


class BatchTypeError(ShimError, TypeError):
    """A batch whose type has no length (not an array, tensor, dict, list or tuple)."""


def _where() -> str:
    """``file:line`` of the first frame outside this module: the user's call."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno}"


def _fail(message: str) -> DataLoaderError:
    return DataLoaderError(f"{_where()}: {message}")


def _check_worker_args(
    num_workers: int, timeout: float, prefetch_factor: int | None, persistent_workers: bool
) -> int | None:
    """Torch's checks on the multiprocessing arguments; returns the prefetch factor to use."""
    if num_workers < 0:
        raise _fail(f"DataLoader(num_workers={num_workers}): use 0 to load in the main process")
    if timeout < 0:
        raise _fail(f"DataLoader(timeout={timeout}): the timeout must be non-negative")
    if num_workers == 0 and prefetch_factor is not None:
        raise _fail("DataLoader(prefetch_factor=...) needs num_workers > 0; drop prefetch_factor")
    if prefetch_factor is not None and prefetch_factor < 0:
        raise _fail(f"DataLoader(prefetch_factor={prefetch_factor}) must be non-negative")
    if persistent_workers and num_workers == 0:
        raise _fail("DataLoader(persistent_workers=True) needs num_workers > 0")
    return 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor


def _check_sampling_args(
    dataset: data.Dataset,
    batch_size: int | None,
    shuffle: bool,
    sampler: data.Sampler | None,
    batch_sampler: data.BatchSampler | None,
    drop_last: bool,
) -> None:
    if isinstance(dataset, data.IterableDataset):
        raise _fail(
            f"DataLoader got an IterableDataset ({type(dataset).__name__}); it cannot be "
            "sharded, skipped or resumed. Use a map-style Dataset (with __getitem__ and "
            "__len__), or return a plain torch.utils.data.DataLoader and handle sharding and "
            "resume yourself"
        )
    if batch_sampler is None and batch_size is None:
        raise _fail("DataLoader(batch_size=None) without a batch_sampler: give a batch_size")
    if sampler is not None and shuffle:
        raise _fail("DataLoader: sampler and shuffle=True are mutually exclusive; drop one")
    if batch_sampler is not None and (
        batch_size != 1 or shuffle or sampler is not None or drop_last
    ):
        raise _fail(
            "DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, sampler "
            "and drop_last; leave those at their defaults"
        )


class DataLoader:
    """Determined's ``DataLoader``: holds the torch arguments, builds loaders on demand.

    ``get_data_loader`` builds the ``torch.utils.data.DataLoader`` so that sampling restarts at
    the right batch and is sharded across ranks. ``IterableDataset`` is rejected.
    """

    def __init__(
        self,
        dataset: data.Dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        sampler: data.Sampler | None = None,
        batch_sampler: data.BatchSampler | None = None,
        num_workers: int = 0,
        collate_fn: _collate_fn_t = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: _worker_init_fn_t = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
    ) -> None:
        _check_sampling_args(dataset, batch_size, shuffle, sampler, batch_sampler, drop_last)
        self.prefetch_factor = _check_worker_args(
            num_workers, timeout, prefetch_factor, persistent_workers
        )
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.generator = generator
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        self.sampler = sampler if sampler is not None else self._default_sampler(shuffle)
        if batch_sampler is None:
            batch_sampler = data.BatchSampler(self.sampler, cast(int, batch_size), drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn if collate_fn is not None else collate.default_collate

    def _default_sampler(self, shuffle: bool) -> data.Sampler:
        if not shuffle:
            return data.SequentialSampler(self.dataset)  # type: ignore[arg-type]
        if self.generator is not None:
            # The user owns the randomness: Determined's behaviour, unchanged.
            return data.RandomSampler(self.dataset, generator=self.generator)  # type: ignore[arg-type]
        return samplers.SeededRandomSampler(self.dataset)  # type: ignore[arg-type]

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    def set_shuffle_seed(self, seed: int) -> None:
        """Seed the per-epoch permutations of ``shuffle=True`` (call before ``get_data_loader``).

        Has no effect when the loader does not shuffle or the user gave the randomness (a
        ``generator``, ``sampler`` or ``batch_sampler``).
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _fail(f"set_shuffle_seed({seed!r}): the seed must be a non-negative int")
        if isinstance(self.sampler, samplers.SeededRandomSampler):
            self.sampler.seed = seed

    def get_data_loader(
        self, repeat: bool = False, skip: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> data.DataLoader:
        """A torch loader: repeated if asked, this rank's shard, ``skip`` steps already done."""
        _check_shard_args(skip, num_replicas, rank)
        batch_sampler = adapt_batch_sampler(
            self.batch_sampler, repeat=repeat, skip=skip, num_replicas=num_replicas, rank=rank
        )
        return data.DataLoader(
            self.dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
            timeout=self.timeout,
            worker_init_fn=self.worker_init_fn,
            multiprocessing_context=self.multiprocessing_context,
            generator=self.generator,
            prefetch_factor=self.prefetch_factor,
            persistent_workers=self.persistent_workers,
        )

    def __iter__(self) -> Iterator:
        """One unsharded pass, as when a trial iterates its loader directly."""
        return iter(self.get_data_loader())

    def __len__(self) -> int:
        """Batches per epoch of the unsharded batch sampler."""
        return len(self.batch_sampler)


def _check_shard_args(skip: int, num_replicas: int, rank: int) -> None:
    if skip < 0:
        raise _fail(f"get_data_loader(skip={skip}): skip counts batches already trained, >= 0")
    if num_replicas < 1:
        raise _fail(f"get_data_loader(num_replicas={num_replicas}): needs at least one replica")
    if not 0 <= rank < num_replicas:
        raise _fail(
            f"get_data_loader(rank={rank}, num_replicas={num_replicas}): "
            "rank must be in [0, num_replicas)"
        )


def _is_seeded(batch_sampler: data.BatchSampler) -> bool:
    # Only torch's own BatchSampler: a subclass may batch differently than epoch_batches does.
    return type(batch_sampler) is data.BatchSampler and isinstance(
        batch_sampler.sampler, samplers.SeededRandomSampler
    )


def adapt_batch_sampler(
    batch_sampler: data.BatchSampler,
    repeat: bool = False,
    skip: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
) -> data.BatchSampler:
    """Repeat, then shard (rank ``r`` gets batch ``i`` when ``i % num_replicas == r``), then skip.

    The skip comes after sharding, so it counts global steps. A repeating seeded shuffle starts
    directly at global batch ``skip * num_replicas`` instead of iterating the skipped batches.
    """
    if repeat and _is_seeded(batch_sampler):
        batch_sampler = samplers.SeededRepeatBatchSampler(batch_sampler, skip * num_replicas)
        skip = 0
    elif repeat:
        batch_sampler = samplers.RepeatBatchSampler(batch_sampler)
    if num_replicas > 1:
        batch_sampler = samplers.DistributedBatchSampler(batch_sampler, num_replicas, rank)
    if skip > 0:
        batch_sampler = samplers.SkipBatchSampler(batch_sampler, skip)
    return batch_sampler


def data_length(data: _Data) -> int:
    """Length of the first array or tensor found in a batch (every leaf has the same length)."""
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return len(data)
    if isinstance(data, (dict, list, tuple)):
        if len(data) == 0:
            raise DataLoaderError(
                f"batch is an empty {type(data).__name__}: it needs at least one np.ndarray "
                "or torch.Tensor to measure its length"
            )
        first = next(iter(data.values())) if isinstance(data, dict) else data[0]
        return len(first)
    raise BatchTypeError(f"cannot measure the length of a batch of type {type(data).__name__}")


def to_device(
    data: _Data, device: torch.device, warned_types: set[type] | None = None
) -> TorchData:
    """Move every tensor (and numeric ``np.ndarray``) in nested dicts, lists and tuples.

    Objects with a callable ``to`` are moved too. Anything else is returned as is, with one
    warning per type. Unlike Determined, namedtuples keep their type.
    """
    return cast(TorchData, _move(data, device, set() if warned_types is None else warned_types))


def _move(data: Any, device: torch.device, warned_types: set[type]) -> Any:
    if isinstance(data, dict):
        return {k: _move(v, device, warned_types) for k, v in data.items()}
    if isinstance(data, list):
        return [_move(d, device, warned_types) for d in data]
    if isinstance(data, tuple):
        moved = [_move(d, device, warned_types) for d in data]
        return type(data)(*moved) if hasattr(data, "_fields") else tuple(moved)
    if isinstance(data, np.ndarray):
        # Torch holds floats, complex, ints, uints and bools; other kinds stay numpy.
        if data.dtype.kind in "fciub":
            return torch.from_numpy(data).to(device)
    elif callable(getattr(data, "to", None)):
        return data.to(device)
    if type(data) not in warned_types:
        warned_types.add(type(data))
        logger.warning(f"Was not able to move data item of type '{type(data).__name__}' to device.")
    return data
