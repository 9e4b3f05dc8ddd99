"""The removed-API rule (LA309-LA316) reads types from how a class got its objects: what it
reports, and the near misses it leaves alone."""

from __future__ import annotations

import textwrap

import pytest

from .conftest import MODULE_HEADER, TRIAL_HEADER, lint, marked

MODULE = MODULE_HEADER + "class Model(pl.LightningModule):\n"
DATAMODULE = MODULE_HEADER + "class DM(pl.LightningDataModule):\n"
TRIAL = TRIAL_HEADER + "class Trial(LightningAdapter):\n"


def hooks(source: str) -> list[str]:
    return [f.hook for f in lint(source)]


@pytest.mark.parametrize(
    "body",
    [
        # a tensor's size(), or an object that is no data module
        "    def forward(self, x):\n        batch, channels = x.size()\n",
        "    def __init__(self):\n        self.dm = make()\n        self.dm.size()\n",
        # the class's own attributes and methods
        "    def __init__(self):\n        self.precision = Precision()\n\n"
        "    def on_fit_start(self):\n        print(self.precision)\n",
        "    def summarize(self):\n        return 1\n\n    def on_fit_start(self):\n"
        "        self.summarize()\n",
        # what Lightning 2.x still has
        "    def on_fit_start(self):\n        print(self.trainer.precision)\n",
        "    def on_fit_start(self):\n        print(self.lr_schedulers())\n",
        "    def on_fit_start(self):\n        print(self.trainer.num_devices, self.device)\n",
        # pre-1.0 keys outside a step or epoch-end method
        "    def describe(self):\n        return {'log': 1, 'progress_bar': 2}\n",
        "    def training_step(self, batch, batch_idx):\n        return {'loss': 1, 'logs': 1}\n",
    ],
)
def test_what_a_module_still_has_is_not_reported(body: str) -> None:
    assert lint(MODULE + body) == []


def test_a_data_module_s_own_dims_and_transforms_are_not_reported() -> None:
    source = DATAMODULE + (
        "    def __init__(self):\n        super().__init__()\n        self.dims = (1, 28, 28)\n"
        "        self.train_transforms = None\n\n    def setup(self, stage=None):\n"
        "        print(self.dims, self.train_transforms, self.size())\n"
    )
    assert hooks(source) == ["datamodule.size()"]


def test_a_data_module_class_of_the_file_decides_what_a_trial_may_read() -> None:
    source = MODULE_HEADER + textwrap.dedent(
        """\
        from determined.pytorch.lightning import LightningAdapter


        class Sets(pl.LightningDataModule):
            def __init__(self):
                super().__init__()
                self.dims = (1, 2)


        class Bare(pl.LightningDataModule):
            pass


        class Trial(LightningAdapter):
            def __init__(self, context):
                self.a, self.b = Sets(), None
                self.b = Bare()
                print(self.a.dims, self.b.dims, self.a.has_setup_fit)
        """
    )
    found = [(f.hook, f.message.split(" is ")[0]) for f in lint(source)]
    assert found == [
        ("datamodule.dims", "`self.b.dims`"),
        ("datamodule.has_setup_fit", "`self.a.has_setup_fit`"),
    ]


@pytest.mark.parametrize(
    ("imports", "made"),
    [
        ("from data import MNISTDataModule as DM", "DM(url)"),
        ("import data", "data.MNISTDataModule(url)"),
        ("from pl_bolts.datamodules import CIFAR10DataModule", "CIFAR10DataModule()"),
    ],
)
def test_a_data_module_is_known_by_its_class_name_under_any_import(imports: str, made: str) -> None:
    case = marked(
        f"{imports}\n{TRIAL}    def __init__(self, context):\n        self.dm = {made}\n"
        "        dm = self.dm\n        channels, width, height = $dm.size()\n"
    )
    assert [(f.line, f.column, f.hook) for f in lint(case.text)] == [
        (case.line, case.column, "datamodule.size()")
    ]


def test_the_trainer_s_data_module_is_a_data_module_in_a_module() -> None:
    source = MODULE + "    def on_fit_start(self):\n        print(self.trainer.datamodule.size())\n"
    assert hooks(source) == ["datamodule.size()"]


def test_only_a_repeated_call_with_the_same_arguments_is_reported() -> None:
    case = marked(
        TRIAL + "    def __init__(self, context):\n        self.dm = MNISTDataModule()\n"
        "        self.dm.setup('fit')\n        self.dm.setup()\n        self.dm.teardown()\n\n"
        "    def build_validation_data_loader(self):\n        self.dm.setup('validate')\n"
        "        $self.dm.setup()\n"
    )
    findings = lint(case.text)
    assert [(f.line, f.hook) for f in findings] == [(case.line, "a repeated datamodule.setup()")]
    assert findings[0].message.startswith("a second `self.dm.setup()` is legacy")


def test_pre_1_0_keys_are_found_in_dict_calls_and_in_epoch_end_outputs() -> None:
    source = MODULE + (
        "    def training_step(self, batch, batch_idx):\n"
        "        return OrderedDict({'loss': batch, 'progress_bar': {'l': batch}})\n\n"
        "    def validation_epoch_end(self, outputs):\n"
        "        return dict(val_loss=1, log={'val_loss': 1})\n"
    )
    assert [(f.code, f.hook) for f in lint(source)] == [
        ("LA309", "{'progress_bar': ...} in a step's output"),
        ("LA304", "validation_epoch_end"),
        ("LA309", "{'log': ...} in a step's output"),
    ]


@pytest.mark.parametrize(
    ("args", "count"),
    [
        ("train_transforms=t", 1),
        ("val_transforms=t", 1),
        ("test_transforms=t", 1),
        ("dims=(1, 2)", 1),
        ("t, None, t", 3),  # 1.5 took them positionally too
    ],
)
def test_each_1_5_constructor_argument_is_reported(args: str, count: int) -> None:
    source = DATAMODULE + f"    def __init__(self, t):\n        super().__init__({args})\n"
    name = "LightningDataModule(train_transforms=, val_transforms=, test_transforms=, dims=)"
    assert hooks(source) == [name] * count


def test_a_file_without_any_trigger_word_is_not_walked_by_the_rule() -> None:
    from migrate.rules import legacy_api

    assert legacy_api.trigger_tokens("class A:\n    x = self.size()\n") == frozenset()
    assert legacy_api.trigger_tokens("dm = MNISTDataModule()") == legacy_api.WORDS
