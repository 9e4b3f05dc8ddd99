"""Every reported entry of the hook table: it fires at its line and column, a near miss does not,
and a noqa comment silences it."""

from __future__ import annotations

import pytest

from migrate.rules import COVERED
from shim.hooks import HOOKS, Scope, Status, by_scope

from .conftest import MODULE_HEADER, TRIAL_HEADER, Marked, lint, marked

MODULE_CLASS = "class Model(pl.LightningModule):\n"
TRIAL_CLASS = "class Trial(LightningAdapter):\n"
DATAMODULE_CLASS = "class DM(pl.LightningDataModule):\n"

# Entries that are not plain method overrides, each written as a class body with `$` where
# the finding must start.
BODIES: dict[str, tuple[str, str]] = {
    "self.manual_backward()": (
        MODULE_CLASS,
        "    def training_step(self, batch, batch_idx):\n"
        "        loss = self(batch)\n"
        "        $self.manual_backward(loss)\n",
    ),
    "self.automatic_optimization = False": (
        MODULE_CLASS,
        "    def __init__(self):\n        super().__init__()\n"
        "        $self.automatic_optimization = False\n",
    ),
    "self.truncated_bptt_steps": (
        MODULE_CLASS,
        "    def __init__(self):\n        super().__init__()\n"
        "        $self.truncated_bptt_steps = 5\n",
    ),
    "LightningAdapter(amp_backend='apex')": (
        TRIAL_CLASS,
        "    def __init__(self, context):\n"
        "        super().__init__(context, lightning_module=Model(), $amp_backend='apex')\n",
    ),
    "context.configure_apex_amp()": (
        TRIAL_CLASS,
        "    def __init__(self, context):\n"
        "        $self.context.configure_apex_amp(context.models, context.optimizers)\n",
    ),
    "dataloader_idx": (
        MODULE_CLASS,
        "    def validation_step(self, batch, batch_idx, $dataloader_idx):\n        pass\n",
    ),
    "training_step(hiddens)": (
        MODULE_CLASS,
        "    def training_step(self, batch, batch_idx, $hiddens):\n        pass\n",
    ),
    "several validation loaders": (
        MODULE_CLASS,
        "    def val_dataloader(self):\n        return $[self.first, self.second]\n",
    ),
    "on_train_epoch_end(outputs)": (
        MODULE_CLASS,
        "    def on_train_epoch_end(self, $outputs):\n        pass\n",
    ),
    "training_step(optimizer_idx)": (
        MODULE_CLASS,
        "    def training_step(self, batch, batch_idx, $optimizer_idx):\n        pass\n",
    ),
    "optimizer_zero_grad(optimizer_idx)": (
        MODULE_CLASS,
        "    def optimizer_zero_grad(self, epoch, batch_idx, optimizer, $optimizer_idx):\n"
        "        optimizer.zero_grad()\n",
    ),
    "on_before_optimizer_step(optimizer_idx)": (
        MODULE_CLASS,
        "    def on_before_optimizer_step(self, optimizer, $optimizer_idx):\n        pass\n",
    ),
    "configure_gradient_clipping(optimizer_idx)": (
        MODULE_CLASS,
        "    def configure_gradient_clipping(\n"
        "        self, optimizer, $optimizer_idx, gradient_clip_val=None, algorithm=None\n"
        "    ):\n        pass\n",
    ),
    "context.get_tensorboard_writer()": (
        TRIAL_CLASS,
        "    def __init__(self, context):\n"
        "        self.writer = $self.context.get_tensorboard_writer()\n",
    ),
    "records_per_epoch": (
        TRIAL_CLASS,
        "    def __init__(self, context):\n"
        "        n = context.get_experiment_config()[$'records_per_epoch']\n",
    ),
}
for _kw in ("sync_dist_op", "tbptt_reduce_fx", "tbptt_pad_token", "sync_dist_group"):
    BODIES[f"self.log({_kw}=)"] = (
        MODULE_CLASS,
        f"    def training_step(self, batch, batch_idx):\n"
        f"        self.log('loss', 1.0, ${_kw}=None)\n",
    )
BODIES["self.log(metric_attribute=)"] = (
    MODULE_CLASS,
    "    def validation_step(self, batch, batch_idx):\n"
    "        self.log_dict({'acc': self.acc}, $metric_attribute='acc')\n",
)
for _attr in ("wrap_model", "wrap_optimizer", "wrap_lr_scheduler", "wrap_scaler"):
    BODIES[f"context.{_attr}()"] = (
        TRIAL_CLASS,
        f"    def __init__(self, context):\n        self.extra = $context.{_attr}(thing)\n",
    )
# Removed Lightning 1.x APIs, as legacy trials use them (Determined's gan_mnist_pl and others).
BODIES["datamodule.size()"] = (
    TRIAL_CLASS,
    "    def __init__(self, context):\n        self.dm = MNISTDataModule(context)\n"
    "        channels, width, height = $self.dm.size()\n",
)
for _attr in ("dims", "train_transforms", "val_transforms", "test_transforms"):
    BODIES[f"datamodule.{_attr}"] = (
        DATAMODULE_CLASS,
        f"    def setup(self, stage=None):\n        self.value = $self.{_attr}\n",
    )
