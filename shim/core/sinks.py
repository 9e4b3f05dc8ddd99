"""Where reported metrics go locally: a JSON Lines file and TensorBoard event files."""

from __future__ import annotations

import json
import logging
import math
import numbers
import pathlib
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["JsonlSink", "TensorboardSink", "to_jsonable"]

logger = logging.getLogger("shim.core")


def to_jsonable(value: Any) -> Any:
    """Tensors and numpy values become Python numbers or lists; containers are walked."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _finite_or_name(value)
    if hasattr(value, "detach") and hasattr(
        value, "tolist"
    ):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        return to_jsonable(value.item() if value.numel() == 1 else value.tolist())
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or array
        return to_jsonable(value.tolist())
    if isinstance(value, numbers.Real):
        return _finite_or_name(float(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return repr(value)


def _finite_or_name(number: float) -> float | str:
    # As Determined's json_encode: strict JSON has no NaN/Infinity, so they become strings.
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


class JsonlSink:
    """One JSON record per report, appended and flushed so a crash loses nothing reported."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        line = json.dumps({**record, "time": time.time()}, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorboardSink:
    """Scalars to real TensorBoard event files; the writer is created on first use."""

    def __init__(self, logdir: pathlib.Path) -> None:
        self.logdir = logdir
        self._writer: Any = None
        self._warned: set[str] = set()

    def write(self, group: str, steps_completed: int, metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            tag = _tag(group, name)
            number = _finite_number(value)
            if number is None:
                if tag not in self._warned:
                    self._warned.add(tag)
                    logger.warning(
                        "metric %r = %r is not a finite number; kept in metrics.jsonl, "
                        "not written to TensorBoard",
                        tag,
                        value,
                    )
                continue
            self._get_writer().add_scalar(tag, number, steps_completed)

    def open(self) -> None:
        """Create the writer now rather than at the first report (its import takes ~0.3 s)."""
        self._get_writer()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _get_writer(self) -> Any:
        if self._writer is None:
            # Imported here: torch.utils.tensorboard costs a second to import.
            from torch.utils.tensorboard import SummaryWriter

            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.logdir))
        return self._writer


def _tag(group: str, name: str) -> str:
    # As Determined's TensorBoard writer: validation names get a "val_" prefix unless they have one.
    if group == "validation":
        return name if name.startswith("val") else f"val_{name}"
    if group == "training":
        return name
    return f"{group}/{name}"


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
