"""Experiment-config migration: a legacy ``module:Class`` config to a Determined 0.38 script config.

Public API::

    migrate_config(text, *, path="<config>", script=None) -> ConfigMigration
    ConfigMigration(text, changes, trial)     # trial: "model_def:MNISTLikeTrial", or None
    ConfigChange(key, line, message)          # one line of the report; line in the original text
    ConfigMigrationError                      # a SourceError: "path:line:col: what; what to do"

A config whose ``entrypoint`` is ``module:Class`` (the form Determined's launcher routes to the
legacy harness, ``^[a-zA-Z0-9_.]+:[a-zA-Z0-9_]+$``) becomes a config that runs the migrated script:

- ``entrypoint`` -> ``python3 model_def.py --max-length UNIT=N ... --metric NAME``, the arguments
  ``core_loop.RunSettings.from_args`` reads, prefixed by ``python3 -m
  determined.launch.torch_distributed`` when ``resources.slots_per_trial`` > 1; a module in a
  package (``pkg.model_def:Trial``) runs as ``python3 -m pkg.model_def ...``;
- ``searcher.max_length``, ``min_validation_period``, ``min_checkpoint_period``,
  ``scheduling_unit``, ``perform_initial_validation`` and ``checkpoint_policy`` move into those
  arguments; ``records_per_epoch`` and ``optimizations`` are dropped (nothing reads them);
- ASHA searchers (``adaptive_asha``, ``async_halving``) get ``time_metric`` and ``max_time`` in
  place of ``max_length`` (0.38 requires both) and lose the deprecated ``stop_once``;
- ``hyperparameters.global_batch_size`` must be there, an int >= ``slots_per_trial`` as
  Determined's PyTorchTrial required: the script's batch sizes come from it, so a config
  without it is an error (the script would otherwise take the number of processes).

Every other byte of the text stays as written (see ``migrate.config_yaml``). Any other config is
returned unchanged with ``trial=None``, so a migrated config migrates to itself.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from migrate.config_args import (
    DROPPED,
    ConfigFields,
    RunArguments,
    dropped_note,
    entrypoint_scalar,
    get,
)
from migrate.config_yaml import Entry, Node, TextEdits, parse_spans
from migrate.errors import SourceError

__all__ = ["ConfigChange", "ConfigMigration", "ConfigMigrationError", "migrate_config"]

# Determined's exec/launch.py routes exactly this form to the legacy harness.
LEGACY_ENTRYPOINT = re.compile(r"^[a-zA-Z0-9_.]+:[a-zA-Z0-9_]+$")
ASHA_SEARCHERS = ("adaptive_asha", "async_halving")
_REMOVED_SEARCHERS = {
    "adaptive": "use 'name: adaptive_asha' (same mode, max_trials, divisor, max_rungs)",
    "adaptive_simple": "use 'name: adaptive_asha' (same mode, max_trials, divisor, max_rungs)",
    "sync_halving": "use 'name: adaptive_asha' (asynchronous successive halving)",
    "custom": "use 'name: adaptive_asha', or run the search outside Determined",
}


@dataclass(frozen=True)
class ConfigChange:
    """What the migration changed or removed at ``key`` (line of the original text), and why."""

    key: str
    line: int
    message: str


@dataclass(frozen=True)
class ConfigMigration:
    """The migrated text (the input itself when nothing changed) and what changed."""

    text: str
    changes: tuple[ConfigChange, ...]
    trial: str | None


class ConfigMigrationError(SourceError):
    """The config cannot be migrated as written (exit code 2): names the line and the fix."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.line, self.column))


def migrate_config(
    text: str, *, path: str = "<config>", script: str | None = None
) -> ConfigMigration:
    """Migrate the experiment config ``text`` (read from ``path``, for messages).

    ``script`` is the migrated script's file name in the entrypoint; by default the legacy
    module's (``model_def:Trial`` -> ``model_def.py``). A module in a package runs with ``-m``.
    """
    data, root = _load(text, path)
    entrypoint = data.get("entrypoint") if isinstance(data, Mapping) else None
    if root is None or not isinstance(entrypoint, str) or not LEGACY_ENTRYPOINT.match(entrypoint):
        return ConfigMigration(text, (), None)
    return _Migration(text, path, data, root).run(entrypoint, script)


def _program(module: str, script: str | None) -> list[str]:
    """What ``python3`` runs: a module of a package as ``-m pkg.model_def``, so that the
    package's own imports (``from pkg.lm import ...``, ``from .lm import ...``) resolve from the
    experiment's folder, the working directory Determined runs the entrypoint in, as they did
    for the legacy harness; a top-level module as its file."""
    if "." in module:
        return ["-m", module]
    return [script or f"{module}.py"]


