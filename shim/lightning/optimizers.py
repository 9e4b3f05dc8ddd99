"""Parse what ``LightningModule.configure_optimizers()`` returns, without Lightning internals.

The original adapter broke when it borrowed Lightning's private ``TrainerOptimizersMixin``; this
module reimplements the parser of Lightning 2.6 (``core/optimizer.py``) and keeps what 2.0 removed
and legacy trials still use: several optimizers with a ``frequency`` each (only one is active per
batch) and the ``opt_idx`` of each scheduler (only the active optimizer's schedulers step).
"""

from __future__ import annotations

import bisect
import itertools
import reprlib
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

import torch
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau

from shim.errors import ShimError

__all__ = [
    "ConfigureOptimizersError",
    "Interval",
    "OptimizationPlan",
    "OptimizerConfig",
    "SchedulerConfig",
    "active_optimizer_indices",
    "parse_configure_optimizers",
    "scheduler_should_step",
]

Interval = Literal["step", "epoch"]

# Lightning's `Optimizable` protocol: duck-typed optimizers (apex, bitsandbytes) are accepted too.
_OPTIMIZER_ATTRS = ("step", "param_groups", "defaults", "state", "state_dict", "load_state_dict")
_OPTIMIZER_DICT_KEYS = frozenset({"optimizer", "lr_scheduler", "monitor", "frequency"})
_FORMS = (
    " It should return one of:\n"
    " * `Optimizer`\n"
    " * [`Optimizer`, ...]\n"
    " * ([`Optimizer`, ...], [`LRScheduler`, ...])\n"
    ' * {"optimizer": `Optimizer`, (optional) "lr_scheduler": `LRScheduler`,'
    ' (optional) "monitor": "metric", (optional, 1.x) "frequency": int}\n'
    " * [dict like the one above, ...]"
)


class ConfigureOptimizersError(ShimError):
    """``configure_optimizers`` returned something that cannot be trained."""


@dataclass
class OptimizerConfig:
    """One optimizer; ``frequency`` is the 1.x number of consecutive batches it is active."""

    optimizer: torch.optim.Optimizer
    frequency: int | None = None


@dataclass
class SchedulerConfig:
    """Lightning's ``LRSchedulerConfig``, with 1.x's ``opt_idx`` always filled in."""

    scheduler: Any
    name: str | None = None
    interval: Interval = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: str | None = None
    strict: bool = True
    opt_idx: int | None = None


_SCHEDULER_KEYS = frozenset(f.name for f in fields(SchedulerConfig))


@dataclass
class OptimizationPlan:
    """The optimizers in the order returned, their schedulers, and the top-level ``monitor``."""

    optimizers: list[OptimizerConfig]
    schedulers: list[SchedulerConfig]
    monitor: str | None = None

    @property
    def frequencies(self) -> list[int] | None:
        """The optimizers' frequencies, or None when they take turns on every batch."""
        freqs = [opt.frequency for opt in self.optimizers]
        if any(freq is None for freq in freqs):
            return None
        return cast(list[int], freqs)


def parse_configure_optimizers(conf: Any, *, source: str = "") -> OptimizationPlan:
    """Validate ``conf`` as Lightning does and return the plan the training loop follows.

    ``source`` (the module's ``configure_optimizers`` as ``file:line``) prefixes every error and
    warning, so the user knows where to look.
    """
    where = _Where(source)
    optimizers, entries, monitor = _split(conf, where)
    if not optimizers:
        raise where.error("`configure_optimizers` returned no optimizer; return at least one.")
    schedulers = [_scheduler_config(entry, idx, monitor, where) for entry, idx in entries]
    for config in schedulers:
        _attach(config, [opt.optimizer for opt in optimizers], where)
    # Warn only once the whole result is known to be valid, pointing at our caller.
    for note in where.notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return OptimizationPlan(optimizers, schedulers, monitor)


def active_optimizer_indices(plan: OptimizationPlan, batch_idx: int) -> list[int]:
    """Which optimizers train on batch ``batch_idx`` (counted within the epoch), as in 1.x."""
    freqs = plan.frequencies
    if freqs is None:
        return list(range(len(plan.optimizers)))
    bounds = list(itertools.accumulate(freqs))
    # numpy.searchsorted(cumsum(freqs), batch_idx % sum(freqs), side="right") in 1.x.
    return [bisect.bisect_right(bounds, batch_idx % bounds[-1])]


