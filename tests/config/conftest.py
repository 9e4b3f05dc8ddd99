"""Helpers for config tests: a minimal valid config and a const.yaml writer."""

from __future__ import annotations

import copy
import pathlib
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

MINIMAL: dict[str, Any] = {
    "entrypoint": "model_def:MNISTTrial",
    "hyperparameters": {"global_batch_size": 32},
    "searcher": {"name": "single", "metric": "validation_loss"},
}


def minimal(**changes: Any) -> dict[str, Any]:
    """The minimal valid config with top-level ``changes`` applied (``None`` removes a key)."""
    config = copy.deepcopy(MINIMAL)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


@pytest.fixture
def write_config(tmp_path: pathlib.Path) -> Callable[[str], pathlib.Path]:
    def write(text: str) -> pathlib.Path:
        path = tmp_path / "const.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
