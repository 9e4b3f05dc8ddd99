"""migrate-trial on the command line: in place, --diff, --check, --out, --report, --jobs, and
every way a trial folder can be refused (exit 2, path:line, nothing of the trial written)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.cli import migrate_main
from migrate.specialise import Uses, specialise

from .golden import copy_case, tree

TRIAL = """\
from determined.pytorch import DataLoader
from determined.pytorch.lightning import LightningAdapter


class Trial(LightningAdapter):
    def __init__(self, context) -> None:
        super().__init__(context, lightning_module=None)

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader([1, 2], batch_size=context.get_per_slot_batch_size())
"""
CONFIG = """\
name: t  # kept
entrypoint: model_def:Trial
hyperparameters:
  global_batch_size: 2
searcher:
  name: single
  metric: val_loss
  max_length:
    batches: 4
"""


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        capsys.readouterr()
        code = migrate_main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


Cli = Callable[..., Run]


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    folder = tmp_path / "trial"
    folder.mkdir()
    (folder / "model_def.py").write_text(TRIAL)
    (folder / "const.yaml").write_text(CONFIG)
    (folder / "notes.py").write_text("# not a trial\nx = 1\n")
    return folder


def test_in_place_migrates_the_trial_its_config_and_writes_core_loop(cli: Cli, trial: Path) -> None:
    run = cli(str(trial))
    assert run.code == 0, run.err
    assert "class Trial:\n" in (trial / "model_def.py").read_text()
    assert (
        (trial / "const.yaml")
        .read_text()
        .startswith("name: t  # kept\nentrypoint: python3 model_def.py --max-length batches=4")
    )
    # No module class to read (lightning_module=None): the template for any module, in full
    # precision (the trial asks for no other).
    assert (trial / "core_loop.py").read_bytes() == specialise(Uses(mixed_precision=False))
    assert (trial / "notes.py").read_text() == "# not a trial\nx = 1\n"
    assert (
        f"migrate-trial: migrated {trial / 'model_def.py'} (and const.yaml, core_loop.py)"
        in run.err
    )
    assert run.out == ""


def test_diff_prints_a_unified_diff_and_writes_nothing(cli: Cli, trial: Path) -> None:
    before = tree(trial)
    run = cli("--diff", str(trial))
    assert run.code == 0
    assert f"--- {trial / 'model_def.py'}\n+++ {trial / 'model_def.py'}\n" in run.out
    assert "-class Trial(LightningAdapter):\n+class Trial:\n" in run.out
    assert f"--- /dev/null\n+++ {trial / 'core_loop.py'}\n" in run.out
    assert "+entrypoint: python3 model_def.py" in run.out
    assert tree(trial) == before


def test_check_exits_1_when_something_would_change_and_0_once_migrated(
    cli: Cli, trial: Path
) -> None:
    before = tree(trial)
    run = cli("--check", str(trial))
    assert (run.code, tree(trial)) == (1, before)
    assert "would migrate" in run.err
    assert cli(str(trial)).code == 0
    again = cli("--check", str(trial))
    assert again.code == 0
    assert "nothing to migrate" in again.err


def test_out_writes_a_migrated_copy_and_leaves_the_source_alone(
    cli: Cli, trial: Path, tmp_path: Path
) -> None:
    before = tree(trial)
    out = tmp_path / "out"
    run = cli("--out", str(out), str(trial))
    assert run.code == 0, run.err
    assert tree(trial) == before
    copy = tree(out)
    assert set(copy) == {*before, "core_loop.py"}
    assert copy["notes.py"] == before["notes.py"]
    assert b"class Trial:\n" in copy["model_def.py"]
    assert f"migrated {out / 'model_def.py'}" in run.err


def test_out_refuses_a_folder_that_is_not_empty(cli: Cli, trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    run = cli("--out", str(out), str(trial))
    assert run.code == 2
    assert "the folder is not empty" in run.err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize(
    "extra", [["--diff"], ["--check"], ["--jobs", "-1"]], ids=["diff", "check", "jobs"]
)
def test_conflicting_or_bad_flags_are_usage_errors(
    cli: Cli, trial: Path, tmp_path: Path, extra: list[str]
) -> None:
    args = (
        [*extra, str(trial)]
        if extra[0] == "--jobs"
        else ["--out", str(tmp_path / "o"), *extra, str(trial)]
    )
    run = cli(*args)
    assert run.code == 2
    assert run.err.startswith("migrate-trial: error: ")
    assert not (tmp_path / "o").exists()


def test_report_lists_changes_todos_with_path_line_config_changes_and_next_steps(
    cli: Cli, tmp_path: Path
) -> None:
    folder = copy_case("legacy_api", tmp_path / "legacy_api")
    report = tmp_path / "report.md"
    run = cli("--report", str(report), str(folder))
    assert run.code == 1  # TODOs left
    text = report.read_text()
    assert text.startswith("# migrate-trial report\n\n1 trial(s) migrated, 4 TODO(s) left")
    assert f"## `{folder / 'model_def.py'}`: `LegacyAPITrial`" in text
    assert f"- `{folder / 'model_def.py'}:" in text and " LA310 `self.dm.size()`" in text
    assert f"Config `{folder / 'const.yaml'}`:" in text
    assert "`entrypoint`" in text
    assert (
        "run `run-trial const.yaml` to check it locally, then `det experiment create const.yaml .`"
        in text
    )
    assert f"{folder / 'model_def.py'}:" in run.err and "LA311" in run.err


def test_jobs_give_the_same_result_as_one_process(cli: Cli, tmp_path: Path) -> None:
    results = []
    for jobs in ("1", "2"):
        root = tmp_path / jobs
        for case in ("gan", "dropout", "mnist_like"):
            copy_case(case, root / case)
        run = cli("--jobs", jobs, str(root))
        results.append((run.code, run.err.replace(str(root), "ROOT"), tree(root)))
    assert results[0] == results[1]


def test_a_syntax_error_exits_2_with_path_line_col_and_nothing_is_written(
    cli: Cli, trial: Path
) -> None:
    (trial / "model_def.py").write_text(TRIAL + "def broken(:\n")
    before = tree(trial)
    run = cli(str(trial))
    assert run.code == 2
    assert f"migrate-trial: error: {trial / 'model_def.py'}:11:12: syntax error" in run.err
    assert tree(trial) == before


def test_two_trials_in_one_file_exit_2_naming_the_second_and_the_fix(cli: Cli, trial: Path) -> None:
    (trial / "model_def.py").write_text(TRIAL + "\n\nclass Other(LightningAdapter):\n    pass\n")
    before = tree(trial)
    run = cli(str(trial))
    assert run.code == 2
    assert f"{trial / 'model_def.py'}:13:7: a second LightningAdapter trial `Other`" in run.err
    assert "split the file" in run.err
    assert tree(trial) == before


def test_a_trial_no_config_names_exits_2_saying_which_config_is_expected(
    cli: Cli, trial: Path
) -> None:
    (trial / "const.yaml").unlink()
    before = tree(trial)
    run = cli(str(trial))
    assert run.code == 2
    assert f"{trial / 'model_def.py'}:5:7: no experiment config names the trial `Trial`" in run.err
    assert "`entrypoint: model_def:Trial`" in run.err
    assert tree(trial) == before


def test_a_read_only_trial_file_exits_2_and_nothing_of_the_trial_is_written(
    cli: Cli, trial: Path
) -> None:
    script = trial / "model_def.py"
    script.chmod(0o444)
    before = tree(trial)
    run = cli(str(trial))
    assert run.code == 2
    assert f"{script}: the file is read-only; make it writable" in run.err
    assert tree(trial) == before


def test_a_core_loop_of_the_users_own_is_never_overwritten(cli: Cli, trial: Path) -> None:
    (trial / "core_loop.py").write_text("# mine\n")
    before = tree(trial)
    run = cli(str(trial))
    assert run.code == 2
    assert "core_loop.py exists and is not the loop migrate-trial writes" in run.err
    assert tree(trial) == before


def test_a_missing_path_exits_2(cli: Cli, tmp_path: Path) -> None:
    run = cli(str(tmp_path / "nope"))
    assert run.code == 2
    assert f"{tmp_path / 'nope'}: no such file or folder" in run.err


def test_encoding_line_endings_and_mode_of_the_trial_file_are_kept(cli: Cli, trial: Path) -> None:
    script = trial / "model_def.py"
    text = "# -*- coding: latin-1 -*-\n# caf\u00e9\n" + TRIAL
    script.write_bytes(text.replace("\n", "\r\n").encode("latin-1"))
    script.chmod(0o750)
    assert cli(str(trial)).code == 0
    data = script.read_bytes()
    assert data.startswith(b"# -*- coding: latin-1 -*-\r\n# caf\xe9\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o750


def test_todos_left_from_an_earlier_run_are_reported_again_with_exit_1(
    cli: Cli, trial: Path
) -> None:
    (trial / "model_def.py").write_text(
        TRIAL.replace("        super()", "        context.wrap_model(None)\n        super()")
    )
    first = cli(str(trial))
    assert first.code == 1
    again = cli(str(trial))
    assert again.code == 1
    assert f"{trial / 'model_def.py'}:11:9: LA403 `context.wrap_model()`" in again.err
    assert (trial / "model_def.py").read_text().count("TODO(migrate-trial") == 1


def test_list_rules_prints_migrate_trials_own_codes(cli: Cli) -> None:
    run = cli("--list-rules")
    assert run.code == 0
    assert [line.split()[0] for line in run.out.splitlines() if line.startswith("LA")] == [
        "LA420",
        "LA421",
        "LA422",
        "LA423",
    ]
