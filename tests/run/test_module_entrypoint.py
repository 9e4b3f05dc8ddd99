"""``run-trial`` on a module entrypoint (``python3 -m pkg.model_def ARGS``), run as ``python3 -m``
runs it from the context directory: what ``migrate-trial`` makes of a trial in a package.

The migrated package trial (the set-up of tests/migrate/test_package_entrypoint.py) runs to the
end, and SIGTERM mid-run then a rerun ends with the weights of an uninterrupted run; small
packages written here check what the module sees against plain ``python3 -m``, restarts, the
refusals and their exit codes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import determined as det
import pytest
import torch

from migrate.cli import migrate_main
from shim.cli import main
from shim.config import ConfigError, parse_experiment_config
from tests.conftest import free_port, torchrun_env
from tests.migrate.test_package_entrypoint import package_trial
from tests.run.helpers import assert_same_weights, checkpoint_folders

CONFIG = """\
name: module-entrypoint
entrypoint: {entrypoint}
hyperparameters:
  lr: 0.5
searcher:
  name: single
  metric: val_loss
reproducibility:
  experiment_seed: 3
max_restarts: {restarts}
"""

# What a module sees of its run, printed as one JSON line (the same under python3 -m).
SEES = """\
import json, os, sys

print(json.dumps({
    "argv": sys.argv, "path0": sys.path[0], "cwd": os.getcwd(), "name": __name__,
    "package": __package__, "file": __file__, "spec": __spec__.name,
    "main": sys.modules["__main__"].__file__,
}))
"""

# Each layout python3 -m runs: a module of a package, a package's __main__, a namespace package.
LAYOUTS = {
    "pkg.main": {"pkg/__init__.py": "", "pkg/main.py": SEES},
    "pkg": {"pkg/__init__.py": "", "pkg/__main__.py": SEES},
    "ns.sub.main": {"ns/sub/main.py": SEES},
}


def _run(config: pathlib.Path, storage: pathlib.Path, *args: str) -> tuple[int, Any, str, str]:
    """``run-trial CONFIG --json`` in this process: (exit code, JSON summary or None, stdout,
    stderr)."""
    out, err = io.StringIO(), io.StringIO()
    command = [str(config), "--plain", "--json", "--checkpoint-storage", str(storage), *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(command)
    lines = [line for line in out.getvalue().splitlines() if line.startswith('{"status"')]
    return code, json.loads(lines[-1]) if lines else None, out.getvalue(), err.getvalue()


def _experiment(
    root: pathlib.Path, entrypoint: str, files: dict[str, str], restarts: int = 0
) -> pathlib.Path:
    """An experiment folder: its const.yaml and ``files`` (relative path -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "const.yaml").write_text(CONFIG.format(entrypoint=entrypoint, restarts=restarts))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _line_of(path: pathlib.Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# --- reading the entrypoint --------------------------------------------------------------------

_LAUNCH = "python3 -m determined.launch.torch_distributed"


@pytest.mark.parametrize(
    ("entrypoint", "script"),
    [
        ("python3 -m pkg.model_def", ("-m", "pkg.model_def")),
        (
            "python -m pkg.model_def --epochs 1 'a b'",
            ("-m", "pkg.model_def", "--epochs", "1", "a b"),
        ),
        ("python3 -mpkg.model_def --x", ("-m", "pkg.model_def", "--x")),
        (["python3", "-m", "train", "--x"], ("-m", "train", "--x")),
        (f"{_LAUNCH} python3 -m pkg.train --a", ("-m", "pkg.train", "--a")),
        (f"{_LAUNCH} --trial -- python3.11 -m train", ("-m", "train")),
    ],
)
def test_module_entrypoints_are_read_as_the_module_and_its_arguments(
    entrypoint: Any, script: tuple[str, ...]
) -> None:
    searcher = {"name": "single", "metric": "loss"}
    config = parse_experiment_config({"entrypoint": entrypoint, "searcher": searcher})
    assert config.script == script
    assert config.script_module == script[1]


def test_a_script_path_entrypoint_has_no_module_even_with_a_dash_m_argument() -> None:
    searcher = {"name": "single", "metric": "loss"}
    config = parse_experiment_config({"entrypoint": "python3 train.py -m x", "searcher": searcher})
    assert (config.script, config.script_module) == (("train.py", "-m", "x"), None)


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("python3 -m", "'python3 -m', which names no module after -m; write 'python3 -m pkg."),
        (f"{_LAUNCH} python3 -m", "which names no module after -m"),
        (
            "python3 -m pkg/model_def.py --x",
            "'pkg/model_def.py' after -m is not a module name (dotted Python names, no '.py', "
            "e.g. pkg.model_def); did you mean 'python3 -m pkg.model_def'?",
        ),
        ("python3 -m pkg-1.train", "'pkg-1.train' after -m is not a module name (dotted"),
        (
            "python3 -m determined.launch.deepspeed python3 train.py",
            "starts Determined's launcher 'determined.launch.deepspeed'; run-trial runs the "
            "launched script itself, alone or after 'python3 -m determined.launch.torch_dist",
        ),
    ],
)
def test_a_module_entrypoint_run_trial_cannot_run_is_refused_with_the_fix(
    entrypoint: str, message: str
) -> None:
    searcher = {"name": "single", "metric": "loss"}
    with pytest.raises(ConfigError, match=r"^exp\.yaml: 'entrypoint' is the command .*") as info:
        parse_experiment_config({"entrypoint": entrypoint, "searcher": searcher}, "exp.yaml")
    assert message in str(info.value)


