from __future__ import annotations

import io
import json
import math
import pathlib
import re
import time
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from shim.errors import ShimError
from shim.progress import (
    NullReporter,
    PlainReporter,
    RichReporter,
    RunReporter,
    RunSummary,
    format_summary_table,
    make_reporter,
)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
UUID = "0b5f3c9e-6a1d-4e3b-9f2a-7c8d1e2f3a4b"


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal, as a real tty would."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich reads these too; a developer's shell must not change what the tests see.
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def make_summary(**changes: Any) -> RunSummary:
    fields: dict[str, Any] = {
        "status": "completed",
        "trial": "MNISTTrial",
        "steps_completed": 1000,
        "epochs_completed": 10.0,
        "latest_checkpoint": UUID,
        "latest_checkpoint_path": f"/ckpt/{UUID}",
        "best_validation": {"val_loss": 0.125, "accuracy": 0.96875},
        "final_validation": {"val_loss": 0.25, "accuracy": 0.9375},
        "searcher_metric": "val_loss",
        "metrics_path": "/ckpt/metrics/trial_1.jsonl",
        "tensorboard_path": "/ckpt/tensorboard",
        "seed": 7,
        "restarts": 1,
        "elapsed_seconds": 3725.0,
        "error": None,
    }
    return RunSummary(**{**fields, **changes})


def play_script(reporter: RunReporter) -> None:
    reporter.on_start(trial="MNISTTrial", total_batches=1000, batches_per_epoch=100, start_batch=0)
    for batch in range(1, 1001):
        reporter.on_batch(batches=batch, epoch=(batch - 1) // 100)
        if batch % 500 == 0:
            metrics = {"loss": 1 / batch, "acc": 0.5, "lr": 0.01, "grad_norm": 3.25}
            reporter.on_training_metrics(batches=batch, metrics=metrics)
            reporter.on_validation(batches=batch, metrics={"val_loss": 0.25, "accuracy": 0.9375})
            reporter.on_checkpoint(batches=batch, storage_id=UUID)
    reporter.on_message("notice: records_per_epoch is ignored")
    reporter.on_end(make_summary())


def rich_reporter(**console_args: Any) -> tuple[RichReporter, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, **console_args)
    return RichReporter(console), out


def colour_codes(text: str) -> list[str]:
    codes = []
    for match in SGR.finditer(text):
        for code in match.group(1).split(";"):
            if code and (30 <= int(code) <= 49 or 90 <= int(code) <= 107):
                codes.append(code)
    return codes


def test_plain_reporter_writes_one_line_per_report_validation_checkpoint_and_the_summary() -> None:
    out = io.StringIO()
    play_script(PlainReporter(out))
    assert out.getvalue().splitlines() == [
        "trial MNISTTrial: 1000 batches (100 per epoch), from batch 0",
        "batch 500/1000 (5.00 epochs): training loss=0.002 acc=0.5 lr=0.01 grad_norm=3.25",
        "batch 500/1000 (5.00 epochs): validation val_loss=0.25 accuracy=0.9375",
        f"batch 500/1000 (5.00 epochs): checkpoint {UUID}",
        "batch 1000/1000 (10.00 epochs): training loss=0.001 acc=0.5 lr=0.01 grad_norm=3.25",
        "batch 1000/1000 (10.00 epochs): validation val_loss=0.25 accuracy=0.9375",
        f"batch 1000/1000 (10.00 epochs): checkpoint {UUID}",
        "notice: records_per_epoch is ignored",
        *format_summary_table(make_summary()).splitlines(),
    ]


def test_plain_reporter_omits_epochs_when_the_epoch_length_is_unknown() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.on_validation(batches=3, metrics={"val_loss": 1.5})
    reporter.on_start(trial="T", total_batches=10, batches_per_epoch=0, start_batch=4)
    reporter.on_checkpoint(batches=10, storage_id="abc")
    assert out.getvalue().splitlines() == [
        "batch 3: validation val_loss=1.5",
        "trial T: 10 batches (epoch length unknown), from batch 4",
        "batch 10/10: checkpoint abc",
    ]


def test_plain_reporter_writes_to_stderr_by_default_and_leaves_stdout_for_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    PlainReporter().on_message("hello")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "hello\n")


