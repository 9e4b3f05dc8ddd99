"""Trial information (``context.info``), shaped like ``determined.ClusterInfo``.

The only module of ``shim.core`` that reads the environment: ``run-trial`` passes a ``ClusterInfo``
directly; a Core API script run by hand may describe its trial with these variables:

``SHIM_EXPERIMENT_CONFIG``  path to the experiment config (YAML or JSON)
``SHIM_HPARAMS``            JSON object of hyperparameters (default: the config's constants)
``SHIM_LATEST_CHECKPOINT``  storage id to resume from
``SHIM_TRIAL_ID`` / ``SHIM_EXPERIMENT_ID`` / ``SHIM_TRIAL_SEED``  integers
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from shim.errors import ShimError

__all__ = ["ClusterInfo", "TrialInfo", "const_hparams"]


@dataclass
class TrialInfo:
    trial_id: int = 1
    experiment_id: int = 1
    trial_seed: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)
    _config: dict[str, Any] = field(default_factory=dict)
    _steps_completed: int = 0


@dataclass
class ClusterInfo:
    """What ``det.get_cluster_info()`` tells a trial, for a local run."""

    trial: TrialInfo = field(default_factory=TrialInfo)
    latest_checkpoint: str | None = None
    task_type: str = "TRIAL"
    container_addrs: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    gpu_uuids: list[str] = field(default_factory=list)

    @property
    def user_data(self) -> dict[str, Any]:
        data = self.trial._config.get("data", {})
        return dict(data) if isinstance(data, Mapping) else {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterInfo:
        env = os.environ if environ is None else environ
        config: dict[str, Any] = {}
        if env.get("SHIM_EXPERIMENT_CONFIG"):
            config = _load_config(pathlib.Path(env["SHIM_EXPERIMENT_CONFIG"]))
        hparams = const_hparams(config.get("hyperparameters", {}))
        if env.get("SHIM_HPARAMS"):
            hparams.update(_json_object(env["SHIM_HPARAMS"], "SHIM_HPARAMS"))
        trial = TrialInfo(
            trial_id=_env_int(env, "SHIM_TRIAL_ID", 1),
            experiment_id=_env_int(env, "SHIM_EXPERIMENT_ID", 1),
            trial_seed=_env_int(env, "SHIM_TRIAL_SEED", 0),
            hparams=hparams,
            _config=config,
        )
        return cls(trial=trial, latest_checkpoint=env.get("SHIM_LATEST_CHECKPOINT") or None)


def const_hparams(space: Mapping[str, Any]) -> dict[str, Any]:
    """The values of constant hyperparameters; search-space ones are left out."""
    out: dict[str, Any] = {}
    for name, value in space.items():
        if isinstance(value, Mapping) and "type" in value:
            if value["type"] == "const":
                out[name] = value.get("val")
        elif isinstance(value, Mapping):
            out[name] = const_hparams(value)
        else:
            out[name] = value
    return out


def _load_config(path: pathlib.Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShimError(
            f"SHIM_EXPERIMENT_CONFIG: cannot read {str(path)!r}: {exc.strerror}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ShimError(f"SHIM_EXPERIMENT_CONFIG: {str(path)!r} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ShimError(f"{str(path)!r}: an experiment config must be a mapping at the top level")
    return loaded


def _json_object(text: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShimError(
            f"{name} is not valid JSON ({exc}); give an object like '{{\"lr\": 0.1}}'"
        ) from exc
    if not isinstance(value, dict):
        raise ShimError(f"{name} must be a JSON object, not {type(value).__name__}")
    return value


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ShimError(f"{name}={raw!r} is not an integer") from None
