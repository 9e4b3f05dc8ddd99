"""The training batches of a run, and when torch's iterators over them are created.

Creating a ``DataLoader`` iterator draws its base seed from the global torch RNG
(``_BaseDataLoaderIter.__init__``), so the moment of each creation moves every later dropout mask
and ``randn``. Determined creates one repeating iterator per run, before the checkpoint is
restored. Lightning creates one per epoch (``iter(train_loader)``); a module that draws random
numbers is Lightning-exact only if run-trial creates them at the same points:

- Lightning 2.x: epoch 0's in ``FitLoop.setup_data`` (after ``configure_optimizers`` and
  ``on_fit_start``, before ``on_train_start``), every later one right after
  ``on_train_epoch_start`` (``_TrainingEpochLoop.on_run_start``);
- Lightning 1.x: every epoch's right after ``on_train_epoch_start``.

Either way the batches are the same: one index stream in Determined's order (repeat, shard, skip;
a seeded shuffle per epoch) is cut into epochs, and each epoch's iterator reads only its own part,
so a worker never prefetches across an epoch boundary, where Lightning's would not either. One
torch loader serves every epoch, so ``persistent_workers`` keep their workers (and their seed) as
in Lightning: torch creates their iterator, and draws, on the loader's first ``iter()`` only, and
resets it on every later one (``DataLoader.__iter__``).
"""

from __future__ import annotations

import collections
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils import data

__all__ = ["TrainStream"]

# What decides the batches; everything else about the user's loader is kept as it is.
_SAMPLING_ARGS = frozenset({"batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"})


class TrainStream:
    """This rank's training batches from a global step on, as iterators over whole epochs.

    With ``per_epoch`` false (Determined), :meth:`seek` creates one repeating iterator at once.
    With it true, :meth:`open` creates the iterator for the rest of the epoch at a step;
    ``first_early`` says epoch 0's is opened before training starts (Lightning 2.x).
    """

    def __init__(
        self,
        loader: Any,
        *,
        epoch_len: int,
        num_replicas: int,
        rank: int,
        per_epoch: bool,
        first_early: bool = False,
    ) -> None:
        self._loader = loader
        self._epoch_len = epoch_len
        self._num_replicas = num_replicas
        self._rank = rank
        self.per_epoch = per_epoch
        self._first_early = per_epoch and first_early
        self._slices: _EpochSlices | None = None
        self._torch_loader: data.DataLoader | None = None
        self._iterator: Iterator[Any] | None = None
        self._epoch: int | None = None  # the epoch whose iterator is open
        self._reuses_iterator = False  # persistent workers: only the first iter() draws

    def seek(self, batches: int) -> None:
        """Continue at global step ``batches``; the steps before are never loaded."""
        loader = self._loader.get_data_loader(
            repeat=True, skip=batches, num_replicas=self._num_replicas, rank=self._rank
        )
        self._epoch = None
        # A loader without a batch sampler cannot be cut into epochs: one iterator, as Determined.
        if not self.per_epoch or getattr(loader, "batch_sampler", None) is None:
            self.per_epoch = self._first_early = False
            self._iterator = iter(loader)
            return
        self._slices = _EpochSlices(iter(loader.batch_sampler))
        self._torch_loader = torch_loader = _with_batch_sampler(loader, self._slices)
        self._reuses_iterator = torch_loader.persistent_workers and torch_loader.num_workers > 0
        self._iterator = None

    def open_at_checkpoint(self, batches: int) -> bool:
        """Whether the iterator for step ``batches`` was already created when a checkpoint was
        taken there: then a resumed run creates it before the restore, which puts back the RNG
        as it was after that creation. Call it after :meth:`seek`."""
        if not self.per_epoch:
            return True
        if batches == 0:
            return self._first_early
        # Persistent workers: the run drew once, at the first opening; later epochs reset the
        # iterator without drawing, so a resumed run must not draw after the restore either.
        return self._reuses_iterator or batches % self._epoch_len != 0

    def opens_early(self, batches: int) -> bool:
        """Whether epoch 0's iterator is created before training starts (Lightning 2.x)."""
        return self._first_early and batches == 0 and self._epoch != 0

    def open(self, batches: int) -> Iterator[Any]:
        """The iterator from step ``batches`` to its epoch's end, created unless it is open."""
        if not self.per_epoch:
            assert self._iterator is not None, "seek() comes first"
            return self._iterator
        epoch, offset = divmod(batches, self._epoch_len)
        if self._epoch != epoch:
            assert self._slices is not None and self._torch_loader is not None, "seek() first"
            self._slices.count = self._epoch_len - offset
            self._iterator = iter(self._torch_loader)
            self._epoch = epoch
        assert self._iterator is not None
        return self._iterator

    def end_epoch(self, next_epoch_start: int) -> Iterator[Any] | None:
        """The epoch ended early: skip its remaining batches. Per epoch, the next epoch's
        iterator is opened as usual (None here); otherwise a new repeating one is returned."""
        if not self.per_epoch:
            self.seek(next_epoch_start)
            return self._iterator
        assert self._slices is not None
        self._slices.drop_rest()
        self._epoch = None
        self._iterator = None
        return None


class _EpochSlices(data.Sampler):
    """A batch sampler that yields the next ``count`` batches of a shared stream per pass."""

    def __init__(self, stream: Iterator[list[int]]) -> None:
        self._stream = stream
        self.count = 0
        self._current: Iterator[list[int]] = iter(())

    def __iter__(self) -> Iterator[list[int]]:
        self._current = itertools.islice(self._stream, self.count)
        return self._current

    def __len__(self) -> int:
        return self.count

    def drop_rest(self) -> None:
        # Only index lists are made: no sample is loaded.
        collections.deque(self._current, maxlen=0)


def _with_batch_sampler(loader: data.DataLoader, batch_sampler: data.Sampler) -> data.DataLoader:
    """A torch loader like ``loader`` (workers, collate, pinning, generator, ...) that reads its
    batches from ``batch_sampler``."""
    kwargs = {
        name: getattr(loader, name)
        for name in inspect.signature(data.DataLoader).parameters
        if name != "dataset" and name not in _SAMPLING_ARGS and hasattr(loader, name)
    }
    return data.DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)
