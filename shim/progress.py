"""What ``run-trial`` shows while a trial runs: a progress bar on a terminal, plain lines elsewhere.

The trial controller calls a :class:`RunReporter` at events with plain data only (numbers, strings,
mappings), so this module knows nothing of the loop and the loop nothing of the display. Everything
goes to one stream, stderr by default, because stdout is reserved for ``--json`` data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping
from time import monotonic
from typing import IO, Any, Literal, Protocol, runtime_checkable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from shim.errors import ApiMisuse

__all__ = [
    "NullReporter",
    "PlainReporter",
    "RichReporter",
    "RunReporter",
    "RunStatus",
    "RunSummary",
    "format_summary_table",
    "make_reporter",
]

RunStatus = Literal["completed", "preempted", "failed"]
_STATUSES = ("completed", "preempted", "failed")
_STATUS_STYLES = {"completed": "bold green", "preempted": "bold yellow", "failed": "bold red"}
_RENDER_INTERVAL = 0.2  # seconds between bar redraws: smooth enough, and cheap
_BAR_METRICS = 3  # training metrics shown on the bar; all of them go to the log lines


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """The outcome of one ``run-trial`` run, shown at the end and printed by ``--json``."""

    status: RunStatus
    trial: str
    steps_completed: int
    epochs_completed: float
    latest_checkpoint: str | None
    latest_checkpoint_path: str | os.PathLike[str] | None
    best_validation: Mapping[str, Any] | None
    final_validation: Mapping[str, Any] | None
    searcher_metric: str
    metrics_path: str | os.PathLike[str] | None
    tensorboard_path: str | os.PathLike[str] | None
    seed: int | None
    restarts: int
    elapsed_seconds: float
    error: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ApiMisuse(
                f"run status {self.status!r} is not one of {', '.join(_STATUSES)}; "
                "build RunSummary with one of those"
            )

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready values in field order; non-finite floats become "NaN"/"Infinity"."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        """One line of strict JSON; every field is always present, in declaration order."""
        return json.dumps(self.to_dict(), allow_nan=False)


@runtime_checkable
class RunReporter(Protocol):
    """Receives the events of one run; ``on_batch`` runs every batch and must stay cheap."""

    def on_start(
        self, *, trial: str, total_batches: int, batches_per_epoch: int, start_batch: int
    ) -> None:
        """Training begins (``batches_per_epoch`` is 0 when the loader has no length)."""

    def on_batch(self, *, batches: int, epoch: int) -> None:
        """``batches`` trained so far; ``epoch`` is 0-based, as Lightning's ``current_epoch``."""

    def on_training_metrics(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        """Averaged training metrics were reported at ``batches``."""

    def on_validation(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        """Validation finished at ``batches``."""

    def on_checkpoint(self, *, batches: int, storage_id: str) -> None:
        """A checkpoint was stored at ``batches``."""

    def on_message(self, text: str) -> None:
        """A notice or warning for the user."""

    def on_end(self, summary: RunSummary) -> None:
        """The run ended; shows the summary and releases the display."""

    def close(self) -> None:
        """Releases the display without a summary (safe to call twice, and after ``on_end``)."""


class NullReporter:
    """Shows nothing: for ranks other than the chief, and for library use."""

    def on_start(
        self, *, trial: str, total_batches: int, batches_per_epoch: int, start_batch: int
    ) -> None:
        pass

    def on_batch(self, *, batches: int, epoch: int) -> None:
        pass

    def on_training_metrics(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        pass

    def on_validation(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        pass

    def on_checkpoint(self, *, batches: int, storage_id: str) -> None:
        pass

    def on_message(self, text: str) -> None:
        pass

    def on_end(self, summary: RunSummary) -> None:
        pass

    def close(self) -> None:
        pass


class PlainReporter(NullReporter):
    """One line per report, validation, checkpoint and message; nothing per batch (logs, CI)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._total: int | None = None
        self._per_epoch = 0

    def on_start(
        self, *, trial: str, total_batches: int, batches_per_epoch: int, start_batch: int
    ) -> None:
        self._total, self._per_epoch = total_batches, batches_per_epoch
        epochs = f"{batches_per_epoch} per epoch" if batches_per_epoch else "epoch length unknown"
        self._write(f"trial {trial}: {total_batches} batches ({epochs}), from batch {start_batch}")

    def on_training_metrics(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        self._write(f"{self._where(batches)}: training {_format_metrics(metrics)}")

    def on_validation(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        self._write(f"{self._where(batches)}: validation {_format_metrics(metrics)}")

    def on_checkpoint(self, *, batches: int, storage_id: str) -> None:
        self._write(f"{self._where(batches)}: checkpoint {storage_id}")

    def on_message(self, text: str) -> None:
        self._write(text)

    def on_end(self, summary: RunSummary) -> None:
        self._write(format_summary_table(summary))

    def _where(self, batches: int) -> str:
        return _position(batches, self._total, self._per_epoch)

    def _write(self, text: str) -> None:
        # Looked up at each write so a replaced sys.stderr (pytest, redirection) is honoured.
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(text + "\n")
        stream.flush()


class RichReporter(NullReporter):
    """A live progress bar (batches, epoch, training metrics, ETA) with events printed above it."""

    def __init__(
        self, console: Console | None = None, *, clock: Callable[[], float] = monotonic
    ) -> None:
        self.console = console if console is not None else Console(stderr=True, highlight=False)
        self._clock = clock
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total: int | None = None
        self._per_epoch = 0
        self._batches = 0
        self._epoch = 0
        # Infinite until on_start, so on_batch needs no extra check for a missing bar.
        self._next_render = math.inf

    def on_start(
        self, *, trial: str, total_batches: int, batches_per_epoch: int, start_batch: int
    ) -> None:
        self.close()
        self._total, self._per_epoch, self._batches = total_batches, batches_per_epoch, start_batch
        self._epoch = start_batch // batches_per_epoch if batches_per_epoch else 0
        self._progress = _make_progress(self.console)
        self._task = self._progress.add_task(
            trial, total=total_batches, completed=start_batch, epoch="", metrics=""
        )
        self._progress.start()
        self._render(self._clock())

    def on_batch(self, *, batches: int, epoch: int) -> None:
        # A clock read per call costs tens of nanoseconds; counting calls instead would freeze
        # the bar for minutes when batches are slow.
        self._batches = batches
        self._epoch = epoch
        now = self._clock()
        if now >= self._next_render:
            self._render(now)

    def on_training_metrics(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        if self._progress is not None and self._task is not None:
            shown = dict(list(metrics.items())[:_BAR_METRICS])
            self._progress.update(self._task, metrics=_format_metrics(shown))
            self._render(self._clock())

    def on_validation(self, *, batches: int, metrics: Mapping[str, float]) -> None:
        self._event(batches, "validation", "cyan", _format_metrics(metrics))

    def on_checkpoint(self, *, batches: int, storage_id: str) -> None:
        self._event(batches, "checkpoint", "magenta", storage_id)

    def on_message(self, text: str) -> None:
        self.console.print(Text(text, style="yellow"))

    def on_end(self, summary: RunSummary) -> None:
        if self._progress is not None:
            self._render(self._clock())
        self.close()
        self.console.print(_rich_summary_table(summary))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task, self._next_render = None, None, math.inf

    def _render(self, now: float) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, completed=self._batches, epoch=self._epoch_label())
        self._progress.refresh()
        self._next_render = now + _RENDER_INTERVAL

    def _epoch_label(self) -> str:
        # Counted from 1 for people; the controller hands Lightning's 0-based current_epoch.
        if not self._per_epoch or self._total is None:
            return f"epoch {self._epoch + 1}"
        return f"epoch {self._epoch + 1}/{math.ceil(self._total / self._per_epoch)}"

    def _event(self, batches: int, kind: str, style: str, detail: str) -> None:
        where = _position(batches, self._total, self._per_epoch)
        self.console.print(Text.assemble(f"{where}: ", (kind, style), f" {detail}"))


def make_reporter(stream: IO[str] | None = None, *, force_plain: bool = False) -> RunReporter:
    """Rich on a terminal (colourless under ``NO_COLOR``), plain lines otherwise or when forced."""
    target = stream if stream is not None else sys.stderr
    dumb = os.environ.get("TERM", "") == "dumb"
    if force_plain or dumb or not _is_tty(target):
        return PlainReporter(stream)
    no_color = bool(os.environ.get("NO_COLOR"))  # no-color.org: set and not empty
    console = Console(file=target, force_terminal=True, no_color=no_color, highlight=False)
    return RichReporter(console)


def format_summary_table(summary: RunSummary) -> str:
    """The summary as aligned ``label: value`` lines, for logs and other non-terminals."""
    rows = _summary_rows(summary)
    width = max(len(label) for label, _ in rows) + 1
    indent = "\n" + " " * (width + 1)
    return "\n".join(
        f"{label + ':':<{width}} {value.replace(chr(10), indent)}" for label, value in rows
    )


def _make_progress(console: Console) -> Progress:
    # Redrawn by on_batch's throttle rather than a thread; stdout is left alone for --json data.
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TextColumn("{task.fields[epoch]}"),
        TextColumn("{task.fields[metrics]}"),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,
        redirect_stdout=False,
    )


def _rich_summary_table(summary: RunSummary) -> Table:
    table = Table(title=f"trial {summary.trial}", show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for label, value in _summary_rows(summary):
        style = _STATUS_STYLES[summary.status] if label == "status" else ""
        table.add_row(label, Text(value, style=style))
    return table


def _summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    rows = [
        ("status", summary.status),
        ("trial", summary.trial),
        ("steps completed", str(summary.steps_completed)),
        ("epochs completed", _format_number(summary.epochs_completed)),
        ("latest checkpoint", _or_dash(summary.latest_checkpoint)),
        ("checkpoint path", _or_dash(summary.latest_checkpoint_path)),
        ("searcher metric", summary.searcher_metric),
        ("best validation", _format_optional_metrics(summary.best_validation)),
        ("final validation", _format_optional_metrics(summary.final_validation)),
        ("metrics file", _or_dash(summary.metrics_path)),
        ("tensorboard", _or_dash(summary.tensorboard_path)),
        ("seed", _or_dash(summary.seed)),
        ("restarts", str(summary.restarts)),
        ("elapsed", _format_duration(summary.elapsed_seconds)),
    ]
    if summary.error is not None:
        rows.append(("error", summary.error))
    return rows


def _position(batches: int, total: int | None, per_epoch: int) -> str:
    where = f"batch {batches}" if total is None else f"batch {batches}/{total}"
    return f"{where} ({batches / per_epoch:.2f} epochs)" if per_epoch else where


def _format_metrics(metrics: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={_format_number(value)}" for name, value in metrics.items())


def _format_optional_metrics(metrics: Mapping[str, Any] | None) -> str:
    return "-" if metrics is None else _format_metrics(metrics) or "-"


def _format_number(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return f"{float(value):.5g}"
    return str(value)


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _or_dash(value: object) -> str:
    return (
        "-" if value is None else os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    )


def _jsonable(value: Any) -> Any:
    # As Determined's json_encode: strict JSON has no NaN/Infinity, so they become strings.
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    return str(value)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
