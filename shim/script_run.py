"""``run-trial`` on a script entrypoint (``python3 model_def.py ARGS`` or ``python3 -m
pkg.model_def ARGS``): a Core API script run in this process, as ``__main__``, with ``shim.core``
standing in for the cluster. A module runs as ``python3 -m`` runs it from the context directory:
that folder first on ``sys.path``, its package imported first, ``sys.argv[0]`` the module's file.

While the script runs, ``determined.get_cluster_info()`` returns this run's ``ClusterInfo``
(hparams, ``data``, trial seed, the newest checkpoint of the run), ``determined.core.init()``
returns a ``shim.core`` context whose checkpoints, metrics and TensorBoard files go where a legacy
run's go, with signal-driven preemption, and ``determined.core.DistributedContext`` is shim's; all
of it is put back afterwards, whether ``determined`` is installed or not. Every checkpoint's
metadata names the run, so a rerun resumes from the newest one, as for a trial class.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import runpy
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import shim.core
from shim.config import ExperimentConfig
from shim.core import Context, DistributedContext
from shim.core.info import ClusterInfo, TrialInfo
from shim.core.storage import resolve_storage_path
from shim.errors import UserInputError
from shim.imports import TrialImportError, trial_folder
from shim.progress import RunReporter
from shim.pytorch.controller import RunPlan, RunResult
from shim.runfiles import RunRecord
from shim.script_context import RunReports, ScriptAttempt

__all__ = ["ScriptExited", "ScriptRun"]

_MISSING = object()


class ScriptExited(RuntimeError):
    """The script called ``sys.exit`` with a failure status: the trial failed."""


class ScriptRun:
    """One script entrypoint; ``run_once`` runs it from the start (the runner restarts it)."""

    def __init__(self, config: ExperimentConfig, context_dir: pathlib.Path, max_length: Any):
        self.context_dir = context_dir.resolve()
        self.module = config.script_module
        if self.module is not None:
            self.args = list((config.script or ())[2:])
            self.path = _find_module(config, self.module, self.context_dir)
        else:
            script, *self.args = config.script or ("",)
            self.path = (self.context_dir / script).resolve()
            if not self.path.is_file():
                raise config.entrypoint_error(
                    f"the entrypoint runs {script!r}, which is not a file in "
                    f"{self.context_dir}; pass the folder that holds it as CONTEXT_DIR, or fix "
                    "the entrypoint"
                )
        if max_length is not None:
            raise UserInputError(
                "--max-length sets searcher.max_length of a module:Class trial; a script "
                f"entrypoint ({config.entrypoint!r}) sets its own length: change its arguments"
            )
        try:
            compile(self.path.read_bytes(), str(self.path), "exec")
        except SyntaxError as exc:
            raise _syntax_error(exc) from exc
        self._reports: RunReports | None = None

    def run_once(
        self,
        config: ExperimentConfig,
        hparams: dict[str, Any],
        plan: RunPlan,
        record: RunRecord,
        record_path: pathlib.Path,
        run_dir: pathlib.Path,
        storage_spec: Any,
        reporter: RunReporter,
    ) -> RunResult:
        if self._reports is None:  # once per invocation: a restart keeps what was reported
            self._reports = RunReports.resumed(run_dir / "metrics.jsonl", record, plan)
        info = ClusterInfo(
            trial=TrialInfo(trial_seed=record.seed or 0, hparams=hparams, _config=config.raw),
            latest_checkpoint=record.latest_checkpoint,
        )
        # Resolved before the script's working directory is set: the spec may be relative.
        base = resolve_storage_path(storage_spec)
        attempt = ScriptAttempt(
            info, self._reports, plan, record, record_path, run_dir, base, reporter
        )
        start = f", from checkpoint {record.latest_checkpoint}" if record.latest_checkpoint else ""
        reporter.on_message(f"running {self._command()}{start}")
        # sys.path[0] is the script's folder, or for -m the working directory; what was
        # imported from there is forgotten after each attempt, so a restart imports it afresh.
        with (
            trial_folder(self.path.parent if self.module is None else self.context_dir),
            _as_main(self.path, self.args, self.context_dir),
            _determined_bound(info, attempt.init),
        ):
            try:
                if self.module is None:
                    runpy.run_path(str(self.path), run_name="__main__")
                else:
                    runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    # The script's own traceback: its sys.exit line is the failure's place.
                    raise ScriptExited(
                        f"the script exited with status {exc.code!r}"
                    ).with_traceback(exc.__traceback__) from None
            except SyntaxError as exc:  # a module the script imports
                raise _syntax_error(exc) from exc
            finally:
                attempt.close()
        attempt.collect_garbage()
        return attempt.result()

    def _command(self) -> str:
        if self.module is None:
            return " ".join([str(self.path), *self.args])
        return " ".join(["-m", self.module, *self.args]) + f" ({self.path})"


def _find_module(config: ExperimentConfig, name: str, context_dir: pathlib.Path) -> pathlib.Path:
    """The file ``python3 -m name`` runs from ``context_dir``: ``pkg/mod.py``, or a package's
    ``__main__.py``, found without running any of it; failing that, an installed module."""
    parts = name.split(".")
    base = context_dir.joinpath(*parts)
    looked = [base.with_name(f"{parts[-1]}.py"), base / "__main__.py"]
    if (base / "__init__.py").is_file():  # a package comes before a module of the same name
        looked.reverse()
    top = context_dir / parts[0]
    if top.is_dir() or top.with_name(f"{parts[0]}.py").is_file():
        found = next((path for path in looked if path.is_file()), None)
    else:
        found = _installed_module(name)
    if found is None:
        shown = " or ".join(str(path.relative_to(context_dir)) for path in looked)
        stem = name.removesuffix(".py")
        fix = (
            f"write 'python3 -m {stem}' (a module name, no .py)"
            if stem != name
            else "fix the module name"
        )
        raise config.entrypoint_error(
            f"the entrypoint runs 'python3 -m {name}', but there is no {shown} in "
            f"{context_dir}, nor an installed module {name!r}; pass the folder that holds "
            f"{parts[0]}/ as CONTEXT_DIR (python3 -m imports from the working directory), or "
            f"{fix}"
        )
    return found


def _installed_module(name: str) -> pathlib.Path | None:
    """The file of an installed module (a package: its ``__main__``), as ``runpy`` finds it."""
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(f"{name}.__main__")
    except (ImportError, ValueError):  # a parent that is a module, not a package
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    return pathlib.Path(spec.origin)


@contextlib.contextmanager
def _as_main(path: pathlib.Path, args: list[str], cwd: pathlib.Path) -> Iterator[None]:
    """``sys.argv``, ``sys.path`` and the working directory of ``python3 path ARGS`` run in
    ``cwd`` (sys.path[0], the script's folder, comes from ``trial_folder``)."""
    saved_argv, saved_path, saved_cwd = sys.argv, list(sys.path), os.getcwd()
    sys.argv = [str(path), *args]
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv, sys.path[:] = saved_argv, saved_path


@contextlib.contextmanager
def _determined_bound(info: ClusterInfo, init: Callable[..., Context]) -> Iterator[None]:
    """Inside ``shim.imports.determined_namespace``: point ``determined``'s entry points at this
    run, on the installed package or on the stand-in, and put everything back afterwards."""
    det = sys.modules["determined"]
    core: Any = sys.modules.get("determined.core") or shim.core
    saved_core = sys.modules.get("determined.core")
    if core is shim.core:  # the stand-in: a module of its own, so shim.core stays untouched
        core = types.ModuleType("determined.core")
        core.__dict__.update({name: getattr(shim.core, name) for name in shim.core.__all__})
        sys.modules["determined.core"] = core
    patches = [
        (det, "core", core),
        (det, "get_cluster_info", lambda: info),
        (core, "init", init),
        (core, "DistributedContext", DistributedContext),
    ]
    saved = [(obj, name, obj.__dict__.get(name, _MISSING)) for obj, name, _ in patches]
    for obj, name, value in patches:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in reversed(saved):
            if value is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        if saved_core is None:
            sys.modules.pop("determined.core", None)
        else:
            sys.modules["determined.core"] = saved_core


def _syntax_error(exc: SyntaxError) -> TrialImportError:
    return TrialImportError(
        f"{exc.filename}:{exc.lineno}: syntax error in the script: {exc.msg}; fix it and run again"
    )
