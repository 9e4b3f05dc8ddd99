"""run-trial's exit status says whose failure it was: 2 the user's input (file:line, no restart),
1 the trial (after its restarts), 1 with "this is a bug" for this package's own failures; the
run's trial.json says the same, and nothing is left half written."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest

import shim.core.checkpoint
import shim.core.train
from shim.cli import main
from tests.run.helpers import TRIALS, checkpoint_folders

FAULTS = TRIALS / "faults"


@pytest.fixture
def trial(tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the faults trial, to break."""
    folder = tmp_path / "trial"
    shutil.copytree(FAULTS, folder)
    return folder


def run(trial: pathlib.Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    storage = trial.parent / "storage"
    code = main([str(trial / "const.yaml"), "--plain", "--checkpoint-storage", str(storage), *args])
    return code, capsys.readouterr().err


def run_folder(trial: pathlib.Path) -> pathlib.Path:
    (folder,) = [p for p in (trial.parent / "storage" / "runs").iterdir() if p.is_dir()]
    return folder


def record(trial: pathlib.Path) -> dict[str, Any]:
    return json.loads((run_folder(trial) / "trial.json").read_text())


def line_of(path: pathlib.Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_failure_in_the_trials_code_restarts_then_exits_1_at_its_line(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIM_TEST_FAIL_AT", "6")
    code, err = run(trial, capsys)
    assert code == 1
    model_def = trial / "model_def.py"
    where = f"{model_def}:{line_of(model_def, 'raise RuntimeError')}"
    log = run_folder(trial) / "run-trial-error.log"
    assert err.count(f"trial crashed ({where}: RuntimeError: injected failure") == 2
    assert err.endswith(
        f"run-trial: the trial failed: {where}: RuntimeError: injected failure after batch 6; "
        f"traceback in {log}\n"
    )
    assert record(trial)["status"] == "failed" and record(trial)["restarts"] == 2
    assert log.read_text().count("RuntimeError: injected failure after batch 6") == 3


def test_a_crash_in_this_packages_code_is_reported_as_a_bug_and_not_restarted(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for a bug: the package calls something that is not callable.
    monkeypatch.setattr(shim.core.train, "to_jsonable", None)
    code, err = run(trial, capsys)
    assert code == 1
    log = run_folder(trial) / "run-trial-error.log"
    (last,) = [line for line in err.splitlines() if line.startswith("run-trial:")]
    assert last.startswith(
        "run-trial: internal error (this is a bug in lightning-adapter-compat): "
    )
    assert "shim/core/train.py:" in last and "TypeError: 'NoneType' object is not callable" in last
    assert last.endswith(f"; traceback in {log}; please report it with that file")
    assert "trial crashed" not in err
    assert record(trial)["status"] == "failed" and record(trial)["restarts"] == 0
    assert 'shim/core/train.py", line' in log.read_text()


def test_the_package_refusing_its_own_call_mid_run_is_a_bug_not_bad_input(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for a bug in the controller: checkpoint metadata without steps_completed.
    store_path = shim.core.checkpoint.CheckpointContext.store_path

    def buggy(self: Any, metadata: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return store_path(self, {"framework": "torch"}, **kwargs)

    monkeypatch.setattr(shim.core.checkpoint.CheckpointContext, "store_path", buggy)
    code, err = run(trial, capsys)
    assert code == 1, err
    assert "internal error (this is a bug in lightning-adapter-compat)" in err
    assert "must contain 'steps_completed'" in err
    assert record(trial)["status"] == "failed" and record(trial)["restarts"] == 0


def test_the_trials_misuse_of_the_api_is_bad_input_at_the_trials_line(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_def = trial / "model_def.py"
    edit(model_def, 'self.log("train_loss", loss)', 'self.log("train_loss", torch.ones(3))')
    code, err = run(trial, capsys)
    assert code == 2
    line = line_of(model_def, 'self.log("train_loss", torch.ones(3))')
    assert f"run-trial: error: {model_def}:{line}: self.log('train_loss'" in err
    assert "trial crashed" not in err
    assert record(trial)["status"] == "failed" and record(trial)["restarts"] == 0


def test_a_trial_module_that_raises_at_import_is_bad_input_at_its_line(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_def = trial / "model_def.py"
    edit(model_def, "import os\n", "import os\nraise RuntimeError('no data folder')\n")
    code, err = run(trial, capsys)
    assert code == 2
    line = line_of(model_def, "raise RuntimeError('no data folder')")
    assert err == (
        f"run-trial: error: {model_def}:{line}: importing the trial ('model_def') raised "
        "RuntimeError: no data folder; fix it and run again\n"
    )
    assert checkpoint_folders(trial.parent / "storage") == []


def test_a_module_the_trial_imports_that_raises_is_bad_input_at_that_modules_line(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (trial / "helpers.py").write_text("SIZE = 4\nWIDTH = undefined_width\n")
    edit(trial / "model_def.py", "import os\n", "import os\n\nimport helpers\n")
    code, err = run(trial, capsys)
    assert code == 2
    assert f"{trial / 'helpers.py'}:2: importing the trial ('model_def') raised NameError" in err


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-5", "-5 is out of range: use 0 to 4294967295"),
        ("4294967296", "4294967296 is out of range"),
        ("five", "'five' is not an integer"),
    ],
)
def test_a_seed_out_of_range_is_refused_naming_the_option_before_anything_is_written(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(trial, capsys, f"--seed={value}")
    assert exited.value.code == 2
    assert f"run-trial: error: argument --seed: {problem}" in capsys.readouterr().err
    assert not (trial.parent / "storage").exists()


def test_the_largest_seed_is_accepted_and_recorded(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(trial, capsys, "--seed", "4294967295", "--max-length", "1")
    assert code == 0, err
    assert record(trial)["seed"] == 4294967295


def test_a_file_where_the_runs_folder_belongs_is_bad_input_before_anything_runs(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = trial.parent / "storage"
    storage.mkdir()
    (storage / "runs").write_text("someone's notes\n")
    code, err = run(trial, capsys)
    assert code == 2
    assert f"run-trial: error: {storage / 'runs'} is a file, not a folder;" in err
    assert "move or delete that file, or pass --checkpoint-storage DIR" in err
    assert "FaultTrial" not in err, "the trial never started"
    assert sorted(p.name for p in storage.iterdir()) == ["runs"]
    assert (storage / "runs").read_text() == "someone's notes\n"


def test_a_damaged_trial_json_is_bad_input_and_left_as_it_is(
    trial: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(trial, capsys, "--max-length", "4")[0] == 0
    path = run_folder(trial) / "trial.json"
    path.write_text(path.read_text().replace('"seed": 5', '"seed": -5'))
    damaged = path.read_text()
    code, err = run(trial, capsys)
    assert code == 2
    assert f"run-trial: error: {path} is damaged: seed -5 is not an int" in err
    assert path.read_text() == damaged


def test_a_full_disk_fails_the_trial_with_a_complete_trial_json_and_no_temp_file(
    trial: pathlib.Path,
) -> None:
    """On a real full file system: a tmpfs mounted in a private mount namespace (as root, or as
    a user through a user namespace), which the run-trial process fills itself."""
    out = trial.parent / "out"
    out.mkdir()
    script = (
        'mount -t tmpfs -o size=256k tmpfs "$MNT" || exit 97\n'
        '"$PY" -m shim.cli "$CONFIG" --plain --checkpoint-storage "$MNT/storage" 2>"$OUT/err"\n'
        'echo $? >"$OUT/rc"\n'
        'cp -a "$MNT/storage/runs" "$OUT/runs"\n'
    )
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace.append("--map-root-user")
    (trial.parent / "mnt").mkdir()
    env = {
        **os.environ,
        "MNT": str(trial.parent / "mnt"),
        "PY": sys.executable,
        "CONFIG": str(trial / "const.yaml"),
        "OUT": str(out),
        "TMPDIR": str(out),  # where logs go that the full disk cannot take
        "SHIM_TEST_FILL_AT": "5",
        "SHIM_TEST_FILL": str(trial.parent / "mnt" / "filler"),
    }
    done = subprocess.run([*namespace, "sh", "-c", script], env=env, timeout=300, text=True)
    if done.returncode == 97 or not (out / "rc").exists():
        pytest.skip("this machine lets neither root nor a user namespace mount a tmpfs")
    err = (out / "err").read_text()
    assert (out / "rc").read_text().strip() == "1", err
    assert "run-trial: the trial failed:" in err and "No space left on device" in err
    (folder,) = [p for p in (out / "runs").iterdir() if p.is_dir()]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    trial_json = json.loads((folder / "trial.json").read_text())
    assert trial_json["status"] == "failed" and trial_json["restarts"] == 2, err
    assert trial_json["steps_completed"] == 4, "the checkpoint written before the disk filled"
