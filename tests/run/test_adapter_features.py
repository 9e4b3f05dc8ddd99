"""LightningAdapter features beyond the fit loop's order: checkpoint hooks, export, early epoch
ends, precision, and the trainer stand-in."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import textwrap

import pytest
import torch

from shim.config import load_experiment_config
from shim.errors import ShimError
from shim.export import export_lightning
from shim.progress import NullReporter, RunSummary
from shim.runner import RunOptions, run_trial
from tests.run.helpers import TOY, checkpoint_content, final_weights

TOY_DIR = TOY.parent


def run_toy(
    tmp_path: pathlib.Path, extra_module_code: str = "", *args: str, **hparams: str
) -> RunSummary:
    """Run a copy of the toy trial whose module gets ``extra_module_code`` appended."""
    folder = tmp_path / "trial"
    if not folder.exists():
        shutil.copytree(TOY_DIR, folder)
        if extra_module_code:
            text = (folder / "model_def.py").read_text()
            marker = "class KillDuringCheckpoint"
            addition = textwrap.indent(textwrap.dedent(extra_module_code), "    ")
            text = text.replace(f"\n\n{marker}", f"\n{addition}\n\n{marker}")
            (folder / "model_def.py").write_text(text)
    config = load_experiment_config(folder / "const.yaml")
    options = RunOptions(
        context_dir=folder,
        checkpoint_storage=str(tmp_path / "storage"),
        hparam_overrides=dict(hparams),
        max_length=int(args[0]) if args else None,
    )
    return run_trial(config, options, NullReporter())


def test_on_save_checkpoint_adds_keys_that_on_load_checkpoint_sees_before_weights(
    tmp_path: pathlib.Path,
) -> None:
    code = """
    def on_save_checkpoint(self, checkpoint):
        checkpoint["my_key"] = torch.tensor([self.global_step])

    def on_load_checkpoint(self, checkpoint):
        import json
        first = next(iter(self.state_dict().values()))
        stored = checkpoint["models_state_dict"][0]["net.0.weight"]
        os.environ["SHIM_TEST_LOADED"] = json.dumps(
            [int(checkpoint["my_key"][0]), bool(torch.equal(first, stored))]
        )
    """
    first = run_toy(tmp_path, code, "5")
    content = checkpoint_content(first.to_dict())
    assert int(content["my_key"][0]) == 5
    run_toy(tmp_path, code, "9")
    saved_step, weights_already_loaded = json.loads(os.environ.pop("SHIM_TEST_LOADED"))
    assert saved_step == 5
    assert weights_already_loaded is False, "on_load_checkpoint runs before the weights load"


def test_export_lightning_gives_a_ckpt_that_load_from_checkpoint_accepts(
    tmp_path: pathlib.Path,
) -> None:
    summary = run_toy(tmp_path, "", "6").to_dict()
    out = tmp_path / "model.ckpt"
    export_lightning(pathlib.Path(summary["latest_checkpoint_path"]), out)
    sys.path.insert(0, str(tmp_path / "trial"))
    try:
        from shim.imports import determined_namespace

        with determined_namespace():
            import model_def

            loaded = model_def.ToyModule.load_from_checkpoint(str(out))
    finally:
        sys.path.remove(str(tmp_path / "trial"))
        sys.modules.pop("model_def", None)
    assert loaded.hparams.lr == 0.1 and loaded.hparams.hidden == 16
    weights = final_weights(summary)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, weights[name])
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["global_step"] == 6 and len(ckpt["optimizer_states"]) == 1


def test_on_train_batch_start_returning_minus_one_ends_the_epoch(tmp_path: pathlib.Path) -> None:
    code = """
    def on_train_batch_start(self, batch, batch_idx):
        if batch_idx == 2:
            return -1
    """
    summary = run_toy(tmp_path, code, "30")
    # 12 batches per epoch; each epoch stops after 2 trained batches, so the optimizer stepped
    # twice per epoch over the 3 epochs that 30 batch positions span (the last one partially).
    assert summary.steps_completed == 30
    content = checkpoint_content(summary.to_dict())
    assert content["callbacks"]["_lightning_module"]["global_step"] == 6


@pytest.mark.parametrize("precision", ["bf16", 16])
def test_mixed_precision_on_the_cpu_trains_under_bfloat16_autocast(
    tmp_path: pathlib.Path, precision: object
) -> None:
    folder = tmp_path / "trial"
    shutil.copytree(TOY_DIR, folder)
    text = (folder / "model_def.py").read_text()
    text = text.replace(
        "loss = nn.functional.cross_entropy(self.net(x), y)\n        self.log",
        "out = self.net(x)\n        os.environ['SHIM_TEST_DTYPE'] = str(out.dtype)\n"
        "        loss = nn.functional.cross_entropy(out, y)\n        self.log",
    )
    text = text.replace(
        "super().__init__(context, lightning_module=module)",
        f"super().__init__(context, lightning_module=module, precision={precision!r})",
    )
    (folder / "model_def.py").write_text(text)
    if precision == 16:  # as Lightning 2.x: float16 autocast is for GPUs (tests/gpu has it)
        with pytest.warns(UserWarning, match="precision=16 on the CPU runs as bf16"):
            summary = run_toy(tmp_path, "", "4")
    else:
        summary = run_toy(tmp_path, "", "4")
    assert os.environ.pop("SHIM_TEST_DTYPE") == "torch.bfloat16"
    content = checkpoint_content(summary.to_dict())
    assert "scaler_state_dict" not in content
    assert all(t.dtype == torch.float32 for t in final_weights(summary.to_dict()).values())


def test_the_trainers_length_is_known_in_configure_optimizers(tmp_path: pathlib.Path) -> None:
    code = """
    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        total = self.trainer.estimated_stepping_batches
        assert (total, self.trainer.num_training_batches, self.trainer.max_epochs) == (30, 12, 3)
        cycle = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=total)
        return [opt], [{"scheduler": cycle, "interval": "step"}]
    """
    summary = run_toy(tmp_path, code, "30")
    assert summary.steps_completed == 30


def test_reading_the_trainers_length_too_early_says_when_it_is_known(
    tmp_path: pathlib.Path,
) -> None:
    code = """
    def setup(self, stage):
        self.trainer.estimated_stepping_batches
    """
    with pytest.raises(ShimError, match="known once the data loaders are built"):
        run_toy(tmp_path, code, "3")


def test_something_a_checkpoint_cannot_hold_is_refused_when_saving(tmp_path: pathlib.Path) -> None:
    code = """
    def on_save_checkpoint(self, checkpoint):
        checkpoint["history"] = {"when": object()}
    """
    with pytest.raises(
        ShimError, match=r"checkpoint\['history'\]\['when'\] holds a builtins.object"
    ):
        run_toy(tmp_path, code, "3")


def test_numpy_outputs_kept_for_training_epoch_end_survive_a_resume(tmp_path: pathlib.Path) -> None:
    code = """
    def training_step_end(self, output):
        return {"loss": output, "preds": output.detach().numpy().reshape(1)}

    def training_epoch_end(self, outputs):
        import os
        os.environ["SHIM_TEST_OUTPUTS"] = f"{len(outputs)} {type(outputs[0]['preds']).__name__}"
    """
    run_toy(tmp_path, code, "5")  # stops mid-epoch with 5 outputs kept in the checkpoint
    run_toy(tmp_path, code, "12")
    assert os.environ.pop("SHIM_TEST_OUTPUTS") == "12 ndarray"
