"""Resume is exact at every batch, under every retention setting, and after every kind of stop.

A shuffled, dropout, Adam trial of 39 batches (13 per epoch) is stopped with a real SIGTERM
after each batch, rerun to completion and compared bit for bit (weights, optimizer state, RNG
state, validation metrics at each step) with one uninterrupted run of the same settings; then
two preemptions in one run, a crash restart, a preemption followed by a crash, a rerun of a
finished run, and a real SIGKILL at every step of every checkpoint's life (each file write, the
rename into place, each delete, each ``trial.json`` save). After each case, the checkpoints left
on disk are exactly what the retention settings promise for the checkpoints the run wrote.

The runs fork from two worker processes (tests/run/sweep_worker.py) that import torch once.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BATCHES = 39
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "latest0-best0": {"save_trial_latest": 0, "save_trial_best": 0},
    "latest3-best2-policy-all": {
        "save_trial_latest": 3,
        "save_trial_best": 2,
        "checkpoint_policy": "all",
    },
    "latest1-best0-policy-none-every-batch": {
        "save_trial_latest": 1,
        "save_trial_best": 0,
        "checkpoint_policy": "none",
        "min_checkpoint_period": {"batches": 1},
    },
    "every-epoch": {"min_checkpoint_period": {"epochs": 1}},
    "latest0-best2-no-period": {
        "save_trial_latest": 0,
        "save_trial_best": 2,
        "min_checkpoint_period": None,
    },
}
WORKERS = 2


def _preempt(k: int) -> dict[str, Any]:
    return {"env": {"SHIM_TEST_PREEMPT_AT": str(k)}}


def _crash(k: int, marker: str) -> dict[str, Any]:
    return {"env": {"SHIM_TEST_CRASH_AT": str(k), "SHIM_TEST_MARKER": marker}}


def _jobs(root: pathlib.Path, kill_points: Iterable[int] | None) -> list[dict[str, Any]]:
    """Every case; with ``kill_points`` None, only the uninterrupted baselines."""
    jobs: list[dict[str, Any]] = []

    def add(case: str, setting: str, runs: list[dict[str, Any]]) -> None:
        folder = root / setting / case
        jobs.append(
            {
                "id": f"{setting}/{case}",
                "folder": str(folder),
                "settings": SETTINGS[setting],
                "runs": runs,
            }
        )

    if kill_points is None:
        for setting in SETTINGS:
            add("baseline", setting, [{}])
        return jobs
    marker = str(root / "crash-marker-{}")
    for setting in SETTINGS:
        for k in range(1, BATCHES):
            add(f"preempt-{k}", setting, [_preempt(k), {}])
    for k in range(1, BATCHES):
        crash_marker = marker.format(f"crash-{k}")
        add(f"crash-{k}", "defaults", [_crash(k, crash_marker)])
        second = min(k + 7, BATCHES - 1)
        if second > k:
            add(f"preempt-{k}-then-{second}", "defaults", [_preempt(k), _preempt(second), {}])
        both = marker.format(f"both-{k}")
        add(f"preempt-{k}-then-crash", "defaults", [_preempt(k), _crash(min(k + 5, 38), both)])
    add("rerun-of-a-finished-run", "defaults", [{}, {}])
    for point in kill_points:
        add(f"sigkill-at-event-{point}", "defaults", [{"kill_at": point}, {}])
    return jobs


def _run_workers(jobs: list[dict[str, Any]], root: pathlib.Path) -> dict[str, dict[str, Any]]:
    shares = [jobs[i::WORKERS] for i in range(WORKERS)]
    procs = []
    for index, share in enumerate(shares):
        job_file = root / f"jobs-{len(list(root.glob('jobs-*')))}-{index}.json"
        job_file.write_text(json.dumps(share))
        out = job_file.with_suffix(".results.json")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "tests.run.sweep_worker", str(job_file), str(out)]
        procs.append((subprocess.Popen(command, env=env), out))
    results: dict[str, dict[str, Any]] = {}
    for proc, out in procs:
        assert proc.wait(timeout=1700) == 0, "a sweep worker failed"
        results.update({r["id"]: r for r in json.loads(out.read_text())})
    return results


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("sweep")
    results = _run_workers(_jobs(root, None), root)
    events = results["defaults/baseline"]["events"]
    kill_points = [int(line.split()[0]) for line in events]
    results.update(_run_workers(_jobs(root, kill_points), root))
    return results


def expected_kept(history: list[dict[str, Any]], setting: dict[str, Any]) -> set[str]:
    """Determined's retention, stated independently of the code under test: the union of the
    latest N and the best M, and never the newest."""
    latest_n = setting.get("save_trial_latest", 1)
    best_m = setting.get("save_trial_best", 1)
    order = sorted(range(len(history)), key=lambda i: (history[i]["steps"], i))
    keep = {history[order[-1]]["uuid"]}
    keep |= {history[i]["uuid"] for i in order[len(order) - latest_n :]} if latest_n else set()
    scored = [i for i in order if history[i]["metric"] is not None]
    scored.sort(key=lambda i: (history[i]["metric"], i))
    keep |= {history[i]["uuid"] for i in scored[:best_m]}
    return keep


def _problems(result: dict[str, Any], baseline: dict[str, Any], setting: str) -> list[str]:
    name = result["id"]
    if result["codes"][-1] != 0 or result["final"] is None:
        return [f"{name}: last run exited {result['codes']}: {result['stderr'][-1]}"]
    found = []
    final, expected = result["final"], baseline["final"]
    for key, digest in expected["digests"].items():
        if final["digests"][key] != digest:
            found.append(f"{name}: {key} differs from the uninterrupted run")
    for step, metrics in expected["validations"].items():
        if final["validations"].get(step) != metrics:
            found.append(f"{name}: validation at batch {step} differs")
    if final["summary"]["steps_completed"] != BATCHES:
        found.append(f"{name}: ended at {final['summary']['steps_completed']}")
    kept = {c["uuid"] for c in result["kept"]}
    promised = expected_kept(result["history"], SETTINGS[setting])
    if kept != promised:
        found.append(
            f"{name}: checkpoints left {sorted(kept)}, settings promise {sorted(promised)}"
        )
    if final["summary"]["latest_checkpoint"] not in kept:
        found.append(f"{name}: the summary names a checkpoint that is gone")
    if any(p.endswith(".deleting") for p in result["leftovers"]):
        found.append(f"{name}: a half-deleted checkpoint was left: {result['leftovers']}")
    if any(p.endswith(".partial") for p in result["leftovers"]) and not _killed_before_metadata(
        result
    ):
        found.append(f"{name}: a partial checkpoint was left: {result['leftovers']}")
    return found


def _killed_before_metadata(result: dict[str, Any]) -> bool:
    """A kill before ``metadata.json`` leaves a hidden ``.partial`` folder that cannot say which
    run it belongs to; every other leftover is cleaned up by the rerun."""
    if "sigkill" not in result["id"]:
        return False
    point = int(result["id"].rsplit("-", 1)[1])
    name = result["events"][point - 1].split(" ", 1)[1]
    return name in ("before state_dict.pth", "after state_dict.pth", "before metadata.json")


def _check(sweep: dict[str, dict[str, Any]], cases: list[str], setting: str = "defaults") -> None:
    """Every case ends like the uninterrupted run and keeps what the settings promise."""
    baseline = sweep[f"{setting}/baseline"]
    problems = [
        p for case in cases for p in _problems(sweep[f"{setting}/{case}"], baseline, setting)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_a_sigterm_after_any_batch_then_a_rerun_ends_bitwise_like_an_uninterrupted_run(
    sweep: dict[str, dict[str, Any]], setting: str
) -> None:
    for k in range(1, BATCHES):
        first = sweep[f"{setting}/preempt-{k}"]
        assert first["codes"][0] == 3, f"preempt at {k}: {first['stderr'][0]}"
    _check(sweep, [f"preempt-{k}" for k in range(1, BATCHES)], setting)


def test_two_preemptions_in_one_run_resume_exactly(sweep: dict[str, dict[str, Any]]) -> None:
    twice = [key.split("/")[1] for key in sweep if "-then-" in key and "crash" not in key]
    assert len(twice) == BATCHES - 2
    assert all(sweep[f"defaults/{case}"]["codes"][:2] == [3, 3] for case in twice)
    _check(sweep, twice)


def test_a_crash_after_any_batch_restarts_from_the_latest_checkpoint_exactly(
    sweep: dict[str, dict[str, Any]],
) -> None:
    _check(sweep, [f"crash-{k}" for k in range(1, BATCHES)])
    for k in range(1, BATCHES):
        assert "injected crash" in sweep[f"defaults/crash-{k}"]["stderr"][0]
        assert sweep[f"defaults/crash-{k}"]["final"]["summary"]["restarts"] == 1


def test_a_preemption_then_a_crash_in_the_rerun_still_ends_exactly(
    sweep: dict[str, dict[str, Any]],
) -> None:
    cases = [f"preempt-{k}-then-crash" for k in range(1, BATCHES)]
    assert all(sweep[f"defaults/{case}"]["codes"] == [3, 0] for case in cases)
    _check(sweep, cases)


def test_a_rerun_of_a_finished_run_reports_it_again_without_training_or_validating(
    sweep: dict[str, dict[str, Any]],
) -> None:
    result = sweep["defaults/rerun-of-a-finished-run"]
    assert result["codes"] == [0, 0]
    _check(sweep, ["rerun-of-a-finished-run"])
    summary = result["final"]["summary"]
    assert summary["best_validation"] is not None and summary["final_validation"] is not None
    assert len(result["history"]) == len(sweep["defaults/baseline"]["history"])


def test_a_sigkill_at_every_step_of_every_checkpoint_write_resumes_exactly(
    sweep: dict[str, dict[str, Any]],
) -> None:
    events = sweep["defaults/baseline"]["events"]
    names = {line.split(" ", 1)[1] for line in events}
    # Every step of a checkpoint's life is among the kill points.
    assert {
        "before state_dict.pth",
        "after state_dict.pth",
        "before metadata.json",
        "after metadata.json",
        "after rename into place",
        "before trial.json",
        "after trial.json",
        "before delete",
        "before rmtree of a renamed checkpoint",
        "after delete",
    } <= names
    killed = [f"sigkill-at-event-{n}" for n in range(1, len(events) + 1)]
    assert all(sweep[f"defaults/{case}"]["codes"][0] == -9 for case in killed)
    _check(sweep, killed)


def test_the_baselines_keep_what_their_settings_promise(sweep: dict[str, dict[str, Any]]) -> None:
    for setting in SETTINGS:
        baseline = sweep[f"{setting}/baseline"]
        assert baseline["codes"] == [0], baseline["stderr"]
        assert {c["uuid"] for c in baseline["kept"]} == expected_kept(
            baseline["history"], SETTINGS[setting]
        )
    assert len(sweep["latest0-best0/baseline"]["kept"]) == 1
    assert len(sweep["latest3-best2-policy-all/baseline"]["kept"]) >= 3
