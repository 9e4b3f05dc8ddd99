"""Command lines: ``lint-trial`` and ``migrate-trial``.

Exit codes: 0 clean, 1 findings, 2 a file could not be processed or a usage error. Data goes to
stdout, messages to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .findings import Finding

__all__ = ["lint_main", "migrate_main"]

_TOOL = "lint-trial"
_MIGRATE = "migrate-trial"


def migrate_main(argv: Sequence[str] | None = None) -> int:
    """``migrate-trial PATH...``: rewrite LightningAdapter trials into Core API scripts."""
    from .errors import SourceError, UsageError

    args = _migrate_parser().parse_args(argv)
    if args.list_rules:
        sys.stdout.write(_migrate_rules())
        return 0
    try:
        _check_migrate_args(args)
    except UsageError as exc:
        return _usage_error(str(exc), _MIGRATE)
    try:
        return _migrate(args)
    except SourceError as exc:  # a write that failed mid-way, or the report file
        print(f"{_MIGRATE}: error: {exc}", file=sys.stderr)
        return 2


def _check_migrate_args(args: argparse.Namespace) -> None:
    from .errors import UsageError
    from .writes import check_out_dir

    if not args.paths:
        raise UsageError("no paths given; pass trial folders or files to migrate")
    if args.jobs < 0:
        raise UsageError(f"--jobs must be 0 (one per CPU) or more, not {args.jobs}")
    if args.out is not None:
        if args.diff or args.check:
            raise UsageError("--out writes a copy; it does not go with --diff or --check")
        if len(args.paths) != 1 or not os.path.isdir(args.paths[0]):
            raise UsageError("--out DIR takes one folder to copy; pass a single trial folder")
        check_out_dir(args.out, args.paths[0])


def _migrate(args: argparse.Namespace) -> int:
    from .engine import plan
    from .writes import apply, copy_tree, unified_diff

    jobs = args.jobs or os.cpu_count() or 1
    with _progress() as step:
        run = plan(args.paths, jobs=jobs, progress=step)
    changes = run.changes
    write = not (args.diff or args.check)
    root, out = (args.paths[0], args.out) if args.out is not None else (None, None)

    def shown(path: str) -> str:
        return (
            path if out is None or root is None else os.path.join(out, os.path.relpath(path, root))
        )

    if args.diff:
        sys.stdout.write("".join(unified_diff(change) for change in changes))
    if write and not (out is not None and run.errors):
        if out is not None and root is not None:
            copy_tree(root, out)
        apply(changes, root, out)
    for trial in run.trials:
        done = "migrated" if write else "would migrate"
        names = ", ".join(os.path.basename(c.path) for c in trial.changes[1:])
        also = f" (and {names})" if names else ""
        print(f"{_MIGRATE}: {done} {shown(trial.script.path)}{also}", file=sys.stderr)
    findings = run.findings
    for f in findings:
        print(f"{shown(f.path)}:{f.line}:{f.column}: {f.code} {f.message}", file=sys.stderr)
    for notice in run.notices:
        print(f"{_MIGRATE}: warning: {notice}", file=sys.stderr)
    for error in run.errors:
        print(f"{_MIGRATE}: error: {error}", file=sys.stderr)
    if args.report is not None:
        _write_report(args.report, run, written=write and not run.errors, shown=shown)
    print(_migrate_summary(run, write), file=sys.stderr)
    if run.errors:
        return 2
    return 1 if findings or (args.check and changes) else 0


def _write_report(path: str, run: Any, *, written: bool, shown: Callable[[str], str]) -> None:
    from .errors import SourceError
    from .markdown import format_report
    from .writes import write_atomic

    text = format_report(run, written=written, shown=shown)
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise SourceError(path, f"cannot write the report: {exc.strerror or exc}") from None


def _migrate_summary(run: Any, write: bool) -> str:
    trials = sum(1 for t in run.trials if t.script.trial is not None)
    todos, failed = len(run.findings), len(run.errors)
    verb = "migrated" if write else "to migrate"
    text = (
        f"{_MIGRATE}: {trials} trial{'s' * (trials != 1)} {verb}"
        if trials
        else (f"{_MIGRATE}: nothing to migrate")
    )
    if todos:
        text += f", {todos} TODO{'s' * (todos != 1)} left"
    text += f" ({run.files_checked} file{'s' * (run.files_checked != 1)} checked"
    if failed:
        text += f", {failed} could not be processed; nothing of theirs was written"
    return text + ")"


def _migrate_rules() -> str:
    from .todos import CODES

    lines = []
    for code in CODES.values():
        lines.append(f"{code.code}  {code.title}")
        lines.append(f"{'':7}why: {code.reason}")
        lines.append(f"{'':7}fix: {code.fix}")
    lines.append(
        "TODOs for trial patterns lint-trial knows (LA401-LA405, the removed Lightning 1.x APIs) "
        "keep their lint-trial codes: see `lint-trial --list-rules`."
    )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A transient progress line on a terminal (stderr); nothing elsewhere."""
    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        yield lambda _path: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    console = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.completed} files checked: {task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=None)
        yield lambda path: bar.update(task, advance=1, description=path)