def test_a_module_entrypoint_without_a_module_exits_2_at_the_configs_line(
    tmp_path: pathlib.Path,
) -> None:
    experiment = _experiment(tmp_path / "exp", "python3 -m", {})
    code, summary, _, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert (code, summary) == (2, None)
    assert f"{experiment / 'const.yaml'}:2: 'entrypoint' is the command 'python3 -m', which" in err


# --- running it as python3 -m does -------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(LAYOUTS))
def test_the_module_sees_what_python_m_shows_it_and_all_is_put_back(
    tmp_path: pathlib.Path, module: str
) -> None:
    experiment = _experiment(tmp_path / "exp", f"python3 -m {module} --flag 'a b'", LAYOUTS[module])
    expected = subprocess.run(
        [sys.executable, "-m", module, "--flag", "a b"],
        cwd=experiment,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before = (list(sys.argv), list(sys.path), os.getcwd(), sys.modules["__main__"])
    code, summary, out, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert code == 0, err
    assert summary is not None and summary["status"] == "completed"
    seen = json.loads(next(line for line in out.splitlines() if line.startswith('{"argv"')))
    assert seen == json.loads(expected.stdout)
    assert seen["path0"] == str(experiment) and seen["name"] == "__main__"
    assert (list(sys.argv), list(sys.path), os.getcwd(), sys.modules["__main__"]) == before
    # The user's package is forgotten (a namespace package too): the next run imports it afresh.
    top = module.split(".")[0]
    assert [name for name in sys.modules if name.split(".")[0] == top] == []
    assert f"running -m {module} --flag a b ({seen['file']})" in err


def test_the_module_gets_the_runs_cluster_info_and_core_context(tmp_path: pathlib.Path) -> None:
    module = (
        "import json\n\nimport determined as det\n\n"
        "info = det.get_cluster_info()\n"
        "with det.core.init() as core_context:\n"
        "    core_context.train.report_training_metrics(1, {'loss': 0.25})\n"
        "    with core_context.checkpoint.store_path({'steps_completed': 1}) as (path, uuid):\n"
        "        (path / 'state.json').write_text(json.dumps(info.trial.hparams))\n"
    )
    files = {"pkg/__init__.py": "", "pkg/train.py": module}
    experiment = _experiment(tmp_path / "exp", "python3 -m pkg.train", files)
    storage = tmp_path / "storage"
    code, summary, _, err = _run(experiment / "const.yaml", storage, "--hparam", "lr=0.25")
    assert code == 0, err
    assert summary is not None and summary["steps_completed"] == 1 and summary["seed"] == 3
    assert summary["trial"] == "python3 -m pkg.train"
    (folder,) = checkpoint_folders(storage)
    assert json.loads((storage / folder / "state.json").read_text()) == {"lr": 0.25}
    assert det.get_cluster_info() is None  # off-cluster again


def test_an_installed_module_runs_as_python_m_would_run_it(tmp_path: pathlib.Path) -> None:
    files = {"data.json": '{"b": 1, "a": [2]}'}
    experiment = _experiment(tmp_path / "exp", "python3 -m json.tool data.json out.json", files)
    code, summary, _, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert code == 0, err
    assert summary is not None and summary["status"] == "completed"
    assert json.loads((experiment / "out.json").read_text()) == {"b": 1, "a": [2]}


def test_a_restart_imports_the_users_package_afresh(tmp_path: pathlib.Path) -> None:
    module = (
        "import pathlib\n\nfrom pkg import state\n\n"
        "state.ATTEMPTS.append(1)\n"
        "if not pathlib.Path('crashed-once').exists():\n"
        "    pathlib.Path('crashed-once').write_text('')\n"
        "    raise RuntimeError('the first attempt crashes')\n"
        "if state.ATTEMPTS != [1]:\n"
        "    raise RuntimeError(f'pkg.state kept from the crashed attempt: {state.ATTEMPTS}')\n"
    )
    files = {"pkg/__init__.py": "", "pkg/state.py": "ATTEMPTS = []\n", "pkg/main.py": module}
    experiment = _experiment(tmp_path / "exp", "python3 -m pkg.main", files, restarts=1)
    code, summary, _, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert code == 0, err
    assert summary is not None and summary["restarts"] == 1
    main_py = experiment / "pkg" / "main.py"
    line = _line_of(main_py, "raise RuntimeError('the first attempt")
    assert f"trial crashed ({main_py}:{line}: RuntimeError: the first attempt crashes); " in err


# --- refusals and failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "files", "looked_for"),
    [
        ("pkg.train", {"pkg/__init__.py": ""}, "pkg/train.py or pkg/train/__main__.py"),
        ("pkg", {"pkg/__init__.py": ""}, "pkg/__main__.py or pkg.py"),
        ("model_def_nowhere", {"model_def.py": ""}, "model_def_nowhere.py or model_def_nowh"),
        (
            "pkg.model_def.py",
            {"pkg/__init__.py": "", "pkg/model_def.py": ""},
            "pkg/model_def/py.py",
        ),
    ],
)
def test_a_module_not_found_under_the_context_dir_exits_2_at_the_configs_line(
    tmp_path: pathlib.Path, module: str, files: dict[str, str], looked_for: str
) -> None:
    experiment = _experiment(tmp_path / "exp", f"python3 -m {module} --x", files)
    storage = tmp_path / "storage"
    code, summary, _, err = _run(experiment / "const.yaml", storage)
    assert (code, summary) == (2, None)
    assert (
        f"{experiment / 'const.yaml'}:2: the entrypoint runs 'python3 -m {module}', but there "
        f"is no {looked_for}" in err
    )
    assert f"pass the folder that holds {module.split('.')[0]}/ as CONTEXT_DIR" in err
    if module.endswith(".py"):
        assert "or write 'python3 -m pkg.model_def' (a module name, no .py)" in err
    else:
        assert err.rstrip().endswith("or fix the module name")
    assert checkpoint_folders(storage) == []


