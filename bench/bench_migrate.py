"""Benchmark migrate-trial's codemod: throughput against libcst's parse-and-print floor.

Both sides read the same 1,000 generated legacy trial files (those of ``bench_lint.py``) in the
same run, single process: the floor is ``libcst.parse_module(text).code``; the codemod is
``migrate.migrate_source`` (parse, find the trial, rewrite it, fix the imports, add ``main()``,
print). Prints the numbers and exits 1 if the codemod takes more than 2.0x the floor.
Run: ``python bench/bench_migrate.py [--files N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import libcst as cst

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lint import trial_source

from migrate import migrate_source


def floor(text: str) -> str:
    return cst.parse_module(text).code


def codemod(text: str) -> str:
    return migrate_source(text, path="model_def.py", config_name="const.yaml").code


def timed(fn: Callable[[str], str], files: list[Path], repeat: int) -> float:
    """The best of ``repeat`` passes over every file (reading and decoding included)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for path in files:
            fn(path.read_bytes().decode("utf-8"))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000, help="trial files to generate")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best one counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"trial_{i:04d}.py" for i in range(args.files)]
        for i, path in enumerate(files):
            path.write_text(trial_source(i))
        migrated = codemod(files[0].read_text())
        assert "def main() -> None:" in migrated and "LightningAdapter)" not in migrated
        base = timed(floor, files, args.repeat)
        ours = timed(codemod, files, args.repeat)
    n = len(files)
    print(f"files: {n} generated legacy trials (bench_lint.py's), single process")
    print(f"libcst parse_module + .code: {base:.2f} s, {n / base:.0f} files/s")
    print(f"migrate_source:              {ours:.2f} s, {n / ours:.0f} files/s")
    ratio = ours / base
    print(f"ratio codemod / floor: {ratio:.2f}x (target <= 2.0x)")
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
