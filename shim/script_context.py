"""The ``shim.core`` context that a script's ``det.core.init()`` returns under ``run-trial``.

One ``ScriptAttempt`` per run of the script: its ``init`` builds contexts whose metrics go to the
run's ``metrics.jsonl`` and TensorBoard folder and to the progress display, whose checkpoints
land in the run's storage with the run's id, seed and searcher metric in their metadata (so
resume discovery and retention find them, as a trial class's), and whose preemption is
remembered; ``result`` turns what the script reported into the runner's ``RunResult``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from shim.core import (
    CheckpointContext,
    CheckpointNotFound,
    Context,
    DummyDistributedContext,
    PreemptContext,
    PreemptMode,
    SearcherContext,
    TensorboardMode,
    TrainContext,
)
from shim.core.info import ClusterInfo
from shim.core.sinks import to_jsonable
from shim.errors import ApiMisuse
from shim.progress import RunReporter
from shim.pytorch.controller import RunPlan, RunResult
from shim.pytorch.retention import checkpoints_to_delete, scan_checkpoints
from shim.runfiles import RecordingReporter, RunRecord

__all__ = ["RunReports", "ScriptAttempt"]


class RunReports:
    """What the script reported, for the final summary and the checkpoints' metadata."""

    def __init__(self, plan: RunPlan) -> None:
        self.metric, self.smaller = plan.searcher_metric, plan.smaller_is_better
        self.steps, self.epochs = 0, 0.0
        self.final: dict[str, Any] | None = None
        self.final_steps: int | None = None
        self.best: dict[str, Any] | None = None

    @classmethod
    def resumed(cls, metrics: pathlib.Path, record: RunRecord, plan: RunPlan) -> RunReports:
        """Reports of this run up to the checkpoint it resumes from (none on a fresh run)."""
        reports = cls(plan)
        if record.latest_checkpoint is None:
            return reports
        with contextlib.suppress(OSError):
            for line in metrics.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                    entry = json.loads(line)
                    if entry["steps_completed"] <= record.steps_completed:
                        reports.report(entry["group"], entry["steps_completed"], entry["metrics"])
        reports.steps = record.steps_completed
        return reports

    def report(self, group: str, steps: int, metrics: Mapping[str, Any]) -> None:
        if group not in ("training", "validation"):
            return
        self.steps = steps
        epochs = metrics.get("epochs")
        if isinstance(epochs, (int, float)) and not isinstance(epochs, bool):
            self.epochs = float(epochs)
        if group == "validation":
            self.final, self.final_steps = dict(metrics), steps
            if self._better(self.final.get(self.metric)):
                self.best = self.final

    def searcher_value(self, steps: int) -> float | None:
        """The searcher metric of the validation at ``steps``, when there was one."""
        value = self.final.get(self.metric) if self.final and self.final_steps == steps else None
        return float(value) if _finite(value) else None

    def _better(self, value: Any) -> bool:
        if not _finite(value):
            return False
        best = self.best.get(self.metric) if self.best else None
        return best is None or (value < best if self.smaller else value > best)


