"""``LightningAdapter``: what ``determined.pytorch.lightning`` resolves to under ``run-trial``."""

from shim.lightning.adapter import LightningAdapter

__all__ = ["LightningAdapter"]
