"""Bad input: a clear message naming what and where, exit status 2, and no checkpoint written."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from shim.cli import main
from tests.run.helpers import TOY, checkpoint_folders


@pytest.fixture
def trial(tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the toy trial to break."""
    folder = tmp_path / "trial"
    shutil.copytree(TOY.parent, folder)
    return folder


def run(trial: pathlib.Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    storage = trial.parent / "storage"
    code = main([str(trial / "const.yaml"), "--plain", "--checkpoint-storage", str(storage), *args])
    err = capsys.readouterr().err
    assert checkpoint_folders(storage) == [], "nothing may be written on bad input"
    return code, err


def edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def line_of(path: pathlib.Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_syntax_error_in_the_trial_names_file_and_line(trial, capsys) -> None:
    edit(trial / "model_def.py", "import os\n", "import os\ndef broken(:\n")
    code, err = run(trial, capsys)
    assert code == 2
    line = line_of(trial / "model_def.py", "def broken(:")
    assert f"{trial / 'model_def.py'}:{line}: syntax error" in err


def test_a_missing_entrypoint_class_lists_the_classes_there(trial, capsys) -> None:
    edit(trial / "const.yaml", "model_def:ToyTrial", "model_def:MissingTrial")
    code, err = run(trial, capsys)
    assert code == 2
    assert "'MissingTrial', which is not defined there" in err and "'ToyTrial'" in err


def test_a_missing_module_says_where_it_looked(trial, capsys) -> None:
    edit(trial / "const.yaml", "model_def:ToyTrial", "no_such_file:ToyTrial")
    code, err = run(trial, capsys)
    assert code == 2 and "no module 'no_such_file' in" in err


def test_a_missing_hyperparameter_lists_the_known_ones(trial, capsys) -> None:
    edit(trial / "model_def.py", 'get_hparam("hidden")', 'get_hparam("hiden")')
    code, err = run(trial, capsys)
    assert code == 2
    assert "hyperparameter 'hiden' is not in the experiment config" in err
    assert "did you mean 'hidden'?" in err


def test_a_searcher_metric_never_reported_lists_the_metrics_that_were(trial, capsys) -> None:
    edit(trial / "const.yaml", "metric: val_loss", "metric: val_accuracy")
    edit(trial / "const.yaml", "  batches: 7", "  batches: 100")
    code, err = run(trial, capsys)
    assert code == 2
    assert "searcher.metric 'val_accuracy' was not reported" in err
    assert "['accuracy', 'val_loss']" in err


def test_an_unknown_config_key_suggests_the_close_match(trial, capsys) -> None:
    edit(trial / "const.yaml", "  metric: val_loss", "  metirc: val_loss")
    code, err = run(trial, capsys)
    assert code == 2 and "metirc" in err and "did you mean 'metric'" in err


def test_manual_optimization_is_rejected_with_the_module_location(trial, capsys) -> None:
    edit(
        trial / "model_def.py",
        "        self.save_hyperparameters()\n",
        "        self.save_hyperparameters()\n        self.automatic_optimization = False\n",
    )
    code, err = run(trial, capsys)
    assert code == 2
    assert "model_def.py" in err and "LA103" in err and "automatic optimization" in err


def test_a_rejected_hook_names_the_method_and_its_line(trial, capsys) -> None:
    edit(
        trial / "model_def.py",
        "    def configure_optimizers(self):",
        "    def tbptt_split_batch(self, batch, split_size):\n        return [batch]\n\n"
        "    def configure_optimizers(self):",
    )
    code, err = run(trial, capsys)
    assert code == 2
    line = line_of(trial / "model_def.py", "def tbptt_split_batch")
    assert f"model_def.py:{line}: ToyModule.tbptt_split_batch (LA104)" in err


def test_an_ignored_hook_warns_and_the_run_goes_on(trial, capsys) -> None:
    edit(
        trial / "model_def.py",
        "    def configure_optimizers(self):",
        "    def test_step(self, batch, batch_idx):\n        raise AssertionError('never')\n\n"
        "    def configure_optimizers(self):",
    )
    storage = trial.parent / "storage"
    code = main(
        [
            str(trial / "const.yaml"),
            "--plain",
            "--checkpoint-storage",
            str(storage),
            "--max-length",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "ToyModule.test_step (LA101)" in err and "will not be called" in err


def test_bad_command_line_values_are_refused(trial, capsys) -> None:
    assert run(trial, capsys, "--max-length", "0")[0] == 2
    code, err = run(trial, capsys, "--hparam", "lr")
    assert code == 2 and "use NAME=VALUE" in err


def test_a_missing_searcher_metric_at_the_initial_validation_is_bad_input(trial, capsys) -> None:
    edit(trial / "const.yaml", "metric: val_loss", "metric: val_accuracy")
    (trial / "const.yaml").write_text(
        (trial / "const.yaml").read_text() + "perform_initial_validation: true\n"
    )
    code, err = run(trial, capsys)
    assert code == 2 and "searcher.metric 'val_accuracy' was not reported" in err


def test_resuming_with_another_seed_is_refused(trial, capsys) -> None:
    storage = trial.parent / "storage"
    args = [str(trial / "const.yaml"), "--plain", "--checkpoint-storage", str(storage)]
    assert main([*args, "--max-length", "7"]) == 0
    capsys.readouterr()
    assert main([*args, "--seed", "5"]) == 2
    assert "--seed 5 differs from the seed 11" in capsys.readouterr().err
