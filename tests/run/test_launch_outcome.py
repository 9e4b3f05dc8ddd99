"""How ``run-trial --nproc N`` turns its ranks' own exit statuses into its own, and when it stops
torchrun before torchrun would relaunch the ranks (``shim.launch``)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import pytest

from shim import launch
from shim.launch import _outcome, _RankExit, _SignalForwarder, _wait, record_exit_status

OK, FAILED, USAGE, PREEMPTED = 0, 1, 2, 3


def ranks(*codes: int | tuple[int, bool]) -> dict[int, _RankExit]:
    out = {}
    for rank, code in enumerate(codes):
        number, final = code if isinstance(code, tuple) else (code, False)
        out[rank] = _RankExit(number, final)
    return out


@pytest.mark.parametrize(
    ("returncode", "signalled", "codes", "expected"),
    [
        (0, False, ranks(OK, OK), OK),
        (1, True, ranks(OK, OK), OK),  # a signal after both ranks finished
        (1, False, ranks((USAGE, True), FAILED), USAGE),
        (1, False, ranks((FAILED, True), FAILED), FAILED),  # this package's bug: no restart
        (1, True, ranks(PREEMPTED, PREEMPTED), PREEMPTED),
        (1, False, ranks(PREEMPTED, PREEMPTED), PREEMPTED),  # SIGTERM straight to torchrun
        (1, True, ranks(PREEMPTED), FAILED),  # rank 1 left nothing: it did not checkpoint
        (1, False, ranks(FAILED, PREEMPTED), FAILED),
        (1, True, {}, 130),  # Ctrl-C before the ranks began
        (1, False, {}, FAILED),
    ],
)
def test_the_launch_exits_with_what_its_ranks_say(
    returncode: int,
    signalled: bool,
    codes: dict[int, _RankExit],
    expected: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _outcome(returncode, signalled, codes, nproc=2) == expected


def test_torchrun_stopping_early_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert _outcome(1, False, {}, nproc=2) == FAILED
    assert "before any rank finished" in capsys.readouterr().err
    assert _outcome(1, True, {}, nproc=2) == 130
    assert "interrupted before the ranks began training" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("left", "stops"),
    [
        ({0: (USAGE, True)}, True),
        ({0: (FAILED, True)}, True),
        ({0: (PREEMPTED, False), 1: (PREEMPTED, False)}, True),
        ({0: (PREEMPTED, False)}, False),  # rank 1 still checkpointing
        ({0: (FAILED, False)}, False),  # the trial failed: torchrun's relaunch may mend it
    ],
)
def test_torchrun_is_stopped_when_a_relaunch_cannot_help(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    left: dict[int, tuple[int, bool]],
    stops: bool,
) -> None:
    """A stand-in for torchrun that runs 3 s unless stopped; the ranks' statuses decide."""
    monkeypatch.setenv(launch.STATUS_ENV, str(tmp_path))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    for rank, (code, final) in left.items():
        monkeypatch.setenv("RANK", str(rank))
        record_exit_status(code, final=final)
    forwarder = _SignalForwarder()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    started = time.monotonic()
    try:
        forwarder.attach(process)
        returncode = _wait(process, tmp_path, forwarder, nproc=2)
    finally:
        forwarder.close()
        process.kill()
        process.wait()
    elapsed = time.monotonic() - started
    if stops:
        assert returncode == -15 and elapsed < 2.5, (returncode, elapsed)
    else:
        assert returncode == 0 and elapsed >= 2.5, (returncode, elapsed)


def test_a_relaunch_after_a_final_failure_exits_with_it(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(launch.STATUS_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert launch.earlier_final_exit() is None  # the first attempt never looks
    record_exit_status(FAILED)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert launch.earlier_final_exit() is None, "a trial failure is restarted"
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    record_exit_status(FAILED, final=True)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert launch.earlier_final_exit() == FAILED
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    record_exit_status(USAGE, final=True)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert launch.earlier_final_exit() == USAGE, "the user's input wins: exit 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempt0.rank0", "attempt0.rank1"]
