from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import determined as det
import determined.core as det_core
import pytest

import shim.core as core
from shim.core.info import ClusterInfo
from shim.errors import ShimError
from tests.conftest import REPO


def test_init_off_cluster_builds_the_local_context(storage: pathlib.Path) -> None:
    with core.init(checkpoint_storage=str(storage)) as ctx:
        assert isinstance(ctx, core.Context)
        assert ctx.checkpoint.storage_path == storage
        assert ctx.distributed.size == 1
        assert ctx.info.trial.trial_id == 1


def test_init_on_a_cluster_returns_the_real_determined_context(
    monkeypatch: pytest.MonkeyPatch, storage: pathlib.Path
) -> None:
    calls: list[dict[str, Any]] = []
    sentinel = object()

    def fake_init(**kwargs: Any) -> object:
        calls.append(kwargs)
        return sentinel

    monkeypatch.setattr(det, "get_cluster_info", lambda: object())
    monkeypatch.setattr(det_core, "init", fake_init)
    out = core.init(checkpoint_storage=str(storage), preempt_mode=core.PreemptMode.ChiefOnly)
    assert out is sentinel
    assert calls == [
        {
            "distributed": None,
            "checkpoint_storage": str(storage),
            "preempt_mode": det_core.PreemptMode.ChiefOnly,
            "tensorboard_mode": det_core.TensorboardMode.AUTO,
        }
    ]


def test_info_comes_from_the_environment_for_hand_run_scripts(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "const.yaml"
    config.write_text(
        "hyperparameters:\n  lr: 0.1\n  width: {type: const, val: 8}\n"
        "  layers: {type: int, minval: 1, maxval: 4}\n"
        "data: {url: synthetic}\nsearcher: {metric: loss, max_length: {batches: 10}}\n"
    )
    info = ClusterInfo.from_env(
        {
            "SHIM_EXPERIMENT_CONFIG": str(config),
            "SHIM_HPARAMS": '{"layers": 2}',
            "SHIM_TRIAL_ID": "7",
            "SHIM_LATEST_CHECKPOINT": "3f2c9a6e-1b2d-4c5e-8f90-a1b2c3d4e5f6",
        }
    )
    assert info.trial.hparams == {"lr": 0.1, "width": 8, "layers": 2}
    assert info.trial.trial_id == 7
    assert info.user_data == {"url": "synthetic"}
    assert info.latest_checkpoint == "3f2c9a6e-1b2d-4c5e-8f90-a1b2c3d4e5f6"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHIM_HPARAMS": "{"}, "SHIM_HPARAMS is not valid JSON"),
        ({"SHIM_HPARAMS": "[1]"}, "must be a JSON object"),
        ({"SHIM_TRIAL_ID": "x"}, "SHIM_TRIAL_ID='x' is not an integer"),
        (
            {"SHIM_EXPERIMENT_CONFIG": "/nonexistent/const.yaml"},
            "cannot read '/nonexistent/const.yaml'",
        ),
    ],
)
def test_bad_environment_is_reported_with_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ShimError, match=message):
        ClusterInfo.from_env(env)


def test_a_config_that_is_not_a_mapping_is_refused(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("- a\n- b\n")
    with pytest.raises(ShimError, match="mapping at the top level"):
        ClusterInfo.from_env({"SHIM_EXPERIMENT_CONFIG": str(config)})


def test_the_readme_example_trains_checkpoints_and_resumes(tmp_path: pathlib.Path) -> None:
    script = REPO / "fixtures" / "core_api_example" / "train.py"
    storage = tmp_path / "ck"

    def run(*args: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, str(script), "--checkpoint-storage", str(storage), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return json.loads(out.stdout.splitlines()[-1])

    first = run("--steps", "100")
    assert first["status"] == "completed" and first["steps_completed"] == 100
    second = run("--steps", "150", "--resume", first["latest_checkpoint"])
    assert second["steps_completed"] == 150
    metrics = storage / "metrics" / "trial_1.jsonl"
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["steps_completed"] for r in records if r["group"] == "training"] == [50, 100, 150]


def test_on_a_cluster_storage_dicts_become_paths_and_determineds_own_distributed_context_passes(
    monkeypatch: pytest.MonkeyPatch, storage: pathlib.Path
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(det, "get_cluster_info", lambda: object())
    monkeypatch.setattr(det_core, "init", lambda **kwargs: calls.append(kwargs))
    theirs = det_core.DummyDistributedContext()
    spec = {"type": "shared_fs", "host_path": str(storage), "storage_path": "ck"}
    core.init(distributed=theirs, checkpoint_storage=spec)
    core.init(checkpoint_storage=storage)  # type: ignore[arg-type]
    assert calls[0]["distributed"] is theirs
    assert calls[0]["checkpoint_storage"] == str(storage / "ck")
    assert calls[1]["checkpoint_storage"] == str(storage)
