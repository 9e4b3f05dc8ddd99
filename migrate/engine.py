"""migrate-trial's engine: find the trials and the configs that name them, migrate each trial
with its configs and ``core_loop.py`` as one group, and write a group only when all of it worked.

A trial is found by its class (a ``LightningAdapter`` subclass); its config by the
``entrypoint: module:Class`` that names it (YAML files in the folders given, and beside a file
given). Files that hold no trial are never written. Nothing is executed.
"""

from __future__ import annotations

import io
import os
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .classes import find_classes
from .errors import SourceError
from .files import DEFAULT_EXCLUDES, discover
from .findings import Finding
from .source import decode, parse
from .specialise import TEMPLATE, Uses, specialise
from .todos import TODO_PREFIX, todo_findings
from .transform import MigrationResult, migrate_module
from .uses import module_uses

__all__ = ["TEMPLATE", "FileChange", "MigrateRun", "TrialPlan", "plan"]

_SCRIPT_HELPER = "core_loop.py"
_ENTRYPOINT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
# (trial file, class name) -> the configs whose entrypoint names it
ConfigIndex = Mapping[tuple[str, str], Sequence[str]]


@dataclass(frozen=True)
class FileChange:
    """One file to write: ``before`` is ``None`` for a new file."""

    path: str
    before: bytes | None
    after: bytes
    mode: int | None = None


@dataclass
class TrialPlan:
    """A trial file's migration with the files that go with it."""

    script: MigrationResult
    configs: list[tuple[str, object]] = field(default_factory=list)  # (path, ConfigMigration)
    changes: list[FileChange] = field(default_factory=list)
    config_name: str = ""
    uses: Uses = field(default_factory=Uses)  # what its module needs of core_loop.py


@dataclass
class MigrateRun:
    """Trials (and files that only got a TODO), files that failed, leftover TODO findings."""

    trials: list[TrialPlan] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    leftover: list[Finding] = field(default_factory=list)
    files_checked: int = 0

    @property
    def changes(self) -> list[FileChange]:
        seen: dict[str, FileChange] = {}
        for trial in self.trials:
            for change in trial.changes:
                seen.setdefault(change.path, change)
        return list(seen.values())

    @property
    def findings(self) -> list[Finding]:
        return sorted([*self.leftover, *(f for t in self.trials for f in t.script.findings)])


@dataclass(frozen=True)
class _Outcome:
    path: str
    result: MigrationResult | None = None
    data: bytes = b""
    encoding: str = "utf-8"
    error: SourceError | None = None
    uses: Uses = field(default_factory=Uses)


