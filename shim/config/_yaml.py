"""YAML loading that remembers the line of every mapping key, for ``file:line`` messages."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

from shim.config._where import ConfigError, KeyPath, format_key

__all__ = ["load_yaml"]

_STR_TAG = "tag:yaml.org,2002:str"


def load_yaml(path: pathlib.Path) -> tuple[Any, dict[KeyPath, int]]:
    """The document in ``path`` (as ``yaml.safe_load`` gives it) and the line of each key."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the experiment config: {exc.strerror or exc}; "
            "check the path given to run-trial",
            path=source,
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: the experiment config is not UTF-8 text ({exc.reason}); save it as UTF-8",
            path=source,
        ) from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[KeyPath, int] = {}
        _record_lines(node, (), lines, source)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        where = source if line is None else f"{source}:{line}"
        problem = exc.problem or exc.context or "invalid syntax"
        raise ConfigError(
            f"{where}: not valid YAML: {problem}; fix the syntax there",
            path=source,
            line=line,
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}", path=source) from exc
    finally:
        loader.dispose()


def _record_lines(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str, depth: int = 0
) -> None:
    # Aliases can make a node its own descendant; no real config nests this deep.
    if depth > 64:
        return
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _record_lines(item, (*path, index), lines, source, depth + 1)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR_TAG):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                # yaml.safe_load keeps the last silently; Determined's loader refuses.
                raise ConfigError(
                    f"{source}:{line}: duplicate key {key!r} (first on line {seen[key]}); "
                    "keep one of them",
                    path=source,
                    line=line,
                    key=format_key((*path, key)),
                )
            seen[key] = line
            lines[(*path, key)] = line
            _record_lines(value_node, (*path, key), lines, source, depth + 1)
