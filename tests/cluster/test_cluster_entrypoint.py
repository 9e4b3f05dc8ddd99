"""``python -m shim.cluster model_def:MNISTLikeTrial`` as a Determined 0.38 trial, without a master.

The trial's process gets what a trial container holds: the info files (``cluster.json``,
``trial.json``, ...) that determined's own readers load for ``det.get_cluster_info()``, with the
master's expanded experiment config in ``trial.json``. determined's real ``det.core.init()`` then
talks to a ``RecordingMaster`` (a local HTTP server answering the master's REST API) and writes
checkpoints to the config's ``directory`` storage. The recorded calls are compared with what
``run-trial`` gives for the same config locally.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import yaml

from shim.cluster import cluster_config, main
from shim.config import ConfigError
from tests.conftest import REPO, free_port
from tests.run.helpers import assert_same_weights
from tests.stand_in_master import (
    SITE,
    RecordingMaster,
    container_env,
    read_info_files,
    write_info_files,
)

pytestmark = pytest.mark.slow

FIXTURE = REPO / "fixtures" / "mnist_like"
TRIAL = "model_def:MNISTLikeTrial"
METRICS = "/api/v1/trials/1/metrics"
TOTAL = 16  # 2 epochs of 8 batches


def _user_config(storage: pathlib.Path) -> dict[str, Any]:
    """The fixture's const.yaml, reporting training metrics (and progress) after every batch,
    keeping every checkpoint locally so they can be compared."""
    config = dict(yaml.safe_load((FIXTURE / "const.yaml").read_text()))
    config["scheduling_unit"] = 1
    config["checkpoint_storage"] = {
        "type": "directory",
        "container_path": str(storage),
        "save_trial_latest": 100,
    }
    return config


def _expanded(user: dict[str, Any], slots: int = 1) -> dict[str, Any]:
    """The config as a 0.38 master hands it to the trial: the entrypoint changed to this
    package's, hyperparameters as const entries, every field present, unset ones null."""
    storage = {"save_experiment_best": 0, "save_trial_best": 1, **user["checkpoint_storage"]}
    launcher = "python3 -m determined.launch.torch_distributed " if slots > 1 else ""
    return {
        **user,
        "entrypoint": f"{launcher}python3 -m shim.cluster {TRIAL}",
        "hyperparameters": {
            name: {"type": "const", "val": value} for name, value in user["hyperparameters"].items()
        },
        "searcher": {**user["searcher"], "source_checkpoint_uuid": None, "source_trial_id": None},
        "checkpoint_storage": storage,
        "bind_mounts": [],
        "checkpoint_policy": "best",
        "debug": False,
        "description": None,
        "environment": {
            "image": {"cpu": "determinedai/pytorch-ngc-dev:0.38.0"},
            "environment_variables": {"cpu": [], "cuda": [], "rocm": []},
            "force_pull_image": False,
            "pod_spec": None,
            "registry_auth": None,
        },
        "labels": [],
        "log_policies": [],
        "optimizations": {"aggregation_frequency": 1, "mixed_precision": "O0"},
        "perform_initial_validation": False,
        "profiling": {"enabled": False, "begin_on_batch": 0, "end_after_batch": None},
        "project": "Uncategorized",
        "workspace": "Uncategorized",
        "resources": {
            "slots_per_trial": slots,
            "max_slots": None,
            "weight": 1,
            "native_parallel": False,
            "shm_size": None,
            "resource_pool": "default",
            "priority": None,
            "is_single_node": None,
            "devices": [],
        },
        "pbs": {},
        "slurm": {},
        "integrations": None,
        "internal": None,
        "preemption_timeout": None,
    }


@dataclass
class ClusterRun:
    returncode: int
    stderr: str  # with stdout after it
    metrics: list[tuple[str, int, dict[str, Any]]]
    checkpoints: list[tuple[str, int]]  # (uuid, steps_completed) as reported to the master
    master: RecordingMaster


