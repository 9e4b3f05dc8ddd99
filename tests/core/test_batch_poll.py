"""The training loop's per-batch stop check (``shim.core.batch_poll``) on two real gloo ranks.

Every case is swept over every batch of a short run: the ranks must always agree on where they
stop, and stop where the module docstring says (a request on every rank: at that batch; on some
ranks only, or a signal to the chief: one batch later). Between polls the ranks run a collective
as DDP's backward does, and one rank lags by a random few milliseconds to shuffle arrival order.
"""

from __future__ import annotations

import pathlib
import random
import time
from typing import Any

import pytest
import torch
import torch.distributed as dist

import shim.core as core
from shim.core.batch_poll import BatchPoll
from tests.conftest import free_port
from tests.core import dist_workers

BATCHES = 8

# name -> (ranks whose stop request turns on at the batch, ranks signalled at the batch)
CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "stop on every rank": ((0, 1), ()),
    "stop on the chief only": ((0,), ()),
    "stop on the worker only": ((1,), ()),
    "signal to the chief": ((), (0,)),
    "signal to the worker only": ((), (1,)),
    "signal to every rank": ((), (0, 1)),
    "signal to the chief and stop on every rank": ((0, 1), (0,)),
    "signal to the chief and stop on the worker": ((1,), (0,)),
}


def _one_run(
    ctx: core.Context, stoppers: tuple[int, ...], signalled: tuple[int, ...], at: int
) -> dict[str, Any]:
    """Poll after each of BATCHES batches; the flags turn on at batch ``at``. Returns the batch
    the loop stopped after (None: ran to the end) and what the poll said there."""
    d = ctx.distributed
    preempt = core.PreemptContext(d)  # not started: no signal handlers, as for an embedder
    poll = BatchPoll(preempt, d)
    rng = random.Random(at * 31 + d.rank)
    stop = False
    for batch in range(BATCHES):
        gradient = torch.ones(4)
        dist.all_reduce(gradient)  # DDP's buckets between two polls
        if d.rank == 1:
            time.sleep(rng.random() * 0.004)
        if batch == at:
            stop = d.rank in stoppers
            if d.rank in signalled:
                preempt.request_preemption()
        preempted, stopped = poll.poll(stop)
        if preempted or stopped:
            return {"after": batch, "preempted": preempted, "stopped": stopped}
    poll.drain()
    return {"after": None, "preempted": False, "stopped": False}


def every_case_at_every_batch(ctx: core.Context, tmp: pathlib.Path) -> Any:
    out: dict[str, list[Any]] = {}
    for name, (stoppers, signalled) in CASES.items():
        out[name] = [_one_run(ctx, stoppers, signalled, at) for at in range(BATCHES)]
    # The process group is still in step after all of them.
    out["still in step"] = ctx.distributed.allgather(ctx.distributed.rank)
    return out


def expected(name: str, at: int) -> dict[str, Any]:
    stoppers, signalled = CASES[name]
    if stoppers == (0, 1):  # a request on every rank: at that batch, as in one process
        return {"after": at, "preempted": False, "stopped": True}
    if stoppers:  # some ranks only: one batch later (or the run's end comes first)
        after = at + 1 if at + 1 < BATCHES else None
        return {"after": after, "preempted": False, "stopped": after is not None}
    if 0 in signalled:  # the chief's signal: one batch later
        after = at + 1 if at + 1 < BATCHES else None
        return {"after": after, "preempted": after is not None, "stopped": False}
    return {"after": None, "preempted": False, "stopped": False}  # a worker's signal: ignored


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    return dist_workers.run(every_case_at_every_batch, tmp_path_factory.mktemp("poll"), free_port())


@pytest.mark.parametrize("name", list(CASES))
def test_both_ranks_stop_after_the_same_batch_as_documented(results: list[Any], name: str) -> None:
    chief, worker = results
    assert chief[name] == worker[name], "the ranks disagree"
    assert chief[name] == [expected(name, at) for at in range(BATCHES)]


def test_the_process_group_is_in_step_after_every_run(results: list[Any]) -> None:
    assert results[0]["still in step"] == results[1]["still in step"] == [0, 1]


@pytest.mark.parametrize("stop", [False, True])
@pytest.mark.parametrize("signal_first", [False, True])
def test_one_process_stops_at_the_very_batch(
    tmp_path: pathlib.Path, stop: bool, signal_first: bool
) -> None:
    """No collective and no delay in one process: should_preempt() and the request, at once."""
    with core.local_init(checkpoint_storage=tmp_path) as ctx:
        poll = BatchPoll(ctx.preempt, ctx.distributed)
        assert poll.poll(False) == (False, False)
        if signal_first:
            ctx.preempt.request_preemption()
        assert poll.poll(stop) == (signal_first and not stop, stop), "a stop request wins"
