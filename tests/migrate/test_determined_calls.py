"""Every ``determined`` call that migrated code makes exists, with those arguments, in the
installed ``determined`` 0.38: checked by importing it and binding each call's arguments to
``inspect.signature``, not by reading its text.

The generated code names Determined's objects in a few fixed ways: ``det.<...>`` (the module),
``<...>.train`` / ``.checkpoint`` / ``.preempt`` / ``.distributed`` (the core context's parts,
also held in a local ``dist``), and ``info`` / ``info.trial`` (``det.get_cluster_info()``), whose
attributes are read on instances of Determined's own ``ClusterInfo`` / ``TrialInfo``.
"""

from __future__ import annotations

import ast
import inspect
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import determined as det
import determined.core
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "migrate" / "templates" / "core_loop.py"
MIGRATED = sorted((REPO / "fixtures").glob("*/expected/model_def.py"))

_PARTS: dict[str, type] = {
    "train": determined.core.TrainContext,
    "checkpoint": determined.core.CheckpointContext,
    "preempt": determined.core.PreemptContext,
    "distributed": determined.core.DistributedContext,
    "dist": determined.core.DistributedContext,
}


def _chain(node: ast.expr) -> list[str]:
    """``a.b.c`` -> ["a", "b", "c"]; [] when the chain does not start at a name."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.insert(0, node.attr)
        node = node.value
    return [node.id, *names] if isinstance(node, ast.Name) else []


def _calls(path: pathlib.Path) -> Iterator[tuple[int, list[str], ast.Call]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and (chain := _chain(node.func)):
            yield node.lineno, chain, node


def _target(chain: list[str]) -> tuple[Any, bool] | None:
    """The Determined callable a call chain names, and whether it takes ``self``."""
    if chain[0] == "det":
        target: Any = det
        for name in chain[1:]:
            target = getattr(target, name)
        return target, False
    if len(chain) >= 2 and chain[-2] in _PARTS:
        return getattr(_PARTS[chain[-2]], chain[-1]), True
    return None


def _bind(target: Any, takes_self: bool, call: ast.Call) -> None:
    signature = inspect.signature(target)
    args = [None] * takes_self + [object() for _ in call.args]
    kwargs = {k.arg: object() for k in call.keywords if k.arg is not None}
    signature.bind(*args, **kwargs)


@pytest.mark.parametrize("path", [TEMPLATE, *MIGRATED], ids=lambda p: str(p.relative_to(REPO)))
def test_every_determined_call_binds_to_the_installed_signature(path: pathlib.Path) -> None:
    checked = []
    for line, chain, call in _calls(path):
        found = _target(chain)
        if found is None:
            continue
        where = f"{path.relative_to(REPO)}:{line}: {'.'.join(chain)}"
        try:
            _bind(*found, call)
        except TypeError as exc:
            pytest.fail(f"{where} does not match determined's signature: {exc}")
        checked.append(".".join(chain[-2:]))
    assert checked, f"no determined call found in {path}"


def test_the_template_calls_the_core_api_it_is_meant_to() -> None:
    """The check above is only as good as what it finds: the template's reports, checkpoints,
    preemption checks and collectives are among them."""
    named = {".".join(chain[-2:]) for _, chain, _ in _calls(TEMPLATE) if _target(chain)}
    assert {
        "train.report_training_metrics",
        "train.report_validation_metrics",
        "train.report_progress",
        "checkpoint.store_path",
        "checkpoint.restore_path",
        "preempt.should_preempt",
        "distributed.broadcast",
        "dist.allgather",
        "DistributedContext.from_torch_distributed",
    } <= named


# What a trial container holds in /run/determined/info (the JSON of ``ClusterInfo._to_file`` and
# ``TrialInfo._to_file``): the real classes are built from it as ``ClusterInfo._from_file`` does.
_CLUSTER_JSON = {
    "master_url": "https://master.example:8080",
    "cluster_id": "c0ffee",
    "agent_id": "agent-0",
    "slot_ids": [0],
    "task_id": "1.abc",
    "allocation_id": "1.abc.1",
    "session_token": "token",
    "task_type": "TRIAL",
    "master_cert_name": None,
    "master_cert_file": None,
    "latest_checkpoint": "6b4d1c3e-0000-4000-8000-000000000000",
}
_TRIAL_JSON = {
    "trial_id": 7,
    "experiment_id": 3,
    "trial_seed": 42,
    "hparams": {"global_batch_size": 32},
    "config": {"data": {"size": 8}},
    "steps_completed": 0,
    "trial_run_id": 1,
    "debug": False,
    "inter_node_network_interface": None,
}


def _cluster_info(folder: pathlib.Path) -> det.ClusterInfo:
    trial_file = folder / "trial.json"
    trial_file.write_text(json.dumps(_TRIAL_JSON))
    trial = det.TrialInfo._from_file(str(trial_file))
    return det.ClusterInfo(trial_info=trial, **_CLUSTER_JSON)


def info_reads(source: str) -> set[tuple[str, str]]:
    """Every attribute generated code reads on ``info`` (``det.get_cluster_info()``) or on
    ``info.trial``, as ``("info" | "trial", name)``: ``info.x``, ``info.trial.x`` and
    ``getattr(info[.trial], "x", ...)``."""
    reads: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner, attr = _chain(node.value), node.attr
        elif (
            isinstance(node, ast.Call)
            and _chain(node.func) == ["getattr"]
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            owner, attr = _chain(node.args[0]), node.args[1].value
        else:
            continue
        if owner == ["info"]:
            reads.add(("info", attr))
        elif owner == ["info", "trial"]:
            reads.add(("trial", attr))
    return reads


def _missing(reads: set[tuple[str, str]], info: Any) -> list[str]:
    owners = {"info": info, "trial": info.trial}
    return sorted(
        f"{'info' if owner == 'info' else 'info.trial'}.{attr}"
        for owner, attr in reads
        if not hasattr(owners[owner], attr)
    )


@pytest.mark.parametrize("path", [TEMPLATE, *MIGRATED], ids=lambda p: str(p.relative_to(REPO)))
def test_every_cluster_info_attribute_read_exists_on_determineds_own_objects(
    path: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Read on instances built as a trial container builds them: properties (``user_data``,
    ``latest_checkpoint``, ``trial``) and attributes set in ``__init__`` (``trial_id``,
    ``_config``) alike."""
    reads = info_reads(path.read_text())
    assert reads, f"no info attribute read found in {path}"
    assert _missing(reads, _cluster_info(tmp_path)) == [], path


