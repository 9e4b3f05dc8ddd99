"""Lightning 1.x APIs that 1.6 to 2.0 removed, put back while ``run-trial`` runs a legacy trial.

Determined's ``LightningAdapter`` pinned Lightning 1.5, so its trials call ``dm.size()``,
``dm.has_setup_fit``, ``self.summarize()``, ``self.use_amp`` and the like (hook table LA310-LA314;
the trainer's share is in ``trainer_stub``). Each behaves here as in Lightning 1.5.

Nothing is patched on import: :func:`install` adds the APIs to the installed Lightning's
``LightningDataModule`` and ``LightningModule`` classes when a ``LightningAdapter`` is created (a
legacy trial calls ``dm.size()`` in its ``__init__``, before ``super().__init__``), and the last
:meth:`LegacyScope.close` restores exactly what was there. An API the installed Lightning still
has is left alone. Attributes are non-data descriptors, so an instance's own value, submodule,
parameter or buffer of the same name always wins (a torchmetrics ``self.precision`` keeps working).
"""

from __future__ import annotations

import functools
import io
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from shim.errors import ShimError

__all__ = ["LegacyScope", "copy_precision", "install", "is_installed", "legacy_precision"]

_NAMESPACES = ("pytorch_lightning", "lightning.pytorch")
_TRACKED_HOOKS = ("prepare_data", "setup", "teardown")
_STAGES = ("fit", "validate", "test", "predict")
_CALLS = "_shim_legacy_calls"  # instance attribute: the (hook, stage) pairs that already ran
_LEGACY_INIT_ARGS = ("train_transforms", "val_transforms", "test_transforms", "dims")

# Re-entrant: a scope's close() runs from a weakref finalizer, which garbage collection may call
# on this thread while install() holds the lock.
_lock = threading.RLock()
_users = 0
_patches: _Patches | None = None


class LegacyScope:
    """One user of the legacy layer; :meth:`close` (idempotent) ends its use."""

    def __init__(self) -> None:
        self._open = True

    def close(self) -> None:
        global _users, _patches
        with _lock:
            if not self._open:
                return
            self._open = False
            _users -= 1
            if _users == 0 and _patches is not None:
                _patches.undo()
                _patches = None


def install() -> LegacyScope:
    """Add the removed APIs to the Lightning classes imported so far (once for all users)."""
    global _users, _patches
    with _lock:
        _users += 1  # first, so a close() run by the collector meanwhile never undoes ours
        if _patches is None:
            _patches = _Patches()
            _patches.apply()
        return LegacyScope()


def is_installed() -> bool:
    return _patches is not None


def legacy_precision(precision: Any) -> int | str:
    """Lightning 1.5's ``precision`` value (16, 32, 64 or "bf16") for any Lightning spelling."""
    text = str(precision)
    if text.startswith("bf16"):
        return "bf16"
    for bits in (16, 64):
        if text.startswith(str(bits)):
            return bits
    return 32


class _Patches:
    """The attributes set on Lightning's classes, and what was there before."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, bool, Any]] = []
        self.tracked: list[weakref.ref[Any]] = []

    def apply(self) -> None:
        if not any(namespace in sys.modules for namespace in _NAMESPACES):
            # A trial may import its modules inside __init__; this package depends on this one.
            import pytorch_lightning  # noqa: F401
        for namespace in _NAMESPACES:
            package = sys.modules.get(namespace)
            if package is None:  # never imported: nothing of it can be in use yet
                continue
            self._patch_datamodule(package.LightningDataModule)
            self._patch_module(package.LightningModule)

    def undo(self) -> None:
        for ref in self.tracked:
            instance = ref()
            if instance is not None:
                _untrack(instance)
        for cls, name, existed, value in reversed(self._saved):
            if existed:
                setattr(cls, name, value)
            else:
                delattr(cls, name)
        self._saved.clear()

    def _set(self, cls: type, name: str, value: Any, *, replace: bool = False) -> None:
        if hasattr(cls, name) and not replace:
            return  # the installed Lightning still has it: its own stays
        existed = name in vars(cls)
        self._saved.append((cls, name, existed, vars(cls).get(name)))
        if isinstance(value, _Computed):
            value.__set_name__(cls, name)
        setattr(cls, name, value)

    def _patch_datamodule(self, cls: type) -> None:
        self._set(cls, "size", _size)
        self._set(cls, "dims", _Default(()))
        for name in ("train_transforms", "val_transforms", "test_transforms"):
            self._set(cls, name, _Default(None))
        self._set(cls, "has_prepared_data", _CallFlag("prepare_data", None))
        for hook in ("setup", "teardown"):
            for stage in _STAGES:
                self._set(cls, f"has_{hook}_{stage}", _CallFlag(hook, stage))
        # Always replaced: 2.x accepts and drops the 1.5 arguments, 1.9 refuses them.
        self._set(cls, "__init__", _legacy_init(vars(cls)["__init__"], self), replace=True)

    def _patch_module(self, cls: type) -> None:
        self._set(cls, "summarize", _summarize)
        self._set(cls, "model_size", _Computed(_model_size))
        self._set(cls, "use_amp", _Computed(lambda m: _precision_of(m) in (16, "bf16")))
        # On 1.9 ``precision`` is an instance attribute set in __init__, which shadows this.
        self._set(cls, "precision", _Computed(_precision_of))


# -- descriptors -------------------------------------------------------------------------------


class _Computed:
    """A non-data descriptor: an instance attribute, submodule, parameter or buffer named like it
    wins, as if the 1.5 instance attribute had been assigned over."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self._compute = compute
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        for store in ("_parameters", "_buffers", "_modules"):
            found = instance.__dict__.get(store)
            if found is not None and self._name in found:
                return found[self._name]
        return self._compute(instance)


