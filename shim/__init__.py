"""Runtime for legacy Determined ``LightningAdapter`` trials.

Kept free of heavy imports: ``shim.hooks`` is read by the linter, which must not import torch.
"""

__all__: list[str] = []
