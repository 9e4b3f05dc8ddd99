"""configure_optimizers parsing: Lightning 2.6's own parser is the oracle; 1.x forms follow 1.9."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pytorch_lightning.core.optimizer import (
    _configure_optimizers,
    _configure_schedulers_automatic_opt,
    _validate_optimizers_attached,
)
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau, StepLR

import shim.lightning.optimizers as optimizers_module
from shim.errors import ShimError
from shim.lightning.optimizers import (
    ConfigureOptimizersError,
    OptimizationPlan,
    OptimizerConfig,
    SchedulerConfig,
    active_optimizer_indices,
    parse_configure_optimizers,
    scheduler_should_step,
)


class Kit:
    """Two optimizers over two layers, and scheduler makers; fresh objects for every test."""

    def __init__(self) -> None:
        self.gen = torch.nn.Linear(2, 2)
        self.disc = torch.nn.Linear(2, 1)
        self.a = torch.optim.SGD(self.gen.parameters(), lr=0.1)
        self.b = torch.optim.Adam(self.disc.parameters(), lr=0.01)

    def step(self, opt: torch.optim.Optimizer) -> StepLR:
        return StepLR(opt, step_size=1)

    def plateau(self, opt: torch.optim.Optimizer) -> ReduceLROnPlateau:
        return ReduceLROnPlateau(opt)

    def one_cycle(self, opt: torch.optim.Optimizer) -> OneCycleLR:
        return OneCycleLR(opt, max_lr=1.0, total_steps=10)


Form = Callable[[Kit], Any]

# Every form Lightning 2.6 accepts (REFERENCE section 8), in its order of precedence.
ACCEPTED: dict[str, Form] = {
    "optimizer": lambda k: k.a,
    "lists pair, one scheduler each": lambda k: [[k.a, k.b], [k.step(k.a), k.step(k.b)]],
    "lists pair as a tuple": lambda k: ([k.a], [k.step(k.a)]),
    "lists pair, schedulers out of order": lambda k: [[k.a, k.b], [k.step(k.b), k.step(k.a)]],
    "lists pair, bare scheduler": lambda k: [[k.a], k.step(k.a)],
    "lists pair, no scheduler": lambda k: [[k.a], []],
    "lists pair, scheduler dict": lambda k: [
        [k.a],
        {"scheduler": k.step(k.a), "interval": "step", "frequency": 3, "name": "lr-a"},
    ],
    "lists pair, plateau dict": lambda k: [
        [k.a],
        [{"scheduler": k.plateau(k.a), "monitor": "val_loss", "strict": False}],
    ],
    "dict, optimizer only": lambda k: {"optimizer": k.a},
    "dict, bare scheduler": lambda k: {"optimizer": k.a, "lr_scheduler": k.step(k.a)},
    "dict, bare plateau with monitor": lambda k: {
        "optimizer": k.a,
        "lr_scheduler": k.plateau(k.a),
        "monitor": "val_loss",
    },
    "dict, plateau dict": lambda k: {
        "optimizer": k.a,
        "lr_scheduler": {"scheduler": k.plateau(k.a), "monitor": "val_acc", "interval": "step"},
    },
    "dict, monitor without plateau": lambda k: {
        "optimizer": k.a,
        "lr_scheduler": {"scheduler": k.step(k.a), "interval": "step"},
        "monitor": "val_loss",
    },
    "list of dicts": lambda k: [
        {"optimizer": k.a, "lr_scheduler": k.step(k.a)},
        {"optimizer": k.b, "lr_scheduler": {"scheduler": k.step(k.b), "interval": "step"}},
    ],
    "tuple of dicts, second has the scheduler": lambda k: (
        {"optimizer": k.a},
        {"optimizer": k.b, "lr_scheduler": {"scheduler": k.plateau(k.b), "monitor": "loss"}},
    ),
    "list of optimizers": lambda k: [k.a, k.b],
    "tuple of optimizers": lambda k: (k.b, k.a),
}


def lightning_parse(conf: Any) -> tuple[list[Any], list[Any], str | None]:
    opts, scheds, monitor = _configure_optimizers(conf)
    configs = _configure_schedulers_automatic_opt(scheds, monitor)
    _validate_optimizers_attached(opts, configs)
    return opts, configs, monitor


def scheduler_fields(cfg: SchedulerConfig) -> tuple[Any, ...]:
    return (
        cfg.scheduler,
        cfg.name,
        cfg.interval,
        cfg.frequency,
        cfg.reduce_on_plateau,
        cfg.monitor,
        cfg.strict,
        cfg.opt_idx,
    )


def lightning_fields(cfg: Any, opts: list[Any]) -> tuple[Any, ...]:
    opt_idx = next(i for i, opt in enumerate(opts) if opt is cfg.scheduler.optimizer)
    return (
        cfg.scheduler,
        cfg.name,
        cfg.interval,
        cfg.frequency,
        cfg.reduce_on_plateau,
        cfg.monitor,
        cfg.strict,
        opt_idx,
    )


def assert_same_as_lightning(plan: OptimizationPlan, conf: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2.6 warns about the 1.x keys it drops
        opts, configs, monitor = lightning_parse(conf)
    assert len(plan.optimizers) == len(opts)
    assert all(ours.optimizer is theirs for ours, theirs in zip(plan.optimizers, opts, strict=True))
    assert [scheduler_fields(cfg) for cfg in plan.schedulers] == [
        lightning_fields(cfg, opts) for cfg in configs
    ]
    assert plan.monitor == monitor


def parse_quietly(conf: Any, source: str = "") -> OptimizationPlan:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse_configure_optimizers(conf, source=source)


@pytest.mark.parametrize("form", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_every_accepted_form_parses_as_lightning_parses_it(form: Form) -> None:
    conf = form(Kit())
    plan = parse_quietly(conf)
    assert all(opt.frequency is None for opt in plan.optimizers)
    assert plan.frequencies is None
    assert_same_as_lightning(plan, conf)


def test_the_user_s_dicts_are_left_unchanged() -> None:
    kit = Kit()
    inner = {"scheduler": kit.plateau(kit.a), "monitor": "loss", "extra": 1}
    conf = {"optimizer": kit.a, "lr_scheduler": inner}
    with pytest.warns(RuntimeWarning):
        parse_configure_optimizers(conf)
    assert inner.keys() == {"scheduler", "monitor", "extra"}
    assert conf.keys() == {"optimizer", "lr_scheduler"}


def test_a_duck_typed_optimizer_is_accepted_as_lightning_s_optimizable_protocol() -> None:
    class Duck:
        def __init__(self) -> None:
            self.param_groups: list[dict[str, Any]] = [{"lr": 0.1, "params": []}]
            self.defaults: dict[str, Any] = {}
            self.state: dict[Any, Any] = {}

        def step(self, closure: Any = None) -> None: ...

        def state_dict(self) -> dict[str, Any]:
            return {}

        def load_state_dict(self, state: dict[str, Any]) -> None: ...

    duck = Duck()
    plan = parse_quietly([duck])
    assert plan.optimizers == [OptimizerConfig(duck)]  # type: ignore[arg-type]
    assert_same_as_lightning(plan, [duck])


# 1.x forms that 2.x refuses: expected values come from REFERENCE section 7 (Lightning 1.9).


def test_frequencies_of_a_list_of_dicts_are_kept_in_order() -> None:
    kit = Kit()
    conf = [
        {"optimizer": kit.a, "frequency": 5, "lr_scheduler": kit.step(kit.a)},
        {"optimizer": kit.b, "frequency": 1},
    ]
    plan = parse_quietly(conf)
    assert plan.frequencies == [5, 1]
    assert [opt.frequency for opt in plan.optimizers] == [5, 1]
    assert_same_as_lightning(plan, conf)  # everything but the frequencies is 2.6's reading


def test_a_frequency_on_a_single_dict_is_ignored_as_1_9_ignores_it() -> None:
    kit = Kit()
    plan = parse_quietly({"optimizer": kit.a, "frequency": 3})
    assert plan.optimizers == [OptimizerConfig(kit.a, None)]
    assert active_optimizer_indices(plan, 7) == [0]


def test_a_scheduler_s_opt_idx_is_kept_when_it_matches_its_optimizer() -> None:
    kit = Kit()
    sched = kit.step(kit.b)
    plan = parse_quietly([[kit.a, kit.b], [{"scheduler": sched, "opt_idx": 1}]])
    assert plan.schedulers == [SchedulerConfig(sched, opt_idx=1)]


def test_a_dict_s_scheduler_belongs_to_that_dict_s_optimizer() -> None:
    kit = Kit()
    conf = [
        {"optimizer": kit.a, "frequency": 1},
        {
            "optimizer": kit.b,
            "frequency": 2,
            "lr_scheduler": {"scheduler": kit.step(kit.b), "opt_idx": 1},
        },
    ]
    assert [cfg.opt_idx for cfg in parse_quietly(conf).schedulers] == [1]


# Warnings.


def test_unknown_scheduler_keys_warn_with_their_names_and_are_dropped() -> None:
    kit = Kit()
    sched = kit.step(kit.a)
    conf = {"optimizer": kit.a, "lr_scheduler": {"scheduler": sched, "bogus": 1, "zeta": 2}}
    with pytest.warns(RuntimeWarning, match=r"^m\.py:3: .*lr scheduler dict: \{'bogus', 'zeta'\}"):
        plan = parse_configure_optimizers(conf, source="m.py:3")
    assert plan.schedulers == [SchedulerConfig(sched, opt_idx=0)]


def test_unknown_optimizer_dict_keys_warn_with_their_names() -> None:
    kit = Kit()
    with pytest.warns(RuntimeWarning, match=r"optimizer configuration: \{'gradient_clip'\}"):
        parse_configure_optimizers({"optimizer": kit.a, "gradient_clip": 1.0})


def test_a_one_cycle_scheduler_stepped_per_epoch_warns() -> None:
    kit = Kit()
    with pytest.warns(RuntimeWarning, match="OneCycleLR.*'interval': 'epoch'"):
        parse_configure_optimizers([[kit.a], [{"scheduler": kit.one_cycle(kit.a)}]])


def test_a_one_cycle_scheduler_stepped_per_step_does_not_warn() -> None:
    kit = Kit()
    parse_quietly([[kit.a], [{"scheduler": kit.one_cycle(kit.a), "interval": "step"}]])


# Errors: what happened, where, what to do.

REJECTED: dict[str, tuple[Form, str]] = {
    "None": (lambda k: None, r"returned None; a trial must train something"),
    "an int": (lambda k: 42, r"Unknown configuration for model optimizers.*`int` 42"),
    "a string": (lambda k: "adam", r"Unknown configuration for model optimizers.*`str` 'adam'"),
    "a list mixing kinds": (
        lambda k: [k.a, "sgd"],
        r"Unknown configuration for model optimizers.*`list` \[SGD",
    ),
    "a scheduler alone": (lambda k: k.step(k.a), r"Unknown configuration.*`StepLR`"),
    "an empty list": (lambda k: [], r"returned no optimizer"),
    "an empty lists pair": (lambda k: ([], []), r"returned no optimizer"),
    "a dict without optimizer": (
        lambda k: {"lr_scheduler": k.step(k.a)},
        r"needs the key \"optimizer\"; it has \{'lr_scheduler'\}",
    ),
    "a dict whose optimizer is not one": (
        lambda k: {"optimizer": "sgd"},
        r"must be a `torch.optim.Optimizer`, not `str` 'sgd'",
    ),
    "some frequencies missing": (
        lambda k: [{"optimizer": k.a, "frequency": 2}, {"optimizer": k.b}],
        r"A frequency must be given to each optimizer\.",
    ),
    "a negative frequency": (
        lambda k: [{"optimizer": k.a, "frequency": -1}, {"optimizer": k.b, "frequency": 2}],
        r"frequencies must be integers >= 0, not \[-1, 2\]",
    ),
    "a float frequency": (
        lambda k: [{"optimizer": k.a, "frequency": 1.5}],
        r"frequencies must be integers >= 0",
    ),
    "frequencies adding up to zero": (
        lambda k: [{"optimizer": k.a, "frequency": 0}, {"optimizer": k.b, "frequency": 0}],
        r"add up to 0: no optimizer would run",
    ),
    "a scheduler dict without scheduler": (
        lambda k: {"optimizer": k.a, "lr_scheduler": {"interval": "step"}},
        r"must have the key \"scheduler\".*it has \{'interval'\}",
    ),
    "a bad interval": (
        lambda k: [[k.a], [{"scheduler": k.step(k.a), "interval": "batch"}]],
        r"\"interval\" key in lr scheduler dict must be \"step\" or \"epoch\" but is \"batch\"",
    ),
    "a zero scheduler frequency": (
        lambda k: [[k.a], [{"scheduler": k.step(k.a), "frequency": 0}]],
        r"\"frequency\" key in lr scheduler dict must be an integer >= 1, not 0",
    ),
    "a bare plateau without monitor": (
        lambda k: {"optimizer": k.a, "lr_scheduler": k.plateau(k.a)},
        r"`configure_optimizers` must include a monitor when a `ReduceLROnPlateau` scheduler",
    ),
    "a bare plateau in a lists pair": (
        lambda k: [[k.a], [k.plateau(k.a)]],
        r"`configure_optimizers` must include a monitor when a `ReduceLROnPlateau` scheduler",
    ),
    "a plateau dict without monitor": (
        lambda k: {"optimizer": k.a, "lr_scheduler": {"scheduler": k.plateau(k.a)}},
        r"lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler",
    ),
    "a plateau in a list of dicts with a top-level monitor": (
        lambda k: [{"optimizer": k.a, "lr_scheduler": k.plateau(k.a), "monitor": "loss"}],
        r"lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler",
    ),
    "a scheduler on an optimizer not returned": (
        lambda k: [[k.a], [k.step(k.b)]],
        r"`StepLR` is attached to an optimizer that wasn't returned from `configure_optimizers`",
    ),
    "a scheduler that is not one": (
        lambda k: [[k.a], [None]],
        r"lr scheduler `NoneType` is invalid\. It should have `state_dict` and `load_state_dict`",
    ),
}


@pytest.mark.parametrize(("form", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_every_rejected_form_raises_a_shim_error_that_names_its_source(
    form: Form, message: str
) -> None:
    with pytest.raises(ConfigureOptimizersError, match=r"^model\.py:42: .*" + message):
        parse_configure_optimizers(form(Kit()), source="model.py:42")


@pytest.mark.parametrize("form", [form for form, _ in REJECTED.values()], ids=REJECTED.keys())
def test_errors_carry_no_prefix_without_a_source(form: Form) -> None:
    conf = form(Kit())
    with pytest.raises(ShimError) as plain:
        parse_configure_optimizers(conf)
    with pytest.raises(ShimError) as sourced:
        parse_configure_optimizers(conf, source="model.py:42")
    assert str(sourced.value) == "model.py:42: " + str(plain.value)


LIGHTNING_REJECTS = [
    "an int",
    "a string",
    "a list mixing kinds",
    "a scheduler dict without scheduler",
    "a bad interval",
    "a bare plateau without monitor",
    "a plateau dict without monitor",
    "a scheduler on an optimizer not returned",
]


@pytest.mark.parametrize("name", LIGHTNING_REJECTS)
def test_lightning_rejects_the_same_forms(name: str) -> None:
    with pytest.raises(MisconfigurationException):
        lightning_parse(REJECTED[name][0](Kit()))


def test_an_opt_idx_that_contradicts_its_optimizer_is_an_error() -> None:
    kit = Kit()
    conf = [[kit.a, kit.b], [{"scheduler": kit.step(kit.b), "opt_idx": 0}]]
    with pytest.raises(
        ConfigureOptimizersError, match=r"`opt_idx` 0 .* does not match the index 1"
    ):
        parse_configure_optimizers(conf)


def test_a_dict_s_scheduler_on_another_dict_s_optimizer_is_an_error_as_in_1_9() -> None:
    kit = Kit()
    conf = [{"optimizer": kit.a, "lr_scheduler": kit.step(kit.b)}, {"optimizer": kit.b}]
    with pytest.raises(ConfigureOptimizersError, match=r"`opt_idx` 0 .* the index 1"):
        parse_configure_optimizers(conf)


def test_no_warning_escapes_when_the_result_is_rejected() -> None:
    kit = Kit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigureOptimizersError, match="must have the key"):
            parse_configure_optimizers({"optimizer": kit.a, "lr_scheduler": {"bogus": 1}})


# Which optimizer trains on which batch (1.x frequencies).


def test_frequencies_5_and_1_give_five_batches_to_the_first_then_one_to_the_second() -> None:
    kit = Kit()
    plan = parse_quietly(
        [{"optimizer": kit.a, "frequency": 5}, {"optimizer": kit.b, "frequency": 1}]
    )
    active = [active_optimizer_indices(plan, batch_idx) for batch_idx in range(12)]
    assert active == [[0]] * 5 + [[1]] + [[0]] * 5 + [[1]]


def test_without_frequencies_every_optimizer_trains_on_every_batch() -> None:
    kit = Kit()
    plan = parse_quietly([kit.a, kit.b])
    assert [active_optimizer_indices(plan, i) for i in range(3)] == [[0, 1]] * 3


@given(
    freqs=st.lists(st.integers(0, 6), min_size=1, max_size=4).filter(lambda f: sum(f) > 0),
    cycle=st.integers(0, 50),
)
def test_with_frequencies_exactly_one_optimizer_trains_and_each_gets_its_share(
    freqs: list[int], cycle: int
) -> None:
    plan = OptimizationPlan(
        [OptimizerConfig(torch.optim.SGD([torch.zeros(1)]), f) for f in freqs], []
    )
    start = cycle * sum(freqs)
    picks = [active_optimizer_indices(plan, start + i) for i in range(sum(freqs))]
    assert all(len(pick) == 1 for pick in picks)
    assert [sum(pick == [i] for pick in picks) for i in range(len(freqs))] == freqs
    # The literal 1.x formula.
    bounds = np.cumsum(freqs)
    assert [pick[0] for pick in picks] == [
        int(np.searchsorted(bounds, (start + i) % sum(freqs), side="right"))
        for i in range(sum(freqs))
    ]


# When a scheduler steps (REFERENCE section 6).


def test_a_step_scheduler_steps_after_every_frequency_th_batch_of_the_epoch() -> None:
    cfg = SchedulerConfig(object(), interval="step", frequency=2)
    steps = [scheduler_should_step(cfg, interval="step", batch_idx=i, epoch=3) for i in range(6)]
    assert steps == [False, True, False, True, False, True]
    assert not scheduler_should_step(cfg, interval="epoch", batch_idx=1, epoch=1)


def test_an_epoch_scheduler_steps_after_every_frequency_th_epoch() -> None:
    cfg = SchedulerConfig(object(), interval="epoch", frequency=3)
    steps = [scheduler_should_step(cfg, interval="epoch", batch_idx=9, epoch=e) for e in range(6)]
    assert steps == [False, False, True, False, False, True]
    assert not scheduler_should_step(cfg, interval="step", batch_idx=2, epoch=2)


def test_an_unknown_interval_asked_of_a_scheduler_is_a_value_error() -> None:
    cfg = SchedulerConfig(object())
    with pytest.raises(ValueError, match=r'interval must be "step" or "epoch", not \'batch\''):
        scheduler_should_step(cfg, interval="batch", batch_idx=0, epoch=0)  # type: ignore[arg-type]


def test_the_parser_imports_no_lightning() -> None:
    tree = ast.parse(Path(optimizers_module.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported
    assert not {
        name for name in imported if name.split(".")[0] in {"pytorch_lightning", "lightning"}
    }
