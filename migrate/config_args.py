"""The migrated script's entrypoint arguments, from the legacy config's length and periods.

``ConfigFields`` reads and checks those fields; ``RunArguments`` writes the arguments, which are
what ``core_loop.RunSettings.from_args`` parses: ``--max-length UNIT=N`` and
``--metric NAME`` always, the others only when they differ from its defaults.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = [
    "DROPPED",
    "LAUNCHER",
    "ConfigFields",
    "RunArguments",
    "dropped_note",
    "entrypoint_scalar",
    "get",
    "parse_length",
]

UNITS = ("batches", "epochs", "records")
LAUNCHER = ("python3", "-m", "determined.launch.torch_distributed")
_IN_CODE = "deprecated in Determined 0.38: the training code sets it"
_HARNESS_ONLY = "only the legacy Trial harness read it"
DROPPED = {
    "records_per_epoch": "removed: deprecated, and ignored for PyTorch trials since Determined "
    "0.21; an epoch is one pass over the training loader",
    "optimizations": "removed: deprecated in Determined 0.38 and not read by the migrated loop",
}

Key = tuple[str, ...]


@dataclass(frozen=True)
class RunArguments:
    """The values of the removed config fields that the migrated loop still needs."""

    max_length: tuple[str, int]
    validation_period: tuple[str, int] | None
    checkpoint_period: tuple[str, int] | None
    scheduling_unit: int
    perform_initial_validation: bool
    checkpoint_policy: str
    metric: str
    smaller_is_better: bool

    def argv(self) -> list[str]:
        args = ["--max-length", _unit(self.max_length)]
        for flag, period in (
            ("--validation-period", self.validation_period),
            ("--checkpoint-period", self.checkpoint_period),
        ):
            if period is not None and period[1] >= 1:  # below 1 is never: the default
                args += [flag, _unit(period)]
        if self.scheduling_unit != 100:
            args += ["--scheduling-unit", str(self.scheduling_unit)]
        if self.perform_initial_validation:
            args.append("--perform-initial-validation")
        if self.checkpoint_policy != "best":
            args += ["--checkpoint-policy", self.checkpoint_policy]
        args += ["--metric", self.metric]
        if not self.smaller_is_better:
            args.append("--larger-is-better")
        return args

    def command(self, program: Sequence[str], distributed: bool) -> str:
        """The shell command (Determined runs a string entrypoint under ``sh -c``) that runs
        ``python3 *program`` (``["model_def.py"]`` or ``["-m", "pkg.model_def"]``)."""
        launcher = list(LAUNCHER) if distributed else []
        return shlex.join([*launcher, "python3", *program, *self.argv()])

    def describe(self, name: str) -> str:
        """Where the config field behind ``name`` went, for the change report."""
        if name == "max_length":
            return f"moved to the entrypoint as --max-length {_unit(self.max_length)} ({_IN_CODE})"
        if name in ("validation_period", "checkpoint_period"):
            period: tuple[str, int] | None = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if period is None or period[1] < 1:
                return f"removed: 0 means never, as without {flag} ({_IN_CODE})"
            return f"moved to the entrypoint as {flag} {_unit(period)} ({_IN_CODE})"
        if name == "scheduling_unit":
            if self.scheduling_unit == 100:
                return f"removed: 100 is the default of --scheduling-unit ({_IN_CODE})"
            return (
                f"moved to the entrypoint as --scheduling-unit {self.scheduling_unit} ({_IN_CODE})"
            )
        if name == "perform_initial_validation":
            if self.perform_initial_validation:
                return f"moved to the entrypoint as --perform-initial-validation ({_HARNESS_ONLY})"
            return f"removed: false is the default ({_HARNESS_ONLY})"
        if name == "checkpoint_policy":
            if self.checkpoint_policy == "best":
                return f"removed: best is the default of --checkpoint-policy ({_HARNESS_ONLY})"
            return (
                f"moved to the entrypoint as --checkpoint-policy {self.checkpoint_policy} "
                f"({_HARNESS_ONLY})"
            )
        raise KeyError(name)


class ConfigFields:
    """Reads the legacy config's fields that become arguments; ``error(key, why)`` makes the
    exception for a value the script cannot take."""

    def __init__(self, data: Mapping[str, Any], error: Callable[[Key, str], Exception]) -> None:
        self.data, self.error = data, error

    def run_arguments(self, searcher: Mapping[str, Any]) -> RunArguments:
        max_length = self._length(("searcher", "max_length"), 1)
        if max_length is None:
            raise self.error(
                ("searcher",),
                "searcher.max_length is missing, and the migrated script needs a training length "
                "(its --max-length argument); add e.g. 'max_length: {epochs: 1}' under searcher, "
                "then rerun",
            )
        metric = searcher.get("metric")
        if not isinstance(metric, str) or not metric:
            raise self.error(
                ("searcher",),
                "searcher.metric is missing; name the validation metric the searcher tracks, "
                "e.g. 'metric: val_loss', then rerun",
            )
        smaller = self._typed(("searcher", "smaller_is_better"), bool, True, "true or false")
        return RunArguments(
            max_length=max_length,
            validation_period=self._length(("min_validation_period",), 0),
            checkpoint_period=self._length(("min_checkpoint_period",), 0),
            scheduling_unit=self._scheduling_unit(),
            perform_initial_validation=self._typed(
                ("perform_initial_validation",), bool, False, "true or false"
            ),
            checkpoint_policy=self._checkpoint_policy(),
            metric=metric,
            smaller_is_better=smaller,
        )

    def _length(self, key: tuple[str, ...], minimum: int) -> tuple[str, int] | None:
        value = get(self.data, key)
        if value is None:
            return None
        length = parse_length(value, minimum)
        if length is None:
            never = " (0 means never)" if minimum < 1 else ""
            raise self.error(
                key,
                f"{'.'.join(key)} must be {{batches|epochs|records: N}} or a plain int of "
                f"batches, N >= {minimum}{never}; got {value!r}",
            )
        return length

    def _scheduling_unit(self) -> int:
        value = self._typed(("scheduling_unit",), int, 100, "an int >= 1")
        if value < 1:
            raise self.error(("scheduling_unit",), f"scheduling_unit must be >= 1, got {value}")
        return value

    def _checkpoint_policy(self) -> str:
        value = self._typed(("checkpoint_policy",), str, "best", "best, all or none")
        if value not in ("best", "all", "none"):
            raise self.error(
                ("checkpoint_policy",),
                f"checkpoint_policy must be best, all or none, got {value!r}",
            )
        return value

    def _typed(self, key: tuple[str, ...], kind: type, default: Any, what: str) -> Any:
        value = get(self.data, key)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"{'.'.join(key)} must be {what}, got {value!r}")
        return value

    def check_global_batch_size(self, slots: int) -> None:
        """``hyperparameters.global_batch_size``: Determined's PyTorchTrial required it (an int
        >= slots_per_trial), and the migrated script reads it; without it the script would
        take the number of processes as the global batch size."""
        key = ("hyperparameters", "global_batch_size")
        space = get(self.data, key[:1])
        if not isinstance(space, Mapping) or key[1] not in space:
            raise self.error(
                key,
                "hyperparameters.global_batch_size is missing; Determined's PyTorchTrial "
                "required it, and without it the migrated script would take the number of "
                "processes as the global batch size: add e.g. 'global_batch_size: 32' under "
                "hyperparameters, then rerun",
            )
        value = space[key[1]]
        kind = value.get("type") if isinstance(value, Mapping) else None
        candidates = {
            "const": [value.get("val")] if isinstance(value, Mapping) else [],
            "int": [value.get("minval")] if isinstance(value, Mapping) else [],
            "categorical": list(value.get("vals") or []) if isinstance(value, Mapping) else [],
            None: [value],
        }.get(kind)
        least = max(slots, 1)
        if not candidates or any(
            isinstance(v, bool) or not isinstance(v, int) or v < least for v in candidates
        ):
            raise self.error(
                key,
                f"hyperparameters.global_batch_size must be an int >= {least} (the "
                f"resources.slots_per_trial), or an int or categorical search space of such "
                f"ints, got {value!r}; change it, then rerun",
            )

    def slots(self) -> int:
        slots = self._typed(("resources", "slots_per_trial"), int, 1, "an int")
        return int(slots)


def parse_length(value: Any, minimum: int) -> tuple[str, int] | None:
    """``{unit: n}`` or a plain int (batches, as Determined reads it); None if neither or n is
    below ``minimum``."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((unit, count),) = value.items()
    else:
        unit, count = "batches", value
    if unit not in UNITS or not isinstance(count, int) or isinstance(count, bool):
        return None
    return (unit, count) if count >= minimum else None


