"""A second virtualenv with Lightning 1.9.5: the oracle for legacy 1.x modules.

Built once at ``<repo>/.venv-pl19`` from the package registry (torch from the wheel on disk),
reused while its marker records the same recipe, rebuilt otherwise. A file lock keeps two
processes from building it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from shim.errors import ShimError

__all__ = ["PL19_STEPS", "REPO", "EnvBuild", "Pl19EnvError", "ensure_venv", "pl19_python"]

REPO = pathlib.Path(__file__).resolve().parents[2]

# Each step is one `pip install`. Torch first and pinned in the next step, so the resolver never
# swaps the CPU wheel on disk for a CUDA one. Lightning 1.9 imports pkg_resources, which newer
# setuptools dropped; torch 2.13 asks for setuptools>=77 but runs with 69, hence --no-deps.
PL19_STEPS: tuple[tuple[str, ...], ...] = (
    ("torch==2.13.0",),
    (
        "torch==2.13.0",
        "pytorch-lightning==1.9.5",
        "torchmetrics>=0.11,<1.0",
        "pyyaml",
        "rich",
        "libcst",
        "tensorboard",
        "numpy",
        # The Core API scripts that migrate-trial writes run on the real package's context.
        "determined==0.38.1",
    ),
    ("--no-deps", "setuptools<70"),
    ("--no-deps", "--editable", str(REPO)),
)

_MARKER = "pl19-recipe.json"
_LOCK = ".build.lock"
_TAIL_LINES = 40


class Pl19EnvError(ShimError):
    """The Lightning 1.9 virtualenv could not be built."""


@dataclass(frozen=True)
class EnvBuild:
    python: pathlib.Path
    built: bool  # False when an existing environment with the same recipe was reused


def pl19_python() -> pathlib.Path:
    """The python of ``<repo>/.venv-pl19`` (pytorch-lightning 1.9.5 and this repo), built on
    first use."""
    return ensure_venv(REPO / ".venv-pl19", PL19_STEPS).python


def ensure_venv(venv_dir: pathlib.Path, steps: Sequence[Sequence[str]]) -> EnvBuild:
    """Create ``venv_dir`` and run each step as ``pip install <step>``, unless its marker already
    records these steps for this interpreter."""
    venv_dir = pathlib.Path(venv_dir).resolve()
    recipe = _recipe(venv_dir, steps)
    python = venv_dir / "bin" / "python"
    with _locked(venv_dir):
        if python.exists() and _read_marker(venv_dir) == recipe:
            return EnvBuild(python, built=False)
        _wipe(venv_dir)
        _run(venv_dir, "create the virtualenv", [sys.executable, "-m", "venv", str(venv_dir)])
        for step in steps:
            pip = [str(python), "-m", "pip", "install", "--progress-bar", "off", "--no-input"]
            _run(venv_dir, f"pip install {' '.join(step)}", [*pip, *step])
        # Written last: an interrupted build has no marker and is rebuilt next time.
        (venv_dir / _MARKER).write_text(json.dumps(recipe, indent=1))
        return EnvBuild(python, built=True)


def _recipe(venv_dir: pathlib.Path, steps: Sequence[Sequence[str]]) -> dict[str, object]:
    return {
        # Resolved, so `python` and `python3` of one virtualenv (or of several) count as one.
        "interpreter": os.path.realpath(sys.executable),
        "python_version": list(sys.version_info[:3]),
        "venv": str(venv_dir),
        "steps": [list(step) for step in steps],
    }


def _read_marker(venv_dir: pathlib.Path) -> object:
    try:
        return json.loads((venv_dir / _MARKER).read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(venv_dir: pathlib.Path) -> Iterator[None]:
    # The lock lives inside the folder and survives rebuilds (_wipe keeps it), so every builder
    # locks the same file.
    venv_dir.mkdir(parents=True, exist_ok=True)
    with open(venv_dir / _LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wipe(venv_dir: pathlib.Path) -> None:
    for entry in venv_dir.iterdir():
        if entry.name == _LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _run(venv_dir: pathlib.Path, what: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    tail = "\n".join(lines[-_TAIL_LINES:])
    raise Pl19EnvError(
        f"building the Lightning 1.9 environment at {venv_dir} failed to {what} "
        f"(exit {done.returncode}). Fix the cause below and rerun; the next use rebuilds it.\n"
        f"{tail}"
    )