def test_summary_table_aligns_labels_and_shows_missing_values_as_dashes() -> None:
    summary = make_summary(
        status="failed",
        latest_checkpoint=None,
        latest_checkpoint_path=None,
        best_validation=None,
        final_validation={},
        seed=None,
        elapsed_seconds=12.34,
        error="ShimError: boom\n  at model_def.py:12",
    )
    assert format_summary_table(summary) == "\n".join(
        [
            "status:            failed",
            "trial:             MNISTTrial",
            "steps completed:   1000",
            "epochs completed:  10",
            "latest checkpoint: -",
            "checkpoint path:   -",
            "searcher metric:   val_loss",
            "best validation:   -",
            "final validation:  -",
            "metrics file:      /ckpt/metrics/trial_1.jsonl",
            "tensorboard:       /ckpt/tensorboard",
            "seed:              -",
            "restarts:          1",
            "elapsed:           12.3 s",
            "error:             ShimError: boom",
            "                     at model_def.py:12",
        ]
    )


def test_summary_table_shows_long_runs_as_hours_minutes_seconds() -> None:
    table = format_summary_table(make_summary(elapsed_seconds=3725.9, epochs_completed=2.5))
    assert "elapsed:           1:02:05" in table.splitlines()
    assert "epochs completed:  2.5" in table.splitlines()


def test_rich_reporter_shows_the_bar_events_and_a_summary_table() -> None:
    reporter, out = rich_reporter()
    play_script(reporter)
    text = ANSI.sub("", out.getvalue())
    assert "1000/1000" in text
    assert "epoch 10/10" in text
    assert "loss=0.001 acc=0.5 lr=0.01" in text
    assert "grad_norm" not in text.split("validation")[0]  # the bar shows the first 3 only
    assert "batch 500/1000 (5.00 epochs): validation val_loss=0.25 accuracy=0.9375" in text
    assert f"batch 1000/1000 (10.00 epochs): checkpoint {UUID}" in text
    assert "notice: records_per_epoch is ignored" in text
    table = text[text.index("trial MNISTTrial") :]
    for expected in ("completed", "1000", UUID, "val_loss=0.125", "accuracy=0.9375", "1:02:05"):
        assert expected in table


def test_rich_summary_colours_the_status_and_shows_the_error_of_a_failed_run() -> None:
    reporter, out = rich_reporter()
    reporter.on_end(make_summary(status="failed", error="ShimError: no loss"))
    assert "\x1b[1;31mfailed" in out.getvalue()
    assert "ShimError: no loss" in ANSI.sub("", out.getvalue())


def test_rich_reporter_prints_user_text_literally_not_as_markup() -> None:
    reporter, out = rich_reporter()
    reporter.on_message("metric [bold]x[/bold] missing")
    assert "metric [bold]x[/bold] missing" in ANSI.sub("", out.getvalue())


