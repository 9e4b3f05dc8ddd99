"""One ``run-trial`` invocation: config -> trial class -> controller runs, resume and restarts.

The run's folder ``<storage>/runs/<name>-<hash>/`` holds ``trial.json`` (the latest checkpoint,
the seed, the status), ``metrics.jsonl``, ``tensorboard/`` and, after a failure,
``run-trial-error.log``; checkpoints sit in ``<storage>`` in Determined's layout. Running the same
command again resumes from ``trial.json``'s checkpoint. The chief holds ``<name>-<hash>.lock``
beside the folder for the whole run, so a second ``run-trial`` on the same run stops at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import pathlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import torch

import shim.core
from shim.config import ExperimentConfig, Length
from shim.core.info import ClusterInfo, TrialInfo
from shim.core.storage import storage_base_path
from shim.errors import UserInputError
from shim.failures import diagnose, write_log
from shim.imports import determined_namespace, load_entrypoint, trial_folder
from shim.progress import NullReporter, RunReporter, RunSummary
from shim.pytorch.controller import RunPlan, RunResult, TrialController
from shim.pytorch.trial_io import steps_completed
from shim.resume import find_resume_point, new_run_id
from shim.runfiles import RecordingReporter, RunRecord, make_runs_folder
from shim.runlock import RunLock
from shim.script_run import ScriptRun

__all__ = ["RunOptions", "RunRecord", "run_folder", "run_plan", "run_trial"]

logger = logging.getLogger("shim.runner")

DEFAULT_STORAGE = "checkpoints"


@dataclass
class RunOptions:
    context_dir: pathlib.Path
    hparam_overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    max_length: int | None = None
    fresh: bool = False
    checkpoint_storage: str | None = None
    seed: int | None = None


def run_trial(config: ExperimentConfig, options: RunOptions, reporter: RunReporter) -> RunSummary:
    """Run (or resume) the trial; restart it up to ``max_restarts`` times after a crash."""
    hparams = config.resolve_hparams(options.hparam_overrides)
    run_dir = run_folder(config, options)
    make_runs_folder(run_dir)
    # The chief alone writes trial.json and checkpoints, so it alone locks; the other ranks of a
    # second torchrun job fail with their chief.
    chief = int(os.environ.get("RANK", "0")) == 0
    with RunLock.acquire(run_dir) if chief else contextlib.nullcontext():
        return _run_in_folder(config, options, reporter, hparams, run_dir)


def run_folder(config: ExperimentConfig, options: RunOptions) -> pathlib.Path:
    """``<storage>/runs/<name>-<hash>``: the run's ``trial.json``, metrics and error log."""
    return storage_base_path(_storage_spec(config, options)) / "runs" / _run_key(config)


def _storage_spec(config: ExperimentConfig, options: RunOptions) -> Any:
    return options.checkpoint_storage or config.checkpoint_storage or DEFAULT_STORAGE


