"""``shim.pytorch.callback.PyTorchCallback`` against Determined 0.38's."""

from __future__ import annotations

import inspect
from typing import Any

import determined.pytorch as det_pytorch
import pytest

from shim.pytorch.callback import PyTorchCallback


def public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"}


HOOKS = sorted(public_methods(det_pytorch.PyTorchCallback))

# One argument list per hook, as the controller passes them.
CALLS: dict[str, tuple[Any, ...]] = {
    "on_trial_startup": (0, None),
    "on_trial_shutdown": (),
    "on_training_start": (),
    "on_training_epoch_start": (0,),
    "on_training_epoch_end": (0,),
    "on_training_workload_end": ({"loss": 1.0}, [{"loss": 1.0}]),
    "on_validation_start": (),
    "on_validation_epoch_start": (),
    "on_validation_epoch_end": ([{"loss": 1.0}],),
    "on_validation_end": ({"loss": 1.0},),
    "on_checkpoint_load_start": ({},),
    "on_checkpoint_save_start": ({},),
    "on_checkpoint_write_end": ("/tmp/ckpt",),
    "on_checkpoint_upload_end": ("uuid",),
    "on_checkpoint_end": ("/tmp/ckpt",),
    "load_state_dict": ({},),
    "state_dict": (),
}


def test_the_callback_has_exactly_determineds_hooks() -> None:
    assert public_methods(PyTorchCallback) == set(HOOKS)
    assert set(CALLS) == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_each_hook_has_determineds_signature(name: str) -> None:
    def describe(fn: Any) -> list[tuple[str, str, Any]]:
        return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert describe(getattr(PyTorchCallback, name)) == describe(
        getattr(det_pytorch.PyTorchCallback, name)
    )


@pytest.mark.parametrize("name", sorted(set(HOOKS) - {"state_dict"}))
def test_each_hook_does_nothing_by_default(name: str) -> None:
    callback = PyTorchCallback()
    args = tuple(dict(a) if isinstance(a, dict) else a for a in CALLS[name])
    assert getattr(callback, name)(*args) is None
    assert args == CALLS[name]  # the checkpoint and metric dicts are left as given
    assert vars(callback) == {}


def test_the_default_state_is_a_fresh_empty_dict() -> None:
    callback = PyTorchCallback()
    state = callback.state_dict()
    state["x"] = 1
    assert callback.state_dict() == {}