class _Default(_Computed):
    """A class-level default (1.5 set it in ``__init__``); assigning it stores on the instance."""

    def __init__(self, value: Any) -> None:
        super().__init__(lambda _: value)


class _CallFlag(_Computed):
    """``has_setup_fit`` and friends: whether the hook already ran for the stage (1.5)."""

    def __init__(self, hook: str, stage: str | None) -> None:
        super().__init__(lambda dm: (hook, stage) in dm.__dict__.get(_CALLS, ()))


# -- LightningDataModule -----------------------------------------------------------------------


def _size(self: Any, dim: int | None = None) -> Any:
    """Lightning 1.5: the shape of each input (``dims``), or one entry of it."""
    if dim is not None:
        return self.dims[dim]
    return self.dims


def _legacy_init(original: Callable[..., None], patches: _Patches) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # 1.5's signature: (train_transforms=None, val_transforms=None, test_transforms=None,
        # dims=None), positionally too.
        legacy = dict(zip(_LEGACY_INIT_ARGS, args, strict=False))
        for name in _LEGACY_INIT_ARGS:
            if name in kwargs:
                legacy[name] = kwargs.pop(name)
        original(self, *args[len(_LEGACY_INIT_ARGS) :], **kwargs)
        for name, value in legacy.items():
            if value is not None:
                setattr(self, name, value)
        _track(self, patches)

    return __init__


def _track(dm: Any, patches: _Patches) -> None:
    """Wrap the instance's data hooks as Lightning 1.5 did: record each call, skip repeats."""
    if _CALLS in dm.__dict__:
        return
    dm.__dict__[_CALLS] = set()
    for name in _TRACKED_HOOKS:
        dm.__dict__[name] = _once(dm, name, getattr(dm, name))
    patches.tracked.append(weakref.ref(dm))


def _untrack(dm: Any) -> None:
    for name in _TRACKED_HOOKS:
        if getattr(dm.__dict__.get(name), "_shim_legacy_once", False):
            del dm.__dict__[name]
    dm.__dict__.pop(_CALLS, None)


def _once(dm: Any, name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(hook)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls: set[tuple[str, str | None]] = dm.__dict__.setdefault(_CALLS, set())
        keys: list[tuple[str, str | None]]
        if name == "prepare_data":
            keys = [(name, None)]
        else:
            stage = args[0] if args else kwargs.get("stage")
            # 1.5: no stage means fit, validate and test, and counts as run only if all three did.
            keys = [(name, s) for s in ("fit", "validate", "test")] if stage is None else []
            keys = keys or [(name, stage)]
        if all(key in calls for key in keys):
            stage = keys[0][1] if len(keys) == 1 else None
            described = f"{name}({'' if stage is None else repr(stage)})"
            warnings.warn(
                f"{type(dm).__name__}.{described} has already been called, so it is not called "
                "again, as in Lightning 1.5 (LA312); Lightning 1.6+ calls it every time",
                UserWarning,
                stacklevel=2,
            )
            return None
        calls.update(keys)
        return hook(*args, **kwargs)

    wrapped._shim_legacy_once = True  # type: ignore[attr-defined]
    return wrapped


# -- LightningModule ---------------------------------------------------------------------------


def _precision_of(module: Any) -> int | str:
    """The attached trainer's precision in 1.5's terms (1.5 copied it onto the module at fit;
    ``use_amp`` was whether an AMP backend ran, i.e. 16 or bf16); 32 without a trainer."""
    try:
        trainer = module.trainer
    except RuntimeError:  # not attached
        return 32
    return legacy_precision(getattr(trainer, "precision", 32)) if trainer is not None else 32


def copy_precision(module: Any, precision: Any) -> None:
    """What Lightning 1.x's Trainer does at fit: the module's ``precision`` attribute takes the
    trainer's (1.9 still has the attribute, so the class-level one above never shows there)."""
    if "precision" not in module.__dict__.get("_modules", {}):
        module.precision = legacy_precision(precision)


def _summarize(self: Any, mode: str | None = "top", max_depth: int | None = None) -> Any:
    """Lightning 1.5's ``LightningModule.summarize``: a ``ModelSummary`` of the module."""
    from pytorch_lightning.utilities.model_summary import ModelSummary

    if max_depth is None:
        depths = {None: 1, "top": 1, "full": -1}
        if mode not in depths:
            raise ShimError(
                f"{type(self).__name__}.summarize(mode={mode!r}): mode can be None, 'top' or "
                "'full', as in Lightning 1.5"
            )
        max_depth = depths[mode]
    try:
        trainer = self.trainer
    except RuntimeError:
        trainer = None
    # Detached while it runs: with example_input_array set, ModelSummary calls the trainer's
    # batch-transfer and precision machinery, which the stand-in does not have.
    self.trainer = None
    try:
        return ModelSummary(self, max_depth=max_depth)
    finally:
        self.trainer = trainer


class _ByteCounter(io.RawIOBase):
    """Counts what ``torch.save`` writes (Lightning 1.5's ``_ByteCounter``)."""

    def __init__(self) -> None:
        self.nbytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        self.nbytes += size
        return size


def _model_size(module: Any) -> float:
    """Lightning 1.5's ``model_size``: megabytes of the saved ``state_dict``."""
    import torch

    counter = _ByteCounter()
    torch.save(module.state_dict(), counter)  # type: ignore[arg-type]
    return counter.nbytes / 1e6
