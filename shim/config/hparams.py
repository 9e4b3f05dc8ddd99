"""Hyperparameters: check the space in the config, and pick one value for each.

run-trial runs one trial, so every search-space hyperparameter (``int``, ``double``, ``log``,
``categorical``) needs a value from ``--hparam name=value``; constants may be overridden too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from shim.config._checks import anything, int_at_least, integer, number, section
from shim.config._where import ConfigError, KeyPath, Where, format_key, suggest

__all__ = [
    "HPARAM_TYPES",
    "SEARCH_TYPES",
    "check_global_batch_size",
    "check_space",
    "resolve_hparams",
    "resolve_with",
]

SEARCH_TYPES = ("int", "double", "log", "categorical")
HPARAM_TYPES = ("const", *SEARCH_TYPES)
_ROOT: KeyPath = ("hyperparameters",)
_GBS = "global_batch_size"

_BOUNDS = {"minval": "the lower bound", "maxval": "the upper bound"}
_SPECS = {
    "const": section({"type": anything}, passthrough=("val",), required={"val": "give its value"}),
    "int": section(
        {"type": anything, "minval": integer, "maxval": integer, "count": int_at_least(1)},
        required=_BOUNDS,
    ),
    "double": section(
        {"type": anything, "minval": number, "maxval": number, "count": int_at_least(1)},
        required=_BOUNDS,
    ),
    "log": section(
        {"type": anything, "base": number, "minval": number, "maxval": number,
         "count": int_at_least(1)},
        required={"base": "give the base of the exponents, e.g. base: 10", **_BOUNDS},
    ),
    "categorical": section(
        {"type": anything}, passthrough=("vals",), required={"vals": "give a list of values"}
    ),
}  # fmt: skip


def check_space(value: Any, path: KeyPath, where: Where) -> dict[str, Any]:
    """Validate a (possibly nested) hyperparameter space; returns a checked copy."""
    if not isinstance(value, Mapping):
        raise where.error(path, f"{format_key(path)!r} must be a mapping, got {value!r}")
    out: dict[str, Any] = {}
    for name, entry in value.items():
        if not isinstance(name, str):
            raise where.error(path, f"hyperparameter names must be strings, got {name!r}")
        out[name] = _check_entry(entry, (*path, name), where)
    return out


def check_global_batch_size(space: Mapping[str, Any], where: Where) -> None:
    """``global_batch_size`` must exist and can only ever be an int >= 1."""
    path = (*_ROOT, _GBS)
    if _GBS not in space:
        raise where.error(
            path,
            f"missing required key {format_key(path)!r}; add e.g. 'global_batch_size: 32' "
            "under hyperparameters",
        )
    entry = space[_GBS]
    kind = entry.get("type") if isinstance(entry, Mapping) else None
    if kind == "int":
        path, candidates = (*path, "minval"), [entry["minval"]]
    elif kind == "categorical":
        path, candidates = (*path, "vals"), entry["vals"]
    elif kind == "const":
        path, candidates = (*path, "val"), [entry["val"]]
    else:
        candidates = [entry]
    for value in candidates:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise where.error(path, f"{format_key(path)!r} must be an int >= 1, got {value!r}")


def resolve_hparams(
    space: Mapping[str, Any], overrides: Mapping[str, str], *, source: str = "<config>"
) -> dict[str, Any]:
    """The hyperparameters of one trial: constants as given, search spaces from ``overrides``
    (dotted names such as ``optimizer.lr``; values parsed as YAML and checked against the
    space). Raises ConfigError for a search space without a value, an unknown name, or a value
    the space does not allow."""
    where = Where(source)
    return resolve_with(check_space(space, _ROOT, where), overrides, where)


def resolve_with(
    space: Mapping[str, Any], overrides: Mapping[str, str], where: Where
) -> dict[str, Any]:
    """``resolve_hparams`` on a space already checked by ``check_space``."""
    leaves = dict(_leaves(space, ()))
    values = {}
    for name, text in overrides.items():
        if name not in leaves:
            raise _unknown_override(name, text, space, leaves, where)
        values[name] = _override_value(name, text, leaves[name], where)
    missing = [name for name, (_, entry) in leaves.items() if _is_search(entry)]
    missing = [name for name in missing if name not in values]
    if missing:
        raise _missing_values(missing, leaves, where)
    gbs = values.get(_GBS, 1)
    if isinstance(gbs, bool) or not isinstance(gbs, int) or gbs < 1:
        raise ConfigError(
            f"--hparam {_GBS}={overrides[_GBS]}: {_GBS} must be an int >= 1, got {gbs!r}",
            path=where.source,
            key=format_key((*_ROOT, _GBS)),
        )
    return _build(space, "", values)


def _check_entry(entry: Any, path: KeyPath, where: Where) -> Any:
    if isinstance(entry, Mapping) and "type" in entry:
        kind = entry["type"]
        if not isinstance(kind, str) or kind not in _SPECS:
            listed = ", ".join(HPARAM_TYPES)
            raise where.error(
                (*path, "type"),
                f"{format_key((*path, 'type'))!r} must be one of {listed}, got {kind!r}"
                f"{suggest(kind, HPARAM_TYPES)} (a group cannot hold a hyperparameter "
                "named 'type')",
            )
        checked: dict[str, Any] = _SPECS[kind](entry, path, where)
        _check_bounds(checked, path, where)
        return checked
    if isinstance(entry, Mapping):
        return check_space(entry, path, where)
    return copy.deepcopy(entry)


def _check_bounds(entry: Mapping[str, Any], path: KeyPath, where: Where) -> None:
    if entry["type"] == "categorical":
        vals = entry["vals"]
        if not isinstance(vals, list) or not vals:
            raise where.error(
                (*path, "vals"),
                f"{format_key((*path, 'vals'))!r} must be a non-empty list, got {vals!r}",
            )
    if entry["type"] in ("int", "double", "log") and entry["minval"] > entry["maxval"]:
        raise where.error(
            (*path, "maxval"),
            f"{format_key(path)!r} has minval {entry['minval']!r} above maxval "
            f"{entry['maxval']!r}; swap them",
        )
    if entry["type"] == "log" and entry["base"] <= 0:
        raise where.error(
            (*path, "base"),
            f"{format_key((*path, 'base'))!r} must be a number > 0, got {entry['base']!r}",
        )


def _is_search(entry: Any) -> bool:
    return isinstance(entry, Mapping) and entry.get("type") in SEARCH_TYPES


def _leaves(space: Mapping[str, Any], prefix: KeyPath) -> Iterator[tuple[str, tuple[KeyPath, Any]]]:
    """(dotted name, (key path, entry)) for every hyperparameter that is not a group."""
    for name, entry in space.items():
        path = (*prefix, name)
        if isinstance(entry, Mapping) and "type" not in entry:
            yield from _leaves(entry, path)
        else:
            yield ".".join(str(part) for part in path), ((*_ROOT, *path), entry)


def _override_value(name: str, text: str, leaf: tuple[KeyPath, Any], where: Where) -> Any:
    path, entry = leaf
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(
            f"--hparam {name}={text}: the value is not valid YAML ({problem}); "
            "quote it or fix its syntax",
            path=where.source,
            key=format_key(path),
        ) from exc
    if not _is_search(entry):
        return value
    allowed = _allowed(entry, value)
    if allowed is None and entry["type"] == "categorical":
        # YAML reads yes/no/on/off as booleans; a string category spelled so still matches.
        allowed = _allowed(entry, text)
    if allowed is None:
        raise ConfigError(
            f"--hparam {name}={text}: hyperparameter {name!r} must be {_describe(entry)} "
            f"(its search space at {where.prefix(path)}), got {value!r}",
            path=where.source,
            line=where.line(path),
            key=format_key(path),
        )
    return allowed[0]


def _allowed(entry: Mapping[str, Any], value: Any) -> tuple[Any] | None:
    """``(value as the trial sees it,)`` when the space allows ``value``, else None."""
    kind = entry["type"]
    if kind == "categorical":
        for val in entry["vals"]:
            if val == value and isinstance(val, bool) == isinstance(value, bool):
                return (copy.deepcopy(val),)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind == "int":
        ok = isinstance(value, int) and entry["minval"] <= value <= entry["maxval"]
        return (value,) if ok else None
    low, high = _range(entry)
    # Bounds of a log space are computed, so let a value typed from its printed form through.
    ok = (low <= value <= high) or any(math.isclose(value, b) for b in (low, high))
    return (float(value),) if ok else None


def _range(entry: Mapping[str, Any]) -> tuple[float, float]:
    if entry["type"] == "log":
        return entry["base"] ** entry["minval"], entry["base"] ** entry["maxval"]
    return entry["minval"], entry["maxval"]


def _describe(entry: Mapping[str, Any]) -> str:
    kind = entry["type"]
    if kind == "categorical":
        return "one of " + ", ".join(repr(val) for val in entry["vals"])
    if kind == "int":
        return f"an int from {entry['minval']} to {entry['maxval']}"
    low, high = _range(entry)
    if kind == "log":
        base = entry["base"]
        return (
            f"a number from {low:g} to {high:g} "
            f"({base}**{entry['minval']} to {base}**{entry['maxval']})"
        )
    return f"a number from {low} to {high}"


def _unknown_override(
    name: str, text: str, space: Mapping[str, Any], leaves: Mapping[str, Any], where: Where
) -> ConfigError:
    node: Any = space
    for part in name.split("."):
        node = node.get(part) if isinstance(node, Mapping) and "type" not in node else None
    if isinstance(node, Mapping) and "type" not in node and node:
        message = (
            f"{name!r} is a group of hyperparameters; set its members, "
            f"e.g. --hparam {name}.{next(iter(node))}=VALUE"
        )
    else:
        known = suggest(name, leaves) or f"; known: {', '.join(sorted(leaves)) or 'none'}"
        message = f"no hyperparameter {name!r} in {where.source}{known}"
    return ConfigError(
        f"--hparam {name}={text}: {message}",
        path=where.source,
        key=format_key((*_ROOT, name)),
    )


def _missing_values(
    missing: list[str], leaves: Mapping[str, tuple[KeyPath, Any]], where: Where
) -> ConfigError:
    listed = [f"{name!r} ({_describe(leaves[name][1])})" for name in missing]
    flags = " ".join(f"--hparam {name}=VALUE" for name in missing)
    if len(missing) == 1:
        what = f"hyperparameter {listed[0]} is a search space"
        fix = f"give it a value with {flags}, or make it a constant in the config"
    else:
        what = f"hyperparameters {', '.join(listed[:-1])} and {listed[-1]} are search spaces"
        fix = f"give each a value with {flags}, or make them constants in the config"
    return where.error(leaves[missing[0]][0], f"{what}, and run-trial runs a single trial; {fix}")


def _build(space: Mapping[str, Any], prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entry in space.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if dotted in values:
            out[name] = values[dotted]
        elif isinstance(entry, Mapping) and "type" in entry:
            out[name] = copy.deepcopy(entry["val"])
        elif isinstance(entry, Mapping):
            out[name] = _build(entry, dotted, values)
        else:
            out[name] = copy.deepcopy(entry)
    return out
