"""Command lines: ``lint-trial`` and ``migrate-trial``.

Exit codes: 0 clean, 1 findings, 2 a file could not be processed or a usage error. Data goes to
stdout, messages to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .findings import Finding

__all__ = ["lint_main", "migrate_main"]

_TOOL = "lint-trial"


def migrate_main(argv: Sequence[str] | None = None) -> int:
    """``migrate-trial``: not implemented yet."""
    print("migrate-trial: not implemented yet", file=sys.stderr)
    return 2


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


def _usage_error(message: str) -> int:
    print(f"{_TOOL}: error: {message}", file=sys.stderr)
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
