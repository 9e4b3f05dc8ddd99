"""fixtures/legacy_api: a legacy trial that uses each removed Lightning 1.x API the hook table
lists (LA309-LA316) trains under run-trial on Lightning 2.x and 1.9, gets Lightning 1.5's
answers, writes through ``self.logger`` into the run's TensorBoard files, and lint-trial reports
each use."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from migrate import lint_paths
from shim.config import load_experiment_config
from shim.hooks import HOOKS
from shim.lightning import legacy_api
from shim.progress import NullReporter
from shim.runner import RunOptions, run_trial
from tests.oracle.fixtures import pl19_python_fixture  # noqa: F401  (provides pl19_python)
from tests.run.helpers import Run, assert_same_weights, final_weights, trial_module

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "legacy_api"
LEGACY_CODES = {f"LA{n}" for n in range(309, 317)}


def expected_answers(*, gpu: bool) -> dict[str, Any]:
    """What Lightning 1.5 answered the fixture on one device (float32, no AMP)."""
    with trial_module(FIXTURE):
        from legacy_lm import LegacyClassifier

        module = LegacyClassifier(1, 6, 6, lr=0.1, hidden_size=16)
    saved = io.BytesIO()
    torch.save(module.state_dict(), saved)
    return {
        "size": [1, 6, 6],
        "size_0": 1,
        # The trial calls prepare_data, setup and teardown('test') twice: 1.5 ran each once.
        "setup_calls": 1,
        "teardown_calls": 1,
        "split_overlap": 0,
        "has_prepared_data": True,
        "has_setup": [True, True, True, False],
        "has_teardown": [False, False, True, False],
        "total_params": sum(p.numel() for p in module.parameters()),
        "model_size": len(saved.getvalue()) / 1e6,
        "use_amp": False,
        "precision": 32,
        "trainer_use_amp": False,
        "amp_backend": None,
        "num_gpus": 1 if gpu else 0,
        "gpus": 1 if gpu else None,
        "root_gpu": 0 if gpu else None,
        "num_processes": 1,
        "tpu_cores": None,
        "scheduler_intervals": ["step"],
    }


def answers(summary: dict[str, Any]) -> dict[str, Any]:
    """What the module recorded with self.logger.log_hyperparams (hparams.yaml)."""
    hparams = pathlib.Path(summary["tensorboard_path"]) / "hparams.yaml"
    loaded: dict[str, Any] = yaml.safe_load(hparams.read_text())
    return loaded


def run_in(python: pathlib.Path | str, storage: pathlib.Path) -> Run:
    command = [str(python), "-m", "shim.cli", str(FIXTURE / "const.yaml"), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # both Lightnings on the CPU, to compare
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    return Run(done.returncode, done.stdout, done.stderr)


def classes_state() -> dict[str, dict[str, Any]]:
    return {c.__name__: dict(vars(c)) for c in (pl.LightningDataModule, pl.LightningModule)}


def test_the_legacy_trial_trains_under_lightning_2_with_1_5_s_answers_and_leaves_nothing_behind(
    tmp_path: pathlib.Path,
) -> None:
    before = classes_state()
    config = load_experiment_config(FIXTURE / "const.yaml")
    options = RunOptions(context_dir=FIXTURE, checkpoint_storage=str(tmp_path / "storage"))
    with pytest.warns(UserWarning, match="LA312") as caught:
        summary = run_trial(config, options, NullReporter()).to_dict()
    repeated = sorted(str(w.message).split(" has already")[0] for w in caught)
    assert repeated == [
        "BlobsDataModule.prepare_data()",
        "BlobsDataModule.setup()",
        "BlobsDataModule.teardown('test')",
    ]
    assert (summary["status"], summary["steps_completed"]) == ("completed", 12)
    assert answers(summary) == expected_answers(gpu=torch.cuda.is_available())
    assert classes_state() == before and not legacy_api.is_installed()
    assert summary["final_validation"]["val_loss"] < 0.69  # it learnt something (chance: ln 2)


def test_self_logger_writes_images_metrics_and_hparams_into_the_run_s_tensorboard_files(
    tmp_path: pathlib.Path,
) -> None:
    config = load_experiment_config(FIXTURE / "const.yaml")
    options = RunOptions(context_dir=FIXTURE, checkpoint_storage=str(tmp_path / "storage"))
    with pytest.warns(UserWarning, match="LA312"):
        summary = run_trial(config, options, NullReporter()).to_dict()
    events = EventAccumulator(summary["tensorboard_path"], size_guidance={"images": 0})
    events.Reload()
    images = events.Images("first_layer")
    assert [(image.step, image.width, image.height) for image in images] == [(6, 6, 6), (12, 6, 6)]
    assert [(e.step, e.value) for e in events.Scalars("validated_at")] == [(6, 6.0), (12, 12.0)]
    assert [(e.step, e.value) for e in events.Scalars("hp_metric")] == [(0, -1.0)]
    assert {"loss", "val_loss"} <= set(events.Tags()["scalars"])  # run-trial's own, same folder
    session = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(session).session_start_info.hparams
    assert hparams["size"].string_value == "[1, 6, 6]"
    assert hparams["total_params"].number_value == 626


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_under_lightning_1_9_the_legacy_trial_gets_the_same_answers_and_weights(
    tmp_path: pathlib.Path, pl19_python: pathlib.Path
) -> None:
    old = run_in(pl19_python, tmp_path / "pl19")
    assert old.returncode == 0, old.stderr
    new = run_in(sys.executable, tmp_path / "pl2")
    assert new.returncode == 0, new.stderr
    version = subprocess.run(
        [str(pl19_python), "-c", "import pytorch_lightning as pl; print(pl.__version__)"],
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == "1.9.5"
    assert answers(old.summary) == answers(new.summary) == expected_answers(gpu=False)
    assert old.summary["steps_completed"] == 12
    assert_same_weights(final_weights(old.summary), final_weights(new.summary))
    assert "(LA312)" in old.stderr


def test_lint_trial_reports_each_removed_api_the_legacy_trial_uses() -> None:
    result = lint_paths([str(FIXTURE)])
    assert result.errors == []
    assert {f.code for f in result.findings} == LEGACY_CODES
    listed = {name for name, hook in HOOKS.items() if hook.code in LEGACY_CODES}
    assert {f.hook for f in result.findings} == listed
    assert all(f.status == "legacy" and not f.conditional for f in result.findings)
    lines = (FIXTURE / "model_def.py").read_text().splitlines()
    call = next(n for n, line in enumerate(lines, 1) if line.endswith("= self.dm.size()"))
    size = [f for f in result.findings if f.hook == "datamodule.size()"]
    assert (pathlib.Path(size[0].path).name, size[0].line) == ("model_def.py", call)
    assert json.dumps([f.to_dict() for f in result.findings])  # every field serialises