@pytest.mark.parametrize("where", ["pkg/main.py", "pkg/helper.py"])
def test_a_syntax_error_in_the_module_or_its_package_exits_2_at_its_line(
    tmp_path: pathlib.Path, where: str
) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/helper.py": "X = 1\n",
        "pkg/main.py": "from . import helper\n",
    }
    files[where] += "\ndef broken(:\n"
    experiment = _experiment(tmp_path / "exp", "python3 -m pkg.main", files, restarts=2)
    code, _, _, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert code == 2
    line = _line_of(experiment / where, "def broken(:")
    assert f"{experiment / where}:{line}: syntax error in the script" in err
    assert "trial crashed" not in err


def test_a_package_that_raises_when_imported_fails_the_trial_at_its_line(
    tmp_path: pathlib.Path,
) -> None:
    """python3 -m imports the package before its module; its failure is the trial's (exit 1)."""
    files = {"pkg/__init__.py": "raise ValueError('no data')\n", "pkg/main.py": ""}
    experiment = _experiment(tmp_path / "exp", "python3 -m pkg.main", files)
    code, summary, _, err = _run(experiment / "const.yaml", tmp_path / "storage")
    assert (code, summary) == (1, None)
    init = experiment / "pkg" / "__init__.py"
    assert f"the trial failed: {init}:1: ValueError: no data" in err


# --- the migrated package trial ----------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """migrate-trial's output for a trial in a package, and its uninterrupted run."""
    root = tmp_path_factory.mktemp("migrated")
    experiment = package_trial(root / "experiment", "from .lm import")
    assert migrate_main([str(experiment)]) == 0
    code, summary, _, err = _run(experiment / "const.yaml", root / "storage")
    assert code == 0, err
    return {"experiment": experiment, "summary": summary, "err": err}


def _checkpoint(summary: dict[str, Any]) -> dict[str, Any]:
    path = pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth"
    return torch.load(path, weights_only=True)


