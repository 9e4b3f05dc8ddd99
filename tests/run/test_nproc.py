"""``run-trial --nproc N``: real torchrun launches of real ranks (gloo, CPU), preempted through the
launcher, with a rank killed, and the flags that cannot work."""

from __future__ import annotations

import os
import pathlib
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from shim.cli import main
from shim.launch import Launch, torchrun_command
from tests.conftest import REPO
from tests.run.helpers import TOY, Run, assert_same_weights, final_weights

MNIST_LIKE = REPO / "fixtures" / "mnist_like" / "const.yaml"
LENGTH = ("--max-length", "32")  # 4 epochs of 8 batches, a checkpoint after each


def launcher(
    storage: pathlib.Path,
    *args: str,
    config: pathlib.Path = MNIST_LIKE,
    marker: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "shim.cli", str(config), "--plain", "--json", *LENGTH]
    command += ["--checkpoint-storage", str(storage), *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NPROC_TEST_MARKER": marker, **(env or {})},
    )


def finish(process: subprocess.Popen[str], stderr_seen: str = "") -> Run:
    out, err = process.communicate(timeout=120)
    return Run(process.returncode, out, stderr_seen + err)


def lines_until(process: subprocess.Popen[str], text: str) -> str:
    """The launcher's stderr up to the first line holding ``text``."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"no line with {text!r}; stderr:\n{''.join(seen)}")


def rank_pids(marker: str, rank: int) -> list[int]:
    """Processes of the launch marked ``marker`` whose torchrun rank is ``rank``."""
    wanted = {f"NPROC_TEST_MARKER={marker}".encode(), f"RANK={rank}".encode()}
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:  # gone, or not ours
            continue
        if wanted <= environ:
            pids.append(int(entry.name))
    return pids


def trial_copy(folder: pathlib.Path) -> pathlib.Path:
    """mnist_like with two slots, one restart, and training metrics every 3 batches (a line on
    stderr in the middle of the first epoch)."""
    shutil.copytree(MNIST_LIKE.parent, folder, ignore=shutil.ignore_patterns("expected"))
    config = yaml.safe_load(MNIST_LIKE.read_text())
    config["resources"] = {"slots_per_trial": 2}
    config["max_restarts"] = 1
    config["scheduling_unit"] = 3
    (folder / "const.yaml").write_text(yaml.safe_dump(config))
    return folder / "const.yaml"


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return trial_copy(tmp_path_factory.mktemp("trial") / "mnist_like")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = finish(launcher(tmp_path_factory.mktemp("uninterrupted"), "--nproc", "2"))
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.slow
def test_two_ranks_complete_the_trial_with_one_summary_and_one_display(
    uninterrupted: Run,
) -> None:
    assert uninterrupted.stdout.count('"status"') == 1, "only the chief prints the summary"
    assert uninterrupted.summary["status"] == "completed"
    assert uninterrupted.summary["steps_completed"] == 32
    threads = os.environ.get("OMP_NUM_THREADS", "1")  # torchrun's default for several ranks
    launched = f"2 rank(s) on this machine through torchrun (gloo, OMP_NUM_THREADS={threads})"
    assert launched in uninterrupted.stderr
    assert "Setting OMP_NUM_THREADS" not in uninterrupted.stderr, "no torchrun banner"
    assert uninterrupted.stderr.count("trial MNISTLikeTrial: 32 batches") == 1
    assert uninterrupted.stderr.count("status:            completed") == 1


@pytest.mark.slow
def test_sigterm_to_the_launcher_mid_epoch_preempts_every_rank_and_a_rerun_ends_bitwise_equal(
    tmp_path: pathlib.Path, trial: pathlib.Path, uninterrupted: Run
) -> None:
    marker = uuid.uuid4().hex
    process = launcher(tmp_path, "--nproc", "2", config=trial, marker=marker)
    seen = lines_until(process, "trial MNISTLikeTrial: ")
    ranks = [pid for rank in (0, 1) for pid in rank_pids(marker, rank)]
    assert len(ranks) == 2
    seen += lines_until(process, ": training ")
    # Frozen at batch 3 or just after, until torchrun has passed the SIGTERM on: mid-epoch.
    for pid in ranks:
        os.kill(pid, signal.SIGSTOP)
    process.send_signal(signal.SIGTERM)
    for pid in ranks:
        seen += lines_until(process, f"Sending process {pid} closing signal SIGTERM")
    # A Ctrl-C while the ranks checkpoint must not interrupt torchrun's orderly shutdown.
    process.send_signal(signal.SIGINT)
    seen += lines_until(process, "run-trial: already stopping")
    for pid in ranks:
        os.kill(pid, signal.SIGCONT)
    first = finish(process, seen)
    assert first.returncode == 3, first.stderr
    assert "SIGTERM: preempting every rank within two batches" in first.stderr
    assert first.stdout.count('"status"') == 1
    assert first.summary["status"] == "preempted"
    stopped_at = first.summary["steps_completed"]
    assert 3 <= stopped_at < 8, "stopped in the first epoch, with a checkpoint there"
    rank_files = sorted((tmp_path / "runs").glob("*/metrics*.jsonl"))
    assert [p.name for p in rank_files] == ["metrics.jsonl"], "only the chief keeps metrics"
    resumed = finish(launcher(tmp_path, "--nproc", "2", config=trial))
    assert resumed.returncode == 0, resumed.stderr
    assert f"from batch {stopped_at}" in resumed.stderr
    assert resumed.summary["steps_completed"] == 32
    assert_same_weights(final_weights(resumed.summary), final_weights(uninterrupted.summary))


@pytest.mark.slow
def test_a_killed_rank_stops_the_others_within_30_s_and_the_run_restarts_from_its_checkpoint(
    tmp_path: pathlib.Path, trial: pathlib.Path, uninterrupted: Run
) -> None:
    """The config's slots_per_trial (2) is the number of ranks, its max_restarts torchrun's."""
    marker = uuid.uuid4().hex
    process = launcher(tmp_path, config=trial, marker=marker)
    seen = lines_until(process, ": checkpoint ")
    [victim] = rank_pids(marker, 1)
    [chief] = rank_pids(marker, 0)
    chief_exit = os.pidfd_open(chief)
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    ready, _, _ = select.select([chief_exit], [], [], 30)
    assert ready, "the chief still runs 30 s after its peer was killed"
    assert time.monotonic() - killed < 30
    os.close(chief_exit)
    run = finish(process, seen)
    assert run.returncode == 0, run.stderr
    assert "rank(s) on this machine through torchrun (gloo, " in run.stderr
    assert "up to 1 restart(s)" in run.stderr
    assert "from batch 8" in run.stderr, "the relaunch resumes from the first checkpoint"
    assert run.stdout.count('"status"') == 1
    assert run.summary["restarts"] == 1, "torchrun's relaunch counts"
    assert run.summary["steps_completed"] == 32
    assert_same_weights(final_weights(run.summary), final_weights(uninterrupted.summary))


@pytest.mark.slow
def test_a_rank_stopped_by_the_trials_input_exits_2_without_a_restart(
    tmp_path: pathlib.Path,
) -> None:
    """Exit 2 (the user's input) is never restarted: torchrun would relaunch up to max_restarts
    and fail the same way each time."""
    config = trial_copy(tmp_path / "trial")
    text = config.read_text().replace("max_restarts: 1", "max_restarts: 3")
    (tmp_path / "trial" / "const.yaml").write_text(text.replace(":MNISTLikeTrial", ":NoSuchTrial"))
    started = time.monotonic()
    run = finish(launcher(tmp_path / "storage", config=config))
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("run-trial: error:")]
    # The first attempt's ranks (the second may be stopped before it says it), and no other.
    assert 1 <= len(errors) <= 2 and all("'model_def:NoSuchTrial'" in e for e in errors), errors
    assert "no restart can mend" in run.stderr.splitlines()[-1]
    assert time.monotonic() - started < 60
    assert not (tmp_path / "storage").exists() or not any((tmp_path / "storage").rglob("*.pth"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nproc", "0"], r"argument --nproc: 0 is below 1"),
        (["--nproc", "two"], r"argument --nproc: 'two' is not an integer"),
        (["--nproc", "2", "--node-rank", "1"], r"--node-rank 1 needs --nnodes"),
        (["--nnodes", "0"], r"argument --nnodes: 0 is below 1"),
    ],
)
def test_bad_launcher_flags_exit_2_before_anything_runs(
    storage: pathlib.Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(MNIST_LIKE), "--checkpoint-storage", str(storage), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not any(storage.iterdir()), "nothing is written"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--nproc", "2", "--nnodes", "2", "--node-rank", "2"], r"not below --nnodes 2"),
        (["--nproc", "2", "--nnodes", "2"], r"--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
        (["--rdzv-endpoint", "host:29400"], r"this run has one process: give --nproc N"),
    ],
)
def test_launcher_flags_that_cannot_meet_exit_2_naming_the_fix(
    storage: pathlib.Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main([str(MNIST_LIKE), "--checkpoint-storage", str(storage), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not any(storage.iterdir()), "nothing is written"


def test_nproc_under_torchrun_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "outer")
    with pytest.raises(SystemExit) as exit_info:
        main([str(MNIST_LIKE), "--nproc", "2"])
    assert exit_info.value.code == 2
    assert "under torchrun, leave it out" in capsys.readouterr().err


def test_one_machine_meets_on_a_local_port_and_several_pass_their_rendezvous_through() -> None:
    local = torchrun_command(Launch(nproc=2, max_restarts=1), ["const.yaml", "--json"])
    assert local[1:] == [
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "1",
        "--standalone",
        "-m",
        "shim.cli",
        "const.yaml",
        "--json",
    ]
    machines = Launch(
        nproc=4,
        max_restarts=0,
        nnodes=2,
        node_rank=1,
        rdzv_backend="static",
        rdzv_endpoint="host0:29400",
        rdzv_id="run7",
    )
    command = torchrun_command(machines, ["const.yaml"])
    assert "--standalone" not in command
    flags = command[command.index("--nnodes") : command.index("-m", 3)]
    assert flags == [
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--rdzv-backend",
        "static",
        "--rdzv-endpoint",
        "host0:29400",
        "--rdzv-id",
        "run7",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("missing-trial", 2, r"run-trial: error: .*NoSuchTrial"),
        ("crashing-trial", 1, r"run-trial: the trial failed: .*injected crash after batch 3"),
    ],
)
def test_the_launcher_exits_with_the_ranks_outcome_when_they_fail(
    tmp_path: pathlib.Path, case: str, code: int, message: str
) -> None:
    """A trial the ranks cannot load is the user's input (2); one that crashes with no restarts
    left has failed (1), not torchrun's own status."""
    if case == "missing-trial":
        config = trial_copy(tmp_path / "trial")
        text = yaml.safe_load(config.read_text())
        text["entrypoint"], text["max_restarts"] = "model_def:NoSuchTrial", 0
        config.write_text(yaml.safe_dump(text))
        env: dict[str, str] = {}
    else:
        shutil.copytree(TOY.parent, tmp_path / "trial")
        config = tmp_path / "trial" / "const.yaml"
        text = yaml.safe_load(config.read_text())
        text["max_restarts"] = 0
        config.write_text(yaml.safe_dump(text))
        env = {"SHIM_TEST_CRASH_AT": "3", "SHIM_TEST_MARKER": str(tmp_path / "crashed")}
    process = launcher(tmp_path / "storage", "--nproc", "2", config=config, env=env)
    run = finish(process)
    assert run.returncode == code, run.stderr
    assert re.search(message, run.stderr), run.stderr
    assert '"status"' not in run.stdout


@pytest.mark.slow
def test_a_relaunch_of_a_fresh_run_resumes_it_instead_of_starting_over(
    tmp_path: pathlib.Path,
) -> None:
    """torchrun relaunches the same command line; ``--fresh`` applies to the first attempt only."""
    env = {"SHIM_TEST_CRASH_AT": "9", "SHIM_TEST_MARKER": str(tmp_path / "crashed")}
    storage = tmp_path / "storage"
    run = finish(launcher(storage, "--nproc", "2", "--fresh", config=TOY, env=env))
    assert run.returncode == 0, run.stderr
    assert "up to 2 restart(s)" in run.stderr
    assert "from batch 7" in run.stderr, "the relaunch resumes from the checkpoint at 7"
    assert run.summary["steps_completed"] == 32
    folders = [p for p in (storage / "runs").iterdir() if p.is_dir()]
    assert len(folders) == 1, "one run folder: the relaunch renamed nothing"
