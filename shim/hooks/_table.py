"""The table itself: every hook and trial pattern the original adapter knew, with its verdict.

Codes are grouped: LA0 supported, LA1 no equivalent, LA2 signatures that cannot work, LA3 legacy
Lightning 1.x API (runs here, breaks on Lightning 2.x), LA4 trial patterns migrate-trial cannot
convert. Codes are stable: never renumber one, only add. A code may span several families when
its entries live in different scopes.
"""

from __future__ import annotations

from ._model import Family, Scope, Status

__all__ = ["FAMILIES"]

_S, _I, _R, _L = Status.SUPPORTED, Status.IGNORED, Status.REJECTED, Status.LEGACY
_LEGACY_EPOCH_END = (
    "run-trial calls it with the epoch's outputs as Lightning 1.x did; Lightning 2.0 removed it "
    "(NotImplementedError at fit)"
)
_REMOVED = (
    "removed in Lightning {version}, so Lightning 1.9 and 2.x raise AttributeError or TypeError; "
    "run-trial provides it as Lightning 1.5 did while it runs a trial"
)
_DATAMODULE_FLAGS = (
    "has_prepared_data",
    *(f"has_{hook}_{stage}" for hook in ("setup", "teardown")
      for stage in ("fit", "validate", "test", "predict")),
)  # fmt: skip