def _run_in_folder(
    config: ExperimentConfig,
    options: RunOptions,
    reporter: RunReporter,
    hparams: dict[str, Any],
    run_dir: pathlib.Path,
) -> RunSummary:
    storage_spec = _storage_spec(config, options)
    record_path = run_dir / "trial.json"
    chief = int(os.environ.get("RANK", "0")) == 0
    record = RunRecord() if options.fresh else RunRecord.load(record_path)
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        record.restarts += 1  # torchrun relaunched every rank after a failure: one restart
    if not options.fresh:
        _find_resume_point(record, storage_spec, config, reporter)
    seed = _seed(options, config, record)
    record.seed = seed
    if record.run_id is None:
        record.run_id = new_run_id(_run_key(config), secrets.token_hex(8))
    plan = run_plan(config, options.max_length)
    for notice in config.notices:
        reporter.on_message(notice)
    started = time.monotonic()
    with determined_namespace(), trial_folder(options.context_dir):
        if config.script is None:
            trial_cls = load_entrypoint(config.entrypoint, options.context_dir)
            run_once: Any = functools.partial(_run_once, trial_cls)
        else:  # a Core API script, run in this process on shim.core
            run_once = ScriptRun(config, options.context_dir, options.max_length).run_once
        if options.fresh and chief and run_dir.exists():
            # Only now that the trial loads: the previous run's folder is kept, renamed.
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.{stamp}.{os.getpid()}"))
        if chief:
            # Before any checkpoint: a rerun after a kill resumes this run, not an earlier one.
            record.status = "running"
            record.save(record_path)
        try:
            while True:
                try:
                    result = run_once(
                        config,
                        hparams,
                        plan,
                        record,
                        record_path,
                        run_dir,
                        storage_spec,
                        reporter,
                    )
                    break
                except Exception as exc:
                    # Only the trial's own failures restart: the user's input and this
                    # package's bugs would fail the same way again (see shim.failures).
                    failure = diagnose(exc, options.context_dir)
                    if not failure.restartable or record.restarts >= config.max_restarts:
                        raise
                    if _world_size() > 1:
                        # A rank cannot rejoin its peers in-process reliably (the others may be
                        # blocked in a collective): the launcher restarts every rank.
                        reporter.on_message(
                            "with several ranks, restarts are the launcher's: run under "
                            "`torchrun --max-restarts N`; each relaunch resumes from the "
                            "newest checkpoint"
                        )
                        raise
                    record.restarts += 1
                    restart = f"restart {record.restarts} of {config.max_restarts}"
                    log = write_log(failure, run_dir, f"trial crashed; {restart}")
                    _find_resume_point(record, storage_spec, config, reporter)
                    if chief:
                        record.save_or_say(record_path, reporter)
                    reporter.on_message(
                        f"trial crashed ({failure.describe()}); {restart} from checkpoint "
                        f"{record.latest_checkpoint}" + (f"; traceback in {log}" if log else "")
                    )
        except Exception:
            record.status = "failed"
            if chief:
                record.save_or_say(record_path, reporter)
            raise
    record.status = result.status
    if chief:
        record.save_or_say(record_path, reporter)
    return _summary(config, result, record, run_dir, storage_spec, time.monotonic() - started)


def _run_once(
    trial_cls: type,
    config: ExperimentConfig,
    hparams: dict[str, Any],
    plan: RunPlan,
    record: RunRecord,
    record_path: pathlib.Path,
    run_dir: pathlib.Path,
    storage_spec: Any,
    reporter: RunReporter,
) -> RunResult:
    info = ClusterInfo(
        trial=TrialInfo(trial_seed=record.seed or 0, hparams=hparams, _config=config.raw),
        latest_checkpoint=record.latest_checkpoint,
    )
    distributed = _distributed_context()
    with shim.core.local_init(
        distributed=distributed,
        checkpoint_storage=storage_spec,
        info=info,
        metrics_path=run_dir
        / (
            "metrics.jsonl"
            if not distributed or distributed.rank == 0
            else f"metrics.rank{distributed.rank}.jsonl"
        ),
        tensorboard_path=run_dir / "tensorboard",
    ) as core:
        if core.distributed.size > 1:
            # The chief's record decides: only it keeps trial.json, and the other ranks' records
            # (their own random run id and seed on a first run) never see a checkpoint.
            latest, run_id, seed = core.distributed.broadcast(
                (record.latest_checkpoint, record.run_id, record.seed)
            )
            record.latest_checkpoint, record.run_id, record.seed = latest, run_id, seed
            info.latest_checkpoint, info.trial.trial_seed = latest, seed or 0
        # Locally the trial has as many slots as processes were launched (torchrun).
        plan = dataclasses.replace(
            plan, slots_per_trial=core.distributed.size, run_id=str(record.run_id)
        )
        core.train.open_tensorboard()
        start = steps_completed(core, record.latest_checkpoint) if record.latest_checkpoint else 0
        controller = TrialController(
            trial_cls,
            core,
            plan,
            hparams=hparams,
            exp_conf=config.raw,
            seed=int(record.seed or 0),
            latest_checkpoint=record.latest_checkpoint,
            start_batch=start,
            num_gpus=1 if torch.cuda.is_available() else 0,
            # Only the chief shows progress and keeps trial.json.
            reporter=RecordingReporter(reporter, record, record_path)
            if core.distributed.rank == 0
            else NullReporter(),
        )
        return controller.run()


