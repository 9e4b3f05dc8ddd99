"""A finding: one reported hook or pattern at ``path:line:column``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from shim.hooks import Hook, Status

__all__ = ["Finding", "is_suppressed", "make_finding"]

_VERBS = {
    Status.IGNORED: "is ignored",
    Status.REJECTED: "is rejected",
    Status.LEGACY: "is legacy",
    Status.SUPPORTED: "is supported",
}
# flake8's grammar: a bare noqa comment suppresses everything, one with a colon and codes only
# those codes (a code also matches as a prefix, so LA1 covers LA101).
_NOQA = re.compile(r"#\s*noqa(?::\s?(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True, order=True)
class Finding:
    """One finding. ``line`` and ``column`` are 1-based; the order is (path, line, column, code).

    ``conditional``: the verdict holds only once a trial wraps the class (no linted trial does),
    so it is worded, and reported, as a warning.
    """

    path: str
    line: int
    column: int
    code: str
    message: str
    fix: str
    hook: str
    status: str
    conditional: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_finding(
    path: str,
    line: int,
    column: int,
    hook: Hook,
    subject: str,
    *,
    unwrapped_class: str | None = None,
) -> Finding:
    """Build the finding for ``hook``; ``subject`` names what was found, e.g. `` `test_step` ``.

    ``unwrapped_class``: the module class it was found in, which no linted trial wraps; a
    rejection then is what happens once one does.
    """
    if unwrapped_class is not None and hook.status is Status.REJECTED:
        verdict = (
            f"would be rejected once a trial wraps `{unwrapped_class}` (no trial in the linted "
            "files does)"
        )
        message = f"{subject} {verdict}: {hook.reason}"
        status = hook.status.value
        return Finding(path, line, column, hook.code, message, hook.fix, hook.name, status, True)
    message = f"{subject} {_VERBS[hook.status]}: {hook.reason}"
    return Finding(path, line, column, hook.code, message, hook.fix, hook.name, hook.status.value)


def is_suppressed(line_text: str, code: str) -> bool:
    """Whether a ``# noqa`` comment on ``line_text`` covers ``code``."""
    for match in _NOQA.finditer(line_text):
        codes = match.group("codes")
        if codes is None:
            return True
        if any(code.startswith(c.upper()) for c in _SPLIT.split(codes.strip()) if c):
            return True
    return False
