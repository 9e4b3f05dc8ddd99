"""Lengths and periods in batches, epochs or records, resolved once the epoch length is known."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shim.errors import ShimError

__all__ = ["Period", "total_batches"]


@dataclass(frozen=True)
class Period:
    """A boundary every ``batches`` batches, or at the end of every ``epochs``-th epoch."""

    batches: int | None = None
    epochs: int | None = None

    @classmethod
    def never(cls) -> Period:
        return cls()

    @classmethod
    def from_length(cls, length: Any, global_batch_size: int) -> Period:
        """From a config length (``unit`` + ``value``); a value < 1 means never, as Determined."""
        if length is None or length.value < 1:
            return cls.never()
        if length.unit == "epochs":
            return cls(epochs=length.value)
        if length.unit == "records":
            return cls(batches=max(length.value // global_batch_size, 1))
        return cls(batches=length.value)

    def due(self, batches_done: int, epoch_len: int) -> bool:
        """Whether a boundary falls right after ``batches_done`` batches."""
        if self.batches is not None:
            return batches_done % self.batches == 0
        if self.epochs is not None:
            return batches_done % epoch_len == 0 and (batches_done // epoch_len) % self.epochs == 0
        return False


def total_batches(length: Any, epoch_len: int, global_batch_size: int) -> int:
    """The searcher's ``max_length`` in batches: epochs x epoch length, records // batch size."""
    if length is None:
        raise ShimError(
            "searcher.max_length is missing: set it in the experiment config "
            "(e.g. max_length: {epochs: 2}) or pass --max-length BATCHES"
        )
    if length.unit == "epochs":
        return int(length.value) * epoch_len
    if length.unit == "records":
        return max(int(length.value) // global_batch_size, 1)
    return int(length.value)