def _cluster_run(
    tmp_path: pathlib.Path,
    context: pathlib.Path,
    storage: pathlib.Path,
    *,
    latest_checkpoint: str | None = None,
    preempt_at_progress: float | None = None,
    trial: str = TRIAL,
    slots: int = 1,
) -> ClusterRun:
    allocation = f"1.{secrets.token_hex(4)}.1"
    info_dir = tmp_path / f"info-{allocation}"
    user = _user_config(storage)
    with RecordingMaster(allocation, preempt_at_progress=preempt_at_progress) as master:
        write_info_files(
            info_dir,
            master,
            _expanded(user, slots),
            dict(user["hyperparameters"]),
            trial_seed=user["reproducibility"]["experiment_seed"],
            latest_checkpoint=latest_checkpoint,
            slots=slots,
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SITE), str(REPO)]),
            "STAND_IN_INFO_DIR": str(info_dir),
            **container_env(master, slots),  # DET_ALLOCATION_ID names TensorBoard's folder
            # determined's launcher starts `python3` (this one) and torch's rendezvous.
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
            "C10D_PORT": str(free_port()),
        }
        command = ["-m", "shim.cluster", trial]
        if slots > 1:
            command = ["-m", "determined.launch.torch_distributed", "python3", *command]
        try:
            done = subprocess.run(
                [sys.executable, *command],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            for rank in range(slots):
                shutil.rmtree(f"/tmp/tensorboard-{allocation}-{rank}", ignore_errors=True)
    metrics = [
        (body["group"], body["metrics"]["stepsCompleted"], body["metrics"]["metrics"]["avgMetrics"])
        for body in master.bodies("POST", METRICS)
    ]
    checkpoints = [
        (body["uuid"], body["metadata"]["steps_completed"])
        for body in master.bodies("POST", "/api/v1/checkpoints")
    ]
    return ClusterRun(done.returncode, done.stderr + done.stdout, metrics, checkpoints, master)


def _local_run(tmp_path: pathlib.Path, context: pathlib.Path) -> tuple[list[Any], list[int]]:
    """``run-trial`` on the same config: its metrics and the steps of its checkpoints."""
    storage = tmp_path / "local"
    config = context / "local.yaml"
    config.write_text(yaml.safe_dump(_user_config(storage)))
    done = subprocess.run(
        [sys.executable, "-m", "shim.cli", str(config), str(context), "--plain", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (metrics_file,) = storage.glob("runs/*/metrics.jsonl")
    records = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    metrics = [(r["group"], r["steps_completed"], r["metrics"]) for r in records]
    return metrics, sorted(_steps(storage).values())


def _steps(storage: pathlib.Path) -> dict[str, int]:
    return {
        path.parent.name: int(json.loads(path.read_text())["steps_completed"])
        for path in storage.glob("*/metadata.json")
    }


def _weights(storage: pathlib.Path, uuid: str) -> dict[str, torch.Tensor]:
    content = torch.load(storage / uuid / "state_dict.pth", weights_only=True)
    return dict(content["models_state_dict"][0])


@pytest.fixture
def context(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "context"
    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("expected", "__pycache__"))
    return folder


def test_the_master_receives_the_metrics_steps_and_checkpoints_of_the_same_run_under_run_trial(
    tmp_path: pathlib.Path, context: pathlib.Path
) -> None:
    local_metrics, local_steps = _local_run(tmp_path, context)
    storage = tmp_path / "cluster"
    run = _cluster_run(tmp_path, context, storage)

    assert run.returncode == 0, run.stderr
    assert "trial completed at batch 16" in run.stderr
    assert run.metrics == local_metrics
    assert [group for group, _, _ in run.metrics].count("validation") == 2
    # Each reported uuid is a complete checkpoint in the config's storage, at the steps reported,
    # and they are the steps run-trial checkpoints at.
    on_disk = _steps(storage)
    assert {uuid: on_disk.get(uuid) for uuid, _ in run.checkpoints} == dict(run.checkpoints)
    assert sorted(steps for _, steps in run.checkpoints) == local_steps == [8, 16]
    # Prepared for reporting before anything else; progress after each batch, ending at 1.
    assert run.master.calls[0][:2] == ("POST", "/api/v1/runs/start")
    assert run.master.calls[0][2]["checkpointStorage"]["container_path"] == str(storage)
    progress = [body["progress"] for body in run.master.bodies("POST", "/api/v1/trials/1/progress")]
    assert progress == [step / TOTAL for step in range(1, TOTAL + 1)]
    assert not run.master.bodies(
        "POST", f"/api/v1/allocations/{run.master.allocation_id}/signals/ack_preemption"
    )


def test_a_preemption_from_the_master_stops_the_trial_with_a_checkpoint_and_it_resumes_bitwise(
    tmp_path: pathlib.Path, context: pathlib.Path
) -> None:
    whole = _cluster_run(tmp_path / "whole", context, tmp_path / "whole" / "storage")
    assert whole.returncode == 0, whole.stderr
    storage = tmp_path / "storage"

    first = _cluster_run(tmp_path, context, storage, preempt_at_progress=5 / TOTAL)
    assert first.returncode == 0, first.stderr
    acks = f"/api/v1/allocations/{first.master.allocation_id}/signals/ack_preemption"
    assert len(first.master.bodies("POST", acks)) == 1
    uuid, stopped_at = first.checkpoints[-1]
    assert 5 <= stopped_at < TOTAL, "it stopped at the batch the signal came, before the end"
    assert f"trial preempted at batch {stopped_at}, checkpoint {uuid}" in first.stderr
    assert _steps(storage)[uuid] == stopped_at
    assert first.metrics == [m for m in whole.metrics if m[1] <= stopped_at]

    second = _cluster_run(tmp_path, context, storage, latest_checkpoint=uuid)
    assert second.returncode == 0, second.stderr
    assert second.metrics[0][:2] == ("training", stopped_at + 1), "the count continues"
    assert first.metrics + second.metrics == whole.metrics
    final_uuid, final_steps = second.checkpoints[-1]
    whole_uuid, _ = whole.checkpoints[-1]
    assert final_steps == TOTAL
    assert_same_weights(
        _weights(storage, final_uuid), _weights(tmp_path / "whole" / "storage", whole_uuid)
    )


def test_it_refuses_to_run_without_a_trials_cluster_info(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import determined._info

    monkeypatch.setattr(determined._info, "_info", None)
    assert main([TRIAL]) == 2
    assert "det.get_cluster_info() is None" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "expected one argument, got 0"), (["model_def"], "'model_def' is not MODULE:CLASS")],
)
def test_a_missing_or_malformed_trial_argument_exits_2_with_the_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "python3 -m shim.cluster MODULE:CLASS" in err


def test_the_masters_config_is_checked_as_run_trial_checks_it_with_nulls_unset(
    tmp_path: pathlib.Path,
) -> None:
    expanded = _expanded(_user_config(tmp_path))
    config = cluster_config(expanded, TRIAL)
    assert config.entrypoint == TRIAL and config.raw["entrypoint"] == TRIAL
    assert config.scheduling_unit == 1 and config.searcher.max_length is not None
    with pytest.raises(ConfigError, match=r"trial\._config.*scheduling_unit"):
        cluster_config({**expanded, "scheduling_unit": 0}, TRIAL)
    del expanded["hyperparameters"]["global_batch_size"]
    with pytest.raises(ConfigError, match="global_batch_size"):
        cluster_config(expanded, TRIAL)


def test_a_trial_that_fails_exits_1_naming_its_line_and_reports_no_checkpoint(
    tmp_path: pathlib.Path, context: pathlib.Path
) -> None:
    (context / "broken.py").write_text(
        "from model_def import MNISTLikeTrial\n\n\n"
        "class Broken(MNISTLikeTrial):\n"
        "    def build_training_data_loader(self):\n"
        "        raise RuntimeError('the data is not there')\n"
    )
    run = _cluster_run(tmp_path, context, tmp_path / "storage", trial="broken:Broken")
    assert run.returncode == 1
    assert "the trial failed: " in run.stderr and "broken.py:6" in run.stderr
    assert "the data is not there" in run.stderr
    assert run.checkpoints == [] and run.metrics == []


def _bind_info(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, master: RecordingMaster
) -> None:
    import determined._info

    user = _user_config(tmp_path / "storage")
    write_info_files(
        tmp_path / "info", master, _expanded(user), dict(user["hyperparameters"]), trial_seed=1
    )
    monkeypatch.setattr(determined._info, "_info", read_info_files(tmp_path / "info"))
    monkeypatch.chdir(tmp_path)


def test_a_trial_module_not_in_the_context_directory_exits_2_before_any_call_to_the_master(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with RecordingMaster("1.abc.1") as master:
        _bind_info(tmp_path, monkeypatch, master)
        assert main(["no_such_module:Trial"]) == 2
    assert "no_such_module" in capsys.readouterr().err
    assert master.calls == []


def test_a_task_that_is_not_a_trial_exits_2(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import determined._info

    with RecordingMaster("1.abc.1") as master:
        _bind_info(tmp_path, monkeypatch, master)
        determined._info._info.task_type = "COMMAND"  # type: ignore[union-attr]
        assert main([TRIAL]) == 2
    assert "not of a COMMAND task" in capsys.readouterr().err


def test_without_determined_installed_it_exits_2_saying_what_to_install(
    tmp_path: pathlib.Path,
) -> None:
    # -S: no site-packages, so neither determined nor torch can be found.
    done = subprocess.run(
        [sys.executable, "-S", "-m", "shim.cluster", TRIAL],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "needs the `determined` package of the cluster (0.38)" in done.stderr


def test_two_slots_under_determineds_launcher_report_once_and_end_as_one_slot_does(
    tmp_path: pathlib.Path, context: pathlib.Path
) -> None:
    one = _cluster_run(tmp_path / "one", context, tmp_path / "one" / "storage")
    two = _cluster_run(tmp_path, context, tmp_path / "storage", slots=2)
    assert two.returncode == 0, two.stderr
    for rank in (0, 1):  # determined's wrap_rank prefixes each rank's lines
        assert f"[rank={rank}] shim.cluster: trial completed at batch 16" in two.stderr
    # The chief alone reports, at the steps one slot reports at, with the same values (the
    # global batch is split between the slots), and checkpoints where one slot does.
    assert [m[:2] for m in two.metrics] == [m[:2] for m in one.metrics]
    for (_, _, ours), (_, _, theirs) in zip(two.metrics, one.metrics, strict=True):
        assert ours.keys() == theirs.keys()
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    assert [steps for _, steps in two.checkpoints] == [8, 16]
    final = _weights(tmp_path / "storage", two.checkpoints[-1][0])
    alone = _weights(tmp_path / "one" / "storage", one.checkpoints[-1][0])
    for name, tensor in final.items():
        torch.testing.assert_close(tensor, alone[name], rtol=1e-5, atol=1e-6)
