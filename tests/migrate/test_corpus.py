"""migrate-trial over a corpus of third-party-style code (``tests/migrate/corpus/``): it never
crashes, writes only trials and the configs that name them, and a second run changes nothing.

Corpus files are stored as ``*.py.txt`` so that the repository's own ruff and formatter leave
them alone (some are broken or odd on purpose: a syntax error, latin-1, CRLF, tabs); the test
copies them to ``*.py``. Each folder is one case.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from .golden import run_cli, tree

CORPUS = Path(__file__).with_name("corpus")
# Files the migration rewrites (with the config beside each); every other file stays as it was.
MIGRATED = {"classic", "star_import", "odd_trial", "latin1", "crlf", "tabs", "typealias"}
TODO_ONLY = {"dynamic"}  # a computed base class: a TODO above it, nothing else
# The message every refused file gets: path, maybe line and column, the reason.
_ERROR = re.compile(r"^migrate-trial: error: \S+?(:\d+:\d+)?: .+$")


def copy_corpus(dest: Path) -> Path:
    shutil.copytree(CORPUS, dest)
    for path in dest.rglob("*.py.txt"):
        path.rename(path.with_name(path.name.removesuffix(".txt")))
    return dest


def assert_no_crash(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    for line in stderr.splitlines():
        if line.startswith("migrate-trial: error:"):
            assert _ERROR.match(line), line


def test_check_over_the_corpus_reports_and_never_crashes(tmp_path: Path) -> None:
    root = copy_corpus(tmp_path / "corpus")
    before = tree(root)
    done = run_cli("--check", str(root))
    assert done.returncode == 2, done.stderr  # the broken and dynamic-alias cases
    assert_no_crash(done.stderr)
    assert f"{root / 'broken' / 'model_def.py'}:5:" in done.stderr
    assert tree(root) == before


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir() if p.is_dir()))
def test_each_case_alone_exits_0_1_or_2_with_messages(tmp_path: Path, case: str) -> None:
    root = copy_corpus(tmp_path / "corpus")
    done = run_cli("--check", str(root / case))
    assert done.returncode in (0, 1, 2)
    assert_no_crash(done.stderr)
    if case in MIGRATED:
        assert done.returncode == 1 and "would migrate" in done.stderr


def test_a_run_in_place_leaves_every_other_file_byte_identical(tmp_path: Path) -> None:
    root = copy_corpus(tmp_path / "corpus")
    before = tree(root)
    done = run_cli(str(root))
    assert_no_crash(done.stderr)
    after = tree(root)
    changed = {name for name in before if after.get(name) != before[name]}
    expected = {f"{case}/{name}" for case in MIGRATED for name in ("model_def.py", "const.yaml")}
    assert changed == expected | {f"{case}/model_def.py" for case in TODO_ONLY}
    added = set(after) - set(before)
    assert added == {f"{case}/core_loop.py" for case in MIGRATED}
    for name in added:  # the loop written for each trial's module
        compile(after[name], name, "exec")
    for case in MIGRATED - ({"typealias"} if sys.version_info < (3, 12) else set()):
        script = root / case / "model_def.py"
        compile(script.read_bytes(), str(script), "exec")
    assert b"\r\n" in after["crlf/model_def.py"]
    assert b"\n" not in after["crlf/model_def.py"].replace(b"\r\n", b"")
    assert after["latin1/model_def.py"].startswith(b"# -*- coding: latin-1 -*-\n# Auteur: Ren\xe9")
    assert b'\t\tself.precision = "bf16"\n' in after["tabs/model_def.py"]
    star = after["star_import/model_def.py"]
    assert b"class StarTrial:\n" in star and b"torch.utils.data.DataLoader(range(4)" in star
    again = run_cli(str(root))
    assert_no_crash(again.stderr)
    assert tree(root) == after, "a second run must change nothing"