BODIES["LightningDataModule(train_transforms=, val_transforms=, test_transforms=, dims=)"] = (
    DATAMODULE_CLASS,
    "    def __init__(self):\n        super().__init__($dims=(1, 28, 28))\n",
)
for _name, _hook in HOOKS.items():
    if _hook.code == "LA311":
        _flag = _name.replace("datamodule", "self")
        BODIES[_name] = (
            DATAMODULE_CLASS,
            f"    def setup(self, stage=None):\n        if ${_flag}:\n            return\n",
        )
for _attr in ("prepare_data", "setup", "teardown"):
    BODIES[f"a repeated datamodule.{_attr}()"] = (
        TRIAL_CLASS,
        f"    def __init__(self, context):\n        self.dm = MNISTDataModule()\n"
        f"        self.dm.{_attr}()\n\n    def build_training_data_loader(self):\n"
        f"        again = $self.dm.{_attr}()\n",
    )
for _name in ("self.summarize()", "self.model_size", "self.use_amp", "self.precision"):
    BODIES[_name] = (
        MODULE_CLASS,
        f"    def on_fit_start(self):\n        print(${_name.removesuffix('()')})\n",
    )
for _name, _hook in HOOKS.items():
    if _hook.code in ("LA314", "LA315", "LA316") and _name.startswith("self.trainer."):
        BODIES[_name] = (
            MODULE_CLASS,
            f"    def on_fit_start(self):\n        print(${_name})\n",
        )
for _key in ("log", "progress_bar"):
    BODIES[f"{{'{_key}': ...}} in a step's output"] = (
        MODULE_CLASS,
        f"    def training_step(self, batch, batch_idx):\n"
        f"        return {{'loss': batch, $'{_key}': {{'loss': batch}}}}\n",
    )


def _case(name: str) -> Marked:
    hook = HOOKS[name]
    if name in BODIES:
        header_class, body = BODIES[name]
    elif hook.scope is Scope.TRIAL_METHOD:
        header_class, body = TRIAL_CLASS, f"    def ${name}(self):\n        pass\n"
    else:
        header_class, body = (
            MODULE_CLASS,
            f"    def ${name}(self, *args, **kwargs):\n        pass\n",
        )
    header = TRIAL_HEADER if header_class == TRIAL_CLASS else MODULE_HEADER
    return marked(header + header_class + body)


REPORTED = sorted(name for name, hook in HOOKS.items() if hook.reported)


def test_every_reported_entry_of_the_table_has_a_rule_and_a_case_here() -> None:
    assert set(REPORTED) <= COVERED
    method_scopes = (Scope.MODULE_METHOD, Scope.TRIAL_METHOD)
    assert {n for n in REPORTED if HOOKS[n].scope not in method_scopes} == set(BODIES)


@pytest.mark.parametrize("name", REPORTED)
def test_each_entry_fires_at_the_line_and_column_of_the_method_or_call(name: str) -> None:
    case = _case(name)
    findings = lint(case.text)
    assert [(f.line, f.column, f.code, f.hook) for f in findings] == [
        (case.line, case.column, HOOKS[name].code, name)
    ]
    status = HOOKS[name].status
    # No trial here wraps Model: a rejection in it is what happens once one does.
    unwrapped = status is Status.REJECTED and MODULE_CLASS in case.text
    verdict = "would be rejected once a trial wraps `Model`" if unwrapped else f"is {status.value}"
    assert verdict in findings[0].message
    assert findings[0].conditional is unwrapped
    assert findings[0].fix == HOOKS[name].fix


@pytest.mark.parametrize("name", REPORTED)
def test_the_same_code_on_a_class_that_is_neither_module_nor_trial_is_a_near_miss(
    name: str,
) -> None:
    case = _case(name)
    plain = case.text
    for base in ("(pl.LightningModule)", "(LightningAdapter)", "(pl.LightningDataModule)"):
        plain = plain.replace(base, "(Helper)")
    assert lint("class Helper:\n    pass\n\n\n" + plain) == []


@pytest.mark.parametrize("name", REPORTED)
def test_a_noqa_comment_with_the_code_silences_the_finding(name: str) -> None:
    case = _case(name)
    lines = case.text.splitlines()
    lines[case.line - 1] += f"  # noqa: {HOOKS[name].code}"
    assert lint("\n".join(lines) + "\n") == []


@pytest.mark.parametrize("comment", ["# noqa", "# NOQA:LA1", "# noqa: E501, LA", "# noqa: LA0"])
def test_noqa_comments_match_bare_by_prefix_and_only_codes_that_apply(comment: str) -> None:
    case = _case("test_step")
    lines = case.text.splitlines()
    lines[case.line - 1] += f"  {comment}"
    silenced = comment in ("# noqa", "# NOQA:LA1")
    assert (lint("\n".join(lines) + "\n") == []) is silenced


