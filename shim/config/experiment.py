"""The experiment config of a legacy trial (``const.yaml``): load, validate, expose.

Validation follows Determined 0.38's schema for the fields run-trial reads; cluster-only fields
are accepted untouched. ``ExperimentConfig.raw`` is the validated dict with Determined's defaults
filled in, which is what Determined's own code reads as ``exp_conf``.
"""

from __future__ import annotations

import copy
import pathlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shim.config._checks import section
from shim.config._schema import CLUSTER_ONLY, FIELD_CHECKS, TOP_LEVEL_DEFAULTS
from shim.config._where import ConfigError, KeyPath, Where
from shim.config._yaml import load_yaml
from shim.config.hparams import check_global_batch_size, check_space, resolve_with
from shim.config.length import Length

__all__ = [
    "ExperimentConfig",
    "SearcherConfig",
    "load_experiment_config",
    "parse_experiment_config",
]

_EXAMPLE = "e.g. model_def:MNISTTrial"


@dataclass(frozen=True)
class SearcherConfig:
    name: str
    metric: str
    smaller_is_better: bool = True
    max_length: Length | None = None
    max_trials: int | None = None
    source_trial_id: int | None = None
    source_checkpoint_uuid: str | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment config. Periods are None when the config leaves them out;
    ``raw`` holds every field (Determined's defaults filled in) for code that reads ``exp_conf``.
    """

    entrypoint: str
    hyperparameters: dict[str, Any]
    searcher: SearcherConfig
    min_validation_period: Length | None
    min_checkpoint_period: Length | None
    scheduling_unit: int
    perform_initial_validation: bool
    checkpoint_policy: str
    checkpoint_storage: dict[str, Any] | None
    data: dict[str, Any]
    slots_per_trial: int
    max_restarts: int
    experiment_seed: int | None
    records_per_epoch: int | None
    raw: dict[str, Any]
    # A command entrypoint: what follows ``python3`` (the launcher prefix left out), either the
    # script (relative to the context directory) and its arguments, or ``-m``, the module and its
    # arguments; None for a module:Class trial.
    script: tuple[str, ...] | None = None
    source: str = field(default="<config>", compare=False)
    # Things the user should hear about once, e.g. fields accepted but ignored; each one starts
    # with the file:line it concerns.
    notices: tuple[str, ...] = field(default=(), compare=False)
    _where: Where = field(default=Where("<config>"), compare=False, repr=False)

    @property
    def global_batch_size(self) -> int:
        """The constant ``hyperparameters.global_batch_size``; for a search space, take it from
        ``resolve_hparams``."""
        entry = self.hyperparameters["global_batch_size"]
        if isinstance(entry, Mapping) and entry.get("type") == "const":
            return int(entry["val"])
        if isinstance(entry, Mapping):
            raise self._where.error(
                ("hyperparameters", "global_batch_size"),
                "'hyperparameters.global_batch_size' is a search space; its value comes from "
                "--hparam global_batch_size=VALUE (see resolve_hparams)",
            )
        return int(entry)

    @property
    def entrypoint_module(self) -> str:
        """The module of ``module:Class``, relative to the context directory."""
        return self.entrypoint.partition(":")[0]

    @property
    def script_module(self) -> str | None:
        """The module of a ``python3 -m pkg.module ARGS`` entrypoint, else None."""
        return self.script[1] if self.script and self.script[0] == "-m" else None

    @property
    def entrypoint_qualname(self) -> str:
        """The (possibly dotted) name of the trial class inside its module."""
        return self.entrypoint.partition(":")[2]

    def entrypoint_error(self, message: str) -> ConfigError:
        """An error about the entrypoint, prefixed with the config's file:line."""
        return self._where.error(("entrypoint",), message)

    def resolve_hparams(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        """This config's hyperparameters for one trial; see ``shim.config.resolve_hparams``."""
        return resolve_with(self.hyperparameters, overrides, self._where)


def load_experiment_config(path: pathlib.Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config; errors name the file and line."""
    data, lines = load_yaml(pathlib.Path(path))
    return _build(data, Where(str(path), lines))


def parse_experiment_config(raw: Mapping[str, Any], source: str = "<config>") -> ExperimentConfig:
    """Validate an experiment config given as a dict; errors name ``source`` (no lines)."""
    return _build(raw, Where(source))


def _check_entrypoint(value: Any, path: KeyPath, where: Where) -> Any:
    if isinstance(value, list) or (isinstance(value, str) and _looks_like_command(value)):
        _script_command(value, path, where)
        return value
    if not isinstance(value, str):
        raise where.error(path, f"'entrypoint' must be a string module:Class, got {value!r}")
    module, colon, qualname = value.partition(":")
    if not colon:
        module, _, qualname = value.rpartition(".")
        hint = f"; did you mean '{module}:{qualname}'?" if _dotted(module) else ""
        raise where.error(
            path, f"'entrypoint' must be module:Class ({_EXAMPLE}), got {value!r}{hint}"
        )
    if not (_dotted(module) and _dotted(qualname)):
        raise where.error(
            path,
            f"'entrypoint' must be module:Class with Python names on both sides ({_EXAMPLE}, "
            f"or pkg.module:Outer.Trial), got {value!r}",
        )
    return value


def _script_command(value: Any, path: KeyPath, where: Where) -> tuple[str, ...]:
    """``python3 script.py ARGS`` or ``python3 -m pkg.module ARGS`` (a string or a list of words,
    optionally after Determined's ``python3 -m determined.launch.torch_distributed [OPTIONS --]``)
    -> ``(script.py, *ARGS)`` or ``("-m", "pkg.module", *ARGS)``."""
    try:
        words = shlex.split(value) if isinstance(value, str) else list(value)
    except ValueError as exc:
        raise where.error(path, f"'entrypoint' {value!r} is not a valid command: {exc}") from exc
    if not all(isinstance(word, str) for word in words):
        raise where.error(path, f"'entrypoint' as a list must hold strings, got {value!r}")
    shown = shlex.join(words)
    if words[:1] and _PYTHON.match(words[0]) and words[1:3] == list(_LAUNCHER):
        # One process runs locally; several ranks come from torchrun, each running the script.
        words = words[3:]
        words = words[words.index("--") + 1 :] if "--" in words else words
    if len(words) >= 2 and _PYTHON.match(words[0]) and words[1].startswith("-m"):
        return _module_command(words, shown, path, where)
    if len(words) < 2 or not _PYTHON.match(words[0]) or not words[1].endswith(".py"):
        raise where.error(
            path,
            f"'entrypoint' is the command {shown!r}, but run-trial runs a Python script, "
            "'python3 script.py [ARGS...]' or 'python3 -m pkg.module [ARGS...]' (optionally "
            "after 'python3 -m determined.launch.torch_distributed'), or a trial class, "
            f"module:Class ({_EXAMPLE})",
        )
    return tuple(words[1:])


def _module_command(words: list[str], shown: str, path: KeyPath, where: Where) -> tuple[str, ...]:
    """``python3 -m pkg.module ARGS`` (or ``-mpkg.module``, as Python reads it too)."""
    name, args = (
        (words[2], words[3:]) if words[1] == "-m" and len(words) > 2 else (words[1][2:], words[2:])
    )
    if not name:
        raise where.error(
            path,
            f"'entrypoint' is the command {shown!r}, which names no module after -m; write "
            "'python3 -m pkg.module [ARGS...]', the module as Python imports it from the "
            "context directory",
        )
    if name.split(".")[:2] == ["determined", "launch"]:
        raise where.error(
            path,
            f"'entrypoint' is the command {shown!r}, which starts Determined's launcher "
            f"{name!r}; run-trial runs the launched script itself, alone or after 'python3 -m "
            "determined.launch.torch_distributed' (several ranks come from torchrun): use that "
            "launcher, or none",
        )
    if not _dotted(name):
        stem = name.removesuffix(".py").replace("/", ".")
        hint = f"; did you mean 'python3 -m {stem}'?" if _dotted(stem) else ""
        raise where.error(
            path,
            f"'entrypoint' is the command {shown!r}, but {name!r} after -m is not a module name "
            f"(dotted Python names, no '.py', e.g. pkg.model_def){hint}",
        )
    return ("-m", name, *args)


def _looks_like_command(value: str) -> bool:
    return any(char.isspace() for char in value.strip()) or value.endswith((".py", ".sh"))


_PYTHON = re.compile(r"^(.*/)?python(\d+(\.\d+)?)?$")
_LAUNCHER = ("-m", "determined.launch.torch_distributed")


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


_REQUIRED = {
    "entrypoint": f"add the trial class as module:Class, {_EXAMPLE}",
    "searcher": "add e.g. searcher: {name: single, metric: validation_loss, "
    "max_length: {epochs: 1}}",
}

_TOP_LEVEL = section(
    {**FIELD_CHECKS, "entrypoint": _check_entrypoint, "hyperparameters": check_space},
    required=_REQUIRED,
    defaults=TOP_LEVEL_DEFAULTS,
    passthrough=CLUSTER_ONLY,
)


def _build(data: Any, where: Where) -> ExperimentConfig:
    if not isinstance(data, Mapping):
        raise where.error(
            (), f"an experiment config must be a mapping of fields, got {type(data).__name__}"
        )
    # Validators copy only what they normalise; the caller's dict must stay untouched.
    raw = _TOP_LEVEL(copy.deepcopy(data), (), where)
    entrypoint = raw["entrypoint"]
    script = None
    if isinstance(entrypoint, list) or _looks_like_command(entrypoint):
        script = _script_command(entrypoint, ("entrypoint",), where)
        entrypoint = entrypoint if isinstance(entrypoint, str) else shlex.join(entrypoint)
    else:  # a Core API script owns its batch size; a trial class reads global_batch_size
        check_global_batch_size(raw["hyperparameters"], where)
    seed = (raw.get("reproducibility") or {}).get("experiment_seed")
    return ExperimentConfig(
        entrypoint=entrypoint,
        hyperparameters=raw["hyperparameters"],
        searcher=_searcher(raw["searcher"]),
        min_validation_period=_given_length(data, raw, "min_validation_period"),
        min_checkpoint_period=_given_length(data, raw, "min_checkpoint_period"),
        scheduling_unit=raw["scheduling_unit"],
        perform_initial_validation=raw["perform_initial_validation"],
        checkpoint_policy=raw["checkpoint_policy"],
        checkpoint_storage=raw.get("checkpoint_storage"),
        data=raw["data"],
        slots_per_trial=raw["resources"]["slots_per_trial"],
        max_restarts=raw["max_restarts"],
        experiment_seed=seed,
        records_per_epoch=data.get("records_per_epoch"),
        raw=raw,
        script=script,
        source=where.source,
        notices=_notices(data, where),
        _where=where,
    )


def _searcher(raw: Mapping[str, Any]) -> SearcherConfig:
    max_length = raw.get("max_length")
    return SearcherConfig(
        name=raw["name"],
        metric=raw["metric"],
        smaller_is_better=raw["smaller_is_better"],
        max_length=None if max_length is None else Length.from_config(max_length),
        max_trials=raw.get("max_trials"),
        source_trial_id=raw.get("source_trial_id"),
        source_checkpoint_uuid=raw.get("source_checkpoint_uuid"),
    )


def _given_length(data: Mapping[str, Any], raw: Mapping[str, Any], key: str) -> Length | None:
    return None if data.get(key) is None else Length.from_config(raw[key])


def _notices(data: Mapping[str, Any], where: Where) -> tuple[str, ...]:
    notices = []
    if data.get("records_per_epoch") is not None:
        notices.append(
            f"{where.prefix(('records_per_epoch',))}: records_per_epoch is ignored, as "
            "Determined >= 0.21 ignores it for PyTorch trials: an epoch is one pass over the "
            "training data loader"
        )
    return tuple(notices)
