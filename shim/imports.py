"""Make a legacy trial's ``determined`` imports resolve while ``run-trial`` runs it.

``determined.pytorch.lightning`` (removed from Determined in 0.24) always comes from the shim.
When Determined is installed, everything else stays real (its ``DataLoader`` is accepted by the
runner); when it is not, ``determined``, ``determined.core`` and ``determined.pytorch`` resolve to
``shim.core`` and ``shim.pytorch``. Everything is undone on exit, and modules imported from the
trial's folder are forgotten, so several trials can run in one process.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pathlib
import sys
import types
from collections.abc import Iterator
from typing import Any

from shim.errors import UserInputError
from shim.failures import trial_frame

__all__ = ["TrialImportError", "determined_namespace", "load_entrypoint"]

_ALIASES = ("determined", "determined.core", "determined.pytorch", "determined.pytorch.lightning")


class TrialImportError(UserInputError):
    """The entrypoint could not be imported or is not a trial class: bad input (exit 2), since
    importing again fails the same way."""


@contextlib.contextmanager
def determined_namespace(cluster_info: Any = None) -> Iterator[None]:
    import shim.core
    import shim.lightning
    import shim.pytorch

    saved = {name: sys.modules.get(name) for name in _ALIASES}
    real = importlib.util.find_spec("determined") is not None and not _is_shim(saved["determined"])
    try:
        if real:
            import determined.pytorch as det_pytorch

            det_pytorch.lightning = shim.lightning  # type: ignore[attr-defined,unused-ignore]
        else:
            root = types.ModuleType("determined")
            root.__path__ = []  # a package, so submodule imports work
            root.__shim__ = True  # type: ignore[attr-defined]
            root.core = shim.core  # type: ignore[attr-defined]
            root.InvalidHP = shim.core.InvalidHP  # type: ignore[attr-defined]
            root.get_cluster_info = lambda: cluster_info  # type: ignore[attr-defined]
            pytorch = types.ModuleType("determined.pytorch")
            pytorch.__path__ = []
            for name in shim.pytorch.__all__:
                setattr(pytorch, name, getattr(shim.pytorch, name))
            pytorch.lightning = shim.lightning  # type: ignore[attr-defined]
            root.pytorch = pytorch  # type: ignore[attr-defined]
            sys.modules.update(
                {"determined": root, "determined.core": shim.core, "determined.pytorch": pytorch}
            )
        sys.modules["determined.pytorch.lightning"] = shim.lightning
        yield
    finally:
        if real and "determined.pytorch" in sys.modules:
            with contextlib.suppress(AttributeError):
                del sys.modules["determined.pytorch"].lightning
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _is_shim(module: Any) -> bool:
    return module is not None and getattr(module, "__shim__", False)


@contextlib.contextmanager
def trial_folder(context_dir: pathlib.Path) -> Iterator[None]:
    """Import from ``context_dir`` (as Determined does), then forget what came from there."""
    folder = str(context_dir.resolve())
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        # Decided before sys.path changes: a namespace package's __path__ is recomputed from it.
        gone = [
            name
            for name in set(sys.modules) - before
            if _imported_from(sys.modules[name], folder + os.sep)
        ]
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        for name in gone:
            del sys.modules[name]


def _imported_from(module: Any, folder: str) -> bool:
    file = getattr(module, "__file__", None)
    # A namespace package (a folder without __init__.py) has no file, only its folders.
    places = [file] if file else list(getattr(module, "__path__", None) or ())
    return any(str(place).startswith(folder) for place in places)


def load_entrypoint(entrypoint: str, context_dir: pathlib.Path) -> type:
    """The trial class named by ``module:Class`` (dotted attributes allowed) in ``context_dir``."""
    module_name, _, attr_path = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise TrialImportError(
            f"{exc.filename}:{exc.lineno}: syntax error in the trial: {exc.msg}; fix it and run "
            "again"
        ) from exc
    except ModuleNotFoundError as exc:
        if exc.name == module_name.split(".")[0] or exc.name == module_name:
            raise TrialImportError(
                f"entrypoint {entrypoint!r}: no module {module_name!r} in {context_dir}; pass "
                "the folder that holds the trial as CONTEXT_DIR"
            ) from exc
        where = trial_frame(exc, context_dir)
        raise TrialImportError(
            (f"{where}: " if where else "")
            + f"entrypoint {entrypoint!r}: importing {module_name!r} needs {exc.name!r}, which "
            "is not installed; install it in this environment"
        ) from exc
    except (Exception, SystemExit) as exc:
        where = trial_frame(exc, context_dir) or f"entrypoint {entrypoint!r}"
        raise TrialImportError(
            f"{where}: importing the trial ({module_name!r}) raised {type(exc).__name__}: "
            f"{exc}; fix it and run again"
        ) from exc
    target: Any = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            classes = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, type) and v.__module__ == module.__name__
            )
            raise TrialImportError(
                f"{getattr(module, '__file__', module_name)}: entrypoint {entrypoint!r} names "
                f"{attr_path!r}, which is not defined there (classes defined: {classes})"
            )
        target = getattr(target, part)
    if not isinstance(target, type) or not hasattr(target, "train_batch"):
        raise TrialImportError(
            f"entrypoint {entrypoint!r} is not a trial class (a LightningAdapter or PyTorchTrial "
            "subclass)"
        )
    return target