def scheduler_should_step(
    cfg: SchedulerConfig, *, interval: Interval, batch_idx: int, epoch: int
) -> bool:
    """Whether ``cfg`` steps now: at the end of batch ``batch_idx`` (counted within the epoch)
    when ``interval`` is ``"step"``, at the end of epoch ``epoch`` when it is ``"epoch"``."""
    if interval not in ("step", "epoch"):
        raise ValueError(f'interval must be "step" or "epoch", not {interval!r}')
    if cfg.interval != interval:
        return False
    index = batch_idx if interval == "step" else epoch
    return (index + 1) % cfg.frequency == 0


# A scheduler as returned (bare or dict) and the opt_idx the return form imposes on it.
_Entry = tuple[Any, int | None]


def _split(conf: Any, where: _Where) -> tuple[list[OptimizerConfig], list[_Entry], str | None]:
    """Tell the return forms apart, in the order Lightning tries them."""
    if conf is None:
        raise where.error(
            "`configure_optimizers` returned None; a trial must train something. Return an"
            " optimizer, e.g. `torch.optim.SGD(self.parameters(), lr=0.1)`.",
        )
    if _is_optimizer(conf):
        return [OptimizerConfig(conf)], [], None
    if _is_lists_pair(conf):
        optimizers, scheds = conf
        scheds = scheds if isinstance(scheds, list) else [scheds]
        pairs: list[_Entry] = [(sched, None) for sched in scheds]
        return [OptimizerConfig(opt) for opt in optimizers], pairs, None
    if isinstance(conf, dict):
        # 1.x read `frequency` only from a list of dicts: a lone optimizer is always active.
        optimizer = _dict_optimizer(conf, where)
        entries: list[_Entry] = [(conf["lr_scheduler"], None)] if "lr_scheduler" in conf else []
        monitor: str | None = conf.get("monitor")
        return [OptimizerConfig(optimizer)], entries, monitor
    if isinstance(conf, (list, tuple)) and all(isinstance(d, dict) for d in conf):
        return _split_dicts(conf, where)
    if isinstance(conf, (list, tuple)) and all(_is_optimizer(opt) for opt in conf):
        return [OptimizerConfig(opt) for opt in conf], [], None
    raise where.error(
        "Unknown configuration for model optimizers: `configure_optimizers` returned"
        f" {_describe(conf)}.{_FORMS}",
    )


def _split_dicts(
    confs: list[Any] | tuple[Any, ...], where: _Where
) -> tuple[list[OptimizerConfig], list[_Entry], str | None]:
    optimizers = [_dict_optimizer(conf, where) for conf in confs]
    freqs = [conf.get("frequency") for conf in confs]
    given = [freq for freq in freqs if freq is not None]
    if given and len(given) != len(confs):
        raise where.error(
            "A frequency must be given to each optimizer. Add a `frequency` to every optimizer"
            " dict, or remove it from all of them.",
        )
    if given:
        _check_frequencies(given, where)
    # Each dict's scheduler belongs to that dict's optimizer (1.9 set `opt_idx` so); a top-level
    # `monitor` is ignored in this form, as in Lightning: it must sit in the scheduler dict.
    entries: list[_Entry] = [
        (_as_scheduler_dict(conf["lr_scheduler"]), idx)
        for idx, conf in enumerate(confs)
        if "lr_scheduler" in conf
    ]
    return [OptimizerConfig(o, f) for o, f in zip(optimizers, freqs, strict=True)], entries, None


def _dict_optimizer(conf: dict[Any, Any], where: _Where) -> torch.optim.Optimizer:
    extra = conf.keys() - _OPTIMIZER_DICT_KEYS
    if extra:
        where.warn(
            f"Found unsupported keys in the optimizer configuration: {_names(extra)};"
            " they are ignored."
        )
    if "optimizer" not in conf:
        raise where.error(
            f'An optimizer dict needs the key "optimizer"; it has {_names(conf.keys())}.',
        )
    if not _is_optimizer(conf["optimizer"]):
        raise where.error(
            'The "optimizer" of an optimizer dict must be a `torch.optim.Optimizer`, not'
            f" {_describe(conf['optimizer'])}.",
        )
    return cast(torch.optim.Optimizer, conf["optimizer"])


def _check_frequencies(freqs: list[Any], where: _Where) -> None:
    if not all(isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in freqs):
        raise where.error(f"Optimizer frequencies must be integers >= 0, not {freqs}.")
    if sum(freqs) == 0:
        raise where.error(f"Optimizer frequencies {freqs} add up to 0: no optimizer would run.")


def _scheduler_config(
    entry: Any, opt_idx: int | None, monitor: str | None, where: _Where
) -> SchedulerConfig:
    if isinstance(entry, dict):
        config = _scheduler_from_dict(entry, where)
    elif isinstance(entry, ReduceLROnPlateau):
        if monitor is None:
            raise where.error(
                "`configure_optimizers` must include a monitor when a `ReduceLROnPlateau`"
                ' scheduler is used. For example: {"optimizer": optimizer, "lr_scheduler":'
                ' scheduler, "monitor": "metric_to_track"}',
            )
        config = SchedulerConfig(entry, reduce_on_plateau=True, monitor=monitor)
    else:
        config = SchedulerConfig(entry)
    if opt_idx is not None:
        config.opt_idx = opt_idx
    return config


