"""migrate-trial on the configs that name a trial: one that Determined's PyTorchTrial would have
refused stops its trial (exit 2, ``config:line``, nothing of it written) and the rest migrates."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.cli import migrate_main

TRIAL = """\
from determined.pytorch import DataLoader
from determined.pytorch.lightning import LightningAdapter


class Trial(LightningAdapter):
    def __init__(self, context) -> None:
        self.context = context
        super().__init__(context, lightning_module=None)

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader([1, 2], batch_size=self.context.get_per_slot_batch_size())
"""
CONFIG = """\
name: t
entrypoint: model_def:Trial
hyperparameters:
  global_batch_size: 2
searcher: {name: single, metric: val_loss, max_length: {batches: 4}}
"""


def _folder(root: Path, name: str, config: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "model_def.py").write_text(TRIAL)
    (folder / "const.yaml").write_text(config)
    return folder


def test_a_config_without_global_batch_size_stops_its_trial_and_the_others_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _folder(tmp_path, "good", CONFIG)
    bad = _folder(tmp_path, "bad", CONFIG.replace("  global_batch_size: 2\n", "  lr: 0.1\n"))
    code = migrate_main([str(good), str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert (
        f"migrate-trial: error: {bad / 'const.yaml'}:3:1: hyperparameters.global_batch_size is "
        "missing; Determined's PyTorchTrial required it, and without it the migrated script "
        "would take the number of processes as the global batch size: add e.g. "
        "'global_batch_size: 32' under hyperparameters, then rerun"
    ) in err
    assert (bad / "model_def.py").read_text() == TRIAL
    assert sorted(p.name for p in bad.iterdir()) == ["const.yaml", "model_def.py"]
    assert "class Trial:\n" in (good / "model_def.py").read_text()
    assert (good / "core_loop.py").is_file()
