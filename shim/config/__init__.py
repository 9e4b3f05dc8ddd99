"""The experiment config of a legacy trial: parse, validate, and pick hyperparameter values.

``load_experiment_config(path)`` reads a Determined 0.38 experiment config (``const.yaml``) and
returns an ``ExperimentConfig``; every problem is a ``ConfigError`` naming the file, line and key.
"""

from shim.config._schema import CLUSTER_ONLY
from shim.config._where import ConfigError
from shim.config.experiment import (
    ExperimentConfig,
    SearcherConfig,
    load_experiment_config,
    parse_experiment_config,
)
from shim.config.hparams import resolve_hparams
from shim.config.length import NEVER, Length, LengthUnit

__all__ = [
    "CLUSTER_ONLY",
    "NEVER",
    "ConfigError",
    "ExperimentConfig",
    "Length",
    "LengthUnit",
    "SearcherConfig",
    "load_experiment_config",
    "parse_experiment_config",
    "resolve_hparams",
]
