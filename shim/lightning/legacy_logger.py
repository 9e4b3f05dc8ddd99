"""``self.logger`` under ``run-trial``: what Lightning's default ``TensorBoardLogger`` gives.

Legacy modules write images and histograms with ``self.logger.experiment.add_image(...)`` and
call ``self.logger.log_metrics`` / ``log_hyperparams``. Here ``experiment`` is the run's own
TensorBoard ``SummaryWriter`` (the trial context's writer, on the run's ``tensorboard/`` folder),
so everything lands beside the metrics run-trial reports. As in Lightning, only the global rank 0
writes: other ranks get an experiment whose methods do nothing. The methods follow Lightning
1.5's ``TensorBoardLogger``.
"""

from __future__ import annotations

import logging
import pathlib
from argparse import Namespace
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["LegacyTensorBoardLogger"]

logger = logging.getLogger("shim.lightning")

_HPARAMS_FILE = "hparams.yaml"


class _DummyExperiment:
    """What Lightning's loggers give ranks other than 0: every method does nothing."""

    def nop(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, _: str) -> Callable[..., None]:
        return self.nop

    def __getitem__(self, _: Any) -> _DummyExperiment:
        return self


class LegacyTensorBoardLogger:
    """Lightning's ``TensorBoardLogger`` interface over the run's TensorBoard writer.

    ``log_dir`` is the run's TensorBoard folder and, as in Lightning, equals
    ``save_dir/name/version``.
    """

    def __init__(
        self, log_dir: pathlib.Path, writer: Callable[[], Any], *, is_global_zero: bool
    ) -> None:
        self._log_dir = pathlib.Path(log_dir)
        self._writer = writer
        self._is_global_zero = is_global_zero
        self.hparams: dict[str, Any] = {}

    # -- where things go ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._log_dir.parent.name

    @property
    def version(self) -> str:
        return self._log_dir.name

    @property
    def save_dir(self) -> str:
        return str(self._log_dir.parent.parent)

    @property
    def root_dir(self) -> str:
        return str(self._log_dir.parent)

    @property
    def log_dir(self) -> str:
        return str(self._log_dir)

    @property
    def sub_dir(self) -> None:
        return None

    @property
    def experiment(self) -> Any:
        """The ``SummaryWriter`` (global rank 0), else an experiment that does nothing."""
        if not self._is_global_zero:
            return _DummyExperiment()
        return self._writer()

    # -- logging --------------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self._is_global_zero:
            return
        writer = self.experiment
        for name, value in metrics.items():
            if hasattr(value, "item") and not isinstance(value, Mapping):
                value = value.item()
            if isinstance(value, Mapping):
                writer.add_scalars(name, dict(value), step)
                continue
            try:
                writer.add_scalar(name, value, step)
            except Exception as exc:
                raise ValueError(
                    f"self.logger.log_metrics: you tried to log {value!r} as {name!r}, which is "
                    "not supported; log a number, a scalar tensor or a dict of them"
                ) from exc

    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace | None, metrics: Any = None
    ) -> None:
        """Record hyperparameters in TensorBoard's HParams view (with a placeholder
        ``hp_metric`` of -1 when no metric is given, as Lightning does) and in
        ``hparams.yaml`` in ``log_dir``."""
        if not self._is_global_zero:
            return
        if isinstance(params, Namespace):
            params = vars(params)
        self.hparams.update(params or {})
        flat = _sanitize(_flatten(dict(params or {})))
        if metrics is None:
            metrics = {"hp_metric": -1}
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if metrics:
            self.log_metrics(metrics, 0)
            from torch.utils.tensorboard.summary import hparams

            # Into the run's own event file, as Lightning does (add_hparams would make a sub-run).
            file_writer = self.experiment._get_file_writer()
            for summary in hparams(flat, dict(metrics)):
                file_writer.add_summary(summary)
        self._save_hparams()

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Nothing, as Lightning's default logger (``log_graph=False``)."""

    def save(self) -> None:
        if self._is_global_zero:
            self._save_hparams()

    def finalize(self, status: str) -> None:
        if self._is_global_zero:
            self.experiment.flush()
            self._save_hparams()

    def _save_hparams(self) -> None:
        import yaml

        kept: dict[str, Any] = {}
        for key, value in self.hparams.items():
            try:
                yaml.safe_dump(value)
            except yaml.YAMLError:
                logger.warning("hparams.yaml: skipping %r, which YAML cannot represent", key)
                continue
            kept[key] = value
        self._log_dir.mkdir(parents=True, exist_ok=True)
        (self._log_dir / _HPARAMS_FILE).write_text(yaml.safe_dump(kept), encoding="utf-8")


def _flatten(params: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a/b': 1}``; None becomes ``'None'`` (Lightning's rule)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, MutableMapping):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = "None" if value is None else value
    return flat


def _sanitize(params: dict[str, Any]) -> dict[str, Any]:
    """Numbers, strings, booleans and 0/1-d tensors stay; anything else becomes its ``str``."""
    import numpy as np
    import torch

    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, np.bool_ | np.integer | np.floating):
            value = value.item()
        matrix = isinstance(value, torch.Tensor) and value.ndim > 1
        if matrix or type(value) not in (bool, int, float, str, torch.Tensor):
            value = str(value)
        out[key] = value
    return out
