"""The deprecated searcher API (``searcher.operations()``), so old Core API scripts still run.

As in Determined 0.38 it fabricates one operation whose length is ``searcher.max_length`` and
warns with a FutureWarning; the chief broadcasts it so every rank iterates in step.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

from shim.core.compat_enum import CompatEnum
from shim.core.distributed import DistributedContext
from shim.core.errors import ChiefOnlyError
from shim.errors import ShimError

__all__ = ["SearcherContext", "SearcherMode", "SearcherOperation", "Unit", "searcher_length"]

logger = logging.getLogger("shim.core")

_DEPRECATED = (
    "SearcherContext.operations() was deprecated in Determined 0.38.0 and will be removed "
    "in a future version.  Instead, you should set your training length directly in your "
    "training code."
)


class Unit(CompatEnum):
    EPOCHS = "EPOCHS"
    RECORDS = "RECORDS"
    BATCHES = "BATCHES"


class SearcherMode(CompatEnum):
    WorkersAskChief = "WORKERS_ASK_CHIEF"
    # The misspelling is Determined's own value, kept so the two compare equal.
    ChiefOnly = "CHEIF_ONLY"


def searcher_length(config: dict[str, Any]) -> tuple[int | None, Unit | None]:
    """``searcher.max_length`` as (value, unit); a plain int has no unit."""
    max_length = (config.get("searcher") or {}).get("max_length")
    if max_length is None:
        return None, None
    if isinstance(max_length, bool):
        raise ShimError(f"searcher.max_length must be an int or {{unit: int}}, not {max_length!r}")
    if isinstance(max_length, int):
        return max_length, None
    units = {"batches": Unit.BATCHES, "records": Unit.RECORDS, "epochs": Unit.EPOCHS}
    if isinstance(max_length, dict) and len(max_length) == 1:
        ((key, value),) = max_length.items()
        if key in units and isinstance(value, int) and not isinstance(value, bool):
            return value, units[key]
    raise ShimError(
        f"searcher.max_length {max_length!r} is not valid; use e.g. {{batches: 1000}}, "
        "{epochs: 5} or {records: 60000}"
    )


class SearcherOperation:
    """One train-validate-report cycle of ``length`` units (absolute, not incremental)."""

    def __init__(self, length: int, is_chief: bool, rank: int = 0) -> None:
        self._length = length
        self._is_chief = is_chief
        self._rank = rank
        self._completed = False
        self.progress: float = 0.0
        self.searcher_metric: Any = None

    @property
    def length(self) -> int:
        return self._length

    def report_progress(self, length: float) -> None:
        if not self._is_chief:
            raise ChiefOnlyError(
                "you must only call op.report_progress() from the chief worker "
                f"(this is rank {self._rank})"
            )
        if self._completed and length != self._length:
            raise RuntimeError("you must not call op.report_progress() after op.report_completed()")
        self.progress = min(1.0, max(0.0, length / self._length)) if self._length else 1.0

    def report_completed(self, searcher_metric: Any) -> None:
        if not self._is_chief:
            raise ChiefOnlyError(
                "you must only call op.report_completed() from the chief worker "
                f"(this is rank {self._rank})"
            )
        if self._completed:
            raise RuntimeError("you may only call op.report_completed() once")
        self._completed = True
        self.searcher_metric = searcher_metric
        logger.info("searcher operation completed: searcher_metric=%r", searcher_metric)


class SearcherContext:
    """Reads ``searcher.max_length`` only when asked, so a script that never uses the searcher
    is not stopped by a config it does not need."""

    def __init__(self, dist: DistributedContext, config: dict[str, Any]) -> None:
        self._dist = dist
        self._config = config

    def operations(
        self,
        searcher_mode: SearcherMode = SearcherMode.WorkersAskChief,
        auto_ack: bool = True,
    ) -> Iterator[SearcherOperation]:
        warnings.warn(_DEPRECATED, FutureWarning, stacklevel=2)
        yield from self._operations(SearcherMode(searcher_mode))

    def _operations(self, searcher_mode: SearcherMode) -> Iterator[SearcherOperation]:
        length, _ = searcher_length(self._config)
        if length is None:
            raise ShimError(
                "searcher.operations() needs searcher.max_length in the experiment config "
                "(deprecated in Determined 0.38); set it, or drop operations() and put the "
                "training length in your code"
            )
        rank = self._dist.rank
        if rank == 0:
            op = SearcherOperation(length, True, rank)
            if searcher_mode == SearcherMode.WorkersAskChief:
                self._dist.broadcast(op.length)
            yield op
            if not op._completed:
                raise RuntimeError("you must call op.report_completed() on each operation")
            if searcher_mode == SearcherMode.WorkersAskChief:
                self._dist.broadcast(None)
            return
        if searcher_mode != SearcherMode.WorkersAskChief:
            raise ChiefOnlyError(
                "you cannot call searcher.operations(searcher_mode=ChiefOnly) from a non-chief "
                f"worker (this is rank {rank})"
            )
        while (op_length := self._dist.broadcast(None)) is not None:
            yield SearcherOperation(op_length, False, rank)

    def acknowledge_out_of_ops(self) -> None:
        """Ignored, as in Determined 0.38."""

    def get_configured_units(self) -> Unit | None:
        return searcher_length(self._config)[1]