def plan(
    paths: Sequence[str],
    *,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> MigrateRun:
    """Everything migrate-trial would write for ``paths``, and why not where it cannot."""
    files, errors, notices = discover(paths)
    run = MigrateRun(errors=list(errors), notices=notices)
    index = _config_index(paths)
    work = partial(_migrate_file, index=index)
    for outcome in _map(work, files, jobs):
        if progress is not None:
            progress(outcome.path)
        run.files_checked += 1
        if outcome.error is not None:
            run.errors.append(outcome.error)
        elif outcome.result is not None:
            _add(run, outcome, index)
    _add_core_loops(run)
    run.errors.sort(key=lambda error: (error.path, error.line or 0))
    return run


def _add(run: MigrateRun, outcome: _Outcome, index: ConfigIndex) -> None:
    result = outcome.result
    assert result is not None
    if result.trial is None and not result.changed:
        run.leftover.extend(result.findings)
        return
    trial = TrialPlan(result, uses=outcome.uses)
    try:
        new = result.code.encode(outcome.encoding)
    except UnicodeEncodeError as exc:
        run.errors.append(
            SourceError(
                outcome.path,
                f"the migrated text cannot be saved as {outcome.encoding} ({exc.reason}); "
                "save the file as UTF-8, then rerun",
            )
        )
        return
    trial.changes.append(FileChange(outcome.path, outcome.data, new))
    try:
        if result.trial is not None:
            _add_configs(trial, outcome.path, result.trial, index)
        _check_writable(trial.changes)
    except SourceError as exc:
        run.errors.append(exc)
        return
    run.trials.append(trial)


def _add_configs(trial: TrialPlan, path: str, name: str, index: ConfigIndex) -> None:
    from .config import migrate_config

    configs = index.get((_key(path), name), ())
    folder = Path(path).parent
    for config in configs:
        data = _read(config)
        text = decode(data, config)
        script = Path(os.path.relpath(path, Path(config).parent)).as_posix()
        migrated = migrate_config(text, path=config, script=script)
        trial.configs.append((config, migrated))
        if migrated.text != text:
            new = migrated.text.encode(_encoding(data))
            trial.changes.append(FileChange(config, data, new))
    trial.config_name = _pick_config(configs, folder)


def _add_core_loops(run: MigrateRun) -> None:
    """One ``core_loop.py`` per folder, written for what its trials' modules use together; a
    folder whose file cannot be written takes its trials out of the run."""
    folders: dict[Path, list[TrialPlan]] = {}
    for trial in run.trials:
        if trial.script.trial is not None:
            folders.setdefault(Path(trial.script.path).parent, []).append(trial)
    for folder, trials in folders.items():
        uses = trials[0].uses
        for other in trials[1:]:
            uses = uses.union(other.uses)
        try:
            change = _core_loop(folder / _SCRIPT_HELPER, specialise(uses), trials[0])
            if change is not None:
                _check_writable([change])
        except SourceError as exc:
            run.errors.append(exc)
            run.trials = [t for t in run.trials if t not in trials]
            continue
        if change is not None:
            for trial in trials:
                trial.changes.append(change)


def _core_loop(target: Path, text: bytes, trial: TrialPlan) -> FileChange | None:
    if not target.exists():
        return FileChange(str(target), None, text)
    if _read(str(target)) == text:
        return None
    raise SourceError(
        str(target),
        f"{_SCRIPT_HELPER} exists and is not the loop migrate-trial writes for "
        f"`{trial.script.trial}`, which imports it: rename yours (or delete an older copy "
        "written by migrate-trial), then rerun",
    )


def _check_writable(changes: Iterable[FileChange]) -> None:
    """Validate before side effects: a read-only file or folder stops the whole group."""
    for change in changes:
        path = Path(change.path)
        if path.exists() and not os.stat(path).st_mode & 0o200:
            raise SourceError(
                change.path,
                "the file is read-only; make it writable (chmod u+w) or migrate a copy with "
                "--out DIR, then rerun",
            )
        if not os.access(path.parent, os.W_OK):
            raise SourceError(
                change.path,
                f"cannot write in {path.parent}; make the folder writable or migrate a copy with "
                "--out DIR, then rerun",
            )


def _migrate_file(path: str, index: ConfigIndex) -> _Outcome:
    try:
        data = _read(path)
        text = decode(data, path)
        if b"LightningAdapter" not in data and TODO_PREFIX not in text:
            return _Outcome(path)  # nothing to migrate: not even parsed
        if b"LightningAdapter" not in data:
            result = MigrationResult(path, text, text, None, tuple(todo_findings(text, path)), ())
            return _Outcome(path, result)
        module = parse(text, path)
        result = migrate_module(
            module, text, path, partial(_config_for, path, index), _local_modules(path)
        )
        uses = Uses()
        if result.trial is not None:
            classes = find_classes(module)
            trial = next(c for c in classes if c.name == result.trial)
            uses = module_uses(path, trial, classes)
        return _Outcome(path, result, data, _encoding(data), uses=uses)
    except SourceError as exc:
        return _Outcome(path, error=exc)


def _config_for(path: str, index: ConfigIndex, name: str) -> str:
    configs = index.get((_key(path), name))
    if not configs:
        module = Path(path).stem
        raise SourceError(
            path,
            f"no experiment config names the trial `{name}`: expected a YAML file beside it "
            f"with `entrypoint: {module}:{name}` (e.g. const.yaml); add it, or pass the folder "
            "that holds it, then rerun",
        )
    chosen = _pick_config(configs, Path(path).parent)
    return Path(os.path.relpath(chosen, Path(path).parent)).as_posix()


def _pick_config(configs: Sequence[str], folder: Path) -> str:
    """The config ``main()`` reads off-cluster: const.yaml if one names the trial, else the
    first by name (they differ in searcher and resources, not in hparams and data)."""
    ordered = sorted(configs, key=lambda c: (Path(c).name != "const.yaml", c))
    return ordered[0] if ordered else str(folder / "const.yaml")


def _local_modules(path: str) -> frozenset[str]:
    folder = Path(path).parent
    names = {"core_loop"}
    try:
        for entry in os.scandir(folder):
            if entry.name.endswith(".py"):
                names.add(entry.name[:-3])
            elif entry.is_dir() and os.path.exists(os.path.join(entry.path, "__init__.py")):
                names.add(entry.name)
    except OSError:
        pass
    return frozenset(names)


def _config_index(paths: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """Configs whose ``entrypoint: module:Class`` names a trial, by (trial file, class)."""
    import yaml

    index: dict[tuple[str, str], list[str]] = {}
    for config in _yaml_files(paths):
        try:
            data = yaml.safe_load(_read(config))
        except (yaml.YAMLError, SourceError, UnicodeDecodeError):
            continue  # not a config; migrate_config reports a broken one that names a trial
        entry = data.get("entrypoint") if isinstance(data, dict) else None
        if not isinstance(entry, str) or entry.count(":") != 1:
            continue
        module, name = entry.split(":")
        if not module or not name or not set(module + name) <= _ENTRYPOINT_CHARS:
            continue
        script = Path(config).parent.joinpath(*module.split(".")).with_suffix(".py")
        index.setdefault((_key(str(script)), name), []).append(config)
    return index


def _yaml_files(paths: Sequence[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in DEFAULT_EXCLUDES)
                found.extend(os.path.join(folder, n) for n in sorted(names) if _is_yaml(n))
        elif os.path.isfile(path):
            folder = os.path.dirname(path) or "."
            found.extend(os.path.join(folder, n) for n in sorted(os.listdir(folder)) if _is_yaml(n))
    return list(dict.fromkeys(found))


def _is_yaml(name: str) -> bool:
    return name.endswith((".yaml", ".yml"))


def _key(path: str) -> str:
    return os.path.realpath(path)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(path, f"cannot read the file: {exc.strerror or exc}") from None


def _encoding(data: bytes) -> str:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return encoding


def _map(fn: Callable[[str], _Outcome], items: Sequence[str], jobs: int) -> Iterable[_Outcome]:
    if jobs <= 1 or len(items) < 2:
        return map(fn, items)
    from .lint import _executor

    with _executor(min(jobs, len(items))) as executor:
        chunk = max(1, len(items) // (jobs * 4))
        return list(executor.map(fn, items, chunksize=chunk))
