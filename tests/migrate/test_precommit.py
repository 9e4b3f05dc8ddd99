"""The lint-trial hook run by the real pre-commit tool, installed the way users install it: the
base package only, so the hook's environment is built in seconds and holds no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_cli import CLEAN, MODEL

REPO = Path(__file__).resolve().parents[2]


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=lint-trial tests", "-c", "user.email=tests@example.invalid"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def copy_working_tree(dest: Path) -> None:
    """Copy the working tree's files that git does not ignore (tracked or new) into ``dest``."""
    listed = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _hook_repo(dest: Path) -> str:
    """A git repo holding the working tree's files, committed; returns HEAD."""
    copy_working_tree(dest)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "hook repo snapshot")
    return _git(dest, "rev-parse", "HEAD")


def _environment(tmp_path: Path) -> dict[str, str]:
    # No constraint on torch: the hook installs the base package, which must not pull it at all.
    env = dict(os.environ)
    env.update(
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        NO_COLOR="1",
    )
    for name in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    return env


def _pre_commit(
    project: Path, env: dict[str, str], *files: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--color", "never", "--files", *files],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_pre_commit_hook_flags_unsupported_hooks_in_the_files_it_is_given(
    tmp_path: Path,
) -> None:
    hooks = tmp_path / "hook-repo"
    hooks.mkdir()
    rev = _hook_repo(hooks)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "model.py").write_text(MODEL)
    (project / "src" / "clean.py").write_text(CLEAN)
    (project / "notes.txt").write_text(MODEL)  # not Python: pre-commit must not pass it on
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: lint-trial\n"
    )
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    env = _environment(tmp_path)

    # The first run builds the hook's environment: that is the install users wait for.
    started = time.monotonic()
    failed = _pre_commit(project, env, "src/model.py", "src/clean.py", "notes.txt")
    first_run = time.monotonic() - started
    print(f"lint-trial hook: first pre-commit run (builds the hook env) took {first_run:.1f} s")
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "src/model.py:8:9: LA101 `test_step` is ignored" in output
    assert "src/model.py:11:9: LA304" in output
    assert "notes.txt" not in output
    assert "lint-trial: 2 findings in 1 file (2 files checked)" in output

    passed = _pre_commit(project, env, "src/clean.py")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout

    envs = tmp_path / "pre-commit-home"
    installed = {p.name for p in envs.glob("repo*/py_env-*/lib/*/site-packages/*")}
    assert any(name.startswith("lightning_adapter_compat-") for name in installed), installed
    heavy = ("torch", "pytorch_lightning", "lightning", "numpy", "tensorboard", "nvidia")
    assert not {name for name in installed if name.split("-")[0].lower() in heavy}, installed
    assert first_run < 120, f"the hook's first install took {first_run:.0f} s"