class ScriptAttempt:
    """One run of the script: ``init`` builds its contexts; the rest reads what they saw."""

    def __init__(
        self,
        info: ClusterInfo,
        reports: RunReports,
        plan: RunPlan,
        record: RunRecord,
        record_path: pathlib.Path,
        run_dir: pathlib.Path,
        base: pathlib.Path,
        reporter: RunReporter,
    ) -> None:
        self.info, self.reports, self.plan, self.record = info, reports, plan, record
        self.run_dir, self.base, self.reporter = run_dir, base, reporter
        self.recording = RecordingReporter(reporter, record, record_path)
        self.contexts: list[Context] = []

    def init(
        self,
        *,
        distributed: Any = None,
        checkpoint_storage: str | dict[str, Any] | None = None,
        preempt_mode: PreemptMode = PreemptMode.WorkersAskChief,
        tensorboard_mode: TensorboardMode = TensorboardMode.AUTO,
    ) -> Context:
        """``determined.core.init`` while the script runs."""
        ranks = int(os.environ.get("WORLD_SIZE", "1"))
        if distributed is None and ranks > 1:
            raise ApiMisuse(
                f"det.core.init() without distributed= in a job of {ranks} ranks; pass "
                "distributed=det.core.DistributedContext.from_torch_distributed(), as Determined "
                "requires for a multi-slot task"
            )
        if checkpoint_storage is not None:
            self.reporter.on_message(
                f"det.core.init(checkpoint_storage={checkpoint_storage!r}) is not used: "
                f"run-trial keeps this run's checkpoints in {self.base}"
            )
        dist = distributed if distributed is not None else DummyDistributedContext()
        if dist.size > 1:  # the chief's record decides, as for a trial class
            latest, run_id, seed = dist.broadcast(
                (self.record.latest_checkpoint, self.record.run_id, self.record.seed)
            )
            self.record.latest_checkpoint, self.record.run_id, self.record.seed = (
                latest,
                run_id,
                seed,
            )
            self.info.latest_checkpoint, self.info.trial.trial_seed = latest, seed or 0
        suffix = "" if dist.rank == 0 else f".rank{dist.rank}"
        train = _RunTrain(
            dist,
            self.info,
            self.run_dir / f"metrics{suffix}.jsonl",
            self.run_dir / "tensorboard",
            tensorboard_mode,
        )
        train.on_report = self._on_report
        train.open_tensorboard()
        checkpoint = _RunCheckpoint(dist, self.base, on_stored=self._on_stored)
        checkpoint.stamp = functools.partial(self._stamp, rank=dist.rank)
        context = Context(
            checkpoint=checkpoint,
            distributed=dist,
            preempt=_RunPreempt(dist, preempt_mode),
            train=train,
            searcher=SearcherContext(dist, self.info.trial._config),
            info=self.info,
        )
        self.contexts.append(context)
        return context

    def _on_report(self, group: str, steps: int, metrics: dict[str, Any]) -> None:
        values = to_jsonable(metrics)
        self.reports.report(group, steps, values)
        if group == "training":
            self.reporter.on_training_metrics(batches=steps, metrics=values)
        elif group == "validation":
            self.reporter.on_validation(batches=steps, metrics=values)

    def _stamp(self, metadata: dict[str, Any] | None, rank: int) -> dict[str, Any]:
        """The run's fields in a checkpoint's metadata (the script's own keys win); the chief
        adds what may differ between ranks."""
        stamped = {"run_id": self.record.run_id, "seed": self.record.seed, **(metadata or {})}
        steps = stamped.get("steps_completed")
        if rank == 0:
            stamped.setdefault("saved_at", time.time())
            stamped.setdefault("searcher_metric", self.plan.searcher_metric)
            if isinstance(steps, int):
                stamped.setdefault("validation_metric", self.reports.searcher_value(steps))
        return stamped

    def _on_stored(self, storage_id: str, metadata: dict[str, Any]) -> None:
        for context in self.contexts:
            context.train.flush()
        self.recording.on_checkpoint(batches=metadata["steps_completed"], storage_id=storage_id)

    def close(self) -> None:
        """Close what the script left open (a context it never exited; closing twice is a
        no-op)."""
        for context in self.contexts:
            context.close()

    def collect_garbage(self) -> None:
        """Apply save_trial_latest / save_trial_best to this run's checkpoints; the newest is
        always kept (on a cluster the master does this)."""
        if not self.contexts or self.contexts[0].distributed.rank != 0:
            return
        checkpoint = self.contexts[0].checkpoint
        records, _ = scan_checkpoints(checkpoint.storage_path)
        doomed = checkpoints_to_delete(
            [r for r in records if r.run_id == self.record.run_id],
            keep_latest=self.plan.save_trial_latest,
            keep_best=self.plan.save_trial_best,
            smaller_is_better=self.plan.smaller_is_better,
        )
        for storage_id in doomed:
            with contextlib.suppress(CheckpointNotFound):  # deleted by hand meanwhile
                checkpoint.delete(storage_id)

    def result(self) -> RunResult:
        preempted = any(getattr(c.preempt, "preempted", False) for c in self.contexts)
        return RunResult(
            status="preempted" if preempted else "completed",
            steps_completed=self.reports.steps,
            epochs_completed=self.reports.epochs,
            latest_checkpoint=self.record.latest_checkpoint,
            best_validation=self.reports.best,
            final_validation=self.reports.final,
            seed=int(self.record.seed or 0),
        )


class _RunTrain(TrainContext):
    """Reports also feed the summary and the progress display."""

    on_report: Callable[[str, int, dict[str, Any]], None] = staticmethod(lambda *_: None)

    def _report(
        self,
        group: str,
        steps_completed: int,
        metrics: dict[str, Any],
        batch_metrics: list[dict[str, Any]] | None = None,
    ) -> None:
        super()._report(group, steps_completed, metrics, batch_metrics)
        self.on_report(group, steps_completed, metrics)


class _RunCheckpoint(CheckpointContext):
    """Every checkpoint's metadata names the run, so a rerun's resume finds it on disk."""

    stamp: Callable[[dict[str, Any] | None], dict[str, Any]]

    def store_path(  # type: ignore[override]
        self, metadata: dict[str, Any] | None = None, *, shard: bool = False
    ) -> contextlib.AbstractContextManager[tuple[pathlib.Path, str]]:
        return super().store_path(self.stamp(metadata), shard=shard)

    def upload(
        self,
        ckpt_dir: str | os.PathLike | None,
        metadata: dict[str, Any] | None = None,
        *,
        shard: bool = False,
        selector: Callable[[str], bool] | None = None,
    ) -> str:
        return super().upload(ckpt_dir, self.stamp(metadata), shard=shard, selector=selector)


class _RunPreempt(PreemptContext):
    """Remembers whether the script was told to stop: the run then ends as preempted."""

    preempted = False

    def should_preempt(self, auto_ack: bool = True) -> bool:
        out = super().should_preempt(auto_ack)
        self.preempted = self.preempted or out
        return out


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
