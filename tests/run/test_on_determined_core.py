"""The controller is written against the Core API only: the same trial trains, checkpoints and
resumes on Determined's own ``det.core`` context (off-cluster), with the same weights."""

from __future__ import annotations

import pathlib
from typing import Any

import determined.core as det_core
import torch

import shim.core
from shim.config import load_experiment_config
from shim.core.info import ClusterInfo, TrialInfo
from shim.imports import determined_namespace, load_entrypoint, trial_folder
from shim.pytorch.controller import TrialController
from shim.pytorch.trial_io import steps_completed
from shim.runner import run_plan
from tests.run.helpers import TOY, assert_same_weights


def train(core: Any, latest: str | None, length: int) -> Any:
    config = load_experiment_config(TOY)
    hparams = config.resolve_hparams({})
    plan = run_plan(config, length)
    with determined_namespace(), trial_folder(TOY.parent):
        trial_cls = load_entrypoint(config.entrypoint, TOY.parent)
        controller = TrialController(
            trial_cls,
            core,
            plan,
            hparams=hparams,
            exp_conf=config.raw,
            seed=11,
            latest_checkpoint=latest,
            start_batch=steps_completed(core, latest) if latest else 0,
        )
        return controller.run()


def weights(core: Any, storage_id: str) -> dict[str, torch.Tensor]:
    with core.checkpoint.restore_path(storage_id) as path:
        content = torch.load(pathlib.Path(path) / "state_dict.pth", weights_only=True)
    return content["models_state_dict"][0]


def test_a_trial_resumed_on_determineds_context_matches_one_run_on_ours(
    tmp_path: pathlib.Path,
) -> None:
    with det_core.init(checkpoint_storage=str(tmp_path / "det")) as core:
        first = train(core, None, 15)
    with det_core.init(checkpoint_storage=str(tmp_path / "det")) as core:
        resumed = train(core, first.latest_checkpoint, 30)
        theirs = weights(core, resumed.latest_checkpoint)
    info = ClusterInfo(trial=TrialInfo(_config=load_experiment_config(TOY).raw))
    with shim.core.local_init(checkpoint_storage=tmp_path / "shim", info=info) as core:
        whole = train(core, None, 30)
        ours = weights(core, whole.latest_checkpoint)
    assert (first.steps_completed, resumed.steps_completed) == (15, 30)
    assert_same_weights(theirs, ours)
