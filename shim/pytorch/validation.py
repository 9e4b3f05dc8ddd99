"""One validation pass: eval mode (each submodule's mode restored), no_grad, reduce, report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shim.errors import ShimError
from shim.pytorch.data import to_device
from shim.pytorch.reducer import combine_ranks, reduce_validation_metrics

__all__ = ["Validator"]


class Validator:
    def __init__(
        self,
        core: Any,
        context: Any,
        trial: Any,
        callbacks: dict[str, Any],
        plan: Any,
        loader: Any,
    ) -> None:
        self._core = core
        self._loader = loader
        self._context = context
        self._trial = trial
        self._callbacks = callbacks
        self._plan = plan

    def run(self, batches: int, epochs: float) -> dict[str, Any]:
        dist = self._core.distributed
        loader = self._loader.get_data_loader(num_replicas=dist.size, rank=dist.rank)
        modes = [(m, m.training) for model in self._context.models for m in model.modules()]
        for model in self._context.models:
            model.eval()
        try:
            for callback in self._callbacks.values():
                callback.on_validation_start()
                callback.on_validation_epoch_start()
            outputs = self._batches(loader)
            for callback in self._callbacks.values():
                callback.on_validation_epoch_end([_as_numpy(o) for o in outputs])
        finally:
            for module, training in modes:
                module.training = training
        reducer = self._trial.evaluation_reducer()
        local = reduce_validation_metrics(outputs, reducer) if outputs else {}
        if dist.size > 1:
            metrics = combine_ranks(dist.allgather((local, len(outputs))), reducer)
        else:
            metrics = local
        extra = getattr(self._trial, "_shim_validation_metrics", None)
        if extra is not None:
            metrics = {**metrics, **extra()}
        self._check_searcher_metric(metrics)
        for callback in self._callbacks.values():
            callback.on_validation_end(metrics)
        report = {**metrics, "batches": batches, "epochs": epochs}
        if dist.rank == 0:
            self._core.train.report_validation_metrics(batches, report)
        return metrics

    def _batches(self, loader: Any) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = []
        with torch.no_grad():
            for idx, batch in enumerate(loader):
                out = self._trial.evaluate_batch(to_device(batch, self._context.device), idx)
                outputs.append(out if isinstance(out, dict) else {"loss": out})
        return outputs

    def _check_searcher_metric(self, metrics: dict[str, Any]) -> None:
        name = self._plan.searcher_metric
        if name not in metrics:
            raise ShimError(
                f"searcher.metric {name!r} was not reported by validation; the validation "
                f"metrics are {sorted(metrics)}: log it in validation_step (self.log({name!r}, "
                "...)) or change searcher.metric in the experiment config"
            )


def _as_numpy(output: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        for k, v in output.items()
    }
