"""The migrated script's own ``core_context.preempt.should_preempt()`` path, under determined's
real ``PreemptContext``.

Determined 0.38's off-cluster ``DummyPreemptContext`` never preempts, so the script runs as a
trial of a cluster whose master is a local HTTP server (``stand_in_master``): the script's own
``det.get_cluster_info()`` gives it the trial (hparams, data, seed, ``latest_checkpoint``) from
the environment a trial container gets, and its ``det.core.init()`` a ``det.core.Context`` whose
``PreemptContext`` long-polls that server as it polls a master; checkpoints and metrics stay
determined's off-cluster ones. A user pauses the experiment when the trial reports batch 11 (in
the middle of its second epoch); the script must stop there with a checkpoint, and the master's
next allocation, resuming from that checkpoint through ``latest_checkpoint``, must end as an
uninterrupted run does.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import pytest
import yaml

from tests.migrate.equivalence import (
    FIXTURES,
    assert_same_weights,
    checkpoint_at,
    run_migrated,
)
from tests.migrate.stand_in_master import BIND, StandInMaster

pytestmark = pytest.mark.slow

# Dropout, random draws in the hooks, a shuffled loader and Adam: 8 batches an epoch, 3 epochs.
TREE = FIXTURES / "dropout" / "expected"
PAUSE_AT = 11
# Training metrics after every batch, so the trial reports the batch it is paused at.
ARGS = ("--scheduling-unit", "1")


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load((TREE / "const.yaml").read_text()))


def _steps_of_checkpoints(storage: pathlib.Path) -> list[int]:
    return sorted(
        int(json.loads(path.read_text())["steps_completed"])
        for path in storage.glob("*/metadata.json")
    )


def test_a_paused_experiment_stops_the_migrated_script_at_that_batch_and_it_resumes_bitwise(
    tmp_path: pathlib.Path,
) -> None:
    whole = run_migrated(TREE, tmp_path / "whole", sys.executable, *ARGS)
    home = tmp_path / "cluster"
    storage = home / "data" / "determined"
    signals = "/api/v1/allocations/trial-1.alloc-1/signals"

    with StandInMaster() as master:
        env = master.trial_env(_config(), pause_at=PAUSE_AT)
        first = run_migrated(TREE, home, sys.executable, *ARGS, setup=BIND, env=env)
    # The user paused; the script saw it in should_preempt() and acknowledged it once.
    calls = [call for call in master.requests if call != ("GET", f"{signals}/preemption")]
    assert calls == [("POST", "/api/v1/experiments/1/pause"), ("POST", f"{signals}/ack_preemption")]
    assert ("GET", f"{signals}/preemption") in master.requests
    # It stopped at that batch: its reports are the uninterrupted run's up to it, no further.
    assert first.reports == [report for report in whole.reports if report[1] <= PAUSE_AT]
    assert [s for group, s, _ in first.reports if group == "training"] == list(range(1, 12))
    assert _steps_of_checkpoints(storage) == [8, PAUSE_AT]  # the epoch's, then the pause's
    latest = checkpoint_at(storage, PAUSE_AT)

    with StandInMaster(allocation_id="trial-1.alloc-2") as master:
        env = master.trial_env(_config(), latest_checkpoint=latest)
        second = run_migrated(TREE, home, sys.executable, *ARGS, setup=BIND, env=env)
    assert not any(path.endswith(("/pause", "/ack_preemption")) for _, path in master.requests)
    assert second.reports[0][:2] == ("training", PAUSE_AT + 1), "the count continues"
    assert first.reports + second.reports == whole.reports
    assert_same_weights(second.weights, whole.weights)