def test_rich_reporter_redraws_the_bar_only_when_the_render_interval_has_passed() -> None:
    out = io.StringIO()
    clock = FakeClock()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=100), clock=clock)
    reporter.on_start(trial="T", total_batches=100, batches_per_epoch=10, start_batch=0)
    frames = out.getvalue().count("batches")
    for batch in range(1, 51):
        clock.now += 0.001
        reporter.on_batch(batches=batch, epoch=(batch - 1) // 10)
    assert out.getvalue().count("batches") == frames
    clock.now += 1.0
    reporter.on_batch(batches=51, epoch=5)
    assert out.getvalue().count("batches") == frames + 1
    assert "51/100" in ANSI.sub("", out.getvalue())
    reporter.close()


def test_rich_reporter_can_close_twice_and_summarise_a_run_that_never_started() -> None:
    reporter, out = rich_reporter()
    reporter.on_batch(batches=1, epoch=0)
    reporter.on_training_metrics(batches=1, metrics={"loss": 1.0})
    reporter.close()
    reporter.close()
    reporter.on_end(make_summary(status="preempted"))
    text = ANSI.sub("", out.getvalue())
    assert "preempted" in text
    assert "loss=1" not in text


def test_on_batch_costs_well_under_ten_microseconds_with_the_rich_reporter() -> None:
    reporter, _ = rich_reporter()
    reporter.on_start(trial="T", total_batches=300_000, batches_per_epoch=1000, start_batch=0)
    on_batch = reporter.on_batch
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        for batch in range(100_000):
            on_batch(batches=batch, epoch=batch // 1000)
        timings.append(time.perf_counter() - start)
    reporter.close()
    assert min(timings) < 0.5


def test_no_color_removes_colour_codes_but_keeps_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    coloured = TtyStream()
    play_script(make_reporter(coloured))
    monkeypatch.setenv("NO_COLOR", "1")
    colourless = TtyStream()
    play_script(make_reporter(colourless))
    assert colour_codes(coloured.getvalue())
    assert colour_codes(colourless.getvalue()) == []
    assert "1000/1000" in ANSI.sub("", colourless.getvalue())


@pytest.mark.parametrize(
    ("tty", "env", "force_plain", "expected", "colour"),
    [
        (True, {}, False, RichReporter, True),
        (True, {"NO_COLOR": "1"}, False, RichReporter, False),
        (True, {"NO_COLOR": ""}, False, RichReporter, True),
        (True, {"TERM": "dumb"}, False, PlainReporter, None),
        (True, {}, True, PlainReporter, None),
        (False, {}, False, PlainReporter, None),
        (False, {"FORCE_COLOR": "1"}, False, PlainReporter, None),
    ],
)
def test_make_reporter_picks_rich_only_for_a_capable_terminal(
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    env: dict[str, str],
    force_plain: bool,
    expected: type,
    colour: bool | None,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = TtyStream() if tty else io.StringIO()
    reporter = make_reporter(stream, force_plain=force_plain)
    assert type(reporter) is expected
    if isinstance(reporter, RichReporter):
        assert reporter.console.file is stream
        assert (
            reporter.console.color_system is not None and not reporter.console.no_color
        ) is colour


def test_make_reporter_treats_a_closed_or_tty_less_stream_as_no_terminal(
    tmp_path: pathlib.Path,
) -> None:
    closed = (tmp_path / "log.txt").open("w")
    closed.close()
    assert isinstance(make_reporter(closed), PlainReporter)

    class Sink:
        def write(self, text: str) -> int:
            return len(text)

    assert isinstance(make_reporter(Sink()), PlainReporter)  # type: ignore[arg-type]


def test_every_reporter_follows_the_protocol_and_the_null_one_writes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert isinstance(NullReporter(), RunReporter)
    assert isinstance(PlainReporter(), RunReporter)
    assert isinstance(rich_reporter()[0], RunReporter)
    play_script(NullReporter())
    assert capsys.readouterr() == ("", "")


def test_summary_json_is_one_strict_line_that_round_trips_with_non_finite_values() -> None:
    summary = make_summary(
        best_validation={"val_loss": math.nan, "accuracy": np.float32(0.5), "count": np.int64(3)},
        final_validation={"val_loss": math.inf, "margin": -math.inf},
        latest_checkpoint_path=pathlib.Path("/ckpt") / UUID,
        elapsed_seconds=1.5,
    )
    line = summary.to_json()
    assert "\n" not in line
    data = json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert list(data) == [
        "status",
        "trial",
        "steps_completed",
        "epochs_completed",
        "latest_checkpoint",
        "latest_checkpoint_path",
        "best_validation",
        "final_validation",
        "searcher_metric",
        "metrics_path",
        "tensorboard_path",
        "seed",
        "restarts",
        "elapsed_seconds",
        "error",
    ]
    assert data["best_validation"] == {"val_loss": "NaN", "accuracy": 0.5, "count": 3}
    assert data["final_validation"] == {"val_loss": "Infinity", "margin": "-Infinity"}
    assert data["latest_checkpoint_path"] == f"/ckpt/{UUID}"
    assert (data["status"], data["steps_completed"], data["error"]) == ("completed", 1000, None)
    assert data == summary.to_dict()


def test_summary_rejects_an_unknown_status() -> None:
    with pytest.raises(ShimError, match=r"run status 'done' is not one of completed, preempted"):
        make_summary(status="done")
