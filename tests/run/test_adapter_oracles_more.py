"""More of the adapter against Lightning 2.x's Trainer: ReduceLROnPlateau on a monitored metric
and gradient clipping the module configures; plus seeds, self.print and the import aliases."""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
from typing import Any

import pytorch_lightning as pl
import torch

from shim.config import load_experiment_config
from shim.progress import NullReporter
from shim.runner import RunOptions, run_trial
from tests.run.helpers import TOY, assert_same_weights, final_weights, quiet_trainer, trial_module

PLATEAU = """
    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}
"""

CLIPPING = """
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val=0.05, gradient_clip_algorithm="norm")
"""


def variant(tmp_path: pathlib.Path, methods: str) -> pathlib.Path:
    """The toy trial with ``configure_optimizers`` (and more) replaced, validating each epoch."""
    folder = tmp_path / "trial"
    shutil.copytree(TOY.parent, folder)
    code = (folder / "model_def.py").read_text()
    start = code.index("    def configure_optimizers(self):")
    end = code.index("    def on_train_batch_end(")
    (folder / "model_def.py").write_text(code[:start] + methods.lstrip("\n") + "\n" + code[end:])
    config = (folder / "const.yaml").read_text().replace("  batches: 10", "  epochs: 1")
    (folder / "const.yaml").write_text(config)
    return folder


def ours(folder: pathlib.Path, storage: pathlib.Path) -> dict[str, Any]:
    config = load_experiment_config(folder / "const.yaml")
    options = RunOptions(
        context_dir=folder, checkpoint_storage=str(storage), hparam_overrides={"shuffle": "false"}
    )
    return run_trial(config, options, NullReporter()).to_dict()


def lightnings(folder: pathlib.Path) -> tuple[Any, Any]:
    with trial_module(folder) as model_def:
        pl.seed_everything(11, verbose=False)
        module = model_def.ToyModule(lr=0.1, hidden=16)
        train = torch.utils.data.DataLoader(model_def.make_dataset(96, seed=0), batch_size=8)
        val = torch.utils.data.DataLoader(model_def.make_dataset(32, seed=1), batch_size=16)
        trainer = quiet_trainer(max_epochs=3)
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        return module, trainer


def test_reduce_lr_on_plateau_follows_the_monitored_validation_metric(
    tmp_path: pathlib.Path,
) -> None:
    folder = variant(tmp_path, PLATEAU)
    summary = ours(folder, tmp_path / "storage")
    module, trainer = lightnings(folder)
    assert_same_weights(final_weights(summary), module.state_dict())
    content = torch.load(
        pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth", weights_only=True
    )
    expected = trainer.lr_scheduler_configs[0].scheduler.state_dict()
    assert content["lr_schedulers_state_dict"][0]["_last_lr"] == expected["_last_lr"]
    assert content["lr_schedulers_state_dict"][0]["best"] == expected["best"]


def test_gradient_clipping_the_module_configures_matches_lightning(tmp_path: pathlib.Path) -> None:
    folder = variant(tmp_path, CLIPPING)
    summary = ours(folder, tmp_path / "storage")
    module, _ = lightnings(folder)
    assert_same_weights(final_weights(summary), module.state_dict())


def test_without_a_seed_one_is_chosen_recorded_and_reused_on_resume(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "trial"
    shutil.copytree(TOY.parent, folder)
    config_path = folder / "const.yaml"
    config_path.write_text(config_path.read_text().replace("  experiment_seed: 11\n", "  {}\n"))
    config = load_experiment_config(config_path)
    assert config.experiment_seed is None
    storage = tmp_path / "storage"
    first = run_trial(
        config,
        RunOptions(context_dir=folder, checkpoint_storage=str(storage), max_length=5),
        NullReporter(),
    )
    record = json.loads(next(storage.glob("runs/*/trial.json")).read_text())
    metadata = json.loads(
        (pathlib.Path(first.latest_checkpoint_path) / "metadata.json").read_text()
    )
    assert first.seed == record["seed"] == metadata["seed"]
    second = run_trial(
        config, RunOptions(context_dir=folder, checkpoint_storage=str(storage)), NullReporter()
    )
    assert second.seed == first.seed and second.steps_completed == 36


def test_self_print_prints_on_the_chief(tmp_path: pathlib.Path, capsys) -> None:
    folder = tmp_path / "trial"
    shutil.copytree(TOY.parent, folder)
    code = (
        (folder / "model_def.py")
        .read_text()
        .replace(
            '        self.log("train_loss", loss)\n',
            '        self.log("train_loss", loss)\n'
            '        self.print(f"step {self.global_step}")\n',
        )
    )
    (folder / "model_def.py").write_text(code)
    config = load_experiment_config(folder / "const.yaml")
    run_trial(
        config,
        RunOptions(context_dir=folder, checkpoint_storage=str(tmp_path / "s"), max_length=3),
        NullReporter(),
    )
    assert capsys.readouterr().out.splitlines()[:3] == ["step 0", "step 1", "step 2"]


def test_the_import_aliases_are_undone_after_a_run(tmp_path: pathlib.Path) -> None:
    from shim.imports import determined_namespace

    before = {name: sys.modules.get(name) for name in ("determined.pytorch.lightning",)}
    with determined_namespace():
        import determined.pytorch.lightning as lightning

        from shim.lightning import LightningAdapter

        assert lightning.LightningAdapter is LightningAdapter
    assert {name: sys.modules.get(name) for name in before} == before
    import determined.pytorch

    assert not hasattr(determined.pytorch, "lightning")
