"""Running ``run-trial`` as a real process, and reading what it left behind."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pathlib
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch

TRIALS = pathlib.Path(__file__).resolve().parent / "trials"
TOY = TRIALS / "toy" / "const.yaml"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no JSON summary; stderr:\n{self.stderr}"
        return json.loads(lines[-1])


def run_trial(
    storage: pathlib.Path, *args: str, config: pathlib.Path = TOY, env: dict[str, str] | None = None
) -> Run:
    command = [sys.executable, "-m", "shim.cli", str(config), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage), *args]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=300)
    return Run(result.returncode, result.stdout, result.stderr)


def checkpoint_content(summary: dict[str, Any]) -> dict[str, Any]:
    path = pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth"
    return torch.load(path, weights_only=True)


def final_weights(summary: dict[str, Any]) -> dict[str, torch.Tensor]:
    return checkpoint_content(summary)["models_state_dict"][0]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"weights differ: {different}"


def checkpoint_folders(storage: pathlib.Path) -> list[str]:
    """Folders that look like complete checkpoints."""
    if not storage.exists():
        return []
    return sorted(p.name for p in storage.iterdir() if (p / "metadata.json").is_file())


@contextlib.contextmanager
def trial_module(folder: pathlib.Path) -> Iterator[types.ModuleType]:
    """Import a trial folder's ``model_def`` as run-trial would, and forget it afterwards."""
    from shim.imports import determined_namespace, trial_folder

    with determined_namespace(), trial_folder(folder):
        yield importlib.import_module("model_def")


def quiet_trainer(**kwargs: Any) -> pl.Trainer:
    """A Lightning Trainer on the CPU that writes nothing: the oracle."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(**{**settings, **kwargs})
