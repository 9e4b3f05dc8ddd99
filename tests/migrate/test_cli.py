"""lint-trial on the command line: output formats, selection, exit codes, files that fail."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from migrate.cli import lint_main, migrate_main
from shim.hooks import rules_by_code

from .conftest import CliRun

Cli = Callable[..., CliRun]

MODEL = (
    "import pytorch_lightning as pl\n\n\n"
    "class Model(pl.LightningModule):\n"
    "    def training_step(self, batch, batch_idx):\n"
    "        return batch\n\n"
    "    def test_step(self, batch, batch_idx):\n"
    "        pass\n\n"
    "    def validation_epoch_end(self, outputs):\n"
    "        pass\n"
)
CLEAN = "import pytorch_lightning as pl\n\n\nclass Model(pl.LightningModule):\n    pass\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one model with two findings and one clean file; the cwd is its root."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text(MODEL)
    (tmp_path / "src" / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_findings_print_as_path_line_col_code_message_sorted_with_exit_1(
    cli: Cli, tree: Path
) -> None:
    run = cli("src")
    assert run.code == 1
    lines = run.out.splitlines()
    assert [line.split(" ")[0:2] for line in lines] == [
        ["src/model.py:8:9:", "LA101"],
        ["src/model.py:11:9:", "LA304"],
    ]
    assert run.err.strip() == "lint-trial: 2 findings in 1 file (2 files checked)"


def test_a_clean_tree_exits_0_with_a_summary_on_stderr_only(cli: Cli, tree: Path) -> None:
    run = cli("src/clean.py")
    assert (run.code, run.out) == (0, "")
    assert run.err.strip() == "lint-trial: no findings (1 file checked)"


def test_json_output_lists_every_field(cli: Cli, tree: Path) -> None:
    run = cli("--output-format", "json", "src/model.py")
    data = json.loads(run.out)
    assert data[0] == {
        "path": "src/model.py",
        "line": 8,
        "column": 9,
        "code": "LA101",
        "message": data[0]["message"],
        "fix": rules_by_code()["LA101"][0].fix,
        "hook": "test_step",
        "status": "ignored",
        "conditional": False,
    }
    assert run.code == 1


def test_github_output_is_workflow_annotations(cli: Cli, tree: Path) -> None:
    run = cli("--output-format=github", "src/model.py")
    first = run.out.splitlines()[0]
    where = "file=src/model.py,line=8,col=9,title=LA101"
    assert first.startswith(f"::warning {where}::LA101 `test_step`")
    assert "%0A" not in first and "Fix: " in first


def test_sarif_output_is_sarif_2_1_0_as_github_code_scanning_reads_it(cli: Cli, tree: Path) -> None:
    run = cli("--output-format", "sarif", "src")
    sarif = json.loads(run.out)
    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    (the_run,) = sarif["runs"]
    driver = the_run["tool"]["driver"]
    assert driver["name"] == "lint-trial"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert rule_ids == list(rules_by_code())
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = the_run["results"]
    assert [r["ruleId"] for r in results] == ["LA101", "LA304"]
    for result in results:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "src/model.py"
        assert location["region"]["startLine"] >= 1 and location["region"]["startColumn"] >= 1
        assert result["message"]["text"]
    assert the_run["invocations"][0]["executionSuccessful"] is True


@pytest.mark.parametrize(
    ("args", "codes"),
    [
        (["--select", "LA1"], ["LA101"]),
        (["--ignore", "LA3"], ["LA101"]),
        (["--select", "LA3,LA1", "--ignore", "LA101"], ["LA304"]),
        (["--ignore", "LA1", "--select", "LA101"], ["LA101"]),
        (["--ignore", "LA1", "--select", "LA"], ["LA304"]),
        (["--select", "la304"], ["LA304"]),
    ],
)
def test_select_and_ignore_take_code_prefixes_and_the_longer_prefix_wins(
    cli: Cli, tree: Path, args: list[str], codes: list[str]
) -> None:
    run = cli(*args, "src/model.py")
    assert [line.split(" ")[1] for line in run.out.splitlines()] == codes


def test_selecting_only_codes_that_are_absent_exits_0(cli: Cli, tree: Path) -> None:
    assert cli("--select", "LA2", "src/model.py").code == 0


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_an_unknown_code_prefix_is_a_usage_error(cli: Cli, tree: Path, option: str) -> None:
    run = cli(option, "XY9", "src")
    assert run.code == 2
    assert "unknown rule code or prefix 'XY9'; see --list-rules" in run.err


def test_list_rules_prints_every_reported_code(cli: Cli) -> None:
    run = cli("--list-rules")
    assert run.code == 0
    listed = [line.split()[0] for line in run.out.splitlines() if line[:2] == "LA"]
    assert listed == list(rules_by_code())
    as_json = json.loads(cli("--list-rules", "--output-format", "json").out)
    assert [rule["code"] for rule in as_json] == listed


def test_no_paths_is_a_usage_error(cli: Cli) -> None:
    run = cli()
    assert (run.code, "no paths given" in run.err) == (2, True)


def test_a_bad_option_is_a_usage_error_with_exit_2(cli: Cli) -> None:
    with pytest.raises(SystemExit, match="2"):
        lint_main(["--output-format", "xml", "x.py"])


def test_negative_jobs_is_a_usage_error(cli: Cli, tree: Path) -> None:
    run = cli("--jobs", "-1", "src")
    assert run.code == 2 and "--jobs must be 0" in run.err


def test_parallel_jobs_give_the_same_findings(cli: Cli, tree: Path) -> None:
    for index in range(6):
        (tree / "src" / f"copy{index}.py").write_text(MODEL)
    serial, parallel, auto = cli("src"), cli("--jobs", "2", "src"), cli("-j", "0", "src")
    assert serial.out == parallel.out == auto.out
    assert len(serial.out.splitlines()) == 14


def test_folders_are_walked_skipping_git_virtualenvs_and_excluded_globs(
    cli: Cli, tree: Path
) -> None:
    for folder in (".git", ".venv", "env", "generated", "node_modules"):
        (tree / "src" / folder).mkdir()
        (tree / "src" / folder / "model.py").write_text(MODEL)
    (tree / "src" / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tree / "src" / "model_pb2.py").write_text(MODEL)
    (tree / "src" / "notes.txt").write_text(MODEL)
    run = cli("--exclude", "*_pb2.py,generated", "src")
    assert {line.split(":")[0] for line in run.out.splitlines()} == {"src/model.py"}
    assert "(2 files checked)" in run.err


def test_an_explicit_file_is_linted_whatever_its_suffix_unless_excluded(
    cli: Cli, tree: Path
) -> None:
    (tree / "script").write_text("#!/usr/bin/env python\n" + MODEL)
    assert cli("script").code == 1
    assert cli("--exclude", "script", "script").code == 0


def test_a_syntax_error_exits_2_and_the_other_files_are_still_checked(cli: Cli, tree: Path) -> None:
    (tree / "src" / "broken.py").write_text("def f(:\n    pass\n")
    run = cli("src")
    assert run.code == 2
    assert "lint-trial: error: src/broken.py:1:7: syntax error: invalid syntax" in run.err
    assert [line.split(":")[0] for line in run.out.splitlines()] == ["src/model.py"] * 2
    assert "(2 files checked, 1 could not be processed)" in run.err


def test_a_file_that_is_not_utf8_exits_2_with_a_clear_message(cli: Cli, tree: Path) -> None:
    (tree / "src" / "latin.py").write_bytes(b"x = '\xe9t\xe9'\n")
    run = cli("src")
    assert run.code == 2
    assert "src/latin.py: cannot decode the file" in run.err and "save it as UTF-8" in run.err


def test_a_file_with_a_coding_cookie_is_decoded_as_declared(cli: Cli, tree: Path) -> None:
    (tree / "src" / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\nx = '\xe9t\xe9'\n")
    assert cli("src/latin.py").code == 0


def test_an_empty_file_is_checked_and_clean(cli: Cli, tree: Path) -> None:
    (tree / "src" / "empty.py").write_text("")
    run = cli("src/empty.py")
    assert (run.code, run.err.strip()) == (0, "lint-trial: no findings (1 file checked)")


def test_a_folder_without_python_files_is_a_warning_not_an_error(cli: Cli, tree: Path) -> None:
    (tree / "docs").mkdir()
    (tree / "docs" / "index.md").write_text("# docs\n")
    run = cli("docs")
    assert run.code == 0
    assert "lint-trial: warning: docs: no Python files found" in run.err


def test_a_missing_path_exits_2_and_the_other_paths_are_still_checked(cli: Cli, tree: Path) -> None:
    run = cli("missing.py", "src/model.py")
    assert run.code == 2
    assert "lint-trial: error: missing.py: no such file or folder" in run.err
    assert len(run.out.splitlines()) == 2


def test_an_unreadable_file_exits_2_and_the_other_files_are_still_checked(
    cli: Cli, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "model.py":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    run = cli("src")
    assert run.code == 2
    assert "src/model.py: cannot read the file: Permission denied" in run.err
    assert "(1 file checked, 1 could not be processed)" in run.err


def test_colour_is_used_only_on_a_terminal_and_never_with_no_color(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    lint_main(["src/model.py"])
    assert "\033[" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    lint_main(["src/model.py"])
    assert "\033[" not in capsys.readouterr().out


def test_migrate_trial_without_paths_is_a_usage_error_exiting_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert migrate_main([]) == 2
    assert "migrate-trial: error: no paths given" in capsys.readouterr().err


def test_parallel_jobs_report_files_that_fail_like_a_single_process(cli: Cli, tree: Path) -> None:
    (tree / "src" / "broken.py").write_text("class Model(:\n")
    serial, parallel = cli("src"), cli("--jobs", "2", "src")
    assert (serial.code, serial.out, serial.err) == (parallel.code, parallel.out, parallel.err)
    assert "src/broken.py:1:13: syntax error" in parallel.err


def test_sarif_output_records_files_that_could_not_be_processed(cli: Cli, tree: Path) -> None:
    (tree / "src" / "broken.py").write_text("def f(:\n")
    run = cli("--output-format", "sarif", "src")
    invocation = json.loads(run.out)["runs"][0]["invocations"][0]
    assert run.code == 2 and invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["message"]["text"] == "syntax error: invalid syntax"
