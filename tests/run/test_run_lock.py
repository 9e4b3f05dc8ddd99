"""One run-trial per run: the chief's lock beside the run folder, taken by real processes; a
killed holder (even one whose forked children live on) never blocks the next run."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from shim.errors import UserInputError
from shim.runlock import RunLock, RunLocked, lock_path
from tests.conftest import REPO

HOLDER = """\
import os, pathlib, signal, sys
from shim.runlock import RunLock

lock = RunLock.acquire(pathlib.Path(sys.argv[1]))
child = 0
if sys.argv[2] == "fork":
    child = os.fork()  # a stand-in for a data loader worker, which outlives a killed parent
    if child == 0:
        signal.pause()
print(child, flush=True)
sys.stdin.read()
"""


@pytest.fixture
def run_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "storage" / "runs" / "toy-12345678"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def holder(run_dir: pathlib.Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the run's lock until its stdin closes."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir), "plain"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "0"
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_a_second_lock_on_a_run_names_the_holder_and_the_run(
    run_dir: pathlib.Path, holder: subprocess.Popen[str]
) -> None:
    expected = (
        rf"another run-trial \(pid {holder.pid}, started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\) is "
        rf"running this trial in {re.escape(str(run_dir))}; wait for it to finish, or stop it "
        rf"\(kill {holder.pid}\) and run again"
    )
    with pytest.raises(RunLocked, match=expected):
        RunLock.acquire(run_dir)
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    with RunLock.acquire(run_dir) as lock:
        assert lock.details["pid"] == os.getpid()
    assert lock_path(run_dir).read_text() == "", "a released lock names no one"


def test_the_lock_sits_beside_the_run_folder_so_renaming_the_folder_keeps_it(
    run_dir: pathlib.Path, holder: subprocess.Popen[str]
) -> None:
    assert lock_path(run_dir) == run_dir.parent / "toy-12345678.lock"
    run_dir.rename(run_dir.with_name("toy-12345678.20250101-000000.1"))  # what --fresh does
    with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
        RunLock.acquire(run_dir)


def test_a_holder_killed_with_sigkill_does_not_block_the_next_run(
    run_dir: pathlib.Path, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    assert holder.wait(timeout=60) == -signal.SIGKILL
    with RunLock.acquire(run_dir) as lock:
        assert lock.details["pid"] == os.getpid()


def test_children_forked_by_a_killed_holder_do_not_keep_its_lock(run_dir: pathlib.Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir), "fork"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as proc:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        try:
            proc.kill()
            proc.wait(timeout=60)
            os.kill(child, 0)  # the forked child is still alive ...
            with RunLock.acquire(run_dir):  # ... and the run is free all the same
                pass
        finally:
            os.kill(child, signal.SIGKILL)


def test_the_same_process_cannot_lock_a_run_twice(run_dir: pathlib.Path) -> None:
    # POSIX locks belong to a process, so the kernel alone would grant the second one.
    with RunLock.acquire(run_dir), pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        RunLock.acquire(run_dir)
    RunLock.acquire(run_dir).release()


def test_a_folder_where_the_lock_file_belongs_is_bad_input(run_dir: pathlib.Path) -> None:
    lock_path(run_dir).mkdir()
    with pytest.raises(UserInputError, match=r"cannot open the run's lock file .*\.lock \(Is a"):
        RunLock.acquire(run_dir)


def test_a_stale_lock_file_left_by_a_dead_process_is_simply_taken_over(
    run_dir: pathlib.Path,
) -> None:
    lock_path(run_dir).write_text('{"pid": 999999999, "host": "gone", "started": "long ago"}\n')
    started = time.strftime("%Y-%m-%d")
    with RunLock.acquire(run_dir) as lock:
        assert lock.details["started"].startswith(started)
        assert f'"pid": {os.getpid()}' in lock_path(run_dir).read_text()


FAULTS = REPO / "tests" / "run" / "trials" / "faults" / "const.yaml"


def start_holding_run(storage: pathlib.Path, hold: pathlib.Path) -> subprocess.Popen[str]:
    """A real run-trial that stops after batch 6 (a checkpoint at 4 written) until released."""
    hold.mkdir()
    env = {**os.environ, "SHIM_TEST_HOLD_AT": "6", "SHIM_TEST_HOLD_DIR": str(hold)}
    command = [sys.executable, "-m", "shim.cli", str(FAULTS), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    deadline = time.monotonic() + 240
    while not (hold / "started").exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it held: {proc.communicate()[1]}")
        assert time.monotonic() < deadline, "the run never reached batch 6"
        time.sleep(0.05)
    return proc


def run_trial(storage: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shim.cli", str(FAULTS), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)


def snapshot(storage: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(storage)): p.read_bytes()
        for p in sorted(storage.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.slow
def test_a_second_run_trial_on_a_running_trial_exits_2_and_writes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    storage = tmp_path / "storage"
    first = start_holding_run(storage, tmp_path / "hold")
    try:
        before = snapshot(storage)
        assert any(name.endswith("trial.json") for name in before)
        (run_dir,) = [p for p in (storage / "runs").iterdir() if p.is_dir()]
        for args in ((), ("--fresh",)):
            second = run_trial(storage, *args)
            assert second.returncode == 2, second.stderr
            assert second.stderr == (
                f"run-trial: error: another run-trial (pid {first.pid}, started "
                f"{json.loads((run_dir.parent / (run_dir.name + '.lock')).read_text())['started']}"
                f") is running this trial in {run_dir}; wait for it to finish, or stop it (kill "
                f"{first.pid}) and run again\n"
            )
            assert snapshot(storage) == before, "the second run wrote nothing"
            assert [p for p in (storage / "runs").iterdir() if p.is_dir()] == [run_dir]
        (tmp_path / "hold" / "release").touch()
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["steps_completed"] == 12
    finally:
        if first.poll() is None:
            first.kill()


@pytest.mark.slow
def test_after_a_sigkill_the_next_run_trial_resumes_the_run(tmp_path: pathlib.Path) -> None:
    storage = tmp_path / "storage"
    first = start_holding_run(storage, tmp_path / "hold")
    first.kill()
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    again = run_trial(storage)
    assert again.returncode == 0, again.stderr
    assert "from batch 4" in again.stderr, "resumed from the checkpoint the killed run wrote"
    assert json.loads(again.stdout.splitlines()[-1])["steps_completed"] == 12
