"""The PyTorchTrial surface a legacy Determined trial touches, and the controller that runs it.

``run-trial`` makes ``determined.pytorch`` resolve here when Determined is not installed.
"""

from shim.pytorch.callback import PyTorchCallback
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.data import DataLoader, to_device
from shim.pytorch.lr_scheduler import LRScheduler
from shim.pytorch.reducer import MetricReducer, Reducer
from shim.pytorch.trial import PyTorchTrial

__all__ = [
    "DataLoader",
    "LRScheduler",
    "MetricReducer",
    "PyTorchCallback",
    "PyTorchTrial",
    "PyTorchTrialContext",
    "Reducer",
    "to_device",
]
