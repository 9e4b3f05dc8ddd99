"""The trial's data loaders, as the controller accepts them."""

from __future__ import annotations

from typing import Any

from shim.errors import ShimError
from shim.pytorch.data import DataLoader

__all__ = ["checked_loader"]


def checked_loader(loader: Any, method: str) -> Any:
    if type(loader).__module__.startswith("determined."):
        return _adopt(loader)
    if hasattr(loader, "get_data_loader"):
        return loader
    kind = type(loader).__name__
    raise ShimError(
        f"{method}() returned a {kind}; return determined.pytorch.DataLoader(dataset, "
        "batch_size=..., ...) so batches can be sharded and skipped exactly on resume"
    )


def _adopt(loader: Any) -> Any:
    """Determined's own DataLoader, rebuilt as ours when it shuffles with the global RNG, so a
    resumed run sees exactly the batches an uninterrupted one would."""
    random = type(getattr(loader, "sampler", None)).__name__ == "RandomSampler"
    if not random or getattr(loader, "generator", None) is not None:
        return loader
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=True,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )
