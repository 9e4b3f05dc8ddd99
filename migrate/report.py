"""Output formats for findings (concise, json, github, sarif) and the rule list."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, TextIO

from shim.hooks import Hook, rules_by_code

from .errors import SourceError
from .findings import Finding

__all__ = ["FORMATS", "format_findings", "format_rules", "use_colour"]

FORMATS = ("concise", "json", "github", "sarif")
_TOOL = "lint-trial"
_LEVEL = {"rejected": "error", "ignored": "warning", "legacy": "warning"}
_COLOUR = {"rejected": "\033[31m", "ignored": "\033[33m", "legacy": "\033[35m"}
_BOLD, _RESET = "\033[1m", "\033[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and stream.isatty()


def format_findings(
    findings: Sequence[Finding],
    errors: Sequence[SourceError],
    fmt: str,
    *,
    colour: bool = False,
    version: str = "",
) -> str:
    """The text for stdout: findings in ``fmt`` (errors go to stderr, except in SARIF)."""
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
    if fmt == "sarif":
        return json.dumps(_sarif(findings, errors, version), indent=2) + "\n"
    return "".join(_concise(f, colour) + "\n" for f in findings)


def format_rules(fmt: str) -> str:
    """``--list-rules``: every code the linter reports, with status, hooks and fix."""
    rules = rules_by_code()
    if fmt in ("json", "sarif"):
        listed = [_rule_dict(code, hooks) for code, hooks in rules.items()]
        return json.dumps(listed, indent=2) + "\n"
    lines = []
    for code, hooks in rules.items():
        first = hooks[0]
        names = ", ".join(h.name for h in hooks)
        lines.append(f"{code}  {first.status.value:<8}  {first.title}: {names}")
        lines.append(f"{'':15}why: {first.reason}")
        lines.append(f"{'':15}fix: {first.fix}")
    return "\n".join(lines) + "\n"


def _concise(f: Finding, colour: bool) -> str:
    if not colour:
        return f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}"
    code = f"{_COLOUR.get(f.status, '')}{_BOLD}{f.code}{_RESET}"
    return f"{_BOLD}{f.path}{_RESET}:{f.line}:{f.column}: {code} {f.message}"


def _github(f: Finding) -> str:
    # Workflow-command escaping: data escapes %, CR and LF; properties also ':' and ','.
    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    level = _level(f)
    where = f"file={prop(f.path)},line={f.line},col={f.column},title={prop(f.code)}"
    return f"::{level} {where}::{data(f'{f.code} {f.message}. Fix: {f.fix}')}"


def _level(f: Finding) -> str:
    # A rejection that needs a trial no linted file has is a warning until one does.
    return "warning" if f.conditional else _LEVEL.get(f.status, "warning")


def _rule_dict(code: str, hooks: Sequence[Hook]) -> dict[str, Any]:
    first = hooks[0]
    return {
        "code": code,
        "status": first.status.value,
        "title": first.title,
        "reason": first.reason,
        "fix": first.fix,
        "hooks": [h.name for h in hooks],
    }


def _uri(path: str) -> str:
    pure = PurePath(path)
    return pure.as_uri() if pure.is_absolute() else pure.as_posix().removeprefix("./")


def _sarif_rule(code: str, hooks: Sequence[Hook]) -> dict[str, Any]:
    first = hooks[0]
    names = ", ".join(h.name for h in hooks)
    return {
        "id": code,
        "name": "".join(word.capitalize() for word in first.title.replace("_", " ").split()),
        "shortDescription": {"text": f"{first.title} ({first.status.value})"},
        "fullDescription": {"text": f"{names}: {first.reason}"},
        "help": {"text": first.fix, "markdown": f"**Fix:** {first.fix}"},
        "defaultConfiguration": {"level": _LEVEL.get(first.status.value, "warning")},
        "properties": {"tags": ["lightning", first.status.value]},
    }


def _sarif(
    findings: Sequence[Finding], errors: Sequence[SourceError], version: str
) -> dict[str, Any]:
    """SARIF 2.1.0 as GitHub code scanning reads it: rules, results, relative URIs."""
    rules = rules_by_code()
    index = {code: i for i, code in enumerate(rules)}
    results = [
        {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _level(f),
            "message": {"text": f"{f.message}. Fix: {f.fix}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.path)},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }
            ],
        }
        for f in findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": e.reason},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(e.path)}}}],
        }
        for e in errors
    ]
    driver: dict[str, Any] = {"name": _TOOL, "rules": [_sarif_rule(c, h) for c, h in rules.items()]}
    if version:
        driver["version"] = version
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "columnKind": "unicodeCodePoints",
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": notifications,
                    }
                ],
            }
        ],
    }