# The formatter would put every name on its own line; packed lists read better as a table.
FAMILIES: tuple[Family, ...] = (
    Family(
        "LA001", "training hooks", _S,
        ("training_step", "on_train_batch_start", "on_train_batch_end", "on_train_epoch_start",
         "on_train_epoch_end", "on_train_start", "on_train_end"),
        "called in Lightning's order; on_train_batch_start returning -1 ends the epoch",
    ),
    Family(
        "LA002", "optimization hooks", _S,
        ("configure_optimizers", "on_before_zero_grad", "optimizer_zero_grad",
         "on_before_backward", "on_after_backward", "on_before_optimizer_step",
         "configure_gradient_clipping"),
        "called around each optimizer step as in automatic optimization; under AMP they see "
        "unscaled gradients",
    ),
    Family(
        "LA003", "validation hooks", _S,
        ("validation_step", "on_validation_start", "on_validation_end",
         "on_validation_epoch_start", "on_validation_epoch_end", "on_validation_batch_start",
         "on_validation_batch_end"),
        "called under torch.no_grad() in eval mode; each submodule's mode is restored afterwards",
    ),
    Family(
        "LA004", "checkpoint hooks", _S, ("on_save_checkpoint", "on_load_checkpoint"),
        "receive the whole checkpoint dict, before the weights are loaded, as in Lightning",
    ),
    Family(
        "LA005", "lifecycle hooks", _S,
        ("prepare_data", "setup", "teardown", "on_fit_start", "on_fit_end"),
        "called once per run, in Lightning's fit order",
    ),
    Family(
        "LA006", "data loaders", _S, ("train_dataloader", "val_dataloader"),
        "the loaders come from the trial's build_*_data_loader, which may call these",
    ),
    Family(
        "LA006", "data loaders", _S, ("build_training_data_loader", "build_validation_data_loader"),
        "the loaders come from the trial's build_*_data_loader, which may call these",
        scope=Scope.TRIAL_METHOD,
    ),
    Family(
        "LA101", "test loop", _I,
        ("test_step", "test_step_end", "test_epoch_end", "test_dataloader", "on_test_start",
         "on_test_end", "on_test_epoch_start", "on_test_epoch_end", "on_test_batch_start",
         "on_test_batch_end", "on_test_model_eval", "on_test_model_train"),
        "neither run-trial nor a Core API script has a test loop, so it is never called",
        "evaluate the test set with validation_step on its own loader, or run Lightning's "
        "Trainer.test on an exported .ckpt",
    ),
    Family(
        "LA102", "predict loop", _I,
        ("predict_step", "predict_dataloader", "on_predict_start", "on_predict_end",
         "on_predict_epoch_start", "on_predict_epoch_end", "on_predict_batch_start",
         "on_predict_batch_end", "on_predict_model_eval"),
        "there is no predict loop, so it is never called while training",
        "predict outside training (Trainer.predict on an exported .ckpt); add `# noqa: LA102` "
        "if it is only used there",
    ),
    Family(
        "LA103", "manual optimization", _R, ("self.manual_backward()",),
        "run-trial drives automatic optimization only, as the original adapter did",
        "return the loss from training_step and let run-trial step the optimizers returned by "
        "configure_optimizers",
        scope=Scope.CALL,
    ),
    Family(
        "LA103", "manual optimization", _R, ("self.automatic_optimization = False",),
        "run-trial drives automatic optimization only, as the original adapter did",
        "return the loss from training_step and let run-trial step the optimizers returned by "
        "configure_optimizers",
        scope=Scope.ATTRIBUTE,
    ),
    Family(
        "LA104", "truncated backpropagation through time", _R, ("tbptt_split_batch",),
        "TBPTT was removed in Lightning 2.0 and run-trial does not implement it",
        "split sequences in the dataset or in training_step and keep the hidden state on the "
        "module",
    ),
    Family(
        "LA104", "truncated backpropagation through time", _R, ("self.truncated_bptt_steps",),
        "TBPTT was removed in Lightning 2.0 and run-trial does not implement it",
        "split sequences in the dataset or in training_step and keep the hidden state on the "
        "module",
        scope=Scope.ATTRIBUTE,
    ),
    Family(
        "LA105", "loop internals", _R, ("backward", "optimizer_step", "lr_scheduler_step"),
        "run-trial does the backward pass (AMP-scaled), the optimizer step (with clipping) and "
        "the scheduler steps itself, so an override would be bypassed",
        "use on_before_backward, on_after_backward or on_before_optimizer_step; put LR warm-up "
        "in a LambdaLR scheduler",
    ),
    Family(
        "LA106", "batch transfer hooks", _R,
        ("transfer_batch_to_device", "on_before_batch_transfer", "on_after_batch_transfer"),
        "run-trial moves batches to the device itself and never calls these, so batches would "
        "differ",
        "move the transform into the dataset or collate_fn, or to the start of training_step "
        "and validation_step",
    ),
    Family(
        "LA107", "sharded model set-up", _R, ("configure_model", "configure_sharded_model"),
        "run-trial never calls them (they serve FSDP and DeepSpeed), so layers built there "
        "would not exist",
        "build the layers in __init__",
    ),
    Family(
        "LA108", "module callbacks", _I, ("configure_callbacks",),
        "run-trial has no Lightning Callback support, so the callbacks are never called",
        "move the callback logic into the module's own hooks",
    ),
    Family(
        "LA109", "validation mode hooks", _I,
        ("on_validation_model_eval", "on_validation_model_train", "on_validation_model_zero_grad"),
        "run-trial switches to eval mode and back itself, restoring each submodule's mode as "
        "Lightning 2.2+ does",
        "remove the override, or do the work in on_validation_start and on_validation_end",
    ),
    Family(
        "LA110", "Apex mixed precision", _R,
        ("LightningAdapter(amp_backend='apex')", "context.configure_apex_amp()"),
        "NVIDIA Apex was removed in Lightning 2.0 and does not build with current torch",
        "use precision=16 (native torch.autocast with a GradScaler)",
        scope=Scope.CALL,
    ),
    Family(
        "LA201", "required dataloader_idx", _R, ("dataloader_idx",),
        "there is one validation loader and, as in Lightning 2.x, dataloader_idx is passed only "
        "with several, so a required one raises TypeError",
        "give it a default: `dataloader_idx: int = 0`",
        scope=Scope.SIGNATURE,
    ),
    Family(
        "LA202", "TBPTT hidden states", _R, ("training_step(hiddens)",),
        "TBPTT hidden states were removed in Lightning 2.0; run-trial never passes hiddens",
        "keep the hidden state on the module and drop the parameter",
        scope=Scope.SIGNATURE,
    ),
    Family(
        "LA203", "several validation loaders", _R, ("several validation loaders",),
        "a Determined trial validates on exactly one loader",
        "concatenate the datasets into one loader (torch.utils.data.ConcatDataset)",
        scope=Scope.LOADERS,
    ),
    Family(
        "LA204", "on_train_epoch_end outputs", _R, ("on_train_epoch_end(outputs)",),
        "the outputs argument was removed in Lightning 1.5; on_train_epoch_end() is called "
        "without it",
        "collect outputs on self in training_step and read them in on_train_epoch_end()",
        scope=Scope.SIGNATURE,
    ),
    Family(
        "LA301", "several optimizers with optimizer_idx", _L, ("training_step(optimizer_idx)",),
        "run-trial and migrate-trial step each optimizer as Lightning 1.x did, but Lightning 2.x "
        "raises RuntimeError",
        "to train with Lightning 2.x's own Trainer, switch to manual optimization (which "
        "run-trial does not support)",
        scope=Scope.SIGNATURE,
    ),
    Family(
        "LA302", "optimizer_idx in hook signatures", _L,
        ("optimizer_zero_grad(optimizer_idx)", "on_before_optimizer_step(optimizer_idx)",
         "configure_gradient_clipping(optimizer_idx)"),
        "run-trial passes the optimizer index as Lightning 1.x did; Lightning 2.x does not "
        "(TypeError)",
        "drop the optimizer_idx parameter once training_step no longer takes it",
        scope=Scope.SIGNATURE,
    ),
    Family(
        "LA303", "training_epoch_end", _L, ("training_epoch_end",), _LEGACY_EPOCH_END,
        "keep step outputs on self in training_step and use on_train_epoch_end()",
    ),
    Family(
        "LA304", "validation_epoch_end", _L, ("validation_epoch_end",), _LEGACY_EPOCH_END,
        "keep step outputs on self in validation_step and use on_validation_epoch_end()",
    ),
    Family(
        "LA305", "step_end hooks", _L, ("training_step_end", "validation_step_end"),
        "run-trial calls it after each step as Lightning 1.x did; Lightning 2.0 silently never "
        "calls it",
        "fold the code into training_step or validation_step",
    ),
    Family(
        "LA306", "removed self.log arguments", _L,
        ("self.log(sync_dist_op=)", "self.log(tbptt_reduce_fx=)", "self.log(tbptt_pad_token=)"),
        "run-trial accepts and ignores it, but Lightning 1.6+ raises TypeError",
        "remove the argument; use reduce_fx='mean', 'sum', 'max' or 'min'",
        scope=Scope.CALL,
    ),
    Family(
        "LA307", "ignored self.log arguments", _I,
        ("self.log(sync_dist_group=)", "self.log(metric_attribute=)"),
        "run-trial reduces logged values over all ranks and logs the value given, so it has no "
        "effect",
        "remove the argument, or log a plain tensor or number",
        scope=Scope.CALL,
    ),
    Family(
        "LA308", "removed Lightning 1.x hooks", _I,
        ("on_epoch_start", "on_epoch_end", "on_batch_start", "on_batch_end",
         "on_pretrain_routine_start", "on_pretrain_routine_end", "get_progress_bar_dict",
         "on_hpc_save", "on_hpc_load", "log_grad_norm", "on_post_move_to_device"),
        "removed from Lightning between 1.6 and 2.0; neither Lightning 2.x nor run-trial calls it",
        "move the code to the current hook (on_train_epoch_*, on_train_batch_*, on_fit_start, "
        "on_save_checkpoint)",
    ),
    Family(
        "LA309", "pre-1.0 step output keys", _L,
        ("{'log': ...} in a step's output", "{'progress_bar': ...} in a step's output"),
        "Lightning 1.0 stopped reading these keys; Lightning 1.9, 2.x and run-trial ignore them "
        "without a word, so the values are never logged",
        "log the values with self.log(name, value) (prog_bar=True for the progress bar)",
        scope=Scope.RETURN,
    ),
    Family(
        "LA310", "data module shapes and transforms", _L,
        ("datamodule.size()", "datamodule.dims", "datamodule.train_transforms",
         "datamodule.val_transforms", "datamodule.test_transforms",
         "LightningDataModule(train_transforms=, val_transforms=, test_transforms=, dims=)"),
        _REMOVED.format(version="1.7"),
        "keep the shapes and transforms in the data module's own attributes (set in __init__) "
        "and read those",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA311", "data module call flags", _L,
        tuple(f"datamodule.{flag}" for flag in _DATAMODULE_FLAGS),
        _REMOVED.format(version="1.6"),
        "set a flag of your own in prepare_data, setup and teardown",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA312", "data module hooks called again", _L,
        ("a repeated datamodule.prepare_data()", "a repeated datamodule.setup()",
         "a repeated datamodule.teardown()"),
        "Lightning 1.5 ran each data module hook once per stage and skipped repeated calls, as "
        "run-trial does; Lightning 1.6+ runs every call, so e.g. a random split made in setup "
        "differs between the loaders",
        "call it once (e.g. in the trial's __init__), or make it safe to repeat (a seeded split)",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA313", "model summary", _L, ("self.summarize()", "self.model_size"),
        _REMOVED.format(version="1.7"),
        "use pytorch_lightning.utilities.model_summary.ModelSummary(self, max_depth=1) and its "
        "model_size",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA314", "precision flags", _L,
        ("self.use_amp", "self.precision", "self.trainer.use_amp", "self.trainer.amp_backend"),
        "removed in Lightning 1.8 (use_amp) and 2.0 (precision, amp_backend); run-trial "
        "provides them as Lightning 1.5 did while it runs a trial",
        "read self.trainer.precision ('16-mixed', 'bf16-mixed' or '32-true' in Lightning 2.x)",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA315", "trainer device counts", _L,
        ("self.trainer.num_gpus", "self.trainer.gpus", "self.trainer.root_gpu",
         "self.trainer.num_processes", "self.trainer.tpu_cores"),
        _REMOVED.format(version="1.8"),
        "use self.trainer.num_devices, self.trainer.device_ids or self.device",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA316", "trainer.lr_schedulers", _L, ("self.trainer.lr_schedulers",),
        _REMOVED.format(version="1.8"),
        "use self.trainer.lr_scheduler_configs (the same fields as attributes) or "
        "self.lr_schedulers()",
        scope=Scope.REMOVED_API,
    ),
    Family(
        "LA401", "custom trial callbacks", _L, ("build_callbacks",),
        "run-trial runs PyTorchCallbacks, but migrate-trial cannot turn them into Core API code",
        "move the logic into the LightningModule's hooks, or port it by hand after migrating",
        scope=Scope.TRIAL_METHOD,
    ),
    Family(
        "LA402", "trial TensorBoard writer", _L, ("context.get_tensorboard_writer()",),
        "run-trial provides the writer, but the Core API has none and migrate-trial cannot "
        "convert it",
        "log with self.log in the module, or use core_context.train.get_tensorboard_path() after "
        "migrating",
        scope=Scope.CALL,
    ),
    Family(
        "LA403", "context.wrap_* by hand", _L,
        ("context.wrap_model()", "context.wrap_optimizer()", "context.wrap_lr_scheduler()",
         "context.wrap_scaler()"),
        "LightningAdapter wraps the module, its optimizers and schedulers itself; migrate-trial "
        "cannot tell what extra wrapped objects are for",
        "make the object part of the LightningModule (an attribute, or configure_optimizers)",
        scope=Scope.CALL,
    ),
    Family(
        "LA404", "records_per_epoch", _L, ("records_per_epoch",),
        "PyTorch trials ignore it since Determined 0.21, and so do run-trial and the Core API, "
        "so code reading it uses a value nothing honours",
        "use len(train_loader) or a hyperparameter for the epoch length",
        scope=Scope.CONFIG,
    ),
    Family(
        "LA405", "trial loop overrides", _L,
        ("train_batch", "evaluate_batch", "evaluation_reducer", "get_batch_length"),
        "run-trial calls them as PyTorchTrial did, but migrate-trial writes its own loop and "
        "cannot carry an override",
        "move the logic into the LightningModule's hooks",
        scope=Scope.TRIAL_METHOD,
    ),
)  # fmt: skip