def entrypoint_scalar(command: str, style: str | None) -> str:
    """``command`` as a YAML scalar in the quoting the old entrypoint used, where it can be."""
    if style == "'" and "\n" not in command:
        return "'" + command.replace("'", "''") + "'"
    if style is None and _plain(command):
        return command
    return json.dumps(command, ensure_ascii=False)


def _plain(command: str) -> bool:
    try:
        return YAML(typ="safe", pure=True).load(f"k: {command}\n") == {"k": command}
    except YAMLError:
        return False


def _unit(length: tuple[str, int]) -> str:
    return f"{length[0]}={length[1]}"


def dropped_note(key: str, value: Any) -> str:
    """Why ``key`` (one of ``DROPPED``) is gone, naming settings the loop will not honour."""
    return DROPPED[key] + (_optimizations_note(value) if key == "optimizations" else "")


def get(data: Mapping[str, Any], key: tuple[str, ...]) -> Any:
    value: Any = data
    for part in key:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _optimizations_note(value: Any) -> str:
    defaults = {"aggregation_frequency": 1, "mixed_precision": "O0"}
    if not isinstance(value, Mapping):
        return ""
    changed = [f"{k}: {value[k]}" for k in defaults if k in value and value[k] != defaults[k]]
    if not changed:
        return ""
    return (
        f"; it set {', '.join(changed)}, which the migrated loop does not do: configure it in "
        "the training code (e.g. accumulate gradients or autocast in the LightningModule)"
    )
