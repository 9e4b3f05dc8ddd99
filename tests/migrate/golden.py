"""Golden trees: ``fixtures/<case>/expected/`` is the whole folder after ``migrate-trial``.

Every file of the migrated folder is stored, the untouched ones too (the LightningModule files,
byte for byte), so that a diff of the trees also proves what was left alone. ``core_loop.py``
follows its template: when the template changes, regenerate (never done by a plain test run)::

    python -m tests.migrate.golden --write
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = ("mnist_like", "gan", "lr_schedulers", "dropout", "legacy_api", "mixed_precision")
_SKIPPED = ("expected", "__pycache__")


def migrate_trial() -> list[str]:
    """The installed console script (what users run), else the same entry point."""
    script = Path(sys.executable).with_name("migrate-trial")
    if script.exists():
        return [str(script)]
    code = "import sys; from migrate.cli import migrate_main; sys.exit(migrate_main())"
    return [sys.executable, "-c", code]


def copy_case(case: str, dest: Path) -> Path:
    """The legacy fixture folder, without its expected/ tree, at ``dest``."""
    shutil.copytree(REPO / "fixtures" / case, dest, ignore=shutil.ignore_patterns(*_SKIPPED))
    return dest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*migrate_trial(), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (caches left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def write(case: str) -> None:
    """Regenerate ``fixtures/<case>/expected/`` from the current codemod and template."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_case(case, Path(tmp) / case)
        done = run_cli(str(copy))
        if done.returncode not in (0, 1):
            raise SystemExit(f"migrate-trial failed on {case}:\n{done.stderr}")
        expected = REPO / "fixtures" / case / "expected"
        shutil.rmtree(expected, ignore_errors=True)
        shutil.copytree(copy, expected, ignore=shutil.ignore_patterns("__pycache__"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the expected/ trees")
    parser.add_argument("cases", nargs="*", default=list(CASES), help="default: all")
    args = parser.parse_args()
    if not args.write:
        parser.error("pass --write to regenerate the golden trees")
    for case in args.cases:
        write(case)
        print(f"wrote fixtures/{case}/expected/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
