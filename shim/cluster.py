"""A legacy trial on a Determined 0.38 cluster: ``python3 -m shim.cluster model_def:MNISTTrial``.

The experiment config keeps everything but its entrypoint, which becomes (one slot)::

    entrypoint: python3 -m shim.cluster model_def:MNISTTrial

or, for several slots, ``python3 -m determined.launch.torch_distributed python3 -m shim.cluster
model_def:MNISTTrial``; this package goes into the task image or ``startup-hooks.sh``
(``pip install lightning-adapter-compat``). The command runs from the context directory, as
Determined runs every entrypoint, and imports the trial from there.

What comes from the cluster:

- ``det.get_cluster_info()``: hparams (the master's values for this trial), trial id, trial seed,
  ``latest_checkpoint`` (the master's choice on a restart or after a pause) and ``user_data``
  (the config's ``data``, which the trial reads through ``context.get_data_config()``).
- The real ``det.core`` context (``shim.core.init()`` returns it when cluster info is set), with
  no storage argument, so the experiment's ``checkpoint_storage``: metrics go to the master,
  checkpoints to the cluster's storage (and are reported to the master), preemption is the
  master's long poll. Retention is the master's, so the controller deletes nothing.
- The length, periods, ``scheduling_unit``, ``checkpoint_policy`` and
  ``perform_initial_validation`` from ``det.get_cluster_info().trial._config``. Determined
  discourages reading ``_config`` because the shape of the expanded config may change with the
  master. Here it is the right source: the legacy harness read exactly this dict for exactly these
  fields, so the trial obeys the config it was written for, and there is nothing to keep in step
  by hand (entrypoint arguments would repeat the config and could disagree with it). It is parsed
  by the same checks as ``run-trial``'s ``const.yaml`` (``null`` is read as "not set", as the
  master writes it), so a shape this package does not know is an error that names the field, not
  a silent misreading. The trial's ``context.get_experiment_config()`` gets that config with
  ``entrypoint`` set to the trial (``model_def:MNISTTrial``), as under the legacy harness.

The loop is ``run-trial``'s: ``shim.runner.run_plan`` and the ``TrialController``. Restarts are the
master's (``max_restarts``): a failed trial exits and the master starts a new allocation with
``latest_checkpoint`` set. Exit codes: 0 completed or preempted (the master resumes a paused
trial from the checkpoint taken at the pause), 2 the user's input (config, trial file, not on a
cluster), 1 the trial failed (or, with a "this is a bug" line, this package). The master restarts
any non-zero exit up to ``max_restarts``, 2 included: there "no restart" is not this entrypoint's
to keep.

Tested without a master (``tests/cluster/``): determined's own ``ClusterInfo``/``TrialInfo``
readers on the JSON files a trial container holds, determined's real ``det.core.init()`` and its
REST client against a local HTTP server that records and answers the calls (``/api/v1/runs/start``,
trial metrics, progress, checkpoint reports, the preemption long poll and its ack), a
``directory`` checkpoint storage, and two CPU slots of one container under determined's own
``determined.launch.torch_distributed`` (torchrun, pid_server, wrap_rank). A real master also
exercises what those tests do not: the entrypoint in a task container (``prep_container``
writing the info files, startup hooks, the context directory download, the agent's ``DET_*``
variables), TLS and certificate loading, the master's own check of the task token, the searcher
deciding the length (adaptive or custom searchers stopping a trial early; the tests use
``single``), a pause or kill from the WebUI/CLI (the tests answer the long poll themselves), the
master's retention and garbage collection of checkpoints, TensorBoard files being served, log
shipping, the master's restart accounting (``max_restarts``) and its choice of
``latest_checkpoint``, ``shared_fs`` storage mounted at ``/determined_shared_fs``, several
containers (multi-node rendezvous, ``DET_CHIEF_IP`` on another machine), GPUs and NCCL, and
preemption with several slots (the chief's decision broadcast to the others).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from shim.errors import UserInputError

__all__ = ["cluster_config", "main", "run"]

_USAGE = (
    "usage: python3 -m shim.cluster MODULE:CLASS (e.g. model_def:MNISTTrial), as the entrypoint "
    "of a Determined 0.38 experiment config"
)
_PROG = "shim.cluster"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the legacy trial named by ``argv[0]`` as this Determined trial; the exit code."""
    from shim.failures import Kind, diagnose

    args = list(sys.argv[1:] if argv is None else argv)
    context_dir = pathlib.Path.cwd()
    try:
        entrypoint = _entrypoint(args)
        result = run(entrypoint, context_dir)
    except Exception as exc:
        failure = diagnose(exc, context_dir)
        if failure.kind is Kind.USER_INPUT:
            print(f"{_PROG}: error: {failure.describe()}", file=sys.stderr)
            return 2
        traceback.print_exception(exc, file=sys.stderr)  # the task's log is the place for it
        if failure.kind is Kind.INTERNAL:
            print(
                f"{_PROG}: internal error (this is a bug in lightning-adapter-compat): "
                f"{failure.describe()}; please report it with the traceback above",
                file=sys.stderr,
            )
        else:
            print(f"{_PROG}: the trial failed: {failure.describe()}", file=sys.stderr)
        return 1
    print(
        f"{_PROG}: trial {result.status} at batch {result.steps_completed}"
        + (f", checkpoint {result.latest_checkpoint}" if result.latest_checkpoint else ""),
        file=sys.stderr,
    )
    return 0


