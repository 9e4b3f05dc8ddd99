"""Small validators for the experiment config: each checks one value at a key path and returns
it (normalised where Determined normalises), or raises a ConfigError that names the key."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from typing import Any

from shim.config._where import ConfigError, KeyPath, Where, format_key, suggest

__all__ = [
    "Validator",
    "anything",
    "boolean",
    "choice",
    "int_at_least",
    "int_list",
    "integer",
    "mapping",
    "number",
    "section",
    "string",
    "string_list",
    "unknown_key",
]

Validator = Callable[[Any, KeyPath, Where], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _must(path: KeyPath, what: str, value: Any) -> str:
    return f"{format_key(path)!r} must be {what}, got {value!r}"


def anything(value: Any, path: KeyPath, where: Where) -> Any:
    return value


def boolean(value: Any, path: KeyPath, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(path, _must(path, "true or false", value))
    return value


def string(value: Any, path: KeyPath, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(path, _must(path, "a string", value))
    return value


def number(value: Any, path: KeyPath, where: Where) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(path, _must(path, "a number", value))
    return value


def integer(value: Any, path: KeyPath, where: Where) -> int:
    if not _is_int(value):
        raise where.error(path, _must(path, "an int", value))
    return int(value)


def mapping(value: Any, path: KeyPath, where: Where) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise where.error(path, _must(path, "a mapping", value))
    return dict(value)


def int_at_least(minimum: int) -> Validator:
    def check(value: Any, path: KeyPath, where: Where) -> int:
        if not _is_int(value) or value < minimum:
            raise where.error(path, _must(path, f"an int >= {minimum}", value))
        return int(value)

    return check


def choice(options: Collection[str]) -> Validator:
    def check(value: Any, path: KeyPath, where: Where) -> str:
        if value not in options:
            listed = ", ".join(repr(option) for option in options)
            raise where.error(
                path, _must(path, f"one of {listed}", value) + suggest(value, options)
            )
        return str(value)

    return check


def string_list(value: Any, path: KeyPath, where: Where) -> list[str]:
    if not isinstance(value, list):
        raise where.error(path, _must(path, "a list of strings", value))
    return [string(item, (*path, index), where) for index, item in enumerate(value)]


def int_list(value: Any, path: KeyPath, where: Where) -> list[int]:
    if not isinstance(value, list) or not all(_is_int(item) for item in value):
        raise where.error(path, _must(path, "a list of ints", value))
    return list(value)


def unknown_key(key: Any, path: KeyPath, where: Where, known: Collection[str]) -> ConfigError:
    hint = suggest(key, known)
    if not hint:
        hint = (
            f"; known keys here: {', '.join(sorted(known))}"
            if len(known) <= 12
            else "; remove it or check its spelling against Determined's experiment config"
        )
    return where.error((*path, str(key)), f"unknown key {format_key((*path, str(key)))!r}{hint}")


def section(
    fields: Mapping[str, Validator],
    *,
    required: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    passthrough: Collection[str] = (),
) -> Validator:
    """A mapping whose keys are all known: ``required`` maps each required key to a hint,
    ``defaults`` fills what Determined fills, ``passthrough`` keys are kept unchecked."""

    def check(value: Any, path: KeyPath, where: Where) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise where.error(path, _must(path, "a mapping", value))
        known = {*fields, *passthrough}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in known:
                raise unknown_key(key, path, where, known)
            if key in passthrough:
                out[key] = copy.deepcopy(item)
            elif item is not None:  # null means "the default", as in Determined's schema
                out[key] = fields[key](item, (*path, key), where)
        for key, hint in (required or {}).items():
            if key not in out:
                raise where.error(
                    (*path, key), f"missing required key {format_key((*path, key))!r}; {hint}"
                )
        for key, default in (defaults or {}).items():
            out.setdefault(key, copy.deepcopy(default))
        return out

    return check