def _assert_same_training(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert_same_weights(a["models_state_dict"][0], b["models_state_dict"][0])
    first, second = a["optimizers_state_dict"][0]["state"], b["optimizers_state_dict"][0]["state"]
    assert first.keys() == second.keys()
    for key in first:
        for name, value in first[key].items():
            assert torch.equal(value, second[key][name]), (key, name)


@pytest.mark.slow
def test_the_migrated_package_trial_runs_to_the_end_under_run_trial(
    migrated: dict[str, Any],
) -> None:
    summary = migrated["summary"]
    assert summary["trial"].startswith("python3 -m pkg.model_def --max-length epochs=2")
    assert (summary["status"], summary["steps_completed"], summary["seed"]) == ("completed", 16, 42)
    lines = pathlib.Path(summary["metrics_path"]).read_text().splitlines()
    validations = [m for m in map(json.loads, lines) if m["group"] == "validation"]
    assert [m["steps_completed"] for m in validations] == [8, 16]
    assert summary["final_validation"]["val_loss"] == validations[-1]["metrics"]["val_loss"]
    assert _checkpoint(summary)["models_state_dict"][0].keys()
    model_def = migrated["experiment"] / "pkg" / "model_def.py"
    assert "running -m pkg.model_def --max-length epochs=2" in migrated["err"]
    assert f"({model_def})" in migrated["err"]


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [5, 11])  # in the first epoch, in the second (8 per epoch)
def test_sigterm_mid_run_then_a_rerun_ends_with_the_weights_of_an_uninterrupted_run(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated: dict[str, Any],
    stop_at: int,
) -> None:
    experiment = tmp_path / "experiment"
    shutil.copytree(migrated["experiment"], experiment)
    lm = experiment / "pkg" / "lm.py"
    _edit(
        lm,
        '        loss, accuracy = self._loss_and_accuracy(batch)\n        self.log("train_loss"',
        "        if self.global_step + 1 == int(os.environ.get('MODULE_STOP_AT', 0)):\n"
        "            os.kill(os.getpid(), signal.SIGTERM)  # after this batch\n"
        '        loss, accuracy = self._loss_and_accuracy(batch)\n        self.log("train_loss"',
    )
    _edit(lm, "\nimport torch\n", "\nimport os\nimport signal\n\nimport torch\n")
    storage = tmp_path / "storage"
    monkeypatch.setenv("MODULE_STOP_AT", str(stop_at))
    code, summary, _, err = _run(experiment / "const.yaml", storage)
    assert code == 3, err
    assert summary is not None
    assert (summary["status"], summary["steps_completed"]) == ("preempted", stop_at)
    preempted_at = summary["latest_checkpoint"]
    monkeypatch.delenv("MODULE_STOP_AT")
    code, summary, _, err = _run(experiment / "const.yaml", storage)
    assert code == 0, err
    assert summary is not None and summary["steps_completed"] == 16
    assert f"from checkpoint {preempted_at}" in err
    uninterrupted = migrated["summary"]
    _assert_same_training(_checkpoint(summary), _checkpoint(uninterrupted))
    assert summary["final_validation"] == uninterrupted["final_validation"]


@pytest.mark.slow
def test_two_ranks_after_the_launcher_each_run_the_module_to_the_same_end(
    tmp_path: pathlib.Path, migrated: dict[str, Any]
) -> None:
    experiment = tmp_path / "experiment"
    shutil.copytree(migrated["experiment"], experiment)
    _edit(
        experiment / "const.yaml",
        "entrypoint: python3 -m pkg",
        f"entrypoint: {_LAUNCH} python3 -m pkg",
    )
    port = free_port()
    command = [sys.executable, "-m", "shim.cli", str(experiment / "const.yaml"), "--plain"]
    command += ["--json", "--checkpoint-storage", str(tmp_path / "storage")]
    ranks = [
        subprocess.Popen(
            command,
            env={**os.environ, **torchrun_env(rank, 2, port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    (chief_out, chief_err), (worker_out, worker_err) = [r.communicate(timeout=300) for r in ranks]
    assert [r.returncode for r in ranks] == [0, 0], chief_err + worker_err
    assert worker_out == ""  # only the chief prints the summary
    summary = json.loads(chief_out.splitlines()[-1])
    assert (summary["status"], summary["steps_completed"]) == ("completed", 16)
    weights = _checkpoint(summary)["models_state_dict"][0]
    alone = _checkpoint(migrated["summary"])["models_state_dict"][0]
    for name, value in weights.items():  # the same global batches, averaged over two ranks
        torch.testing.assert_close(value, alone[name], rtol=1e-5, atol=1e-6)
