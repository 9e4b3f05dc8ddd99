"""One validation pass: eval mode (each submodule's mode restored), no_grad, reduce, report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shim.errors import ShimError
from shim.pytorch.callback import PyTorchCallback
from shim.pytorch.data import to_device
from shim.pytorch.reducer import Reducer, combine_ranks, reduce_validation_metrics

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
        loader: Any = self._loader.get_data_loader(num_replicas=dist.size, rank=dist.rank)
        if getattr(self._trial, "_shim_validation_iterator_first", False):
            # Lightning 2.x creates the iterator (a draw from torch's RNG) before the hooks.
            loader = iter(loader)
        modes = [(m, m.training) for model in self._context.models for m in model.modules()]
        for model in self._context.models:
            model.eval()
        try:
            for callback in self._callbacks.values():
                callback.on_validation_start()
                callback.on_validation_epoch_start()
            outputs = self._batches(loader)
            as_numpy = [_as_numpy(o) for o in outputs] if self._wants_outputs() else []
            for callback in self._callbacks.values():
                callback.on_validation_epoch_end(as_numpy)
            metrics = self._metrics(outputs)
            self._check_searcher_metric(metrics)
            for callback in self._callbacks.values():
                callback.on_validation_end(metrics)  # still in eval mode, as Lightning
        finally:
            for module, training in modes:
                module.training = training
        if dist.rank == 0:
            report = {**metrics, "batches": batches, "epochs": epochs}
            self._core.train.report_validation_metrics(batches, report)
        return metrics

    def _metrics(self, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Reduced over batches and ranks; every rank gets the same values (so every rank
        makes the same checkpoint decision)."""
        dist = self._core.distributed
        reducer = self._trial.evaluation_reducer()
        local = reduce_validation_metrics(outputs, reducer) if outputs else {}
        extra_fn = getattr(self._trial, "_shim_validation_metrics", None)
        extra = extra_fn() if extra_fn is not None else {}
        if dist.size < 2:
            return {**local, **extra}
        gathered = dist.allgather((local, extra, len(outputs)))
        metrics = combine_ranks([(m, n) for m, _, n in gathered], reducer)
        logged = combine_ranks([(e, n) for _, e, n in gathered], Reducer.AVG)
        return {**metrics, **logged}

    def _wants_outputs(self) -> bool:
        """Whether a callback reads the per-batch outputs (converting them costs a sync each)."""
        return any(
            type(cb).on_validation_epoch_end is not PyTorchCallback.on_validation_epoch_end
            and not getattr(cb, "ignores_validation_outputs", False)
            for cb in self._callbacks.values()
        )

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
