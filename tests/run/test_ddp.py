"""DistributedDataParallel in run-trial: real torchrun and torch.multiprocessing gloo ranks."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import shim.core as core
from shim.errors import UserInputError
from shim.lightning.ddp import TrainingStepCaller, find_unused_parameters
from shim.pytorch.context import PyTorchTrialContext
from tests.conftest import free_port
from tests.core import dist_workers
from tests.oracle.fixtures import pl19_python_fixture  # noqa: F401  (provides pl19_python)
from tests.run.helpers import TRIALS, Run, final_weights

pytestmark = pytest.mark.slow

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
BATCHNORM = TRIALS / "ddp_batchnorm" / "const.yaml"


def run_ranks(
    config: pathlib.Path,
    storage: pathlib.Path,
    nproc: int,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Run:
    """run-trial as one plain process, or under torchrun with ``nproc`` ranks."""
    command = [python]
    if nproc > 1:
        command += ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
        command += ["--master-port", str(free_port())]
    command += ["-m", "shim.cli", str(config), "--plain", "--json"]
    command += ["--checkpoint-storage", str(storage)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    return Run(result.returncode, result.stdout, result.stderr)


def assert_two_ranks_match_one(tmp_path: pathlib.Path, config: pathlib.Path, python: str) -> None:
    single = run_ranks(config, tmp_path / "one", 1, python)
    assert single.returncode == 0, single.stderr
    double = run_ranks(config, tmp_path / "two", 2, python)
    assert double.returncode == 0, double.stderr
    assert double.summary["steps_completed"] == single.summary["steps_completed"]
    ours, theirs = final_weights(double.summary), final_weights(single.summary)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        # Two half-batch gradients averaged by DDP's buckets: the same math, reordered.
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("case", ["mnist_like", "gan"])
def test_two_ddp_ranks_give_the_weights_of_one_rank_with_the_same_global_batch(
    tmp_path: pathlib.Path, case: str
) -> None:
    """The GAN's two optimizers toggle each other's parameters off: DDP must find them unused."""
    assert_two_ranks_match_one(tmp_path, FIXTURES / case / "const.yaml", sys.executable)


def test_two_ddp_ranks_of_the_gan_on_lightning_1_9_give_the_weights_of_one_rank(
    tmp_path: pathlib.Path, pl19_python: pathlib.Path
) -> None:
    assert_two_ranks_match_one(tmp_path, FIXTURES / "gan" / "const.yaml", str(pl19_python))


def test_batchnorm_buffers_are_rank_zeros_at_every_step_and_validation_and_the_reducer_ran(
    tmp_path: pathlib.Path,
) -> None:
    """DDP broadcasts rank 0's buffers before every training forward: each step starts on both
    ranks from the running statistics rank 0 ended the previous step with; validation too."""
    records = tmp_path / "records"
    records.mkdir()
    env = {"SHIM_TEST_DDP_RECORD": str(records)}
    run = run_ranks(BATCHNORM, tmp_path / "storage", 2, env=env)
    assert run.returncode == 0, run.stderr
    chief, worker = (
        torch.load(records / f"rank{rank}.pt", weights_only=False) for rank in range(2)
    )
    steps = run.summary["steps_completed"]
    assert steps == 6 and len(chief["steps"]) == len(worker["steps"]) == steps
    for step in range(steps):
        assert chief["steps"][step]["start"] == worker["steps"][step]["start"], step
        if step > 0:
            assert worker["steps"][step]["start"] == chief["steps"][step - 1]["end"], step
    # Each rank's own batch moved its statistics: without the broadcast they would drift apart.
    assert chief["steps"][0]["end"] != worker["steps"][0]["end"]
    # Validation (at 3 and 6) uses rank 0's statistics on every rank, as in Lightning's fit.
    assert [v["step"] for v in chief["validated"]] == [v["step"] for v in worker["validated"]]
    assert [v["step"] for v in chief["validated"]] == [3, 6]
    for mine, theirs in zip(chief["validated"], worker["validated"], strict=True):
        assert mine["buffers"] == theirs["buffers"] == chief["steps"][mine["step"] - 1]["end"]
    for logged in (chief["ddp"], worker["ddp"]):
        assert logged["module_name"] == "_TrainingStepModule"
        assert logged["world_size"] == 2 and logged["broadcast_buffers"] == 1
        assert logged["find_unused_parameters"] == 0  # one optimizer, Lightning 2.x's default
        assert logged["num_parameter_tensors"] == 6
        assert logged["has_rebuilt_buckets"] == 1 and logged["num_buckets_reduced"] >= 1
        assert logged["iteration"] > 0 and logged["avg_backward_comm_time"] > 0


@pytest.mark.parametrize(
    ("stoppers", "nproc", "steps"),
    [("0", 1, 2), ("0,1", 2, 2), ("1", 2, 3), ("0", 2, 3)],
    ids=["one-process", "every-rank", "worker-only", "chief-only"],
)
def test_trainer_should_stop_ends_every_rank_at_one_batch(
    tmp_path: pathlib.Path, stoppers: str, nproc: int, steps: int
) -> None:
    """``trainer.should_stop`` after batch 2: on every rank (Lightning's DDP contract) the run
    ends there, as in one process; on some ranks only, every rank ends one batch later."""
    env = {"SHIM_TEST_STOP_AT": "2", "SHIM_TEST_STOP_RANKS": stoppers}
    run = run_ranks(BATCHNORM, tmp_path / "storage", nproc, env=env)
    assert run.returncode == 0, run.stderr
    assert run.summary["status"] == "completed"
    assert run.summary["steps_completed"] == steps


def test_ranks_that_draw_differently_resume_bitwise_after_a_preemption_at_every_batch(
    tmp_path: pathlib.Path,
) -> None:
    """Each rank draws a different number of random numbers per step, so the ranks' generators
    part ways: the checkpoint holds every rank's, and each rank resumes with its own. A SIGTERM
    after batch N (the chief's counts) stops both ranks after batch N + 1; the rerun ends with
    the uninterrupted run's weights, for every N that leaves batches to train (1 to 4 of 6)."""
    noise = {"SHIM_TEST_RANK_NOISE": "1"}
    whole = run_ranks(BATCHNORM, tmp_path / "whole", 2, env=noise)
    assert whole.returncode == 0, whole.stderr
    expected = final_weights(whole.summary)
    for at in range(1, 5):
        storage = tmp_path / f"preempted_at_{at}"
        first = run_ranks(BATCHNORM, storage, 2, env={**noise, "SHIM_TEST_PREEMPT_AT": str(at)})
        assert first.summary["status"] == "preempted", first.stderr
        assert first.summary["steps_completed"] == at + 1
        rerun = run_ranks(BATCHNORM, storage, 2, env=noise)
        assert rerun.returncode == 0, rerun.stderr
        assert f"from batch {at + 1}" in rerun.stderr
        ours = final_weights(rerun.summary)
        for name in expected:
            assert torch.equal(ours[name], expected[name]), (at, name)


def test_sync_dist_values_reduce_over_every_ranks_batches_and_others_stay_per_rank(
    tmp_path: pathlib.Path,
) -> None:
    """Lightning's sync_dist: each rank validates 2 of the 4 batches of 8 and logs its rank; the
    synced mean is (0 * 16 + 1 * 16) / 32 on both ranks, the synced max 1, the unsynced value
    each rank's own, in callback_metrics at on_validation_epoch_end."""
    records = tmp_path / "records"
    records.mkdir()
    run = run_ranks(BATCHNORM, tmp_path / "storage", 2, env={"SHIM_TEST_DDP_RECORD": str(records)})
    assert run.returncode == 0, run.stderr
    chief, worker = (
        torch.load(records / f"rank{rank}.pt", weights_only=False) for rank in range(2)
    )
    assert len(chief["synced"]) == len(worker["synced"]) == 2  # validations at 3 and 6
    for rank, record in enumerate((chief, worker)):
        for values in record["synced"]:
            assert values == {"rank_synced": 0.5, "rank_max": 1.0, "rank_local": float(rank)}
    # The reported validation metrics are reduced over ranks either way.
    assert run.summary["final_validation"]["rank_local"] == pytest.approx(0.5)


def test_the_distributed_fixture_trains_on_its_two_slots_by_default(tmp_path: pathlib.Path) -> None:
    """``fixtures/distributed`` (BatchNorm, ``slots_per_trial: 2``): plain ``run-trial CONFIG``
    launches two ranks, which validate with rank 0's statistics and ``sync_dist`` values."""
    config = FIXTURES / "distributed" / "const.yaml"
    command = [sys.executable, "-m", "shim.cli", str(config), "--plain", "--json"]
    command += ["--checkpoint-storage", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 rank(s) on this machine through torchrun" in done.stderr
    summary = Run(done.returncode, done.stdout, done.stderr).summary
    assert summary["steps_completed"] == 32 and summary["status"] == "completed"
    assert summary["final_validation"]["val_acc"] > 0.8


def test_one_process_runs_training_step_without_ddp(tmp_path: pathlib.Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    run = run_ranks(BATCHNORM, tmp_path / "storage", 1, env={"SHIM_TEST_DDP_RECORD": str(records)})
    assert run.returncode == 0, run.stderr
    assert torch.load(records / "rank0.pt", weights_only=False)["ddp"] is None


@pytest.mark.parametrize(
    ("major", "optimizers", "expected"),
    [(1, 1, True), (1, 2, True), (2, 1, False), (2, 2, True)],
)
def test_find_unused_parameters_follows_lightnings_default_and_toggling(
    major: int, optimizers: int, expected: bool
) -> None:
    assert find_unused_parameters(major, optimizers) is expected


def test_a_module_without_trainable_parameters_is_not_wrapped_even_under_several_ranks() -> None:
    frozen = nn.Linear(2, 2).requires_grad_(False)
    caller = TrainingStepCaller.build(
        frozen, world_size=2, device=torch.device("cpu"), lightning_major=2, optimizer_count=1
    )
    assert caller.ddp is None


def test_several_ranks_without_a_process_group_are_refused_with_how_to_launch() -> None:
    assert not torch.distributed.is_initialized()
    with pytest.raises(UserInputError, match=r"no torch.distributed process group.*--nproc N"):
        TrainingStepCaller.build(
            nn.Linear(2, 2),
            world_size=2,
            device=torch.device("cpu"),
            lightning_major=2,
            optimizer_count=1,
        )


def _trial_context(ctx: core.Context) -> PyTorchTrialContext:
    return PyTorchTrialContext(
        ctx,
        trial_seed=0,
        hparams={"global_batch_size": 4},
        slots_per_trial=ctx.distributed.size,
        num_gpus=0,
        exp_conf=None,
        aggregation_frequency=1,
        steps_completed=0,
        managed_training=True,
        debug_enabled=False,
    )


def wrap_model_on_each_rank(ctx: core.Context, tmp: pathlib.Path) -> Any:
    """A plain PyTorchTrial's model: forward and backward through what wrap_model returns."""
    torch.manual_seed(ctx.distributed.rank)  # different initial weights: DDP takes rank 0's
    context = _trial_context(ctx)
    raw = nn.Linear(3, 1)
    model = context.wrap_model(raw)
    x = torch.full((2, 3), float(ctx.distributed.rank + 1))
    context.backward(model(x).sum())
    return {
        "is_ddp": isinstance(model, DistributedDataParallel),
        "tracks_the_module": context.models == [raw],
        "in_features": model.in_features,  # looked up on the wrapped module
        "weight": raw.weight.tolist(),
        "grad": raw.weight.grad.tolist() if raw.weight.grad is not None else None,
    }


def test_wrap_model_returns_ddp_under_two_ranks_and_averages_the_gradients(
    tmp_path: pathlib.Path,
) -> None:
    chief, worker = dist_workers.run(wrap_model_on_each_rank, tmp_path, free_port())
    assert chief["is_ddp"] and worker["is_ddp"]
    assert chief["tracks_the_module"] and worker["tracks_the_module"]
    assert chief["in_features"] == worker["in_features"] == 3
    assert chief["weight"] == worker["weight"]
    # d(sum(w.x + b))/dw = sum of the rows of x: 2 rows of 1s on rank 0, of 2s on rank 1.
    assert chief["grad"] == worker["grad"] == [[3.0, 3.0, 3.0]]


def any_flags_on_each_rank(ctx: core.Context, tmp: pathlib.Path) -> Any:
    d = ctx.distributed
    started = [d._start_any_flags(False), d._start_any_flags(d.rank == 1, d.rank == 0)]
    started.append(d._start_any_flags(True, False))
    return [answer() for answer in reversed(started)]  # waited in any order, several in flight


def test_flags_set_on_one_rank_are_seen_by_every_rank_in_one_collective(
    tmp_path: pathlib.Path,
) -> None:
    """The controller's per-batch stop check (set_stop_requested on any rank stops all)."""
    chief, worker = dist_workers.run(any_flags_on_each_rank, tmp_path, free_port())
    assert chief == worker == [[True, False], [True, True], [False]]


def test_wrap_model_returns_the_module_itself_in_one_process(tmp_path: pathlib.Path) -> None:
    with core.local_init(checkpoint_storage=tmp_path / "storage") as ctx:
        context = _trial_context(ctx)
        raw = nn.Linear(3, 1)
        assert context.wrap_model(raw) is raw
        assert context.models == [raw]
