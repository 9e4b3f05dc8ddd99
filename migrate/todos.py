"""What migrate-trial leaves to the user: ``# TODO(migrate-trial CODE): ...`` comments.

Trial patterns the hook table already names (LA401-LA405, the removed Lightning 1.x APIs) keep
their lint-trial codes. The codes below are migrate-trial's own: they describe the rewrite, not a
hook, so lint-trial never reports them and they live here rather than in ``shim.hooks``.

A TODO comment is the single record of a finding: the findings of a migrated file are read back
from its text (:func:`todo_findings`), so a rerun reports the TODOs still left, at the lines where
they are, and never adds one twice.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from .findings import Finding

__all__ = [
    "CODES",
    "LINE_LENGTH",
    "TODO_PREFIX",
    "MigrateCode",
    "has_todo",
    "todo_findings",
    "todo_lines",
]

TODO_PREFIX = "# TODO(migrate-trial "
LINE_LENGTH = 100  # the longest line the codemod writes (ruff's E501 at this project's setting)
_TODO = re.compile(r"^(?P<indent>[ \t]*)# TODO\(migrate-trial (?P<code>LA\d+)\): (?P<text>.*)$")
_MORE = re.compile(r"^[ \t]*#   (?P<text>.*)$")
_LINES = re.compile(r"\r\n?|\n")


@dataclass(frozen=True)
class MigrateCode:
    """One of migrate-trial's own codes: what it flags, why, and what to do."""

    code: str
    title: str
    reason: str
    fix: str


CODES: dict[str, MigrateCode] = {
    c.code: c
    for c in (
        MigrateCode(
            "LA420",
            "trial context call with no TrialContext value",
            "core_loop.TrialContext holds plain values (hparams, data_config, experiment_config, "
            "batch sizes, distributed, device, trial_id, trial_seed); the old context's other "
            "methods have no equivalent there",
            "compute the value in main() from det.get_cluster_info() or core_context and pass it "
            "to the trial",
        ),
        MigrateCode(
            "LA421",
            "dynamic trial base class",
            "the base class is computed at run time, so migrate-trial cannot tell whether the "
            "class is a LightningAdapter trial",
            "name LightningAdapter directly in the class statement, then rerun migrate-trial",
        ),
        MigrateCode(
            "LA422",
            "LightningAdapter.__init__ arguments",
            "the trial's super().__init__ call passes arguments migrate-trial cannot map to "
            "attributes of the trial, or there is no such call",
            "set self.lightning_module (and precision, amp_backend, amp_level if used) in __init__",
        ),
        MigrateCode(
            "LA423",
            "trial context passed on",
            "the context is a core_loop.TrialContext now, with plain fields and none of the old "
            "context's methods; the rewrite follows its calls in the trial only, not into code "
            "it is passed to, stored in or returned to, nor through a method referenced without "
            "a call",
            "check that the code it reaches only reads TrialContext's fields "
            '(get_hparam("x") -> hparams["x"], get_data_config() -> data_config), or pass that '
            "code the values it needs",
        ),
    )
}


def todo_lines(code: str, text: str, indent: int = 0) -> list[str]:
    """The comment lines (without indentation) of one TODO, wrapped to fit ``LINE_LENGTH``
    columns at an indentation of ``indent`` columns; continuation lines start with ``#   ``."""
    head = f"{TODO_PREFIX}{code}): "
    lines = textwrap.wrap(
        head + text,
        width=max(LINE_LENGTH - indent, 40),
        subsequent_indent="#   ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return lines or [head.rstrip()]


def has_todo(comments: list[str], code: str, text: str) -> bool:
    """Whether ``comments`` (comment lines above a statement) already hold this TODO, however
    it was wrapped (the width depends on the statement's indentation)."""
    wanted = " ".join(f"{TODO_PREFIX}{code}): {text}".split())
    held: list[list[str]] = []
    for comment in comments:
        line = comment.strip()
        if line.startswith(TODO_PREFIX):
            held.append([line])
        elif held and line.startswith("#   ") and held[-1]:
            held[-1].append(line[4:])
        elif held:
            held.append([])  # any other comment ends the TODO above it
    return any(" ".join(" ".join(parts).split()) == wanted for parts in held)


def todo_findings(text: str, path: str) -> list[Finding]:
    """Every TODO comment of ``text`` as a finding at its line and column."""
    if TODO_PREFIX not in text:
        return []
    lines = _LINES.split(text)
    found: list[Finding] = []
    for number, line in enumerate(lines, start=1):
        match = _TODO.match(line)
        if match is None:
            continue
        words = [match.group("text")]
        for following in lines[number:]:
            more = _MORE.match(following)
            if more is None:
                break
            words.append(more.group("text"))
        code, message = match.group("code"), " ".join(words)
        fix = CODES[code].fix if code in CODES else _lint_fix(code)
        column = len(match.group("indent")) + 1
        found.append(Finding(path, number, column, code, message, fix, "migrate-trial", "todo"))
    return found


def _lint_fix(code: str) -> str:
    from shim.hooks import rules_by_code

    hooks = rules_by_code().get(code)
    return hooks[0].fix if hooks else ""
