"""The linter's engine: parse, find module and trial classes, run the rules, place findings.

Files are analysed independently (in parallel with ``jobs`` > 1); a class whose base may be a
module or trial class of another linted file is checked both ways, and the right set of findings
is kept once every file's classes are known. Only then is it known which module classes a trial
wraps: a rejection in a module no linted trial wraps is worded as what happens once one does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from shim.hooks import HOOKS, Status, rules_by_code

from .classes import Kind, ModuleClasses, find_classes, reached_modules, references, resolve_kinds
from .errors import SourceError, UsageError
from .files import discover
from .findings import Finding, is_suppressed, make_finding
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
class _ClassFindings:
    """One class's findings read as ``kind``; ``pending``: only if other files confirm the kind.
    ``subjects`` go with ``findings``, to reword them once it is known whether a trial wraps
    the class."""

    name: str
    kind: Kind
    pending: bool
    findings: tuple[Finding, ...]
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class _FileReport:
    classes: ModuleClasses
    groups: tuple[_ClassFindings, ...] = ()


def lint_source(text: str, path: str = "<string>") -> list[Finding]:
    """Lint one file's text; raises :class:`SourceError` if it does not parse."""
    report = _analyse(text, path)
    return sorted(_collect([report]))


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
    result.findings.extend(_collect(reports))
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


def _collect(reports: Sequence[_FileReport]) -> list[Finding]:
    """The findings of every class whose kind held up, worded by whether a trial wraps it."""
    summaries = [report.classes for report in reports]
    kinds = resolve_kinds(summaries)
    rejected = Status.REJECTED.value
    needed = any(
        g.kind is Kind.MODULE and any(f.status == rejected for f in g.findings)
        for report in reports
        for g in report.groups
    )
    reached = reached_modules(summaries, kinds) if needed else set()
    out: list[Finding] = []
    for report in reports:
        path = report.classes.path
        for group in report.groups:
            if group.pending and kinds.get((path, group.name)) is not group.kind:
                continue
            if group.kind is not Kind.MODULE or (path, group.name) in reached:
                out.extend(group.findings)
                continue
            for finding, subject in zip(group.findings, group.subjects, strict=True):
                if finding.status == rejected:
                    hook = HOOKS[finding.hook]
                    where = (finding.path, finding.line, finding.column)
                    finding = make_finding(*where, hook, subject, unwrapped_class=group.name)
                out.append(finding)
    return out


def _lint_file(path: str) -> _FileReport | SourceError:
    try:
        return _analyse(read_source(path), path)
    except SourceError as exc:
        return exc


def _analyse(text: str, path: str) -> _FileReport:
    module = parse(text, path)
    classes = find_classes(module)
    tokens = trigger_tokens(text)
    datamodules = {info.name: info.node for info in classes if info.kind is Kind.DATAMODULE}
    checked: list[tuple[str, Kind, bool, list[Candidate]]] = []
    for info in classes:
        if info.kind is not None:
            found = check_class(info, info.kind, tokens, datamodules)
            checked.append((info.name, info.kind, False, found))
        elif info.may_be_local_subclass:
            for kind in Kind:
                found = check_class(info, kind, tokens, datamodules)
                checked.append((info.name, kind, True, found))
    summary = ModuleClasses(
        path,
        {info.name: info.kind for info in classes if info.kind is not None},
        {info.name: info.bases for info in classes if info.may_be_local_subclass},
        {info.name: info.bases for info in classes},
        {
            info.name: references(info)
            for info in classes
            if info.kind is Kind.TRIAL or info.may_be_local_subclass
        },
    )
    candidates = [c for *_, found in checked for c in found]
    if not candidates:
        return _FileReport(summary)
    positions = locate(module, (c.node for c in candidates))
    lines = _LINES.split(text)
    groups: list[_ClassFindings] = []
    for name, kind, is_pending, found in checked:
        pairs = [(_finding(path, c, positions), c.subject) for c in found]
        kept = [(f, subject) for f, subject in pairs if not _silenced(f, lines)]
        if kept:
            findings, subjects = zip(*kept, strict=True)
            groups.append(_ClassFindings(name, kind, is_pending, findings, subjects))
    return _FileReport(summary, tuple(groups))


def _silenced(finding: Finding, lines: Sequence[str]) -> bool:
    return finding.line <= len(lines) and is_suppressed(lines[finding.line - 1], finding.code)


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
