from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import timeit

import pytest

import shim.core as core
from shim.core.distributed import DummyDistributedContext
from tests.conftest import REPO


def started() -> core.PreemptContext:
    return core.PreemptContext(DummyDistributedContext()).start()


def test_should_preempt_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="before PreemptContext.start"):
        core.PreemptContext(DummyDistributedContext()).should_preempt()


def test_start_twice_raises() -> None:
    preempt = started()
    try:
        with pytest.raises(RuntimeError, match="multiple times"):
            preempt.start()
    finally:
        preempt.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_only_sets_the_flag(signum: int) -> None:
    preempt = started()
    try:
        assert preempt.should_preempt() is False
        os.kill(os.getpid(), signum)
        assert preempt.should_preempt() is True
        assert preempt.should_preempt() is True
    finally:
        preempt.close()


def test_a_second_sigint_still_interrupts() -> None:
    preempt = started()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        preempt.close()


def test_a_second_sigterm_to_a_torchrun_rank_keeps_the_checkpoint_going(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slurm's scancel signals every process and torchrun forwards its own SIGTERM: a rank gets
    two. Outside torchrun the second still falls through to the previous handler."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run")
        preempt = started()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert preempt.should_preempt() is True and seen == []
            monkeypatch.delenv("TORCHELASTIC_RUN_ID")
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == [signal.SIGTERM]
        finally:
            preempt.close()
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_close_restores_the_previous_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    preempt = started()
    assert signal.getsignal(signal.SIGTERM) != before
    preempt.close()
    assert signal.getsignal(signal.SIGTERM) == before


def test_should_preempt_is_cheap_enough_for_every_batch() -> None:
    preempt = started()
    try:
        per_call = min(timeit.repeat(preempt.should_preempt, number=10_000, repeat=3)) / 10_000
    finally:
        preempt.close()
    # A training step of even a tiny model costs tens of microseconds.
    assert per_call < 5e-6, f"{per_call * 1e6:.2f} us per call"


def test_sigterm_to_a_real_script_checkpoints_and_exits_preempted(tmp_path: pathlib.Path) -> None:
    script = REPO / "fixtures" / "core_api_example" / "train.py"
    waiter = tmp_path / "waiter.py"
    # The script reports training metrics every 50 steps; once the first report lands, SIGTERM it.
    waiter.write_text(
        "import runpy, sys, os, signal\n"
        "import shim.core.train as t\n"
        "orig = t.TrainContext.report_training_metrics\n"
        "def report(self, *a, **k):\n"
        "    orig(self, *a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "t.TrainContext.report_training_metrics = report\n"
        f"sys.argv = [{str(script)!r}] + sys.argv[1:]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    storage = tmp_path / "ck"
    result = subprocess.run(
        [sys.executable, str(waiter), "--steps", "100000", "--checkpoint-storage", str(storage)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["status"] == "preempted"
    assert summary["steps_completed"] == 50, "stops at the next batch boundary"
    metadata = json.loads((storage / summary["latest_checkpoint"] / "metadata.json").read_text())
    assert metadata == {"steps_completed": 50}


def test_a_sigterm_after_a_sigint_does_not_kill_the_process() -> None:
    preempt = started()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # a different kind: still only a request
        assert preempt.should_preempt() is True
    finally:
        preempt.close()
