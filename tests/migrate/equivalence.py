"""Run a migrated trial as a plain Core API script and the legacy trial under run-trial, and
collect what each reported and the weights it ended with.

The migrated script runs as ``python3 model_def.py <entrypoint arguments>`` with the real
``determined`` package's off-cluster context, which logs each report
(``report_training_metrics(steps_completed=..., metrics={...})``) and stores checkpoints under
``$XDG_DATA_HOME/determined``; run-trial writes ``metrics.jsonl`` and prints a JSON summary.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"

# Group 1: the series; 2: steps; 3: the metrics dict's repr (floats round-trip exactly).
_REPORT = re.compile(
    r"report_(training|validation)_metrics\(steps_completed=(\d+), metrics=(\{.*\})\)"
)

Reports = list[tuple[str, int, dict[str, Any]]]


@dataclass
class Outcome:
    reports: Reports
    weights: dict[str, torch.Tensor]


def script_arguments(tree: pathlib.Path, config: str = "const.yaml") -> list[str]:
    """The migrated config's entrypoint: ``python3 model_def.py ARGS`` -> (script, ARGS)."""
    entrypoint = yaml.safe_load((tree / config).read_text())["entrypoint"]
    words = entrypoint if isinstance(entrypoint, list) else shlex.split(entrypoint)
    start = next(i for i, word in enumerate(words) if word.endswith(".py"))
    return words[start:]


def run_migrated(
    tree: pathlib.Path,
    home: pathlib.Path,
    python: str = sys.executable,
    *extra: str,
    setup: str = "",
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run the migrated script off-cluster with Determined's own dummy context.

    ``extra`` follows the entrypoint's arguments (a repeated flag wins); ``setup`` is Python run
    in the script's process before it, ``env`` joins the environment."""
    words = script_arguments(tree)
    environment = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    environment.pop("DET_MASTER", None)
    environment.update(env or {})
    # The dummy context reports through the `determined.core` logger at INFO.
    runner = (
        "import logging, runpy, sys; "
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s'); "
        "sys.argv = sys.argv[1:]; sys.path.insert(0, '.')\n"
        f"{setup}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    command = [python, "-c", runner, *words, *extra]
    done = subprocess.run(
        command, cwd=tree, env=environment, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    reports = [
        (group, int(steps), ast.literal_eval(metrics))
        for group, steps, metrics in _REPORT.findall(done.stderr)
    ]
    storage = home / "data" / "determined"
    return Outcome(reports, newest_weights(storage))


def run_legacy(
    case_dir: pathlib.Path, storage: pathlib.Path, python: str = sys.executable
) -> Outcome:
    """Run the legacy trial under run-trial."""
    command = [python, "-m", "shim.cli", str(case_dir / "const.yaml"), str(case_dir)]
    command += ["--plain", "--json", "--checkpoint-storage", str(storage)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    metrics_file = pathlib.Path(summary["metrics_path"])
    reports = [
        (record["group"], record["steps_completed"], record["metrics"])
        for record in map(json.loads, metrics_file.read_text().splitlines())
        if record["group"] in ("training", "validation")
    ]
    return Outcome(reports, newest_weights(storage))


def checkpoint_at(storage: pathlib.Path, steps: int) -> str:
    """The storage id of the checkpoint taken after ``steps`` batches."""
    for metadata in storage.glob("*/metadata.json"):
        if json.loads(metadata.read_text())["steps_completed"] == steps:
            return metadata.parent.name
    raise AssertionError(f"no checkpoint at step {steps} in {storage}")


def newest_weights(storage: pathlib.Path) -> dict[str, torch.Tensor]:
    """The model of the checkpoint with the most steps (the run's last)."""
    newest: tuple[int, pathlib.Path] | None = None
    for metadata in storage.glob("*/metadata.json"):
        steps = json.loads(metadata.read_text())["steps_completed"]
        if newest is None or steps > newest[0]:
            newest = (steps, metadata.parent)
    assert newest is not None, f"no checkpoint in {storage}"
    content = torch.load(newest[1] / "state_dict.pth", weights_only=True)
    return content["models_state_dict"][0]  # type: ignore[no-any-return]


def assert_same_reports(migrated: Reports, legacy: Reports, tolerance: float = 1e-6) -> None:
    """The same series at the same steps with the same names, values within ``tolerance``."""
    assert [(g, s, sorted(m)) for g, s, m in migrated] == [(g, s, sorted(m)) for g, s, m in legacy]
    for (group, steps, ours), (_, _, theirs) in zip(migrated, legacy, strict=True):
        for name, value in theirs.items():
            assert abs(ours[name] - value) <= tolerance * max(1.0, abs(value)), (
                f"{group} {name} at {steps}: {ours[name]} vs {value}"
            )


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"weights differ: {different}"
