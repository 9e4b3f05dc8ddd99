"""``TrainContext``: metric reports to a JSON Lines file and TensorBoard, with 0.38's API."""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Callable
from typing import Any

from shim.core.compat_enum import CompatEnum
from shim.core.distributed import DistributedContext
from shim.core.info import ClusterInfo
from shim.core.sinks import JsonlSink, TensorboardSink, to_jsonable
from shim.errors import ShimError

__all__ = ["EarlyExitReason", "TensorboardMode", "TrainContext"]

logger = logging.getLogger("shim.core")


class EarlyExitReason(CompatEnum):
    INVALID_HP = "EXITED_REASON_INVALID_HP"
    # This is generally only used in the python-side code.
    USER_REQUESTED_STOP = "EXITED_REASON_USER_REQUESTED_STOP"


class TensorboardMode(CompatEnum):
    AUTO = "AUTO"
    MANUAL = "MANUAL"


class TrainContext:
    """Report training, validation and custom metrics; every report is one JSONL record."""

    def __init__(
        self,
        dist: DistributedContext,
        info: ClusterInfo,
        metrics_path: pathlib.Path,
        tensorboard_path: pathlib.Path,
        tensorboard_mode: TensorboardMode = TensorboardMode.AUTO,
    ) -> None:
        self._dist = dist
        self._info = info
        self._tensorboard_path = tensorboard_path
        self._jsonl = JsonlSink(metrics_path)
        self._tensorboard = (
            TensorboardSink(tensorboard_path)
            if TensorboardMode(tensorboard_mode) == TensorboardMode.AUTO
            else None
        )
        self._best_validation: float | None = None
        self._status: str | None = None
        self._metadata: dict[str, Any] = {}
        self.early_exit_reason: EarlyExitReason | None = None
        self.progress: float | None = None

    @property
    def metrics_path(self) -> pathlib.Path:
        return self._jsonl.path

    def report_training_metrics(
        self,
        steps_completed: int,
        metrics: dict[str, Any],
        batch_metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        self._report("training", steps_completed, metrics, batch_metrics)

    def report_validation_metrics(self, steps_completed: int, metrics: dict[str, Any]) -> None:
        none = [name for name, value in metrics.items() if value is None]
        if none:
            raise ShimError(
                f"validation metric(s) {none} at step {steps_completed} are None; "
                "report numbers (or leave those names out)"
            )
        self._report("validation", steps_completed, metrics)
        self._track_best(metrics)

    def report_metrics(self, group: str, steps_completed: int, metrics: dict[str, Any]) -> None:
        if not isinstance(group, str) or not group or "." in group:
            raise ShimError(f"metrics group {group!r} must be a non-empty string without '.'")
        self._report(group, steps_completed, metrics)

    def report_progress(self, progress: float) -> None:
        if progress < 0 or progress > 1:
            raise ValueError(f"Progress should be between 0 and 1, not {progress}")
        self.progress = float(progress)

    def report_early_exit(self, reason: EarlyExitReason) -> None:
        self.early_exit_reason = EarlyExitReason(reason)
        logger.info("report_early_exit(%s)", self.early_exit_reason.name)

    def get_experiment_best_validation(self) -> float | None:
        """Best searcher metric reported by this trial (locally, the trial is the experiment)."""
        return self._best_validation

    def set_status(self, status: str) -> None:
        self._status = status
        logger.info("status: %s", status)

    def set_metadata(self, metadata: dict[str, Any]) -> dict[str, Any] | None:
        try:
            self._metadata = json.loads(json.dumps(metadata))
        except (TypeError, ValueError) as exc:
            raise ShimError(f"trial metadata must be JSON-serializable: {exc}") from exc
        return self._metadata

    def get_metadata(self) -> dict[str, Any] | None:
        return self._metadata

    def get_tensorboard_path(self) -> pathlib.Path:
        return self._tensorboard_path

    def upload_tensorboard_files(
        self,
        selector: Callable[[pathlib.Path], bool] = lambda _: True,
        mangler: Callable[[pathlib.Path, int], pathlib.Path] = lambda p, __: p,
    ) -> None:
        """Local TensorBoard files are already where they belong; kept for API compatibility."""
        if self._tensorboard is not None:
            raise RuntimeError("upload_tensorboard_files can only be used in MANUAL mode")

    def open_tensorboard(self) -> None:
        """Start the TensorBoard writer up front, so no training step pays for it."""
        if self._tensorboard is not None:
            self._tensorboard.open()

    def flush(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.flush()

    def close(self) -> None:
        self._jsonl.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

    def _report(
        self,
        group: str,
        steps_completed: int,
        metrics: dict[str, Any],
        batch_metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        if isinstance(steps_completed, bool) or not isinstance(steps_completed, int):
            raise ShimError(f"steps_completed must be an int, not {steps_completed!r}")
        if not isinstance(metrics, dict):
            raise ShimError(
                f"{group} metrics must be a dict of name -> value, not {type(metrics).__name__}"
            )
        values = to_jsonable(metrics)
        record: dict[str, Any] = {
            "group": group,
            "steps_completed": steps_completed,
            "metrics": values,
        }
        if batch_metrics is not None:
            record["batch_metrics"] = to_jsonable(batch_metrics)
        self._jsonl.write(record)
        if self._tensorboard is not None:
            self._tensorboard.write(group, steps_completed, values)

    def _track_best(self, metrics: dict[str, Any]) -> None:
        searcher = self._info.trial._config.get("searcher") or {}
        name = searcher.get("metric")
        value = to_jsonable(metrics.get(name)) if name else None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return
        smaller = searcher.get("smaller_is_better", True)
        best = self._best_validation
        if best is None or (value < best if smaller else value > best):
            self._best_validation = float(value)
