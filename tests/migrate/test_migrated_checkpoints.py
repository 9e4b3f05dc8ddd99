"""A migrated script resumes from its own checkpoints exactly and warm-starts from another
trial's, on determined's own off-cluster context (``det.core.init(checkpoint_storage=...)``).

On a cluster ``det.get_cluster_info()`` gives the trial id and ``latest_checkpoint``; here a
driver passes them as the cluster would, then calls the migrated script's own pieces.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from tests.migrate.equivalence import (
    FIXTURES,
    assert_same_weights,
    checkpoint_at,
    newest_weights,
)

pytestmark = pytest.mark.slow

# Dropout, random draws in the hooks and Adam: resuming must bring back RNG and optimizer state.
TREE = FIXTURES / "dropout" / "expected"

# Runs the migrated dropout script as trial TRIAL_ID from LATEST (or from scratch), with the
# cluster's answers; prints the reports as JSON lines.
_DRIVER = textwrap.dedent(
    """
    import argparse, json, sys
    import determined as det
    sys.path.insert(0, ".")
    import core_loop, model_def

    storage, trial_id, latest, *argv = sys.argv[1:]
    info = core_loop.local_cluster_info("const.yaml")
    info.trial.trial_id = int(trial_id)
    info.latest_checkpoint = None if latest == "-" else latest
    settings = core_loop.RunSettings.from_args(argv)
    with det.core.init(checkpoint_storage=storage) as core_context:
        for name in ("report_training_metrics", "report_validation_metrics"):
            real = getattr(core_context.train, name)
            def report(steps_completed, metrics, _real=real, _name=name):
                print(json.dumps([_name, steps_completed, metrics]))
                return _real(steps_completed, metrics)
            setattr(core_context.train, name, report)
        context = core_loop.TrialContext.create(info, core_context)
        core_loop.seed_everything(context.trial_seed)
        trial = model_def.DropoutTrial(context)
        core_loop.train(core_context, context, settings, trial, info.latest_checkpoint)
    """
)


def _run(storage: pathlib.Path, trial_id: int, latest: str | None, *args: str) -> list:
    command = [sys.executable, "-c", _DRIVER, str(storage), str(trial_id), latest or "-"]
    command += ["--metric", "val_loss", *args]
    done = subprocess.run(command, cwd=TREE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


# Validating after every batch, so stopping (which validates) changes nothing.
@pytest.mark.parametrize("stop", [3, 8, 11])  # mid-epoch, at an epoch's end, mid-epoch 2
def test_a_rerun_of_the_same_trial_continues_bitwise_from_its_checkpoint(
    tmp_path: pathlib.Path, stop: int
) -> None:
    whole = tmp_path / "whole"
    _run(whole, 1, None, "--max-length", "batches=16", "--validation-period", "batches=1")
    parts = tmp_path / "parts"
    _run(parts, 1, None, "--max-length", f"batches={stop}", "--validation-period", "batches=1")
    reports = _run(
        parts,
        1,
        checkpoint_at(parts, stop),
        "--max-length",
        "batches=16",
        "--validation-period",
        "batches=1",
    )
    assert reports[0][1] > stop, "the count continues"
    assert_same_weights(newest_weights(parts), newest_weights(whole))


def test_another_trials_checkpoint_keeps_the_weights_and_restarts_the_count(
    tmp_path: pathlib.Path,
) -> None:
    """Continue Trial / warm start (the 0.38 docs): the weights of the checkpoint, a fresh
    count, fresh optimizer state."""
    first = _run(tmp_path, 1, None, "--max-length", "batches=10")
    final_validation = [r for r in first if r[0] == "report_validation_metrics"][-1]
    warm = _run(
        tmp_path,
        2,
        checkpoint_at(tmp_path, 10),
        "--max-length",
        "batches=4",
        "--perform-initial-validation",
    )
    initial = warm[0]
    assert initial[:2] == ["report_validation_metrics", 0]
    assert initial[2]["val_loss"] == final_validation[2]["val_loss"], "the same weights"
    assert [r[1] for r in warm[1:]] == [4, 4], "counted from 0 to the length"
