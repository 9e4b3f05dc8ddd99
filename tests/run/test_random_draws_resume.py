"""Exact resume for a module that draws random numbers, with one data iterator per epoch.

The dropout fixture draws from torch's global RNG in its hooks, its steps and its dataset, and
each epoch's iterator draws its base seed. A run stopped in its second or third epoch (mid-epoch,
or at an epoch's end after validation) and resumed ends with the uninterrupted run's weights and
RNG state; so does a run restarted from the checkpoint of its initial validation at step 0, where
under Lightning 2.x epoch 0's iterator already exists.
"""

from __future__ import annotations

import pathlib
import shutil
import textwrap
from typing import Any

import pytest
import torch
import yaml

from tests.run.helpers import Run, assert_same_weights, checkpoint_content, run_trial

pytestmark = pytest.mark.slow

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "dropout"
FAULTS = '''
"""The dropout trial with faults switched on by environment variables.

SHIM_TEST_PREEMPT_AT=N            SIGTERM this process after global batch N
SHIM_TEST_CRASH_AT_EPOCH_START=E  raise once (marker file SHIM_TEST_MARKER) as epoch E starts
"""

import os
import pathlib
import signal

from determined.pytorch import PyTorchCallback
from model_def import DropoutTrial


class Faults(PyTorchCallback):
    def on_training_workload_end(self, avg_metrics, batch_metrics):
        if os.environ.get("SHIM_TEST_PREEMPT_AT") == str(avg_metrics["batches"]):
            os.kill(os.getpid(), signal.SIGTERM)

    def on_training_epoch_start(self, epoch_idx):
        marker = pathlib.Path(os.environ.get("SHIM_TEST_MARKER", "/nonexistent/marker"))
        if os.environ.get("SHIM_TEST_CRASH_AT_EPOCH_START") == str(epoch_idx):
            if not marker.exists():
                marker.write_text("crashed once")
                raise RuntimeError(f"injected crash as epoch {epoch_idx} starts")


class FaultyDropoutTrial(DropoutTrial):
    def build_callbacks(self):
        return {**super().build_callbacks(), "faults": Faults()}
'''


def faulty_copy(root: pathlib.Path, **config: Any) -> pathlib.Path:
    """A copy of the fixture whose trial can be preempted or crashed; returns its config."""
    folder = root / "trial"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "faulty_def.py").write_text(textwrap.dedent(FAULTS).lstrip())
    path = folder / "const.yaml"
    raw = yaml.safe_load(path.read_text())
    # Training metrics every batch: the preemption callback sees each one.
    raw.update(entrypoint="faulty_def:FaultyDropoutTrial", scheduling_unit=1, **config)
    path.write_text(yaml.safe_dump(raw))
    return path


def end_state(run: Run) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr
    assert run.summary["steps_completed"] == 24
    content = checkpoint_content(run.summary)
    return {
        "weights": content["models_state_dict"][0],
        "optimizer": content["optimizers_state_dict"][0],
        "rng": content["rng_state"]["cpu_rng_state"],
        "validation": run.summary["final_validation"],
    }


def assert_same_end(resumed: Run, baseline: dict[str, Any]) -> None:
    ours = end_state(resumed)
    assert_same_weights(ours["weights"], baseline["weights"])
    assert torch.equal(ours["rng"], baseline["rng"]), "the global RNG ends elsewhere"
    assert ours["validation"] == baseline["validation"]
    adam, expected = ours["optimizer"]["state"], baseline["optimizer"]["state"]
    assert adam.keys() == expected.keys()
    for param, moments in expected.items():
        assert all(torch.equal(adam[param][k], v) for k, v in moments.items()), param


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("baseline")
    return end_state(run_trial(root / "storage", config=faulty_copy(root)))


@pytest.mark.parametrize(
    "preempt_at", [11, 16, 19], ids=["epoch-2-middle", "epoch-2-end", "epoch-3-middle"]
)
def test_a_preempted_run_resumes_to_the_uninterrupted_weights_and_rng(
    tmp_path: pathlib.Path, baseline: dict[str, Any], preempt_at: int
) -> None:
    config = faulty_copy(tmp_path)
    storage = tmp_path / "storage"
    first = run_trial(storage, config=config, env={"SHIM_TEST_PREEMPT_AT": str(preempt_at)})
    assert first.returncode == 3, first.stderr
    assert first.summary["steps_completed"] == preempt_at
    assert_same_end(run_trial(storage, config=config), baseline)


def test_a_restart_from_the_initial_validations_checkpoint_is_exact(
    tmp_path: pathlib.Path,
) -> None:
    """Under Lightning 2.x epoch 0's iterator is created before on_train_start, so before the
    initial validation and its checkpoint at step 0; the restart must not create it again."""
    settings: dict[str, Any] = {"perform_initial_validation": True, "max_restarts": 1}
    uninterrupted = end_state(
        run_trial(tmp_path / "a" / "storage", config=faulty_copy(tmp_path / "a", **settings))
    )
    env = {"SHIM_TEST_CRASH_AT_EPOCH_START": "0", "SHIM_TEST_MARKER": str(tmp_path / "crashed")}
    config = faulty_copy(tmp_path / "b", **settings)
    restarted = run_trial(tmp_path / "b" / "storage", config=config, env=env)
    assert "injected crash as epoch 0 starts" in restarted.stderr
    assert restarted.summary["restarts"] == 1
    assert_same_end(restarted, uninterrupted)
