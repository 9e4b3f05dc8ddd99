"""The removed Lightning 1.x APIs a legacy trial calls: each behaves as in Lightning 1.5 while the
layer is installed, nothing is patched on import, and closing it restores exactly what was there."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.model_summary import ModelSummary
from torch import nn

from shim.errors import ShimError
from shim.lightning import legacy_api
from shim.lightning.trainer_stub import TrainerStub

STAGES = ("fit", "validate", "test", "predict")
FLAGS = ["has_prepared_data", *(f"has_{h}_{s}" for h in ("setup", "teardown") for s in STAGES)]
DATAMODULE_APIS = ["size", "dims", "train_transforms", "val_transforms", "test_transforms", *FLAGS]
MODULE_APIS = ["summarize", "model_size", "use_amp", "precision"]


def snapshot() -> dict[str, dict[str, Any]]:
    """Every attribute of the two patched classes, by identity."""
    return {cls.__name__: dict(vars(cls)) for cls in (pl.LightningDataModule, pl.LightningModule)}


@pytest.fixture(autouse=True)
def no_trial_left_over() -> None:
    # A trial of an earlier test that failed before its run holds the layer until collected.
    gc.collect()
    assert not legacy_api.is_installed()


@pytest.fixture
def layer() -> Iterator[legacy_api.LegacyScope]:
    before = snapshot()
    scope = legacy_api.install()
    yield scope
    scope.close()
    assert snapshot() == before


class CountingDataModule(pl.LightningDataModule):
    def __init__(self, **legacy: Any) -> None:
        super().__init__(**legacy)
        self.calls: list[tuple[str, str | None]] = []

    def prepare_data(self) -> None:
        self.calls.append(("prepare_data", None))

    def setup(self, stage: str | None = None) -> None:
        self.calls.append(("setup", stage))

    def teardown(self, stage: str | None = None) -> None:
        self.calls.append(("teardown", stage))


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# -- installing and restoring ------------------------------------------------------------------


def test_importing_the_shim_patches_nothing_in_lightning() -> None:
    code = (
        "import pytorch_lightning as pl, sys\n"
        "names = lambda: [sorted(vars(c)) for c in (pl.LightningDataModule, pl.LightningModule)]\n"
        "before = names()\n"
        "import shim, shim.runner, shim.lightning.adapter, shim.lightning.legacy_api\n"
        "print(before == names(), hasattr(pl.LightningDataModule, 'size'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]


def test_a_trial_that_imports_lightning_only_in_its_init_still_finds_the_apis() -> None:
    code = (
        "import sys\n"
        "from shim.lightning import legacy_api\n"
        "print('pytorch_lightning' in sys.modules)\n"
        "scope = legacy_api.install()\n"
        "import pytorch_lightning as pl\n"
        "print(hasattr(pl.LightningDataModule, 'size'))\n"
        "scope.close()\n"
        "print(hasattr(pl.LightningDataModule, 'size'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "False"]


def test_installing_adds_each_api_and_closing_restores_exactly_what_was_there() -> None:
    before = snapshot()
    assert not any(hasattr(pl.LightningDataModule, name) for name in DATAMODULE_APIS)
    assert not any(hasattr(pl.LightningModule, name) for name in MODULE_APIS)
    scope = legacy_api.install()
    assert all(hasattr(pl.LightningDataModule, name) for name in DATAMODULE_APIS)
    assert all(hasattr(pl.LightningModule, name) for name in MODULE_APIS)
    assert pl.LightningDataModule.__init__ is not before["LightningDataModule"]["__init__"]
    scope.close()
    assert snapshot() == before
    assert not legacy_api.is_installed()


def test_the_layer_stays_until_its_last_user_closes_and_closing_twice_is_harmless() -> None:
    before = snapshot()
    first, second = legacy_api.install(), legacy_api.install()
    first.close()
    first.close()
    assert legacy_api.is_installed() and hasattr(pl.LightningDataModule, "size")
    second.close()
    assert not legacy_api.is_installed() and snapshot() == before


def test_an_api_the_installed_lightning_still_has_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def own_size(self: Any) -> str:
        return "Lightning's own"

    monkeypatch.setattr(pl.LightningDataModule, "size", own_size, raising=False)
    scope = legacy_api.install()
    try:
        assert CountingDataModule().size() == "Lightning's own"
    finally:
        scope.close()
    assert pl.LightningDataModule.size is own_size


# -- LightningDataModule -----------------------------------------------------------------------


def test_size_and_dims_answer_as_in_lightning_1_5(layer: legacy_api.LegacyScope) -> None:
    plain = CountingDataModule()
    assert (plain.dims, plain.size(), plain.train_transforms, plain.test_transforms) == (
        (),
        (),
        None,
        None,
    )
    dm = CountingDataModule(dims=(1, 28, 28), train_transforms=abs, val_transforms=round)
    assert (dm.size(), dm.size(0), dm.size(-1)) == ((1, 28, 28), 1, 28)
    assert (dm.train_transforms, dm.val_transforms, dm.test_transforms) == (abs, round, None)
    dm.dims = (3, 8, 8)  # assigned as gan_mnist_pl does: the instance's own value wins
    assert dm.size() == (3, 8, 8)


def test_the_1_5_constructor_arguments_are_taken_positionally_too(
    layer: legacy_api.LegacyScope,
) -> None:
    class Positional(pl.LightningDataModule):
        def __init__(self) -> None:
            super().__init__(abs, None, round, (2, 2))

    dm = Positional()
    assert (dm.train_transforms, dm.val_transforms, dm.test_transforms, dm.size()) == (
        abs,
        None,
        round,
        (2, 2),
    )


def test_each_data_hook_runs_once_per_stage_and_the_flags_follow_as_in_1_5(
    layer: legacy_api.LegacyScope,
) -> None:
    dm = CountingDataModule()
    assert [getattr(dm, flag) for flag in FLAGS] == [False] * 9
    dm.prepare_data()
    dm.setup()  # no stage: fit, validate and test
    dm.setup("predict")
    dm.teardown("test")
    with pytest.warns(UserWarning, match=r"setup\(\) has already been called.*\(LA312\)"):
        dm.setup()
    with pytest.warns(UserWarning, match=r"prepare_data\(\) has already been called"):
        dm.prepare_data()
    with pytest.warns(UserWarning, match=r"setup\('fit'\) has already been called"):
        dm.setup("fit")
    with pytest.warns(UserWarning, match=r"teardown\('test'\) has already been called"):
        dm.teardown(stage="test")
    assert dm.calls == [
        ("prepare_data", None),
        ("setup", None),
        ("setup", "predict"),
        ("teardown", "test"),
    ]
    assert dm.has_prepared_data and dm.has_setup_fit and dm.has_setup_validate
    assert dm.has_setup_test and dm.has_setup_predict and dm.has_teardown_test
    assert not (dm.has_teardown_fit or dm.has_teardown_validate or dm.has_teardown_predict)


def test_setup_without_a_stage_still_runs_after_one_stage_as_in_1_5(
    layer: legacy_api.LegacyScope,
) -> None:
    dm = CountingDataModule()
    dm.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm.setup()  # validate and test had not run, so 1.5 ran it
    assert dm.calls == [("setup", "fit"), ("setup", None)]


def test_after_closing_a_data_module_calls_its_hooks_every_time_again() -> None:
    scope = legacy_api.install()
    dm = CountingDataModule()
    dm.setup()
    scope.close()
    assert "setup" not in vars(dm) and not hasattr(dm, "has_setup_fit")
    dm.setup()
    assert dm.calls == [("setup", None), ("setup", None)]


# -- LightningModule ---------------------------------------------------------------------------


def test_summarize_gives_lightning_s_model_summary_by_mode_or_depth(
    layer: legacy_api.LegacyScope,
) -> None:
    net = Net()
    top, full = net.summarize(), net.summarize(mode="full")
    assert isinstance(top, ModelSummary) and top.total_parameters == 4 * 3 + 3 + 3 * 2 + 2
    assert len(top.layer_names) == 1 and len(full.layer_names) == 4
    assert len(net.summarize(max_depth=2).layer_names) == 4
    with pytest.raises(ShimError, match=r"summarize\(mode='wide'\): mode can be None, 'top'"):
        net.summarize(mode="wide")


def test_summarize_leaves_the_attached_trainer_attached(layer: legacy_api.LegacyScope) -> None:
    net = Net()
    net.example_input_array = torch.zeros(2, 4)
    stand_in = SimpleNamespace(precision="32-true", current_epoch=0)
    net.trainer = stand_in
    assert net.summarize().total_parameters == 23
    assert net.trainer is stand_in


def test_model_size_is_the_megabytes_of_the_saved_state_dict(
    layer: legacy_api.LegacyScope,
) -> None:
    net = Net()
    saved = io.BytesIO()
    torch.save(net.state_dict(), saved)
    assert net.model_size == len(saved.getvalue()) / 1e6


@pytest.mark.parametrize(
    ("precision", "legacy", "use_amp"),
    [
        ("32-true", 32, False),
        (32, 32, False),
        ("16-mixed", 16, True),
        ("bf16-mixed", "bf16", True),
        ("64-true", 64, False),
    ],
)
def test_use_amp_and_precision_follow_the_trainer_as_lightning_1_5_copied_them(
    layer: legacy_api.LegacyScope, precision: Any, legacy: Any, use_amp: bool
) -> None:
    net = Net()
    assert (net.precision, net.use_amp) == (32, False)  # no trainer: 1.5's defaults
    net.trainer = SimpleNamespace(precision=precision)
    assert (net.precision, net.use_amp) == (legacy, use_amp)


def test_a_module_s_own_precision_attribute_or_submodule_wins(
    layer: legacy_api.LegacyScope,
) -> None:
    class WithMetric(Net):
        def __init__(self) -> None:
            super().__init__()
            self.precision = nn.Identity()  # e.g. a torchmetrics Precision
            self.use_amp = "mine"

    net = WithMetric()
    net.trainer = SimpleNamespace(precision="16-mixed")
    assert isinstance(net.precision, nn.Identity) and net.use_amp == "mine"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(16, 16), ("16", 16), ("16-mixed", 16), ("bf16", "bf16"), ("bf16-true", "bf16"),
     (64, 64), ("64-true", 64), ("32-true", 32), (32, 32)],
)  # fmt: skip
def test_legacy_precision_reads_any_lightning_spelling(given: Any, expected: Any) -> None:
    assert legacy_api.legacy_precision(given) == expected


def test_copy_precision_sets_the_attribute_as_lightning_1_x_s_trainer_does() -> None:
    net = Net()
    net.precision = 32  # what Lightning 1.9's LightningModule.__init__ sets
    legacy_api.copy_precision(net, 16)
    assert net.precision == 16
    net.precision = nn.Identity()  # a submodule is never replaced
    legacy_api.copy_precision(net, 16)
    assert isinstance(net.precision, nn.Identity)


# -- the trainer stand-in's 1.5 attributes -----------------------------------------------------


def stub(device: str, precision: Any = "32-true", local_size: int = 1) -> TrainerStub:
    dist = SimpleNamespace(
        rank=0, local_rank=0, cross_rank=0, size=local_size, local_size=local_size, cross_size=1
    )
    adapter = SimpleNamespace(
        _context=SimpleNamespace(distributed=dist, device=torch.device(device))
    )
    return TrainerStub(adapter, precision)


def test_the_trainer_answers_1_5_s_device_attributes_on_the_cpu() -> None:
    trainer = stub("cpu", local_size=2)
    assert (trainer.num_gpus, trainer.gpus, trainer.root_gpu, trainer.tpu_cores) == (
        0,
        None,
        None,
        None,
    )
    assert trainer.num_processes == 2 and trainer.device_ids == [0, 1]


def test_the_trainer_answers_1_5_s_device_attributes_on_a_gpu() -> None:
    trainer = stub("cuda:1", local_size=2)
    assert (trainer.num_gpus, trainer.gpus, trainer.root_gpu, trainer.num_processes) == (
        2,
        2,
        1,
        2,
    )


@pytest.mark.parametrize(
    ("precision", "use_amp", "amp_backend"),
    [("32-true", False, None), (16, True, "native"), ("16-mixed", True, "native"),
     ("bf16-mixed", False, "native")],
)  # fmt: skip
def test_the_trainer_answers_1_5_s_precision_attributes(
    precision: Any, use_amp: bool, amp_backend: str | None
) -> None:
    trainer = stub("cpu", precision)
    assert (trainer.use_amp, trainer.amp_backend) == (use_amp, amp_backend)


# -- the adapter installs and removes it -------------------------------------------------------


def test_a_trial_that_fails_in_its_init_leaves_nothing_installed_once_collected() -> None:
    from shim.lightning import LightningAdapter

    class Failing(LightningAdapter):
        def __init__(self, context: Any) -> None:
            self.seen = CountingDataModule(dims=(1, 2)).size()
            raise RuntimeError("the trial's own error")

        def build_training_data_loader(self) -> Any: ...

        def build_validation_data_loader(self) -> Any: ...

    before = snapshot()
    with pytest.raises(RuntimeError, match="the trial's own error"):
        Failing(None)
    gc.collect()
    assert not legacy_api.is_installed() and snapshot() == before


def test_a_scope_closed_by_the_collector_inside_install_neither_hangs_nor_undoes_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Garbage collection may run a dead adapter's finalizer (``close``) on this thread while
    ``install`` holds the layer's lock."""
    before = snapshot()
    old = legacy_api.install()
    init = legacy_api.LegacyScope.__init__

    def init_after_the_collector_closed_old(self: legacy_api.LegacyScope) -> None:
        old.close()
        init(self)

    monkeypatch.setattr(legacy_api.LegacyScope, "__init__", init_after_the_collector_closed_old)
    scopes: list[legacy_api.LegacyScope] = []
    worker = threading.Thread(target=lambda: scopes.append(legacy_api.install()), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "install() deadlocked on a close() from the collector"
    assert legacy_api.is_installed()
    scopes[0].close()
    assert not legacy_api.is_installed() and snapshot() == before