def _scheduler_from_dict(entry: dict[Any, Any], where: _Where) -> SchedulerConfig:
    extra = entry.keys() - _SCHEDULER_KEYS
    if extra:
        where.warn(
            f"Found unsupported keys in the lr scheduler dict: {_names(extra)};"
            " they are ignored. Remove them from the output of `configure_optimizers`."
        )
    values = {key: value for key, value in entry.items() if key in _SCHEDULER_KEYS}
    if "scheduler" not in values:
        raise where.error(
            'The lr scheduler dict must have the key "scheduler" with its item being an lr'
            f" scheduler; it has {_names(entry.keys())}.",
        )
    if values.get("interval", "epoch") not in ("step", "epoch"):
        raise where.error(
            'The "interval" key in lr scheduler dict must be "step" or "epoch"'
            f' but is "{values["interval"]}".',
        )
    frequency = values.get("frequency", 1)
    if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency < 1:
        raise where.error(
            f'The "frequency" key in lr scheduler dict must be an integer >= 1, not {frequency!r}.',
        )
    values.setdefault("reduce_on_plateau", isinstance(values["scheduler"], ReduceLROnPlateau))
    if values["reduce_on_plateau"] and values.get("monitor") is None:
        raise where.error(
            "The lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler"
            ' is used. For example: {"optimizer": optimizer, "lr_scheduler":'
            ' {"scheduler": scheduler, "monitor": "your_loss"}}',
        )
    if isinstance(values["scheduler"], OneCycleLR) and values.get("interval", "epoch") == "epoch":
        where.warn(
            "A `OneCycleLR` scheduler is using 'interval': 'epoch'."
            " Are you sure you didn't mean 'interval': 'step'?"
        )
    return SchedulerConfig(**values)


def _attach(
    config: SchedulerConfig, optimizers: list[torch.optim.Optimizer], where: _Where
) -> None:
    """Check the scheduler is usable and set its ``opt_idx`` (1.9 ``_set_scheduler_opt_idx``)."""
    scheduler = config.scheduler
    name = type(scheduler).__name__
    if not (hasattr(scheduler, "state_dict") and hasattr(scheduler, "load_state_dict")):
        raise where.error(
            f"The provided lr scheduler `{name}` is invalid. It should have `state_dict` and"
            " `load_state_dict` methods defined, so that it can be checkpointed.",
        )
    owner = getattr(scheduler, "optimizer", None)
    index = next((i for i, opt in enumerate(optimizers) if opt is owner), None)
    if index is None:
        raise where.error(
            f"The lr scheduler `{name}` is attached to an optimizer that wasn't returned from"
            " `configure_optimizers`. Return that optimizer too, or build the scheduler on one"
            " of the returned optimizers.",
        )
    if config.opt_idx is not None and config.opt_idx != index:
        raise where.error(
            f"`opt_idx` {config.opt_idx} set for the lr scheduler `{name}` does not match the"
            f" index {index} of its optimizer in the output of `configure_optimizers`.",
        )
    config.opt_idx = index


def _as_scheduler_dict(scheduler: Any) -> dict[Any, Any]:
    return dict(scheduler) if isinstance(scheduler, dict) else {"scheduler": scheduler}


def _is_optimizer(obj: Any) -> bool:
    return isinstance(obj, torch.optim.Optimizer) or all(hasattr(obj, a) for a in _OPTIMIZER_ATTRS)


def _is_lists_pair(conf: Any) -> bool:
    return (
        isinstance(conf, (list, tuple))
        and len(conf) == 2
        and isinstance(conf[0], list)
        and all(_is_optimizer(opt) for opt in conf[0])
    )


def _describe(obj: Any) -> str:
    return f"`{type(obj).__name__}` {reprlib.repr(obj)}"


def _names(keys: Any) -> str:
    return "{" + ", ".join(repr(key) for key in sorted(keys, key=str)) + "}"


@dataclass
class _Where:
    """Where the result came from, and the warnings gathered while parsing it."""

    source: str
    notes: list[str] = field(default_factory=list)

    def error(self, message: str) -> ConfigureOptimizersError:
        return ConfigureOptimizersError(self._prefix + message)

    def warn(self, message: str) -> None:
        self.notes.append(self._prefix + message)

    @property
    def _prefix(self) -> str:
        return f"{self.source}: " if self.source else ""
