"""Whose failure an exception is, from its class and its real traceback: the user's input, the
trial, or this package (shim.failures), and trial.json's checks and atomic writes."""

from __future__ import annotations

import errno
import json
import pathlib
import re
from collections.abc import Callable

import pytest

import shim.runfiles
from shim.core.errors import ChiefOnlyError, InvalidMetadata
from shim.core.metadata import validated_metadata
from shim.core.searcher import SearcherOperation
from shim.errors import InternalError, ShimError, UserInputError
from shim.failures import Failure, Kind, diagnose, write_log
from shim.pytorch.state import seed_everything
from shim.runfiles import check_record, make_runs_folder, write_atomic
from shim.runner import RunRecord

USER_CODE = """\
def call(function, *args):
    return function(*args)


def fail():
    raise RuntimeError("the trial's own error")
"""


Trial = tuple[pathlib.Path, dict[str, Callable[..., object]]]


@pytest.fixture
def trial(tmp_path: pathlib.Path) -> Trial:
    """A file in a trial folder, compiled under its real name so tracebacks point into it."""
    folder = tmp_path / "trial"
    folder.mkdir()
    path = folder / "model_def.py"
    path.write_text(USER_CODE)
    namespace: dict[str, Callable[..., object]] = {}
    exec(compile(USER_CODE, str(path), "exec"), namespace)
    return folder, namespace


def caught(function: Callable[..., object], *args: object) -> Exception:
    try:
        function(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{function} did not raise")


def test_an_error_raised_in_the_trials_code_is_the_trials_at_its_line(trial: Trial) -> None:
    folder, user = trial
    failure = diagnose(caught(user["fail"]), folder)
    assert failure.kind is Kind.TRIAL and failure.restartable and failure.exit_code == 1
    assert failure.describe() == f"{folder / 'model_def.py'}:6: RuntimeError: the trial's own error"


def test_a_refused_call_from_the_trials_code_is_bad_input_at_the_calling_line(trial: Trial) -> None:
    folder, user = trial
    exc = caught(user["call"], validated_metadata, {})
    assert isinstance(exc, InvalidMetadata)
    failure = diagnose(exc, folder)
    assert failure.kind is Kind.USER_INPUT and failure.exit_code == 2
    assert failure.describe().startswith(f"{folder / 'model_def.py'}:2: checkpoint metadata must")


def test_the_same_refusal_with_no_trial_code_on_the_stack_is_a_bug_of_the_package(
    trial: Trial,
) -> None:
    folder, _ = trial
    failure = diagnose(caught(SearcherOperation(10, False, 1).report_progress, 1), folder)
    assert isinstance(failure.exc, ChiefOnlyError)
    assert failure.kind is Kind.INTERNAL and not failure.restartable
    assert failure.where is not None and "shim/core/searcher.py:" in failure.where


def test_a_crash_inside_the_package_is_a_bug_even_when_the_trial_called(trial: Trial) -> None:
    folder, user = trial
    # A str where bytes belong: TypeError from a plain statement of shim/runfiles.py, not a raise.
    exc = caught(user["call"], write_atomic, folder / "out.json", "text")
    failure = diagnose(exc, folder)
    assert isinstance(exc, TypeError) and failure.kind is Kind.INTERNAL
    assert failure.where is not None and "shim/runfiles.py:" in failure.where
    assert list(folder.glob(".*.tmp")) == [], "the temporary file is gone after any error"


def test_a_deliberate_raise_of_a_determined_compatible_api_is_the_callers(trial: Trial) -> None:
    folder, user = trial
    op = SearcherOperation(10, True)
    op.report_completed(0.5)
    failure = diagnose(caught(user["call"], op.report_completed, 0.5), folder)
    assert failure.kind is Kind.TRIAL
    assert failure.describe() == (
        f"{folder / 'model_def.py'}:2: RuntimeError: you may only call op.report_completed() once"
    )


def test_a_library_error_under_a_package_call_is_the_trials(trial: Trial) -> None:
    folder, _ = trial
    # torch refuses the seed inside torch's own code: the data, not this package, is at fault.
    exc = caught(seed_everything, 2**70)
    failure = diagnose(exc, folder)
    assert failure.kind is Kind.TRIAL and failure.where is not None and "torch" in failure.where


def test_a_trial_folder_holding_this_package_and_a_venv_still_tells_them_apart() -> None:
    # E.g. `run-trial const.yaml .` in a checkout: the folder holds shim/ and .venv/ too.
    checkout = pathlib.Path(__file__).resolve().parents[2]
    assert (checkout / "shim").is_dir()
    crash = diagnose(caught(write_atomic, checkout / "never-written.json", "text"), checkout)
    assert crash.kind is Kind.INTERNAL
    library = diagnose(caught(seed_everything, 2**70), checkout)
    assert library.kind is Kind.TRIAL
    assert library.where is not None and library.where.startswith(f"{__file__}:")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EACCES])
