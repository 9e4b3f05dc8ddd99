"""``migrate-trial --report FILE``: per trial what changed, the TODOs left with path:line, the
config changes, and the next steps, in Markdown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .engine import MigrateRun, TrialPlan
from .findings import Finding

__all__ = ["format_report"]


def format_report(run: MigrateRun, *, written: bool, shown: Callable[[str], str] = str) -> str:
    """The report; ``written``: whether the files were written (else it says what would be);
    ``shown`` maps a path to the one shown (its place in the ``--out`` copy)."""
    verb = "migrated" if written else "to migrate"
    trials = [t for t in run.trials if t.script.trial is not None]
    todos = run.findings
    lines = [
        "# migrate-trial report",
        "",
        f"{len(trials)} trial(s) {verb}, {len(todos)} TODO(s) left, "
        f"{len(run.errors)} file(s) could not be processed ({run.files_checked} file(s) checked).",
    ]
    for trial in run.trials:
        lines.extend(_trial(trial, written, shown))
    leftover = run.leftover
    if leftover:
        lines.extend(["", "## TODOs left by an earlier run", ""])
        lines.extend(_finding(f, shown) for f in leftover)
    if run.errors:
        lines.extend(
            ["", "## Files that could not be processed (nothing of their trial written)", ""]
        )
        for error in run.errors:
            place = shown(error.path)
            if error.line is not None:
                place += f":{error.line}:{error.column or 1}"
            lines.append(f"- `{place}`: {error.reason}")
    return "\n".join(lines) + "\n"


def _trial(trial: TrialPlan, written: bool, shown: Callable[[str], str]) -> list[str]:
    script = trial.script
    title = f"`{shown(script.path)}`"
    if script.trial is not None:
        title += f": `{script.trial}`"
    lines = ["", f"## {title}", "", "Changes:", ""]
    lines.extend(f"- {change}" for change in script.changes)
    for change in trial.changes:
        if change.before is None:
            lines.append(f"- {'wrote' if written else 'writes'} `{shown(change.path)}`")
    for path, migrated in trial.configs:
        changes = getattr(migrated, "changes", ())
        lines.extend(["", f"Config `{shown(path)}`:", ""])
        if not changes:
            lines.append("- unchanged")
        lines.extend(f"- line {c.line}, `{c.key}`: {c.message}" for c in changes)
    if script.findings:
        lines.extend(["", "TODOs left (each is a `# TODO(migrate-trial CODE)` comment):", ""])
        lines.extend(_finding(f, shown) for f in script.findings)
    if script.trial is not None:
        lines.extend(["", "Next steps:", ""])
        lines.extend(_next_steps(trial, script.findings, shown))
    return lines


def _next_steps(
    trial: TrialPlan, todos: Sequence[Finding], shown: Callable[[str], str]
) -> list[str]:
    folder = Path(shown(trial.script.path)).parent
    config = Path(trial.config_name).name if trial.config_name else "const.yaml"
    steps = []
    if todos:
        steps.append("resolve the TODOs above, then delete their comments")
    steps.append(
        f"in `{folder}`, run `run-trial {config}` to check it locally, then "
        f"`det experiment create {config} .`"
    )
    return [f"{n}. {step}" for n, step in enumerate(steps, start=1)]


def _finding(f: Finding, shown: Callable[[str], str]) -> str:
    return f"- `{shown(f.path)}:{f.line}:{f.column}` {f.code} {f.message}"
