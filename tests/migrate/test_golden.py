"""The golden trees: ``migrate-trial`` (the console script) on a copy of each legacy fixture gives
``fixtures/<case>/expected/`` byte for byte (how those trees are kept and regenerated:
``tests/migrate/golden.py``). The migrated scripts compile, pass ruff, and migrate to themselves.
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .golden import CASES, REPO, copy_case, run_cli, tree


@pytest.fixture(params=CASES)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    case = str(request.param)
    copy = copy_case(case, tmp_path / case)
    done = run_cli(str(copy))
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    return case, copy


def _diff(expected: dict[str, bytes], got: dict[str, bytes]) -> str:
    lines: list[str] = []
    for name in sorted(set(expected) | set(got)):
        old, new = expected.get(name), got.get(name)
        if old == new:
            continue
        lines.extend(
            difflib.unified_diff(
                (old or b"").decode(errors="replace").splitlines(),
                (new or b"").decode(errors="replace").splitlines(),
                f"expected/{name}",
                f"migrated/{name}",
                lineterm="",
            )
        )
    return "\n".join(lines)


def test_the_migrated_folder_equals_the_expected_tree(migrated: tuple[str, Path]) -> None:
    case, copy = migrated
    # core_loop.py included: the template written for this fixture's module.
    expected = tree(REPO / "fixtures" / case / "expected")
    got = tree(copy)
    assert got == expected, (
        f"{case}: the migrated tree differs from fixtures/{case}/expected/ (if the change is "
        f"intended, regenerate: python -m tests.migrate.golden --write {case})\n"
        + _diff(expected, got)
    )


def test_only_the_trial_and_its_config_change_and_core_loop_is_added(
    migrated: tuple[str, Path],
) -> None:
    case, copy = migrated
    before = tree(REPO / "fixtures" / case)
    before = {k: v for k, v in before.items() if not k.startswith("expected/")}
    after = tree(copy)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"model_def.py", "const.yaml"}
    assert set(after) - set(before) == {"core_loop.py"}


def test_the_migrated_script_compiles_and_passes_ruff(migrated: tuple[str, Path]) -> None:
    _, copy = migrated
    for name in ("model_def.py", "core_loop.py"):
        compile((copy / name).read_text(), name, "exec")
    # The folder is its own project: its modules (core_loop, the LightningModule files) are
    # first-party, as they are for the user who migrates it.
    local = sorted(p.stem for p in copy.glob("*.py"))
    command = [
        sys.executable, "-m", "ruff", "check", "--no-cache",
        "--config", str(REPO / "pyproject.toml"),
        "--config", f"lint.isort.known-first-party = {local!r}",
        "model_def.py", "core_loop.py",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_second_run_changes_nothing(migrated: tuple[str, Path]) -> None:
    case, copy = migrated
    first = tree(copy)
    again = run_cli("--check", str(copy))
    expected_code = 1 if case == "legacy_api" else 0  # its TODOs are still there
    assert again.returncode == expected_code, again.stderr
    assert "nothing to migrate" in again.stderr
    run_cli(str(copy))
    assert tree(copy) == first


def test_the_golden_trees_are_not_regenerated_without_the_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.migrate.golden"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "pass --write" in done.stderr


def test_every_case_has_an_expected_tree() -> None:
    for case in CASES:
        assert (REPO / "fixtures" / case / "expected" / "model_def.py").is_file(), case
    assert shutil.which("ruff") or (Path(sys.executable).parent / "ruff").exists()
