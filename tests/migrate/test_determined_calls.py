"""Every ``determined`` call that migrated code makes exists, with those arguments, in the
installed ``determined`` 0.38: checked by importing it and binding each call's arguments to
``inspect.signature``, not by reading its text.

The generated code names Determined's objects in a few fixed ways: ``det.<...>`` (the module),
``<...>.train`` / ``.checkpoint`` / ``.preempt`` / ``.distributed`` (the core context's parts,
also held in a local ``dist``), and ``info`` / ``info.trial`` (``det.get_cluster_info()``).
"""

from __future__ import annotations

import ast
import inspect
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
_INFO = {"info": det.ClusterInfo, "trial": det.TrialInfo}


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


def test_every_cluster_info_attribute_read_exists_in_determined() -> None:
    """``info.trial.hparams``, ``info.user_data``, ... are attributes or constructor fields."""
    for path in [TEMPLATE, *MIGRATED]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Attribute):
                continue
            owner = node.value.attr if node.value.attr in _INFO else None
            chain = _chain(node)
            if owner is None and chain[:1] == ["info"] and len(chain) == 2:
                owner, attr = "info", chain[1]
            elif owner == "trial" and chain[:2] == ["info", "trial"]:
                attr = node.attr
            else:
                continue
            klass = _INFO[owner]
            fields = set(inspect.signature(klass.__init__).parameters)
            assert hasattr(klass, attr) or attr.lstrip("_") in fields, f"{path}: info {attr}"
