"""A migrated script on two ranks resumes exactly.

Two ranks under real ``torchrun`` (gloo, CPU), each running ``run-trial CONFIG DIR`` on the
migrated tree: the path a user takes to check a migration locally, and the most real one that
resumes. ``run-trial`` runs the script unchanged in each rank's process, gives its
``det.get_cluster_info()`` the run's newest checkpoint as ``latest_checkpoint`` (the chief's,
broadcast to the other rank) and its ``det.core.init()`` a shim.core context whose preemption is
SIGTERM's; determined's own off-cluster context has no ``latest_checkpoint`` to resume from. The
script builds its ``DistributedContext.from_torch_distributed()``, restores the checkpoint on
both ranks and asks ``should_preempt()`` on both after every batch.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import torch

from tests.conftest import free_port
from tests.migrate.equivalence import FIXTURES, assert_same_weights

pytestmark = pytest.mark.slow

# Dropout, random draws in the hooks, a shuffled loader and Adam: global batch 32 as 2 x 16,
# 8 batches an epoch, 3 epochs, a checkpoint at each epoch's end.
FIXTURE = FIXTURES / "dropout" / "expected"
STOP_AT = 11  # in the middle of the second epoch
PREEMPTED = 3  # run-trial's exit status for a preempted run


def _instrumented(tmp_path: pathlib.Path) -> pathlib.Path:
    """The migrated tree, its module made to SIGTERM its own process during batch
    ``$STOP_AT`` (on every rank, as a cluster signals every process of a job) and to save each
    rank's weights at each validation. Only hooks the module already overrides: the migrated
    core_loop.py calls no others."""
    tree = tmp_path / "migrated"
    shutil.copytree(FIXTURE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    module = tree / "dropout_lm.py"
    text = module.read_text()
    replacements = [
        ("\nimport torch\n", "\nimport os\nimport signal\n\nimport torch\n"),
        (
            "        features, labels = batch\n        noisy",
            "        if self.global_step + 1 == int(os.environ.get('STOP_AT', 0)):\n"
            "            os.kill(os.getpid(), signal.SIGTERM)  # stops after this batch\n"
            "        features, labels = batch\n        noisy",
        ),
        (  # the last validation follows the last batch: these are the final weights
            "        self.probe = 0.5 * torch.randn(self.hparams.num_features)\n",
            "        self.probe = 0.5 * torch.randn(self.hparams.num_features)\n"
            "        folder = os.environ['RANK_WEIGHTS']\n"
            "        torch.save(self.state_dict(), f'{folder}/rank{self.global_rank}.pt')\n",
        ),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    module.write_text(text)
    return tree


def _torchrun(
    tree: pathlib.Path, storage: pathlib.Path, weights: pathlib.Path, stop_at: int = 0
) -> tuple[int, dict[str, Any], str]:
    """``torchrun --nproc-per-node 2 -m shim.cli CONFIG DIR``: (exit status, the chief's JSON
    summary, stderr)."""
    weights.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-port", str(free_port()), "-m", "shim.cli", str(tree / "const.yaml")]
    command += [str(tree), "--plain", "--json", "--checkpoint-storage", str(storage)]
    env = {**os.environ, "STOP_AT": str(stop_at), "RANK_WEIGHTS": str(weights)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    summaries = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, f"only the chief prints a summary: {done.stdout}{done.stderr}"
    return done.returncode, json.loads(summaries[0]), done.stderr


def _model(summary: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth"
    models: list[dict[str, torch.Tensor]] = torch.load(path, weights_only=True)["models_state_dict"]
    return models[0]


def _rank_models(folder: pathlib.Path) -> list[dict[str, torch.Tensor]]:
    return [torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


def test_two_ranks_preempted_mid_epoch_resume_to_the_weights_of_an_uninterrupted_two_rank_run(
    tmp_path: pathlib.Path,
) -> None:
    tree = _instrumented(tmp_path)
    code, whole, err = _torchrun(tree, tmp_path / "whole", tmp_path / "whole-weights")
    assert code == 0, err
    assert whole["status"] == "completed" and whole["steps_completed"] == 24

    storage = tmp_path / "storage"
    code, first, err = _torchrun(tree, storage, tmp_path / "first-weights", stop_at=STOP_AT)
    assert code != 0, "torchrun reports its ranks' preempted exit"
    # Both ranks stopped as preempted (neither crashed nor was killed by the launcher).
    failures = re.findall(r"rank\s*:\s*(\d) \(local_rank: \d\)\s+exitcode\s*:\s*(\d+)", err)
    assert sorted(failures) == [("0", str(PREEMPTED)), ("1", str(PREEMPTED))], err
    assert (first["status"], first["steps_completed"]) == ("preempted", STOP_AT)
    metadata = pathlib.Path(first["latest_checkpoint_path"]) / "metadata.json"
    assert json.loads(metadata.read_text())["steps_completed"] == STOP_AT

    code, resumed, err = _torchrun(tree, storage, tmp_path / "resumed-weights")
    assert code == 0, err
    assert f", from checkpoint {first['latest_checkpoint']}" in err
    assert (resumed["status"], resumed["steps_completed"]) == ("completed", 24)
    assert resumed["final_validation"] == whole["final_validation"]
    assert_same_weights(_model(resumed), _model(whole))
    chief, worker = _rank_models(tmp_path / "resumed-weights")
    assert_same_weights(chief, _model(resumed))
    assert_same_weights(worker, chief)
    assert_same_weights(chief, _rank_models(tmp_path / "whole-weights")[0])