def run(entrypoint: str, context_dir: pathlib.Path) -> Any:
    """Train ``entrypoint`` (``module:Class`` in ``context_dir``) as the current Determined trial
    on the real ``det.core`` context; the controller's ``RunResult``."""
    info = _cluster_info()  # first: it checks what the imports below need

    import torch

    import shim.core
    from shim.imports import determined_namespace, load_entrypoint, trial_folder
    from shim.progress import NullReporter, PlainReporter
    from shim.pytorch.controller import TrialController
    from shim.pytorch.trial_io import steps_completed
    from shim.runner import run_plan

    config = cluster_config(info.trial._config, entrypoint)
    plan = run_plan(config)
    distributed = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        distributed = shim.core.DistributedContext.from_torch_distributed()
    with determined_namespace(), trial_folder(context_dir):
        # Before the context: a trial that does not load reports nothing to the master.
        trial_cls = load_entrypoint(entrypoint, context_dir)
        # With cluster info set, shim.core.init() is det.core.init(): the master's context.
        with shim.core.init(distributed=distributed) as core:
            plan = dataclasses.replace(
                plan,
                slots_per_trial=core.distributed.size,
                # Stable across the trial's allocations, so its checkpoints name one run.
                run_id=f"{info.cluster_id}-trial-{info.trial.trial_id}",
            )
            latest = info.latest_checkpoint
            controller = TrialController(
                trial_cls,
                core,
                plan,
                hparams=dict(info.trial.hparams),
                exp_conf=config.raw,
                seed=int(info.trial.trial_seed),
                latest_checkpoint=latest,
                start_batch=steps_completed(core, latest) if latest else 0,
                num_gpus=1 if torch.cuda.is_available() else 0,
                # The chief's lines go to the task log (stderr); the master keeps the metrics.
                reporter=PlainReporter() if core.distributed.rank == 0 else NullReporter(),
            )
            return controller.run()


def cluster_config(raw: Mapping[str, Any], entrypoint: str) -> Any:
    """The ``ExperimentConfig`` of the master's expanded config ``raw`` for the trial
    ``entrypoint``: checked as ``run-trial`` checks ``const.yaml``, ``null`` read as unset."""
    from shim.config import parse_experiment_config

    if not isinstance(raw, Mapping):
        raise UserInputError(f"the experiment config from the master is not a mapping: {raw!r}")
    given = _without_nulls(dict(raw))
    # The legacy harness's config named the trial; so does the one the trial sees here.
    given["entrypoint"] = entrypoint
    return parse_experiment_config(given, source="det.get_cluster_info().trial._config")


def _entrypoint(args: list[str]) -> str:
    if len(args) != 1:
        raise UserInputError(f"expected one argument, got {len(args)}; {_USAGE}")
    module, sep, name = args[0].partition(":")
    if not sep or not module or not name:
        raise UserInputError(f"{args[0]!r} is not MODULE:CLASS; {_USAGE}")
    return args[0]


def _cluster_info() -> Any:
    if importlib.util.find_spec("determined") is None:
        raise UserInputError(
            f"{_PROG} needs the `determined` package of the cluster (0.38); install it in the "
            "task image, or run the trial off-cluster with `run-trial CONFIG DIR`"
        )
    from shim.requirements import missing_modules

    missing = missing_modules()
    if missing:
        raise UserInputError(
            f"the runtime is not installed in the task image (missing modules: "
            f"{', '.join(missing)}); add `pip install 'lightning-adapter-compat[run]'` to the "
            "image or to startup-hooks.sh"
        )
    import determined as det

    info = det.get_cluster_info()
    if info is None:
        raise UserInputError(
            f"{_PROG} runs as the entrypoint of a Determined trial, and det.get_cluster_info() is "
            "None here (not in a trial container); off-cluster, run `run-trial CONFIG DIR`"
        )
    if info.task_type != "TRIAL":
        raise UserInputError(
            f"{_PROG} runs as the entrypoint of an experiment's trial, not of a "
            f"{info.task_type} task"
        )
    return info


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # As run-trial: tearing down torch and Lightning takes longer than the trial's last report.
    os._exit(code)