def _load(text: str, path: str) -> tuple[Any, Node | None]:
    try:
        return YAML(typ="safe", pure=True).load(text), parse_spans(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid syntax"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ConfigMigrationError(
            path, f"not valid YAML: {problem}; fix the syntax there", line, column
        ) from exc
    except YAMLError as exc:
        raise ConfigMigrationError(path, f"not valid YAML: {exc}") from exc


class _Migration:
    """One legacy config: reads the values, plans the edits, checks the result."""

    def __init__(self, text: str, path: str, data: Mapping[str, Any], root: Node) -> None:
        self.text, self.path, self.data, self.root = text, path, data, root
        self.edits = TextEdits(text)
        self.changes: list[ConfigChange] = []
        self.expected: dict[str, Any] = copy.deepcopy(dict(data))
        self.changed: list[tuple[int, int]] = []  # text spans removed or rewritten

    def run(self, entrypoint: str, script: str | None) -> ConfigMigration:
        searcher = self._searcher()
        fields = ConfigFields(self.data, self._error)
        args = fields.run_arguments(searcher)
        module = entrypoint.partition(":")[0]
        command = args.command(_program(module, script), fields.slots() > 1)
        self._replace_entrypoint(entrypoint, command)
        self._move_top_level(args)
        self._move_searcher(searcher, args)
        self._check_anchors()
        fields.check_global_batch_size(fields.slots())
        text = self.edits.apply()
        self._check_result(text)
        changes = tuple(sorted(self.changes, key=lambda change: change.line))
        return ConfigMigration(text, changes, entrypoint)

    # -- reading ------------------------------------------------------------------------------

    def _searcher(self) -> Mapping[str, Any]:
        searcher = self.data.get("searcher")
        if searcher is None:
            searcher = {}
        if not isinstance(searcher, Mapping):
            raise self._error(("searcher",), f"'searcher' must be a mapping, got {searcher!r}")
        name = searcher.get("name")
        if name in _REMOVED_SEARCHERS:
            raise self._error(
                ("searcher", "name"),
                f"the {name!r} searcher was removed in Determined 0.38; {_REMOVED_SEARCHERS[name]}"
                ", then rerun",
            )
        if name == "asha":
            raise self._error(
                ("searcher", "name"),
                "'asha' is not a Determined searcher; use 'name: adaptive_asha' (or "
                "async_halving), then rerun",
            )
        return searcher

    # -- planning the edits -------------------------------------------------------------------

    def _replace_entrypoint(self, entrypoint: str, command: str) -> None:
        entry = self._entry(self.root, ("entrypoint",))
        value = entry.value
        self.edits.replace(value, entrypoint_scalar(command, value.style))
        self.changed.append((entry.key.start, value.end))
        self.expected["entrypoint"] = command
        self._note(
            ("entrypoint",),
            f"{entrypoint} -> {command!r}: Determined 0.38 runs training scripts; the old "
            "length and periods are its arguments",
        )

    def _move_top_level(self, args: RunArguments) -> None:
        moved = {
            "min_validation_period": args.describe("validation_period"),
            "min_checkpoint_period": args.describe("checkpoint_period"),
            "scheduling_unit": args.describe("scheduling_unit"),
            "perform_initial_validation": args.describe("perform_initial_validation"),
            "checkpoint_policy": args.describe("checkpoint_policy"),
        }
        for key in (*DROPPED, *moved):
            if key not in self.data:
                continue
            message = dropped_note(key, self.data[key]) if key in DROPPED else moved[key]
            self._remove(self.root, (key,), message)
            self.expected.pop(key)

    def _move_searcher(self, searcher: Mapping[str, Any], args: RunArguments) -> None:
        node = self._mapping(("searcher",))
        expected = self.expected["searcher"]
        moved = args.describe("max_length")
        if searcher.get("name") not in ASHA_SEARCHERS:
            self._remove(node, ("searcher", "max_length"), moved)
            del expected["max_length"]
            return
        added = self._asha_time(searcher, args)
        expected.update(added)
        expected.pop("max_length")
        written = tuple(f"{key}: {value}" for key, value in added.items())
        where = " and ".join(written) or "the time_metric and max_time given"
        self._remove(
            node,
            ("searcher", "max_length"),
            f"replaced by {where} (ASHA in Determined 0.38), and {moved}",
            insert=written,
        )
        if "stop_once" in searcher:
            expected.pop("stop_once")
            self._remove(node, ("searcher", "stop_once"), "removed: deprecated in Determined 0.38")

    def _asha_time(self, searcher: Mapping[str, Any], args: RunArguments) -> dict[str, Any]:
        unit, value = args.max_length
        if unit == "records":
            unit, value = "batches", max(value // self._global_batch_size(), 1)
        metric = searcher.get("time_metric")
        if metric is not None and searcher.get("max_time") is None and metric != unit:
            raise self._error(
                ("searcher", "time_metric"),
                f"searcher.time_metric is {metric!r} but max_length counts {unit}; set "
                "searcher.max_time in those units yourself, then rerun",
            )
        added: dict[str, Any] = {}
        if metric is None:
            added["time_metric"] = unit
        if searcher.get("max_time") is None:
            added["max_time"] = value
        return added

    def _global_batch_size(self) -> int:
        key = ("hyperparameters", "global_batch_size")
        value = get(self.data, key)
        if isinstance(value, Mapping) and value.get("type") == "const":
            value = value.get("val")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise self._error(
            key if value is not None else ("searcher", "max_length"),
            "searcher.max_length counts records, and ASHA's max_time counts batches: records "
            "// hyperparameters.global_batch_size, which is not a constant int >= 1 here "
            f"(got {value!r}); give max_length in batches or epochs, then rerun",
        )

    def _remove(
        self, parent: Node, key: tuple[str, ...], message: str, insert: tuple[str, ...] = ()
    ) -> None:
        entry = self._entry(parent, key)
        self.edits.remove(parent, entry, insert)
        self.changed.append((entry.key.start, entry.value.end))
        self._note(key, message)

    def _entry(self, parent: Node, key: tuple[str, ...]) -> Entry:
        entry = parent.entry(key[-1])
        if entry is None:  # the value reached the data through a '<<' merge key
            raise self._error(
                key,
                f"{'.'.join(key)} comes from a '<<' merge key, which this migration cannot edit; "
                "write the mapping out without '<<', then rerun",
            )
        return entry

    def _mapping(self, key: tuple[str, ...]) -> Node:
        node = self._entry(self.root, key).value
        if node.kind != "mapping":
            raise self._error(
                key,
                f"{'.'.join(key)} is written as an alias (*{node.value}), which this migration "
                "cannot edit in place; write the mapping out, then rerun",
            )
        return node

    def _note(self, key: tuple[str, ...], message: str) -> None:
        self.changes.append(ConfigChange(".".join(key), self._line(key), message))

    # -- checks -------------------------------------------------------------------------------

    def _check_anchors(self) -> None:
        """An alias left in place must not name an anchor inside a removed or rewritten entry."""
        spans = self.changed
        gone: set[str] = set()
        for node in _walk(self.root):
            if node.anchor and any(start <= node.start < end for start, end in spans):
                gone.add(node.anchor)
        for node in _walk(self.root):
            inside = any(start <= node.start < end for start, end in spans)
            if node.kind == "alias" and node.value in gone and not inside:
                raise ConfigMigrationError(
                    self.path,
                    f"the alias *{node.value} names an anchor inside a key this migration "
                    "removes or rewrites; write the value out here instead of the alias, "
                    "then rerun",
                    node.line + 1,
                    node.column + 1,
                )

    def _check_result(self, text: str) -> None:
        migrated, _ = _load(text, self.path)
        if migrated != self.expected:  # a bug of this module, never the user's input
            raise RuntimeError(f"config migration of {self.path} produced {migrated!r}")

    # -- where --------------------------------------------------------------------------------

    def _where(self, key: tuple[str, ...]) -> tuple[int, int]:
        """1-based line and column of the deepest part of ``key`` written in the text."""
        node: Node | None = self.root
        where = (1, 1)
        for part in key:
            entry = node.entry(part) if node is not None and node.kind == "mapping" else None
            if entry is None:
                break
            where, node = (entry.key.line + 1, entry.key.column + 1), entry.value
        return where

    def _line(self, key: tuple[str, ...]) -> int:
        return self._where(key)[0]

    def _error(self, key: tuple[str, ...], reason: str) -> ConfigMigrationError:
        return ConfigMigrationError(self.path, reason, *self._where(key))


def _walk(node: Node) -> list[Node]:
    out = [node]
    for entry in node.entries:
        out.extend(_walk(entry.key))
        out.extend(_walk(entry.value))
    for item in node.items:
        out.extend(_walk(item))
    return out
