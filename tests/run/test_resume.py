"""Exact resume: a real run-trial process is preempted, killed or crashes; the resumed run ends
with the same weights, bit for bit, as an uninterrupted one."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import torch

from tests.conftest import free_port
from tests.run.helpers import (
    TOY,
    Run,
    assert_same_weights,
    checkpoint_content,
    checkpoint_folders,
    final_weights,
    run_trial,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_trial(tmp_path_factory.mktemp("baseline"))
    assert run.returncode == 0, run.stderr
    return run


def test_an_uninterrupted_run_writes_determineds_layout_and_reports(baseline: Run) -> None:
    summary = baseline.summary
    assert summary["status"] == "completed"
    assert summary["steps_completed"] == 36 and summary["epochs_completed"] == 3
    folder = pathlib.Path(summary["latest_checkpoint_path"])
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "state_dict.pth"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["steps_completed"] == 36 and metadata["seed"] == 11
    content = checkpoint_content(summary)
    for key in (
        "models_state_dict",
        "optimizers_state_dict",
        "lr_schedulers_state_dict",
        "callbacks",
        "rng_state",
        "trial_state",
    ):
        assert key in content
    records = [
        json.loads(line) for line in pathlib.Path(summary["metrics_path"]).read_text().splitlines()
    ]
    validations = [r for r in records if r["group"] == "validation"]
    assert [r["steps_completed"] for r in validations] == [10, 20, 30, 36]
    assert {"val_loss", "accuracy", "batches", "epochs"} <= validations[0]["metrics"].keys()
    assert list(pathlib.Path(summary["tensorboard_path"]).glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "preempt_at", [5, 10, 12], ids=["mid-epoch", "after-validation", "epoch-end"]
)
def test_sigterm_then_resume_gives_the_uninterrupted_weights(
    tmp_path: pathlib.Path, baseline: Run, preempt_at: int
) -> None:
    first = run_trial(tmp_path, env={"SHIM_TEST_PREEMPT_AT": str(preempt_at)})
    assert first.returncode == 3, first.stderr
    assert first.summary["status"] == "preempted"
    assert first.summary["steps_completed"] == preempt_at
    second = run_trial(tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.summary["steps_completed"] == 36
    assert_same_weights(final_weights(second.summary), final_weights(baseline.summary))


def test_sigkill_while_writing_a_checkpoint_resumes_from_the_previous_one(
    tmp_path: pathlib.Path, baseline: Run
) -> None:
    killed = run_trial(tmp_path, env={"SHIM_TEST_KILL_AT_CHECKPOINT": "2"})
    assert killed.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".*.partial")), "the interrupted checkpoint stays hidden"
    complete = checkpoint_folders(tmp_path)
    assert len(complete) == 1
    resumed = run_trial(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(final_weights(resumed.summary), final_weights(baseline.summary))


def test_a_crash_restarts_from_the_latest_checkpoint(tmp_path: pathlib.Path, baseline: Run) -> None:
    env = {"SHIM_TEST_CRASH_AT": "9", "SHIM_TEST_MARKER": str(tmp_path / "crashed")}
    run = run_trial(tmp_path / "storage", env=env)
    assert run.returncode == 0, run.stderr
    assert run.summary["restarts"] == 1
    assert "injected crash after batch 9" in run.stderr
    assert_same_weights(final_weights(run.summary), final_weights(baseline.summary))


def test_running_the_same_command_again_resumes_and_fresh_starts_over(
    tmp_path: pathlib.Path, baseline: Run
) -> None:
    first = run_trial(tmp_path)
    again = run_trial(tmp_path)
    assert again.returncode == 0
    assert again.summary["latest_checkpoint"] == first.summary["latest_checkpoint"]
    fresh = run_trial(tmp_path, "--fresh")
    assert fresh.summary["latest_checkpoint"] != first.summary["latest_checkpoint"]
    # Same seed, same data: two fresh runs agree bit for bit.
    assert_same_weights(final_weights(fresh.summary), final_weights(baseline.summary))


GAN = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "gan" / "const.yaml"


def test_the_gan_resumes_exactly_after_a_sigterm_from_outside(tmp_path: pathlib.Path) -> None:
    """Two optimizers with optimizer_idx; the signal comes from another process, at whatever
    batch the trial has reached once its first checkpoint is announced."""
    # Long enough that the run cannot finish before a busy machine delivers the signal.
    length = ["--max-length", "1000"]
    baseline = run_trial(tmp_path / "baseline", *length, config=GAN)
    assert baseline.returncode == 0, baseline.stderr
    storage = tmp_path / "interrupted"
    command = [sys.executable, "-m", "shim.cli", str(GAN), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage), *length]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if ": checkpoint " in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=300)
    first = Run(proc.returncode, out, err)
    assert first.returncode == 3, first.stderr
    assert first.summary["status"] == "preempted"
    assert 8 <= first.summary["steps_completed"] < 1000
    resumed = run_trial(storage, *length, config=GAN)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(final_weights(resumed.summary), final_weights(baseline.summary))


def torchrun_trial(
    storage: pathlib.Path,
    env: dict[str, str] | None = None,
    restarts: int = 0,
    rendezvous: str = "static",
) -> Run:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--max-restarts", str(restarts)]
    if rendezvous == "c10d":
        command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{free_port()}"]
    else:
        command += ["--master-port", str(free_port())]
    command += ["-m", "shim.cli", str(TOY), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    return Run(result.returncode, result.stdout, result.stderr)


def test_two_ranks_under_torchrun_train_like_one_process_with_the_same_global_batch(
    tmp_path: pathlib.Path, baseline: Run
) -> None:
    run = torchrun_trial(tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count('"status"') == 1, "only the chief prints the summary"
    assert run.summary["steps_completed"] == 36
    ours, single = final_weights(run.summary), final_weights(baseline.summary)
    for name in single:
        # Two half-batch gradients averaged across ranks: the same math, reordered.
        torch.testing.assert_close(ours[name], single[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("rendezvous", ["static", "c10d"])
def test_two_ranks_that_crash_are_relaunched_by_torchrun_and_resume_from_the_checkpoint(
    tmp_path: pathlib.Path, rendezvous: str
) -> None:
    """Several ranks restart by relaunch, not in-process; every rank resumes from the chief's
    newest checkpoint, with its run id and seed. Both rendezvous keep the previous attempt's
    store keys, which the relaunched ranks must not read."""
    uninterrupted = torchrun_trial(tmp_path / "uninterrupted")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    env = {"SHIM_TEST_CRASH_AT": "9", "SHIM_TEST_MARKER": str(tmp_path / "crashed")}
    crashed = torchrun_trial(tmp_path / "crashed-run", env=env, restarts=1, rendezvous=rendezvous)
    assert crashed.returncode == 0, crashed.stderr
    assert "restarts are the launcher's" in crashed.stderr
    assert "from batch 7" in crashed.stderr, "the relaunch resumes from the checkpoint at 7"
    assert crashed.summary["steps_completed"] == 36
    assert_same_weights(final_weights(crashed.summary), final_weights(uninterrupted.summary))
