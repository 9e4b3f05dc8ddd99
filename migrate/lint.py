"""The linter's engine: parse, find module and trial classes, run the rules, place findings.

Files are analysed independently (in parallel with ``jobs`` > 1); a class whose base may be a
module or trial class of another linted file is checked both ways, and the right set of findings
is kept once every file's classes are known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from shim.hooks import rules_by_code

from .classes import Kind, ModuleClasses, find_classes, resolve_kinds
from .errors import SourceError, UsageError
from .files import discover
from .findings import Finding, make_finding, suppress
from .positions import locate
from .rules import Candidate, check_class, trigger_tokens
from .source import parse, read_source

__all__ = ["LintResult", "known_codes", "lint_paths", "lint_source", "select_codes"]

_LINES = re.compile(r"\r\n?|\n")


@dataclass
class LintResult:
    """Findings sorted by (path, line, column, code), files that failed, and notices."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    files_checked: int = 0


@dataclass(frozen=True)
class _FileReport:
    classes: ModuleClasses
    findings: tuple[Finding, ...] = ()
    # findings of classes whose kind another file may decide: (class, kind) -> findings
    pending: dict[tuple[str, Kind], tuple[Finding, ...]] = field(default_factory=dict)


def lint_source(text: str, path: str = "<string>") -> list[Finding]:
    """Lint one file's text; raises :class:`SourceError` if it does not parse."""
    return sorted(_analyse(text, path).findings)


def lint_paths(paths: Sequence[str], *, exclude: Sequence[str] = (), jobs: int = 1) -> LintResult:
    """Lint files and folders (walked); unreadable files are reported, never fatal."""
    files, errors, notices = discover(paths, exclude)
    result = LintResult(errors=errors, notices=notices)
    reports: list[_FileReport] = []
    for outcome in _map(_lint_file, files, jobs):
        if isinstance(outcome, SourceError):
            result.errors.append(outcome)
        else:
            reports.append(outcome)
    result.files_checked = len(reports)
    kinds = resolve_kinds([report.classes for report in reports])
    for report in reports:
        result.findings.extend(report.findings)
        for (name, kind), findings in report.pending.items():
            if kinds.get((report.classes.path, name)) is kind:
                result.findings.extend(findings)
    result.findings.sort()
    result.errors.sort(key=lambda error: error.path)
    return result


def known_codes() -> frozenset[str]:
    """The codes the linter can report."""
    return frozenset(rules_by_code())


def select_codes(
    findings: Iterable[Finding], select: Sequence[str] = (), ignore: Sequence[str] = ()
) -> list[Finding]:
    """Keep findings whose code matches a ``select`` prefix (all if none) and no ``ignore`` one.

    As in ruff, the longer matching prefix wins: ``--ignore LA1 --select LA101`` keeps LA101.
    """
    codes = known_codes()
    for prefix in (*select, *ignore):
        if not any(code.startswith(prefix) for code in codes):
            raise UsageError(f"unknown rule code or prefix {prefix!r}; see --list-rules")

    def longest(code: str, prefixes: Sequence[str]) -> int:
        return max((len(p) for p in prefixes if code.startswith(p)), default=-1)

    return [
        f for f in findings if (longest(f.code, select) if select else 0) > longest(f.code, ignore)
    ]


def _lint_file(path: str) -> _FileReport | SourceError:
    try:
        return _analyse(read_source(path), path)
    except SourceError as exc:
        return exc


def _analyse(text: str, path: str) -> _FileReport:
    module = parse(text, path)
    classes = find_classes(module)
    tokens = trigger_tokens(text)
    checked: list[tuple[str, Kind, bool, list[Candidate]]] = []
    for info in classes:
        if info.kind is not None:
            checked.append((info.name, info.kind, False, check_class(info, info.kind, tokens)))
        elif info.may_be_local_subclass:
            for kind in Kind:
                checked.append((info.name, kind, True, check_class(info, kind, tokens)))
    candidates = [c for *_, found in checked for c in found]
    summary = ModuleClasses(
        path,
        {info.name: info.kind for info in classes if info.kind is not None},
        {info.name: info.bases for info in classes if info.may_be_local_subclass},
    )
    if not candidates:
        return _FileReport(summary)
    positions = locate(module, (c.node for c in candidates))
    lines = _LINES.split(text)
    known: list[Finding] = []
    pending: dict[tuple[str, Kind], tuple[Finding, ...]] = {}
    for name, kind, is_pending, found in checked:
        findings = suppress((_finding(path, c, positions) for c in found), lines)
        if is_pending:
            pending[name, kind] = tuple(findings)
        else:
            known.extend(findings)
    return _FileReport(summary, tuple(known), pending)


def _finding(path: str, candidate: Candidate, positions: dict[int, tuple[int, int]]) -> Finding:
    line, column = positions[id(candidate.node)]
    return make_finding(path, line, column, candidate.hook, candidate.subject)


def _map(
    fn: Callable[[str], _FileReport | SourceError], items: Sequence[str], jobs: int
) -> Iterable[_FileReport | SourceError]:
    if jobs <= 1 or len(items) < 2:
        return map(fn, items)
    executor = _executor(min(jobs, len(items)))
    with executor:
        # Large chunks keep the per-file cost of inter-process traffic small.
        chunk = max(1, len(items) // (jobs * 4))
        return list(executor.map(fn, items, chunksize=chunk))


def _executor(workers: int) -> Executor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the already imported libcst with the workers; elsewhere use the default.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)