def _migrate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_MIGRATE,
        description=(
            "Rewrite LightningAdapter trials (and the configs that name them) into Determined "
            "Core API scripts, in place. Exit codes: 0 nothing to do or all migrated cleanly, 1 "
            "TODOs left (or, with --check, changes needed), 2 a file could not be processed or a "
            "usage error."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="trial folders and files")
    parser.add_argument(
        "--diff", action="store_true", help="print a unified diff on stdout; write nothing"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if anything would change",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="write a migrated copy of the folder to DIR (new or empty)"
    )
    parser.add_argument(
        "--report", metavar="FILE", help="write a Markdown report: changes, TODOs, next steps"
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        metavar="N",
        help="migrate N files at a time in separate processes (0: one per CPU; default 1)",
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="print migrate-trial's own TODO codes"
    )
    return parser


def lint_main(argv: Sequence[str] | None = None) -> int:
    """``lint-trial PATH...``: flag hooks and patterns neither run-trial nor the Core API honour."""
    # Imported here so that `migrate-trial` and `--help` stay instant.
    from . import report
    from .errors import UsageError
    from .lint import lint_paths, select_codes

    args = _parser(report.FORMATS).parse_args(argv)
    if args.list_rules:
        sys.stdout.write(report.format_rules(args.output_format))
        return 0
    if not args.paths:
        return _usage_error("no paths given; pass files or folders to lint")
    if args.jobs < 0:
        return _usage_error(f"--jobs must be 0 (one per CPU) or more, not {args.jobs}")
    jobs = args.jobs or os.cpu_count() or 1
    try:
        select, ignore = _codes(args.select), _codes(args.ignore)
        result = lint_paths(args.paths, exclude=_codes(args.exclude, upper=False), jobs=jobs)
        findings = select_codes(result.findings, select, ignore)
    except UsageError as exc:
        return _usage_error(str(exc))
    colour = report.use_colour(sys.stdout)
    version = _version() if args.output_format == "sarif" else ""
    text = report.format_findings(
        findings, result.errors, args.output_format, colour=colour, version=version
    )
    sys.stdout.write(text)
    for notice in result.notices:
        print(f"{_TOOL}: warning: {notice}", file=sys.stderr)
    for error in result.errors:
        print(f"{_TOOL}: error: {error}", file=sys.stderr)
    print(_summary(findings, result.files_checked, len(result.errors)), file=sys.stderr)
    if result.errors:
        return 2
    return 1 if findings else 0


def _parser(formats: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_TOOL,
        description=(
            "Flag LightningModule hooks and LightningAdapter patterns that run-trial or the "
            "Determined Core API cannot honour. Exit codes: 0 clean, 1 findings, 2 a file could "
            "not be processed or a usage error. Suppress a finding with `# noqa: CODE`."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files and folders to lint")
    parser.add_argument(
        "--output-format", choices=formats, default="concise", help="default: concise"
    )
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="CODES",
        help="only report codes starting with these comma-separated prefixes",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="CODES",
        help="do not report codes starting with these comma-separated prefixes",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOBS",
        help="skip files and folders matching these comma-separated globs",
    )
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        metavar="N",
        help="lint N files at a time in separate processes (0: one per CPU; default 1)",
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="print every code with its status and fix"
    )
    return parser


def _codes(values: Sequence[str], *, upper: bool = True) -> list[str]:
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return [item.upper() for item in items] if upper else items


def _usage_error(message: str, tool: str = _TOOL) -> int:
    print(f"{tool}: error: {message}", file=sys.stderr)
    return 2


def _summary(findings: Sequence[Finding], checked: int, failed: int) -> str:
    count, files = len(findings), len({f.path for f in findings})
    text = (
        f"{_TOOL}: {count} finding{'s' * (count != 1)} in {files} file{'s' * (files != 1)}"
        if count
        else f"{_TOOL}: no findings"
    )
    text += f" ({checked} file{'s' * (checked != 1)} checked"
    if failed:
        text += f", {failed} could not be processed"
    return text + ")"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightning-adapter-compat")
    except PackageNotFoundError:
        return ""
