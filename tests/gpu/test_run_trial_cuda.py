"""run-trial on a GPU: float16 with a GradScaler and bf16 against Lightning's own mixed precision,
and exact resume on CUDA. Run with `pytest -m gpu` on a machine with a CUDA device."""

from __future__ import annotations

import pathlib
import shutil

import pytest
import pytorch_lightning as pl
import torch

from shim.config import load_experiment_config
from shim.progress import NullReporter
from shim.runner import RunOptions, run_trial
from tests.run.helpers import (
    TOY,
    assert_same_weights,
    checkpoint_content,
    final_weights,
    quiet_trainer,
    trial_module,
)
from tests.run.helpers import run_trial as run_trial_process

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(600)]


def toy_with_precision(tmp_path: pathlib.Path, precision: object) -> pathlib.Path:
    folder = tmp_path / "trial"
    shutil.copytree(TOY.parent, folder)
    text = (folder / "model_def.py").read_text()
    text = text.replace(
        "super().__init__(context, lightning_module=module)",
        f"super().__init__(context, lightning_module=module, precision={precision!r})",
    )
    (folder / "model_def.py").write_text(text)
    return folder


def lightning_fit(folder: pathlib.Path, precision: str) -> dict[str, torch.Tensor]:
    with trial_module(folder) as model_def:
        pl.seed_everything(11, verbose=False)
        module = model_def.ToyModule(lr=0.1, hidden=16)
        train = torch.utils.data.DataLoader(model_def.make_dataset(96, seed=0), batch_size=8)
        trainer = quiet_trainer(
            max_epochs=3, accelerator="gpu", precision=precision, limit_val_batches=0
        )
        trainer.fit(module, train_dataloaders=train)
        return {k: v.cpu() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(("ours", "lightning"), [(16, "16-mixed"), ("bf16", "bf16-mixed")])
def test_mixed_precision_on_cuda_matches_lightnings_trainer(
    tmp_path: pathlib.Path, ours: object, lightning: str
) -> None:
    folder = toy_with_precision(tmp_path, ours)
    config = load_experiment_config(folder / "const.yaml")
    options = RunOptions(
        context_dir=folder,
        checkpoint_storage=str(tmp_path / "storage"),
        hparam_overrides={"shuffle": "false"},
    )
    summary = run_trial(config, options, NullReporter()).to_dict()
    content = checkpoint_content(summary)
    assert ("scaler_state_dict" in content) == (ours == 16)
    weights = {k: v.cpu() for k, v in final_weights(summary).items()}
    expected = lightning_fit(folder, lightning)
    for name in expected:
        torch.testing.assert_close(weights[name], expected[name], rtol=0, atol=1e-6)


def test_exact_resume_on_cuda(tmp_path: pathlib.Path) -> None:
    baseline = run_trial_process(tmp_path / "a")
    first = run_trial_process(tmp_path / "b", env={"SHIM_TEST_PREEMPT_AT": "5"})
    assert first.returncode == 3, first.stderr
    second = run_trial_process(tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert next(iter(final_weights(second.summary).values())).device.type == "cuda"
    assert_same_weights(final_weights(second.summary), final_weights(baseline.summary))