def test_a_full_or_failing_disk_or_a_permission_is_the_trials_failure(
    trial: Trial, code: int
) -> None:
    folder, _ = trial
    failure = diagnose(OSError(code, "disk trouble"), folder)
    assert failure.kind is Kind.TRIAL and failure.restartable


def test_error_classes_decide_before_the_traceback(trial: Trial) -> None:
    folder, user = trial
    assert diagnose(caught(user["call"], _raise, InternalError("x")), folder).kind is Kind.INTERNAL
    assert diagnose(caught(_raise, ShimError("x")), folder).kind is Kind.USER_INPUT
    assert diagnose(caught(_raise, UserInputError("x")), None).describe() == "x"


def _raise(exc: Exception) -> None:
    raise exc


def test_the_log_appends_each_failure_with_its_traceback(
    tmp_path: pathlib.Path, trial: Trial
) -> None:
    folder, user = trial
    failure = diagnose(caught(user["fail"]), folder)
    log = write_log(failure, tmp_path / "run", "first")
    assert log == tmp_path / "run" / "run-trial-error.log"
    assert write_log(failure, tmp_path / "run", "second") == log
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") == 2
    assert "first" in text and "second" in text and 'model_def.py", line 6, in fail' in text


def test_the_log_goes_to_the_temp_folder_when_the_run_folder_cannot_take_it(
    tmp_path: pathlib.Path, trial: Trial
) -> None:
    _, user = trial
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    log = write_log(Failure(Kind.TRIAL, caught(user["fail"]), None), blocked / "run", "x")
    assert log is not None and log.parent != blocked and "RuntimeError" in log.read_text()
    log.unlink()


def test_a_full_disk_rewrites_trial_json_in_place_and_leaves_no_temp_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "trial.json"
    RunRecord(status="running", restarts=0).save(path)
    before = path.stat().st_size

    def disk_full(target: pathlib.Path, data: bytes) -> None:
        target.write_bytes(b"")  # created, then no block for its data: what ENOSPC leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shim.runfiles, "_write_new", disk_full)
    RunRecord(status="failed", restarts=2).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["trial.json"]
    assert RunRecord.load(path) == RunRecord(status="failed", restarts=2)
    assert path.stat().st_size == before, "padded to the old length: nothing allocated"


def test_a_full_disk_with_no_trial_json_yet_raises_and_leaves_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(target: pathlib.Path, data: bytes) -> None:
        target.write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shim.runfiles, "_write_new", disk_full)
    with pytest.raises(OSError, match="No space left"):
        RunRecord(status="running").save(tmp_path / "trial.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([1, 2], "it holds a list, not a JSON object"),
        ({"seed": -5}, "seed -5 is not an int from 0 to 4294967295"),
        ({"latest_checkpoint": "../x"}, "latest_checkpoint '../x' is not a checkpoint id (a uuid)"),
        ({"restarts": "two"}, "restarts 'two' is not an int >= 0"),
        ({"status": "done"}, "status 'done' is not one of new, running"),
    ],
)
def test_a_damaged_trial_json_is_bad_input_naming_the_field(
    tmp_path: pathlib.Path, raw: object, problem: str
) -> None:
    path = tmp_path / "trial.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(
        UserInputError, match=rf"{path} is damaged: {re.escape(problem)}.*--fresh"
    ) as info:
        RunRecord.load(path)
    assert diagnose(info.value, None).exit_code == 2
    assert check_record({"seed": 4294967295, "status": "failed"}, path)["seed"] == 4294967295


def test_a_file_where_the_runs_folder_belongs_is_bad_input(tmp_path: pathlib.Path) -> None:
    (tmp_path / "runs").write_text("someone's notes")
    with pytest.raises(UserInputError, match=rf"{tmp_path / 'runs'} is a file, not a folder"):
        make_runs_folder(tmp_path / "runs" / "toy-1234")
    make_runs_folder(tmp_path / "other" / "runs" / "toy-1234")
    assert (tmp_path / "other" / "runs").is_dir()