def run_plan(config: ExperimentConfig, max_length: int | None = None) -> RunPlan:
    """What the controller needs from the config; ``max_length`` (batches) overrides its length."""
    storage = config.checkpoint_storage or {}
    length = config.searcher.max_length if max_length is None else Length("batches", max_length)
    return RunPlan(
        max_length=length,
        validation_period=config.min_validation_period,
        checkpoint_period=config.min_checkpoint_period,
        scheduling_unit=config.scheduling_unit,
        perform_initial_validation=config.perform_initial_validation,
        checkpoint_policy=config.checkpoint_policy,
        searcher_metric=config.searcher.metric,
        smaller_is_better=config.searcher.smaller_is_better,
        save_trial_latest=int(storage.get("save_trial_latest", 1)),
        save_trial_best=int(storage.get("save_trial_best", 1)),
        slots_per_trial=config.slots_per_trial,
    )


def _seed(options: RunOptions, config: ExperimentConfig, record: RunRecord) -> int:
    if record.latest_checkpoint and record.seed is not None:
        # A resumed run keeps its seed: the shuffle order depends on it.
        if options.seed is not None and options.seed != record.seed:
            raise UserInputError(
                f"--seed {options.seed} differs from the seed {record.seed} this trial was "
                "started with; resuming keeps it (use --fresh to start over with a new one)"
            )
        return int(record.seed)
    for candidate in (options.seed, config.experiment_seed, record.seed):
        if candidate is not None:
            return int(candidate)
    return secrets.randbelow(2**31 - 1)


def _find_resume_point(
    record: RunRecord, storage_spec: Any, config: ExperimentConfig, reporter: RunReporter
) -> None:
    """Point ``record`` at the newest complete checkpoint of this run (``trial.json`` may be
    stale or missing), with the seed that run started with."""
    point = find_resume_point(
        storage_base_path(storage_spec), _run_key(config), record.run_id, record.latest_checkpoint
    )
    for notice in point.notices:
        reporter.on_message(notice)
    record.latest_checkpoint, record.run_id = point.checkpoint, point.run_id
    if point.seed is not None and (record.seed is None or point.checkpoint is not None):
        record.seed = point.seed
    if point.steps is not None:
        record.steps_completed = point.steps


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _distributed_context() -> shim.core.DistributedContext | None:
    if _world_size() > 1:
        return shim.core.DistributedContext.from_torch_distributed()
    return None


def _run_key(config: ExperimentConfig) -> str:
    name = str(config.raw.get("name") or pathlib.Path(config.source).stem)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "trial"
    digest = hashlib.sha1(str(pathlib.Path(config.source).resolve()).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def _summary(
    config: ExperimentConfig,
    result: RunResult,
    record: RunRecord,
    run_dir: pathlib.Path,
    storage_spec: Any,
    elapsed: float,
) -> RunSummary:
    base = storage_base_path(storage_spec)
    return RunSummary(
        status=result.status,  # type: ignore[arg-type]
        trial=config.entrypoint,
        steps_completed=result.steps_completed,
        epochs_completed=result.epochs_completed,
        latest_checkpoint=result.latest_checkpoint,
        latest_checkpoint_path=str(base / result.latest_checkpoint)
        if result.latest_checkpoint
        else None,
        best_validation=result.best_validation,
        final_validation=result.final_validation,
        searcher_metric=config.searcher.metric,
        metrics_path=str(run_dir / "metrics.jsonl"),
        tensorboard_path=str(run_dir / "tensorboard"),
        seed=result.seed,
        restarts=record.restarts,
        elapsed_seconds=elapsed,
        error=None,
    )