@pytest.mark.parametrize(
    "name",
    sorted(
        h.name
        for h in (*by_scope(Scope.MODULE_METHOD), *by_scope(Scope.TRIAL_METHOD))
        if not h.reported
    ),
)
def test_a_hook_the_table_supports_is_not_reported(name: str) -> None:
    hook = HOOKS[name]
    assert hook.status is Status.SUPPORTED
    header, cls = (
        (TRIAL_HEADER, TRIAL_CLASS)
        if hook.scope is Scope.TRIAL_METHOD
        else (MODULE_HEADER, MODULE_CLASS)
    )
    assert lint(f"{header}{cls}    def {name}(self, *args):\n        pass\n") == []


@pytest.mark.parametrize(
    "body",
    [
        "    def validation_step(self, batch, batch_idx, dataloader_idx=0):\n        pass\n",
        "    def on_validation_batch_end(self, out, batch, batch_idx, dataloader_idx: int = 0):\n"
        "        pass\n",
        "    def on_train_epoch_end(self):\n        pass\n",
        "    def training_step(self, batch, batch_idx):\n        return self(batch)\n",
        "    def training_step(self, batch, batch_idx, extra=None, more=None):\n        pass\n",
        "    def val_dataloader(self):\n        return self.loader\n",
        "    def val_dataloader(self):\n        return [self.only]\n",
        "    def val_dataloader(self):\n"
        "        def helper():\n            return [1, 2]\n        return helper\n",
        "    def training_step(self, batch, batch_idx):\n"
        "        self.log('x', 1.0, sync_dist=True, on_epoch=True)\n",
        "    def training_step(self, batch, batch_idx):\n"
        "        other.log('x', 1.0, sync_dist_op='mean')\n",
        "    def __init__(self):\n        self.automatic_optimization = True\n",
        "    def __init__(self):\n        self.truncated_bptt_steps = 0\n",
        "    automatic_optimization = True\n",
        "    def training_step(self, batch, batch_idx):\n"
        "        self.backward_helper(manual_backward=1)\n",
        "    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):\n        pass\n",
        "    # records_per_epoch is mentioned in a comment only\n    x = 1\n",
    ],
)
def test_supported_forms_of_the_same_hooks_are_not_reported(body: str) -> None:
    assert lint(MODULE_HEADER + MODULE_CLASS + body) == []


@pytest.mark.parametrize(
    "body",
    [
        "    def __init__(self, context):\n"
        "        super().__init__(context, lm, amp_backend='native')\n",
        "    def build_validation_data_loader(self):\n        return DataLoader(self.ds)\n",
        "    def __init__(self, context):\n        self.n = context.get_hparam('records')\n",
    ],
)
def test_supported_trial_forms_are_not_reported(body: str) -> None:
    assert lint(TRIAL_HEADER + TRIAL_CLASS + body) == []


def test_manual_optimization_is_found_as_a_class_attribute_and_as_a_property() -> None:
    attribute = marked(MODULE_HEADER + MODULE_CLASS + "    $automatic_optimization = False\n")
    prop = marked(
        MODULE_HEADER + MODULE_CLASS + "    @property\n    def $automatic_optimization(self):\n"
        "        return False\n"
    )
    for case in (attribute, prop):
        assert [(f.line, f.column, f.code) for f in lint(case.text)] == [
            (case.line, case.column, "LA103")
        ]


def test_a_fifth_positional_training_step_parameter_is_read_as_hiddens() -> None:
    case = marked(
        MODULE_HEADER
        + MODULE_CLASS
        + "    def training_step(self, batch, batch_idx, optimizer_idx, $state):\n        pass\n"
    )
    idx_column = case.text.splitlines()[case.line - 1].index("optimizer_idx") + 1
    assert [(f.line, f.column, f.code) for f in lint(case.text)] == [
        (case.line, idx_column, "LA301"),
        (case.line, case.column, "LA202"),
    ]


def test_several_loaders_returned_by_the_trial_are_rejected() -> None:
    case = marked(
        TRIAL_HEADER
        + TRIAL_CLASS
        + "    def build_validation_data_loader(self):\n"
        + "        if self.flag:\n            return ${'a': self.a, 'b': self.b}\n"
        + "        return self.a\n"
    )
    assert [(f.line, f.column, f.code) for f in lint(case.text)] == [
        (case.line, case.column, "LA203")
    ]


def test_messages_name_the_subject_its_status_and_the_reason() -> None:
    trial = "\n\nclass Trial(LightningAdapter):\n    model = Model\n"
    header = "from determined.pytorch.lightning import LightningAdapter\n"
    (finding,) = lint(header + _case("dataloader_idx").text + trial)
    assert finding.message.startswith("`validation_step(dataloader_idx)` without a default")
    assert "is rejected: there is one validation loader" in finding.message
