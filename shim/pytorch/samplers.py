"""Batch samplers: Determined 0.38's ``determined.pytorch.samplers``, plus a seeded shuffle.

The Determined classes keep their names, constructors and iteration order, so a trial that imports
``determined.pytorch.samplers`` sees the same batches here.

``SeededRandomSampler`` and ``SeededRepeatBatchSampler`` are ours: Determined shuffles with a
``RandomSampler`` that draws from the global torch RNG, so a resumed run sees other permutations
than an uninterrupted one. Here the permutation of epoch ``e`` is a pure function of
``(seed, e)``, and a repeating stream can start at any batch without touching the skipped ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import BatchSampler, RandomSampler, Sampler

__all__ = [
    "DistributedBatchSampler",
    "DistributedSampler",
    "RepeatBatchSampler",
    "RepeatSampler",
    "ReproducibleShuffleBatchSampler",
    "ReproducibleShuffleSampler",
    "SeededRandomSampler",
    "SeededRepeatBatchSampler",
    "SkipBatchSampler",
    "SkipSampler",
    "epoch_batches",
]


def _shard_len(length: int, num_workers: int, rank: int) -> int:
    return length // num_workers + int(length % num_workers > rank)


def _check_shard(num_workers: int, rank: int) -> None:
    # Same checks and messages as Determined's DistributedBatchSampler; ValueError like theirs.
    if rank < 0:
        raise ValueError("rank must be non-negative.")
    if num_workers < 1:
        raise ValueError("num_workers must be greater than zero.")
    if rank >= num_workers:
        raise ValueError("rank must be less than num_workers.")


def _skip(iterator: Iterator, skip: int) -> Iterator:
    for _ in range(skip):
        try:
            next(iterator)
        except StopIteration:
            return
    yield from iterator


class RepeatSampler(Sampler):
    """Repeats another sampler forever; ``len`` is the underlying sampler's."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def __len__(self) -> int:
        return len(self._sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        while True:
            yield from self._sampler


class RepeatBatchSampler(BatchSampler):
    """Repeats another batch sampler forever; ``len`` is one pass of it."""

    def __init__(self, batch_sampler: BatchSampler) -> None:
        self.batch_sampler = batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator:
        while True:
            yield from self.batch_sampler


class DistributedSampler(Sampler):
    """Yields the samples ``i`` of another sampler with ``i % num_workers == rank``."""

    def __init__(self, sampler: Sampler, num_workers: int, rank: int) -> None:
        self._sampler = sampler
        self._num_workers = num_workers
        self._rank = rank

    def __len__(self) -> int:
        return _shard_len(len(self._sampler), self._num_workers, self._rank)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        for i, sample in enumerate(self._sampler):
            if i % self._num_workers == self._rank:
                yield sample


class DistributedBatchSampler(BatchSampler):
    """Yields the batches ``i`` of another batch sampler with ``i % num_workers == rank``."""

    def __init__(self, batch_sampler: BatchSampler, num_workers: int, rank: int) -> None:
        _check_shard(num_workers, rank)
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.rank = rank

    def __len__(self) -> int:
        return _shard_len(len(self.batch_sampler), self.num_workers, self.rank)

    def __iter__(self) -> Iterator:
        for i, batch in enumerate(self.batch_sampler):
            if i % self.num_workers == self.rank:
                yield batch


class SkipSampler(BatchSampler):
    """Skips the first ``skip`` items of another sampler; ``len`` ignores the skip."""

    def __init__(self, sampler: BatchSampler, skip: int) -> None:
        self._sampler = sampler
        self._skip = skip

    def __len__(self) -> int:
        return len(self._sampler)

    def __iter__(self) -> Iterator:
        return _skip(iter(self._sampler), self._skip)


class SkipBatchSampler(BatchSampler):
    """Skips the first ``skip`` batches; applied after sharding, so it counts global steps."""

    def __init__(self, batch_sampler: BatchSampler, skip: int) -> None:
        self.batch_sampler = batch_sampler
        self.skip = skip
        self.length = len(batch_sampler)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator:
        return _skip(iter(self.batch_sampler), self.skip)


class ReproducibleShuffleSampler(Sampler):
    """Shuffles each pass of another sampler with a ``numpy`` RNG seeded once."""

    def __init__(self, sampler: Sampler, seed: int) -> None:
        self._sampler = sampler
        self._rng = np.random.RandomState(seed)

    def __iter__(self) -> Iterator:
        indices = list(self._sampler)
        self._rng.shuffle(indices)
        return iter(indices)

    def __len__(self) -> int:
        return len(self._sampler)  # type: ignore[arg-type]


class ReproducibleShuffleBatchSampler(Sampler):
    """Shuffles the order of the batches of each pass with a ``numpy`` RNG seeded once."""

    def __init__(self, batch_sampler: BatchSampler, seed: int) -> None:
        self._batch_sampler = batch_sampler
        self._rng = np.random.RandomState(seed)

    def __iter__(self) -> Iterator:
        batches = list(self._batch_sampler)
        self._rng.shuffle(batches)
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batch_sampler)


class SeededRandomSampler(RandomSampler):
    """A ``RandomSampler`` whose permutation of epoch ``e`` depends only on ``(seed, e)``.

    Each plain iteration (a validation pass, a ``for`` loop over the loader) uses the next epoch,
    so data is reshuffled every pass as with torch's sampler; repeating training streams ask for
    epochs explicitly through :meth:`permutation`.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def permutation(self, epoch: int) -> list[int]:
        # SeedSequence mixes (seed, epoch) so neighbouring epochs and seeds are independent.
        rng = np.random.default_rng((self.seed, epoch))
        return rng.permutation(len(self.data_source)).tolist()

    def __iter__(self) -> Iterator[int]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from self.permutation(epoch)

    def __len__(self) -> int:
        return len(self.data_source)


def epoch_batches(batch_sampler: BatchSampler, epoch: int) -> list[list[int]]:
    """The index batches of one epoch of a ``BatchSampler`` over a ``SeededRandomSampler``."""
    sampler = batch_sampler.sampler
    if not isinstance(sampler, SeededRandomSampler):
        raise TypeError(f"expected a BatchSampler over a SeededRandomSampler, got {sampler!r}")
    indices = sampler.permutation(epoch)
    size = batch_sampler.batch_size
    batches = [indices[i : i + size] for i in range(0, len(indices), size)]
    if batches and batch_sampler.drop_last and len(batches[-1]) < size:
        batches.pop()
    return batches


class SeededRepeatBatchSampler(BatchSampler):
    """Repeats a seeded ``BatchSampler`` forever, starting at global batch ``start``.

    ``start`` lands in epoch ``start // len`` at offset ``start % len``; earlier batches are
    never built, so their samples are never loaded. ``len`` is one epoch, as in
    ``RepeatBatchSampler``.
    """

    def __init__(self, batch_sampler: BatchSampler, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"start must be non-negative, got {start}")
        self.batch_sampler = batch_sampler
        self.start = start

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[int]]:
        length = len(self.batch_sampler)
        if length == 0:
            return
        epoch, offset = divmod(self.start, length)
        while True:
            yield from epoch_batches(self.batch_sampler, epoch)[offset:]
            epoch, offset = epoch + 1, 0
