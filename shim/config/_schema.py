"""The fields of a Determined 0.38 experiment config that run-trial knows, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shim.config._checks import (
    Validator,
    anything,
    boolean,
    choice,
    int_at_least,
    int_list,
    mapping,
    number,
    section,
    string,
    string_list,
)
from shim.config._where import KeyPath, Where, format_key
from shim.config.length import check_length

__all__ = [
    "CHECKPOINT_POLICIES",
    "CLUSTER_ONLY",
    "FIELD_CHECKS",
    "SEARCHER_NAMES",
    "STORAGE_TYPES",
    "TOP_LEVEL_DEFAULTS",
    "check_checkpoint_storage",
]

# Scheduling, containers and cluster services: accepted so a cluster config runs unchanged,
# never read locally, so their contents are not checked.
CLUSTER_ONLY = (
    "bind_mounts",
    "debug",
    "environment",
    "integrations",
    "internal",
    "log_policies",
    "pbs",
    "preemption_timeout",
    "profiling",
    "project",
    "retention_policy",
    "security",
    "slurm",
    "tensorboard_storage",
    "workspace",
)

SEARCHER_NAMES = ("single", "random", "grid", "adaptive_asha", "async_halving", "custom")
CHECKPOINT_POLICIES = ("best", "all", "none")

searcher = section(
    {
        "name": choice(SEARCHER_NAMES),
        "metric": string,
        "smaller_is_better": boolean,
        "max_length": check_length(1, keep_int=True),
        "max_trials": int_at_least(1),
        "source_trial_id": int_at_least(1),
        "source_checkpoint_uuid": string,
        "max_concurrent_trials": int_at_least(0),
        "mode": choice(("aggressive", "standard", "conservative")),
        "divisor": number,
        "max_rungs": int_at_least(1),
        "time_metric": string,
        "max_time": int_at_least(1),
        "bracket_rungs": int_list,
        "num_rungs": int_at_least(1),
        "stop_once": boolean,
    },
    required={
        "name": "add e.g. 'name: single' under searcher",
        "metric": "name the validation metric to track, e.g. 'metric: validation_loss'",
    },
    defaults={"smaller_is_better": True},
)

_RESOURCE_DEFAULTS: Mapping[str, Any] = {"slots_per_trial": 1, "native_parallel": False}
resources = section(
    {
        "slots_per_trial": int_at_least(0),
        **{
            key: anything
            for key in (
                "agent_label", "devices", "is_single_node", "max_slots", "native_parallel",
                "priority", "resource_pool", "shm_size", "weight",
            )
        },
    },
    defaults=_RESOURCE_DEFAULTS,
)  # fmt: skip

_OPTIMIZATION_DEFAULTS: Mapping[str, Any] = {
    "aggregation_frequency": 1,
    "average_aggregated_gradients": True,
    "average_training_metrics": True,
    "gradient_compression": False,
    "grad_updates_size_file": None,
    "mixed_precision": "O0",
    "tensor_fusion_threshold": 64,
    "tensor_fusion_cycle_time": 5,
    "auto_tune_tensor_fusion": False,
}
optimizations = section(
    {
        "aggregation_frequency": int_at_least(1),
        "average_aggregated_gradients": boolean,
        "average_training_metrics": boolean,
        "gradient_compression": boolean,
        "grad_updates_size_file": string,
        "mixed_precision": string,
        "tensor_fusion_threshold": int_at_least(0),
        "tensor_fusion_cycle_time": int_at_least(0),
        "auto_tune_tensor_fusion": boolean,
    },
    defaults=_OPTIMIZATION_DEFAULTS,
)

reproducibility = section({"experiment_seed": int_at_least(0)})

# Retention counts, with Determined's defaults; the union of what they name is kept.
_RETENTION: Mapping[str, Validator] = {
    "save_experiment_best": int_at_least(0),
    "save_trial_best": int_at_least(0),
    "save_trial_latest": int_at_least(0),
}
_RETENTION_DEFAULTS = {"save_experiment_best": 0, "save_trial_best": 1, "save_trial_latest": 1}
# Each storage type: its fields and which of them are required.
_STORAGE_FIELDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "shared_fs": (
        ("host_path", "storage_path", "container_path", "checkpoint_path", "propagation"),
        ("host_path",),
    ),
    "directory": (("container_path",), ("container_path",)),
    "s3": (("bucket", "prefix", "access_key", "secret_key", "endpoint_url"), ("bucket",)),
    "gcs": (("bucket", "prefix"), ("bucket",)),
    "azure": (("container", "connection_string", "account_url", "credential"), ("container",)),
}
STORAGE_TYPES = tuple(_STORAGE_FIELDS)


def check_checkpoint_storage(value: Any, path: KeyPath, where: Where) -> dict[str, Any]:
    """``checkpoint_storage``: a ``type`` and that type's fields, plus the retention counts."""
    value = mapping(value, path, where)
    if "type" not in value:
        raise where.error(
            (*path, "type"),
            f"missing required key {format_key((*path, 'type'))!r}; add e.g. 'type: shared_fs' "
            f"(one of {', '.join(STORAGE_TYPES)})",
        )
    kind = choice(STORAGE_TYPES)(value["type"], (*path, "type"), where)
    names, required = _STORAGE_FIELDS[kind]
    check = section(
        {"type": string, **dict.fromkeys(names, string), **_RETENTION},
        required={key: f"a {kind} checkpoint_storage needs it" for key in required},
        defaults=_RETENTION_DEFAULTS,
    )
    return check(value, path, where)


TOP_LEVEL_DEFAULTS: Mapping[str, Any] = {
    "checkpoint_policy": "best",
    "data": {},
    "debug": False,
    "hyperparameters": {},
    "max_restarts": 5,
    "min_checkpoint_period": {"batches": 0},
    "min_validation_period": {"batches": 0},
    "optimizations": _OPTIMIZATION_DEFAULTS,
    "perform_initial_validation": False,
    "profiling": {"enabled": False},
    "records_per_epoch": 0,
    "resources": _RESOURCE_DEFAULTS,
    "scheduling_unit": 100,
}

# Every checked top-level field but entrypoint and hyperparameters, which have their own modules.
FIELD_CHECKS: Mapping[str, Validator] = {
    "name": string,
    "description": string,
    "labels": string_list,
    "data": mapping,
    "searcher": searcher,
    "records_per_epoch": int_at_least(0),
    "min_validation_period": check_length(0, keep_int=False),
    "min_checkpoint_period": check_length(0, keep_int=False),
    "scheduling_unit": int_at_least(1),
    "perform_initial_validation": boolean,
    "checkpoint_policy": choice(CHECKPOINT_POLICIES),
    "checkpoint_storage": check_checkpoint_storage,
    "resources": resources,
    "max_restarts": int_at_least(0),
    "reproducibility": reproducibility,
    "optimizations": optimizations,
}
