"""What ``run-trial`` needs beyond the base package, checked before anything imports it.

The base distribution is light (``lint-trial`` and ``migrate-trial`` need neither torch nor
Lightning, and a pre-commit hook should not install a CUDA build to run a linter); the runtime
is the ``run`` extra. This module imports nothing heavy: it only asks whether the modules can be
found, so a missing runtime is one line naming what to install rather than a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["RUNTIME_MODULES", "missing_modules", "require_runtime", "runtime_message"]

# The top-level modules of the ``run`` extra's distributions (torch, pytorch-lightning,
# tensorboard, numpy).
RUNTIME_MODULES = ("torch", "pytorch_lightning", "tensorboard", "numpy")

_INSTALL = "pip install 'lightning-adapter-compat[run]'"
_CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def missing_modules(modules: Sequence[str] = RUNTIME_MODULES) -> list[str]:
    """The modules of ``modules`` that cannot be imported, found without importing them."""
    return [
        name
        for name in modules
        if name not in sys.modules and importlib.util.find_spec(name) is None
    ]


def runtime_message(missing: Sequence[str]) -> str:
    return (
        f"run-trial: error: the runtime is not installed (missing modules: {', '.join(missing)}); "
        f"install it with: {_INSTALL} (on a CPU-only machine, install torch from the CPU index "
        f"first: {_CPU_TORCH})"
    )


def require_runtime(modules: Sequence[str] = RUNTIME_MODULES) -> None:
    """Exit 2 with one line on stderr naming what to install when any of ``modules`` is missing:
    a set-up the user can fix, not a failed trial."""
    missing = missing_modules(modules)
    if missing:
        print(runtime_message(missing), file=sys.stderr)
        raise SystemExit(2)
