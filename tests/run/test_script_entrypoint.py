"""``run-trial`` on a Core API script entrypoint (``python3 model_def.py ARGS``).

The script (tests/run/trials/core_script) is a plain Determined Core API script: it runs on
Determined's own off-cluster context too. Under ``run-trial`` it gets shim.core's context: real
SIGTERM preemption, the run's hparams, seed and newest checkpoint, checkpoints and metrics where a
legacy run keeps them, restarts, the run's summary; with or without ``determined`` installed.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import determined as det
import determined.core
import pytest
import torch

from shim.cli import main
from shim.config import ConfigError, parse_experiment_config
from tests.conftest import free_port, torchrun_env
from tests.run.helpers import TRIALS, assert_same_weights, checkpoint_folders

SCRIPT = TRIALS / "core_script"
BATCHES = 12
ARGS = "--max-length batches=12 --validation-period 5 --checkpoint-period 4"


@pytest.fixture
def trial(tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the script's folder, to edit."""
    folder = tmp_path / "trial"
    shutil.copytree(SCRIPT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The summary and final checkpoint of one uninterrupted run."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    code, summary, err = _run_in_process(SCRIPT, folder / "storage")
    assert code == 0, err
    return {"summary": summary, "state": _state(summary)}


def _run_in_process(
    trial: pathlib.Path, storage: pathlib.Path, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """``run-trial CONFIG --json`` in this process; (exit code, JSON summary, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    command = [str(trial / "const.yaml"), "--plain", "--json", "--checkpoint-storage", str(storage)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*command, *args])
    lines = [line for line in out.getvalue().splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else None, err.getvalue()


def _state(summary: dict[str, Any] | None) -> dict[str, Any]:
    assert summary is not None and summary["latest_checkpoint_path"]
    return torch.load(
        pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth", weights_only=True
    )


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["steps_completed"] == b["steps_completed"]
    assert_same_weights(a["model"], b["model"])
    assert torch.equal(a["rng"], b["rng"])
    first, second = a["optimizer"]["state"], b["optimizer"]["state"]
    assert first.keys() == second.keys()
    for key in first:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(first[key][name], second[key][name]), (key, name)


def _set_entrypoint(trial: pathlib.Path, entrypoint: str) -> None:
    config = trial / "const.yaml"
    lines = config.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("entrypoint:"))
    lines[index] = f"entrypoint: {entrypoint}"
    config.write_text("\n".join(lines) + "\n")


def _edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _line_of(path: pathlib.Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    lines = pathlib.Path(summary["metrics_path"]).read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    "entrypoint",
    [
        f"python3 model_def.py {ARGS}",
        json.dumps(["python3", "model_def.py", *ARGS.split()]),
        f"python3 -m determined.launch.torch_distributed python3 model_def.py {ARGS}",
    ],
    ids=["string", "list", "launcher"],
)
def test_a_script_entrypoint_runs_to_the_end_and_prints_the_runs_summary(
    trial: pathlib.Path, tmp_path: pathlib.Path, entrypoint: str
) -> None:
    _set_entrypoint(trial, entrypoint)
    storage = tmp_path / "storage"
    code, summary, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert summary is not None
    assert summary["status"] == "completed"
    assert summary["steps_completed"] == BATCHES
    assert summary["searcher_metric"] == "val_loss"
    assert summary["seed"] == 7 and summary["restarts"] == 0
    metrics = _metrics(summary)
    validations = [m for m in metrics if m["group"] == "validation"]
    assert [m["steps_completed"] for m in validations] == [5, 10, 12]
    losses = [m["metrics"]["val_loss"] for m in validations]
    assert summary["final_validation"]["val_loss"] == losses[-1]
    assert summary["best_validation"]["val_loss"] == min(losses)
    trained = [m["steps_completed"] for m in metrics if m["group"] == "training"]
    assert trained == list(range(1, BATCHES + 1))
    assert list(pathlib.Path(summary["tensorboard_path"]).glob("events.out.tfevents.*"))
    # Checkpoints in the legacy layout, each naming the run; retention keeps all (latest: 100).
    latest = pathlib.Path(summary["latest_checkpoint_path"])
    assert latest == storage / summary["latest_checkpoint"]
    metadata = json.loads((latest / "metadata.json").read_text())
    run = json.loads((pathlib.Path(summary["metrics_path"]).parent / "trial.json").read_text())
    assert metadata["steps_completed"] == BATCHES and metadata["run_id"] == run["run_id"]
    assert metadata["seed"] == 7 and metadata["validation_metric"] == losses[-1]
    assert len(checkpoint_folders(storage)) == 3  # batches 4, 8 and 12
    assert run["status"] == "completed" and run["latest_checkpoint"] == summary["latest_checkpoint"]
    assert f"running {trial / 'model_def.py'} {ARGS}" in err


def test_a_rerun_of_a_finished_script_resumes_from_its_last_checkpoint(
    trial: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    storage = tmp_path / "storage"
    assert _run_in_process(trial, storage)[0] == 0
    code, summary, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert summary is not None and summary["steps_completed"] == BATCHES
    assert summary["best_validation"] is not None  # read back from the run's metrics
    assert ", from checkpoint " in err
    assert len(checkpoint_folders(storage)) == 3


def test_the_script_runs_on_determineds_own_off_cluster_context_with_the_same_result(
    trial: pathlib.Path, tmp_path: pathlib.Path, uninterrupted: dict[str, Any]
) -> None:
    data_home = tmp_path / "data-home"
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    done = subprocess.run(
        [sys.executable, "model_def.py", *ARGS.split()],
        cwd=trial,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    folders = [p for p in (data_home / "determined").iterdir() if (p / "state_dict.pth").exists()]
    last = max(
        folders, key=lambda p: json.loads((p / "metadata.json").read_text())["steps_completed"]
    )
    state = torch.load(last / "state_dict.pth", weights_only=True)
    _assert_same_state(state, uninterrupted["state"])


@pytest.mark.parametrize("stop_at", range(1, BATCHES + 1))
def test_sigterm_after_any_batch_then_a_rerun_ends_with_the_weights_of_an_uninterrupted_run(
    trial: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    uninterrupted: dict[str, Any],
    stop_at: int,
) -> None:
    storage = tmp_path / "storage"
    monkeypatch.setenv("CORE_SCRIPT_STOP_AT", str(stop_at))
    code, summary, err = _run_in_process(trial, storage)
    assert code == 3, err
    assert summary is not None
    assert (summary["status"], summary["steps_completed"]) == ("preempted", stop_at)
    assert _state(summary)["steps_completed"] == stop_at
    monkeypatch.delenv("CORE_SCRIPT_STOP_AT")
    code, summary, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert summary is not None and summary["status"] == "completed"
    _assert_same_state(_state(summary), uninterrupted["state"])
    expected = uninterrupted["summary"]
    assert summary["final_validation"] == expected["final_validation"]
    assert summary["best_validation"] == expected["best_validation"]


def test_a_crash_restarts_the_script_from_its_newest_checkpoint(
    trial: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    uninterrupted: dict[str, Any],
) -> None:
    monkeypatch.setenv("CORE_SCRIPT_CRASH_AT", "6")
    code, summary, err = _run_in_process(trial, tmp_path / "storage")
    assert code == 0, err
    assert summary is not None and summary["restarts"] == 1
    line = _line_of(trial / "model_def.py", 'raise RuntimeError(f"crash at batch')
    assert f"trial crashed ({trial / 'model_def.py'}:{line}: RuntimeError: crash at batch 6)" in err
    assert "restart 1 of 2 from checkpoint" in err
    _assert_same_state(_state(summary), uninterrupted["state"])


def test_a_crash_with_no_restarts_left_exits_1_at_the_scripts_line(
    trial: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(trial / "const.yaml", "max_restarts: 2", "max_restarts: 0")
    monkeypatch.setenv("CORE_SCRIPT_CRASH_AT", "6")
    storage = tmp_path / "storage"
    code, summary, err = _run_in_process(trial, storage)
    assert (code, summary) == (1, None)
    line = _line_of(trial / "model_def.py", 'raise RuntimeError(f"crash at batch')
    assert f"the trial failed: {trial / 'model_def.py'}:{line}: RuntimeError: crash at" in err
    (run,) = (storage / "runs").glob("*/trial.json")
    assert json.loads(run.read_text())["status"] == "failed"
    assert (run.parent / "run-trial-error.log").is_file()


def test_hparam_overrides_and_search_spaces_follow_the_runners_rules(
    trial: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _edit(trial / "const.yaml", "  lr: 0.01", "  lr: {type: log, base: 10, minval: -3, maxval: -1}")
    code, summary, err = _run_in_process(trial, tmp_path / "a")
    assert (code, summary) == (2, None)
    assert "'lr'" in err and "--hparam lr=VALUE" in err
    code, summary, err = _run_in_process(trial, tmp_path / "b", "--hparam", "lr=0.05")
    assert code == 0, err
    assert summary is not None
    lrs = {m["metrics"]["lr"] for m in _metrics(summary) if m["group"] == "training"}
    assert lrs == {0.05}


def test_max_length_is_refused_for_a_script_which_sets_its_own_length(
    tmp_path: pathlib.Path,
) -> None:
    code, summary, err = _run_in_process(SCRIPT, tmp_path / "storage", "--max-length", "3")
    assert (code, summary) == (2, None)
    assert "--max-length sets searcher.max_length of a module:Class trial" in err


@pytest.mark.parametrize("restarts", [0, 2])
def test_a_script_that_raises_when_it_starts_exits_1_at_its_line_after_its_restarts(
    trial: pathlib.Path, tmp_path: pathlib.Path, restarts: int
) -> None:
    _edit(trial / "const.yaml", "max_restarts: 2", f"max_restarts: {restarts}")
    _edit(trial / "model_def.py", "import yaml\n", "import yaml\n\nraise ValueError('no data')\n")
    code, _, err = _run_in_process(trial, tmp_path / "storage")
    assert code == 1
    line = _line_of(trial / "model_def.py", "raise ValueError('no data')")
    assert f"the trial failed: {trial / 'model_def.py'}:{line}: ValueError: no data" in err
    assert err.count("trial crashed") == restarts


@pytest.mark.parametrize("where", ["model_def.py", "helper.py"])
def test_a_syntax_error_in_the_script_or_its_modules_exits_2_at_its_line(
    trial: pathlib.Path, tmp_path: pathlib.Path, where: str
) -> None:
    (trial / "helper.py").write_text("x = 1\n")
    _edit(trial / "model_def.py", "import yaml\n", "import yaml\n\nimport helper\n")
    (trial / where).write_text((trial / where).read_text() + "\ndef broken(:\n")
    storage = tmp_path / "storage"
    code, _, err = _run_in_process(trial, storage)
    assert code == 2
    line = _line_of(trial / where, "def broken(:")
    assert f"{trial / where}:{line}: syntax error in the script" in err
    assert checkpoint_folders(storage) == []


def test_a_missing_script_exits_2_naming_the_config_line(
    trial: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _set_entrypoint(trial, "python3 train.py --epochs 1")
    code, _, err = _run_in_process(trial, tmp_path / "storage")
    assert code == 2
    line = _line_of(trial / "const.yaml", "entrypoint:")
    assert (
        f"{trial / 'const.yaml'}:{line}: the entrypoint runs 'train.py', which is not a file in "
        f"{trial}" in err
    )


@pytest.mark.parametrize(
    ("ending", "code", "status"),
    [("sys.exit(0)", 0, "completed"), ("sys.exit()", 0, "completed"), ("sys.exit(4)", 1, None)],
)
def test_the_scripts_exit_status_decides_between_done_and_failed(
    trial: pathlib.Path, tmp_path: pathlib.Path, ending: str, code: int, status: str | None
) -> None:
    """A script that never calls det.core.init still gets a summary."""
    _edit(trial / "const.yaml", "max_restarts: 2", "max_restarts: 0")
    (trial / "model_def.py").write_text(f"import sys\n\n{ending}\n")
    exit_code, summary, err = _run_in_process(trial, tmp_path / "storage")
    assert exit_code == code, err
    if status is None:
        assert summary is None
        where = f"{trial / 'model_def.py'}:3"
        assert f"the trial failed: {where}: ScriptExited: the script exited with status 4" in err
    else:
        assert summary is not None
        assert (summary["status"], summary["steps_completed"]) == (status, 0)
        assert summary["latest_checkpoint"] is None and summary["final_validation"] is None


def test_the_script_sees_its_argv_folder_and_working_directory_and_all_is_put_back(
    trial: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (trial / "model_def.py").write_text(
        "import json, os, sys\n\nimport determined as det\n\n"
        "info = det.get_cluster_info()\n"
        "with det.core.init(checkpoint_storage='elsewhere') as core_context:\n"
        "    record = {'argv': sys.argv, 'path0': sys.path[0], 'cwd': os.getcwd(),\n"
        "              'hparams': info.trial.hparams, 'data': info.user_data,\n"
        "              'seed': info.trial.trial_seed, 'trial_id': info.trial.trial_id,\n"
        "              'name': __name__, 'dist': type(core_context.distributed).__name__}\n"
        "    json.dump(record, open('seen.json', 'w'))\n"
    )
    before = (
        det.get_cluster_info,
        determined.core.init,
        determined.core.DistributedContext,
        list(sys.argv),
        list(sys.path),
        os.getcwd(),
        sys.modules["__main__"],
    )
    code, _, err = _run_in_process(trial, tmp_path / "storage", "--hparam", "hidden=3")
    assert code == 0, err
    after = (
        det.get_cluster_info,
        determined.core.init,
        determined.core.DistributedContext,
        sys.argv,
        sys.path,
        os.getcwd(),
        sys.modules["__main__"],
    )
    assert after == before
    assert det.get_cluster_info() is None  # off-cluster again
    seen = json.loads((trial / "seen.json").read_text())
    assert seen["argv"] == [str(trial / "model_def.py"), *ARGS.split()]
    assert seen["path0"] == str(trial) and seen["cwd"] == str(trial)
    assert seen["hparams"] == {"lr": 0.01, "hidden": 3, "batch_size": 4}
    assert seen["data"] == {"records": 20, "features": 3}
    assert (seen["seed"], seen["trial_id"], seen["name"]) == (7, 1, "__main__")
    assert seen["dist"] == "DummyDistributedContext"
    assert "det.core.init(checkpoint_storage='elsewhere') is not used: run-trial keeps" in err
    assert not (trial / "elsewhere").exists()


def test_retention_keeps_the_newest_checkpoint_and_a_rerun_still_resumes_from_it(
    trial: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    _edit(trial / "const.yaml", "save_trial_latest: 100", "save_trial_latest: 1")
    storage = tmp_path / "storage"
    code, summary, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert summary is not None
    assert checkpoint_folders(storage) == [summary["latest_checkpoint"]]
    code, again, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert again is not None and again["latest_checkpoint"] == summary["latest_checkpoint"]
    assert f"from checkpoint {summary['latest_checkpoint']}" in err


def test_init_without_a_distributed_context_in_a_job_of_several_ranks_exits_2_at_the_call(
    trial: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (trial / "model_def.py").write_text(
        "import determined as det\n\nwith det.core.init() as core_context:\n    pass\n"
    )
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, _, err = _run_in_process(trial, tmp_path / "storage")
    assert code == 2
    assert (
        f"{trial / 'model_def.py'}:3: det.core.init() without distributed= in a job of 2 ranks; "
        "pass distributed=det.core.DistributedContext.from_torch_distributed()" in err
    )


def test_without_determined_installed_the_script_runs_on_the_stand_in_with_the_same_result(
    tmp_path: pathlib.Path, uninterrupted: dict[str, Any]
) -> None:
    storage = tmp_path / "storage"
    program = (
        "import sys\n"
        "sys.modules['determined'] = None  # as if determined were not installed\n"
        "from shim.cli import main\n"
        f"code = main([{str(SCRIPT / 'const.yaml')!r}, '--plain', '--json', "
        f"'--checkpoint-storage', {str(storage)!r}])\n"
        "left = [n for n, m in sys.modules.items() if n.startswith('determined') and m]\n"
        "assert not left, left  # nothing of determined was imported, nor left behind\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    _assert_same_state(_state(summary), uninterrupted["state"])
    assert summary["final_validation"] == uninterrupted["summary"]["final_validation"]


def _two_ranks(
    storage: pathlib.Path, env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """``run-trial`` as two ranks of one torchrun job (real gloo processes)."""
    port = free_port()
    command = [sys.executable, "-m", "shim.cli", str(SCRIPT / "const.yaml"), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    ranks = [
        subprocess.Popen(
            command,
            env={**os.environ, **env, **torchrun_env(rank, 2, port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    return [
        subprocess.CompletedProcess(rank.args, rank.returncode, out, err)
        for rank, (out, err) in zip(ranks, outputs, strict=True)
    ]


def test_two_ranks_each_run_the_script_stop_together_and_resume_exactly(
    tmp_path: pathlib.Path, uninterrupted: dict[str, Any]
) -> None:
    """The script builds det.core.DistributedContext.from_torch_distributed(); both ranks train
    the same batches, the chief's SIGTERM decision reaches both, and the chief checkpoints."""
    storage = tmp_path / "storage"
    chief, worker = _two_ranks(storage, {"CORE_SCRIPT_STOP_AT": "5"})
    assert (chief.returncode, worker.returncode) == (3, 3), chief.stderr + worker.stderr
    summary = json.loads(chief.stdout.splitlines()[-1])
    assert (summary["status"], summary["steps_completed"]) == ("preempted", 5)
    assert worker.stdout == ""  # only the chief prints the summary
    chief, worker = _two_ranks(storage, {})
    assert (chief.returncode, worker.returncode) == (0, 0), chief.stderr + worker.stderr
    summary = json.loads(chief.stdout.splitlines()[-1])
    _assert_same_state(_state(summary), uninterrupted["state"])


@pytest.mark.parametrize(
    ("entrypoint", "script"),
    [
        ("python3 train.py", ("train.py",)),
        ("python train.py --epochs 1 --name 'a b'", ("train.py", "--epochs", "1", "--name", "a b")),
        (["python3", "train.py", "--x"], ("train.py", "--x")),
        ("python3 -m determined.launch.torch_distributed python3 t.py --a", ("t.py", "--a")),
        ("python3 -m determined.launch.torch_distributed --trial -- python3.11 t.py", ("t.py",)),
    ],
)
def test_script_entrypoints_are_read_as_the_script_and_its_arguments(
    entrypoint: Any, script: tuple[str, ...]
) -> None:
    config = parse_experiment_config(
        {"entrypoint": entrypoint, "searcher": {"name": "single", "metric": "loss"}}
    )
    assert config.script == script
    assert isinstance(config.entrypoint, str)


def test_a_script_entrypoint_needs_no_global_batch_size_but_a_trial_class_does() -> None:
    searcher = {"name": "single", "metric": "loss"}
    parse_experiment_config({"entrypoint": "python3 train.py", "searcher": searcher})
    with pytest.raises(ConfigError, match="missing required key 'hyperparameters.global_batch"):
        parse_experiment_config({"entrypoint": "model_def:Trial", "searcher": searcher})


MNIST_LIKE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "mnist_like"


@pytest.fixture(scope="module")
def legacy_mnist_like(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The legacy trial's uninterrupted run under run-trial: the migrated script's oracle."""
    folder = tmp_path_factory.mktemp("legacy")
    code, summary, err = _run_in_process(MNIST_LIKE, folder / "storage")
    assert code == 0, err
    assert summary is not None
    return summary


@pytest.mark.parametrize("stop_at", [5, 8, 13])
def test_a_migrated_trial_preempted_and_rerun_ends_with_the_weights_of_its_legacy_run(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    legacy_mnist_like: dict[str, Any],
    stop_at: int,
) -> None:
    """migrate-trial's output for fixtures/mnist_like, SIGTERMed in the middle of an epoch, at
    its end, and in the last one (8 batches per epoch)."""
    trial = tmp_path / "migrated"
    shutil.copytree(MNIST_LIKE / "expected", trial)
    _edit(
        trial / "mnist_like_lm.py",
        '        loss, accuracy = self._loss_and_accuracy(batch)\n        self.log("train_loss"',
        "        if self.global_step + 1 == int(os.environ.get('MIGRATED_STOP_AT', 0)):\n"
        "            os.kill(os.getpid(), signal.SIGTERM)  # after this batch\n"
        '        loss, accuracy = self._loss_and_accuracy(batch)\n        self.log("train_loss"',
    )
    _edit(
        trial / "mnist_like_lm.py", "\nimport torch\n", "\nimport os\nimport signal\nimport torch\n"
    )
    # Another test of this process may have imported the unedited fixture's modules.
    for name in ("mnist_like_lm", "model_def", "core_loop"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    storage = tmp_path / "storage"
    monkeypatch.setenv("MIGRATED_STOP_AT", str(stop_at))
    code, summary, err = _run_in_process(trial, storage)
    assert code == 3, err
    assert summary is not None and summary["steps_completed"] == stop_at
    monkeypatch.delenv("MIGRATED_STOP_AT")
    code, summary, err = _run_in_process(trial, storage)
    assert code == 0, err
    assert summary is not None and summary["steps_completed"] == 16
    migrated = torch.load(
        pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth", weights_only=True
    )
    legacy = torch.load(
        pathlib.Path(legacy_mnist_like["latest_checkpoint_path"]) / "state_dict.pth",
        weights_only=True,
    )
    assert_same_weights(migrated["models_state_dict"][0], legacy["models_state_dict"][0])
    final = {k: v for k, v in summary["final_validation"].items() if k not in ("batches", "epochs")}
    assert final == legacy_mnist_like["final_validation"]
