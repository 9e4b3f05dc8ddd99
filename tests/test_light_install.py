"""The base package is light: lint-trial and migrate-trial work without torch or Lightning, and
run-trial without its ``run`` extra exits 2 saying what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shim.requirements import RUNTIME_MODULES, missing_modules, require_runtime, runtime_message

from .migrate.test_cli import MODEL
from .migrate.test_precommit import copy_working_tree

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pytorch_lightning", "lightning", "numpy", "tensorboard", "determined")


def _clean_env() -> dict[str, str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", NO_COLOR="1")
    for name in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain venv (no system site-packages) with the working tree installed without extras,
    its dependencies resolved from the package index (pip's cache makes this quick); its bin/."""
    root = tmp_path_factory.mktemp("light-install")
    source = root / "source"
    copy_working_tree(source)  # build from a copy, so nothing is written into the checkout
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", source],
        check=True,
        env=_clean_env(),
        timeout=600,
    )
    return venv / "bin"


def _run(command: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_the_base_install_has_neither_torch_nor_lightning(base_venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util\n"
        f"print([m for m in {HEAVY!r} if importlib.util.find_spec(m) is not None])"
    )
    done = _run([base_venv / "python", "-c", probe], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    failed = _run([base_venv / "python", "-c", "import torch"], tmp_path)
    assert failed.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in failed.stderr


@pytest.mark.slow
def test_lint_trial_reports_findings_from_the_base_install(base_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(MODEL)
    done = _run([base_venv / "lint-trial", "model.py"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert [line.split(" ")[:2] for line in done.stdout.splitlines()] == [
        ["model.py:8:9:", "LA101"],
        ["model.py:11:9:", "LA304"],
    ]
    assert done.stderr.strip() == "lint-trial: 2 findings in 1 file (1 file checked)"


@pytest.mark.slow
def test_migrate_trial_behaves_in_the_base_install_as_in_the_full_one(
    base_venv: Path, tmp_path: Path
) -> None:
    light = _run([base_venv / "migrate-trial", "--help"], tmp_path)
    full = _run([Path(sys.executable).with_name("migrate-trial"), "--help"], tmp_path)
    assert "Traceback" not in light.stderr
    assert (light.returncode, light.stdout, light.stderr) == (
        full.returncode,
        full.stdout,
        full.stderr,
    )


@pytest.mark.slow
def test_run_trial_without_the_runtime_exits_2_naming_what_to_install(
    base_venv: Path, tmp_path: Path
) -> None:
    done = _run(
        [base_venv / "run-trial", REPO / "fixtures" / "mnist_like" / "const.yaml"], tmp_path
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == runtime_message(list(RUNTIME_MODULES)) + "\n"
    assert "pip install 'lightning-adapter-compat[run]'" in done.stderr
    assert "--index-url https://download.pytorch.org/whl/cpu" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written: no run folder, no log


def test_missing_modules_names_only_those_that_cannot_be_found() -> None:
    assert missing_modules(("json", "no_such_module_for_run_trial", "torch")) == [
        "no_such_module_for_run_trial"
    ]


def test_a_missing_runtime_module_exits_2_with_the_install_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        require_runtime(("torch", "no_such_module_for_run_trial"))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "run-trial: error: the runtime is not installed "
        "(missing modules: no_such_module_for_run_trial); "
        "install it with: pip install 'lightning-adapter-compat[run]'"
    )


def test_the_installed_runtime_passes_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    require_runtime()
    assert capsys.readouterr().err == ""


def test_the_run_trial_entry_point_imports_nothing_heavy_before_the_check(
    tmp_path: Path,
) -> None:
    code = (
        "import sys, shim.cli, shim.requirements\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