def test_the_reads_checked_are_the_ones_the_script_relies_on() -> None:
    found = set().union(*(info_reads(p.read_text()) for p in [TEMPLATE, *MIGRATED]))
    assert {
        ("info", "latest_checkpoint"),
        ("info", "user_data"),
        ("info", "trial"),
        ("trial", "hparams"),
        ("trial", "trial_id"),
        ("trial", "trial_seed"),
        ("trial", "_config"),
    } <= found


def test_a_misspelled_info_attribute_is_found(tmp_path: pathlib.Path) -> None:
    source = (
        "seed = info.trial.trial_sed\n"
        "ckpt = info.latest_checkpont\n"
        "config = getattr(info.trial, 'config', None)\n"
        "data = info.user_data\n"
    )
    assert _missing(info_reads(source), _cluster_info(tmp_path)) == [
        "info.latest_checkpont",
        "info.trial.config",
        "info.trial.trial_sed",
    ]


def test_the_off_cluster_stand_in_has_every_attribute_the_script_reads(
    tmp_path: pathlib.Path,
) -> None:
    """``core_loop.local_cluster_info`` answers for ``det.get_cluster_info()`` off a cluster."""
    from migrate.templates.core_loop import local_cluster_info

    config = tmp_path / "const.yaml"
    config.write_text("hyperparameters: {global_batch_size: 4}\ndata: {size: 8}\n")
    reads = set().union(*(info_reads(p.read_text()) for p in [TEMPLATE, *MIGRATED]))
    assert _missing(reads, local_cluster_info(config)) == []
