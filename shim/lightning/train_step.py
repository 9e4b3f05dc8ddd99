"""One training batch with Lightning's automatic-optimization semantics (DESIGN section 5).

``on_train_batch_start`` (-1 ends the epoch) -> for each active optimizer: toggle (if several) ->
``training_step`` under autocast -> ``on_before_zero_grad`` -> ``optimizer_zero_grad`` ->
``on_before_backward`` -> backward (scaled) -> ``on_after_backward`` -> unscale ->
``on_before_optimizer_step`` -> clipping -> step -> untoggle -> step-interval schedulers ->
``on_train_batch_end(outputs)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from shim.errors import ShimError
from shim.lightning.optimizers import active_optimizer_indices, scheduler_should_step
from shim.pytorch.trial import EndEpoch

if TYPE_CHECKING:
    from shim.lightning.adapter import LightningAdapter

__all__ = ["run_training_batch"]


def run_training_batch(
    adapter: LightningAdapter, batch: Any, epoch_idx: int, global_idx: int
) -> dict[str, Any]:
    hooks = adapter._hooks
    epoch_len = adapter._context.position.epoch_len or 1
    batch_idx = global_idx % epoch_len  # Lightning's batch_idx counts within the epoch
    adapter._begin_batch(batch, epoch_idx)
    if hooks.on_train_batch_start is not None:
        with adapter._in_hook("on_train_batch_start"):
            ends_epoch = hooks.on_train_batch_start(batch, batch_idx) == -1
        if ends_epoch:
            if adapter._lightning_major >= 2:  # 2.x steps the schedulers first; 1.x does not
                _step_interval_schedulers(adapter, batch_idx, epoch_idx, None)
                adapter._step_epoch_schedulers(epoch_idx)
            raise EndEpoch
    several = len(adapter._optimizers) > 1
    outputs: list[dict[str, Any] | None] = []
    logged: list[dict[str, float]] = []  # per optimizer, so equal names can be told apart
    active = adapter._every_optimizer or active_optimizer_indices(adapter._plan, batch_idx)
    for opt_idx in active:
        outputs.append(_optimize(adapter, batch, batch_idx, epoch_idx, opt_idx, several))
        logged.append(adapter._log.take_step_metrics())
        _step_interval_schedulers(adapter, batch_idx, epoch_idx, opt_idx)
    if (batch_idx + 1) == epoch_len:  # epoch schedulers step before on_train_batch_end
        adapter._step_epoch_schedulers(epoch_idx)
    batch_output: Any = outputs if several else outputs[0] if outputs else None
    if hooks.on_train_batch_end is not None:
        end_out = batch_output if batch_output is not None else {}
        with adapter._in_hook("on_train_batch_end"):
            hooks.on_train_batch_end(end_out, batch, batch_idx)
    adapter._collect_epoch_output(batch_output)
    return adapter._batch_metrics(outputs, logged)


def _optimize(
    adapter: LightningAdapter,
    batch: Any,
    batch_idx: int,
    epoch_idx: int,
    opt_idx: int,
    several: bool,
) -> dict[str, Any] | None:
    lm, hooks = adapter.lightning_module, adapter._hooks
    optimizer = adapter._optimizers[opt_idx]
    extra = (opt_idx,) if several else ()
    if several:
        lm.toggle_optimizer(optimizer, *((opt_idx,) if hooks.toggle_takes_idx else ()))
    with adapter._autocast(), adapter._in_hook("training_step"):
        output = adapter._training_step(batch, batch_idx, *extra)  # through DDP if several ranks
    if hooks.training_step_end is not None:
        with adapter._in_hook("training_step_end"):
            ended = hooks.training_step_end(output)
        output = output if ended is None else ended
    loss = _loss_of(output, adapter)
    if hooks.on_before_zero_grad is not None:
        with adapter._in_hook("on_before_zero_grad"):
            hooks.on_before_zero_grad(optimizer)
    if hooks.optimizer_zero_grad is not None:
        with adapter._in_hook("optimizer_zero_grad"):
            hooks.optimizer_zero_grad(
                epoch_idx, batch_idx, optimizer, *_idx(hooks.zero_grad_idx, opt_idx)
            )
    else:
        optimizer.zero_grad()
    scaler = adapter._scaler
    if loss is not None:
        scaled = scaler.scale(loss) if scaler is not None else loss
        if hooks.on_before_backward is not None:
            with adapter._in_hook("on_before_backward"):
                hooks.on_before_backward(scaled)
        # Under several ranks DDP's reducer averages the gradients during this backward, so
        # on_after_backward sees the global ones, as in Lightning.
        scaled.backward()
        if hooks.on_after_backward is not None:
            with adapter._in_hook("on_after_backward"):
                hooks.on_after_backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
    # A None loss skips only the backward: Lightning still runs the step's hooks and
    # optimizer.step() (parameters without gradients stay as they are), except under float16,
    # where the scaler's step is skipped.
    if hooks.on_before_optimizer_step is not None:
        with adapter._in_hook("on_before_optimizer_step"):
            hooks.on_before_optimizer_step(optimizer, *_idx(hooks.before_step_idx, opt_idx))
    if hooks.configure_gradient_clipping is not None:
        with adapter._in_hook("configure_gradient_clipping"):
            hooks.configure_gradient_clipping(optimizer, *_idx(hooks.clip_idx, opt_idx), None, None)
    if scaler is None:
        optimizer.step()
    elif loss is not None:
        scaler.step(optimizer)
        scaler.update()
    adapter._trainer.global_step += 1
    if several:
        lm.untoggle_optimizer(*((opt_idx,) if hooks.toggle_takes_idx else (optimizer,)))
    return _detached_output(output, loss) if adapter._keeps_outputs else output


def _step_interval_schedulers(
    adapter: LightningAdapter, batch_idx: int, epoch_idx: int, opt_idx: int | None
) -> None:
    """Step schedulers (of optimizer ``opt_idx``, or all) whose step interval is due."""
    for cfg in adapter._plan.schedulers:
        if cfg.reduce_on_plateau or (opt_idx is not None and cfg.opt_idx != opt_idx):
            continue
        if scheduler_should_step(cfg, interval="step", batch_idx=batch_idx, epoch=epoch_idx):
            cfg.scheduler.step()


def _loss_of(output: Any, adapter: LightningAdapter) -> torch.Tensor | None:
    if output is None:
        return None
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        if "loss" not in output:
            raise ShimError(
                f"{adapter._where('training_step')}: training_step returned a dict without "
                "'loss'; automatic optimization needs {'loss': tensor, ...} (or return the loss)"
            )
        return output["loss"]
    raise ShimError(
        f"{adapter._where('training_step')}: training_step must return a loss tensor, a dict "
        f"with 'loss', or None; it returned {type(output).__name__}"
    )


def _detached_output(output: Any, loss: torch.Tensor | None) -> dict[str, Any] | None:
    if output is None:
        return None
    if isinstance(output, torch.Tensor):
        return {"loss": output.detach()}
    out = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in output.items()}
    if loss is not None:
        out["loss"] = loss.detach()
    return out


def _idx(takes_idx: bool, opt_idx: int) -> tuple[int, ...]:
    """1.x hooks take the optimizer index after the 2.x arguments."""
    return (opt_idx,) if takes_idx else ()
