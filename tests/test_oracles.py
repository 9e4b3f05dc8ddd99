"""The Lightning oracles and the legacy trial fixtures they run.

mnist_like and dropout train under the installed Lightning 2.x and under 1.9; gan and
lr_schedulers are 1.x-only (2.x refuses them) and train under Lightning 1.9 in its own virtualenv.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import shutil
import subprocess
import sys
import threading
from typing import Any

import pytest
import torch
import yaml
from torch.utils.data import TensorDataset

from shim.config import load_experiment_config
from shim.imports import determined_namespace, load_entrypoint, trial_folder
from shim.pytorch.data import DataLoader
from tests.oracle.fixture_spec import OracleError, load_fixture
from tests.oracle.fixtures import pl19_python_fixture  # noqa: F401  (provides pl19_python)
from tests.oracle.lightning_run import RunTrialShuffle, main, run_lightning, run_lightning_in
from tests.oracle.pl19 import PL19_STEPS, REPO, Pl19EnvError, ensure_venv

FIXTURES = REPO / "fixtures"
MNIST, GAN, SCHEDULERS = FIXTURES / "mnist_like", FIXTURES / "gan", FIXTURES / "lr_schedulers"
DROPOUT = FIXTURES / "dropout"
TRIALS = {
    MNIST: "MNISTLikeTrial",
    GAN: "GANTrial",
    SCHEDULERS: "LRSchedulersTrial",
    DROPOUT: "DropoutTrial",
}
BATCHES_PER_EPOCH = 256 // 32
# A first build of the 1.9 environment takes minutes.
PL19_TIMEOUT = pytest.mark.timeout(900)


def equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def untrained(fixture: pathlib.Path, seed: int) -> tuple[Any, Any]:
    """The module as the oracle builds it before training, and its validation data."""
    spec = load_fixture(fixture)
    values = spec.hparams()
    # The fixtures initialise their weights from torch's RNG only, which seed_everything seeds.
    torch.manual_seed(seed)
    module = spec.build_module(values)
    datamodule = spec.build_datamodule(values)
    datamodule.setup("fit")
    return module, datamodule.val_set.tensors


def copy_fixture(tmp_path: pathlib.Path, fixture: pathlib.Path = MNIST) -> pathlib.Path:
    target = tmp_path / fixture.name
    shutil.copytree(fixture, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def edit_config(folder: pathlib.Path, **top_level: Any) -> None:
    path = folder / "const.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in top_level.items():
        config[key] = {**config[key], **value}
    path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def mnist_run() -> dict[str, Any]:
    return run_lightning(MNIST, epochs=2, seed=3)


# --- the fixtures themselves -------------------------------------------------------------------


@pytest.mark.parametrize("fixture", list(TRIALS), ids=lambda p: p.name)
def test_each_fixture_config_is_a_valid_experiment_config(fixture: pathlib.Path) -> None:
    config = load_experiment_config(fixture / "const.yaml")
    assert config.entrypoint == f"model_def:{TRIALS[fixture]}"
    assert config.experiment_seed == 42
    assert config.global_batch_size == 32


@pytest.mark.parametrize("fixture", list(TRIALS), ids=lambda p: p.name)
def test_each_trial_loads_as_a_lightning_adapter_through_the_shim(fixture: pathlib.Path) -> None:
    from shim.lightning import LightningAdapter

    with trial_folder(fixture), determined_namespace():
        trial = load_entrypoint(f"model_def:{TRIALS[fixture]}", fixture)
    assert issubclass(trial, LightningAdapter)


def _trial_kwargs(fixture: pathlib.Path, cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """What model_def.py passes to ``cls(...)``, read from its source with ``values`` and the
    data config substituted; each keyword must be named like the hparam or data key it reads."""
    data = yaml.safe_load((fixture / "const.yaml").read_text())["data"]
    tree = ast.parse((fixture / "model_def.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == cls.__name__
    ]
    assert len(calls) == 1, f"model_def.py must build {cls.__name__} exactly once"
    kwargs: dict[str, Any] = {}
    for keyword in calls[0].keywords:
        source = ast.unparse(keyword.value)
        if keyword.arg is None:
            assert source == "data", source
            kwargs.update(data)
        elif source == "context.get_per_slot_batch_size()":
            kwargs[keyword.arg] = values["global_batch_size"]
        elif source == f"context.get_hparam({keyword.arg!r})":
            kwargs[keyword.arg] = values[keyword.arg]
        else:
            assert source == f"data[{keyword.arg!r}]", source
            kwargs[keyword.arg] = data[keyword.arg]
    return kwargs


@pytest.mark.parametrize("fixture", list(TRIALS), ids=lambda p: p.name)
def test_the_oracle_builds_each_module_with_the_arguments_the_trial_passes(
    fixture: pathlib.Path,
) -> None:
    spec = load_fixture(fixture)
    values = spec.hparams()
    assert spec.module_kwargs(values) == _trial_kwargs(fixture, spec.module_cls, values)
    assert spec.datamodule_kwargs(values) == _trial_kwargs(fixture, spec.datamodule_cls, values)


@pytest.mark.parametrize("fixture", list(TRIALS), ids=lambda p: p.name)
def test_the_lightning_module_file_imports_without_determined(
    fixture: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes any `import determined` fail.
    monkeypatch.setitem(sys.modules, "determined", None)
    (path,) = [p for p in fixture.glob("*.py") if p.name != "model_def.py"]
    spec = importlib.util.spec_from_file_location(f"_probe_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


@pytest.mark.parametrize("fixture", list(TRIALS), ids=lambda p: p.name)
def test_building_the_data_leaves_the_global_rng_alone(fixture: pathlib.Path) -> None:
    spec = load_fixture(fixture)
    before = torch.get_rng_state()
    spec.build_datamodule(spec.hparams()).setup("fit")
    assert torch.equal(torch.get_rng_state(), before)


# --- Lightning 2.x -------------------------------------------------------------------------------


def test_mnist_like_trains_two_epochs_under_lightning_2_and_its_loss_goes_down(
    mnist_run: dict[str, Any],
) -> None:
    module, (images, labels) = untrained(MNIST, seed=3)
    with torch.no_grad():
        before = float(torch.nn.functional.cross_entropy(module(images), labels))
    assert mnist_run["logged"]["val_loss"] < before / 2
    assert (mnist_run["global_step"], mnist_run["epochs"]) == (2 * BATCHES_PER_EPOCH, 2)
    assert mnist_run["lrs"] == [0.01]
    assert {"train_loss", "val_loss", "val_acc"} <= set(mnist_run["logged"])


def test_two_lightning_2_runs_with_one_seed_give_bitwise_equal_weights(
    mnist_run: dict[str, Any],
) -> None:
    deterministic = torch.are_deterministic_algorithms_enabled()
    again = run_lightning(MNIST, epochs=2, seed=3)
    assert equal_weights(again["state_dict"], mnist_run["state_dict"])
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_another_seed_gives_other_weights(mnist_run: dict[str, Any]) -> None:
    other = run_lightning(MNIST, epochs=2, seed=4)
    assert not equal_weights(other["state_dict"], mnist_run["state_dict"])


def test_the_dropout_module_learns_and_one_seed_gives_one_result_despite_its_draws() -> None:
    first = run_lightning(DROPOUT, epochs=3, seed=42)
    module, (features, labels) = untrained(DROPOUT, seed=42)
    with torch.no_grad():
        before = float(torch.nn.functional.cross_entropy(module(features), labels))
    logged = first["logged"]
    assert logged["val_loss"] == logged["val_loss_epoch"] < before / 2
    assert (first["global_step"], first["epochs"]) == (3 * BATCHES_PER_EPOCH, 3)
    again = run_lightning(DROPOUT, epochs=3, seed=42)
    assert equal_weights(again["state_dict"], first["state_dict"])
    calm = run_lightning(DROPOUT, epochs=3, seed=42, hparams={"dropout": 0.0})
    assert not equal_weights(calm["state_dict"], first["state_dict"])


def test_hparam_overrides_reach_the_module() -> None:
    result = run_lightning(MNIST, epochs=1, seed=3, hparams={"lr": 0.05, "hidden_size": 7})
    assert result["lrs"] == [0.05]
    assert result["state_dict"]["model.1.weight"].shape == (7, 64)


def test_the_command_line_saves_what_run_lightning_returns(
    tmp_path: pathlib.Path, mnist_run: dict[str, Any]
) -> None:
    out = tmp_path / "result.pt"
    assert main([str(MNIST), "--epochs", "2", "--seed", "3", "--out", str(out)]) == 0
    saved = torch.load(out, weights_only=True)
    assert equal_weights(saved["state_dict"], mnist_run["state_dict"])
    assert {k: v for k, v in saved.items() if k != "state_dict"} == {
        k: v for k, v in mnist_run.items() if k != "state_dict"
    }


def test_lightning_2_refuses_the_gan_for_its_several_optimizers() -> None:
    with pytest.raises(RuntimeError, match="multiple optimizers is only supported with manual"):
        run_lightning(GAN, epochs=1, seed=0)


def test_lightning_2_refuses_the_lr_schedulers_module_for_its_epoch_end_hooks() -> None:
    with pytest.raises(NotImplementedError, match="`training_epoch_end` has been removed in v2"):
        run_lightning(SCHEDULERS, epochs=1, seed=0)


def test_a_shuffled_oracle_trains_on_run_trials_order(mnist_run: dict[str, Any]) -> None:
    """Each epoch's permutation is the one run-trial's DataLoader(shuffle=True) makes from the
    seed, drawing nothing from the global RNG; the order reaches the Trainer."""
    size = 256
    sampler = RunTrialShuffle(range(size), seed=3)
    ours = DataLoader(TensorDataset(torch.arange(size)), batch_size=size, shuffle=True)
    ours.set_shuffle_seed(3)
    stream = iter(ours.get_data_loader(repeat=True))
    before = torch.get_rng_state()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert list(sampler) == next(stream)[0].tolist()
    assert torch.equal(torch.get_rng_state(), before)
    shuffled = run_lightning(MNIST, epochs=2, seed=3, hparams={"shuffle": True})
    assert not equal_weights(shuffled["state_dict"], mnist_run["state_dict"])


# --- the oracle's errors -------------------------------------------------------------------------


def test_overriding_an_unknown_hparam_is_refused() -> None:
    with pytest.raises(OracleError, match=r"no hyperparameter \['lr_typo'\] to override"):
        run_lightning(MNIST, epochs=1, seed=0, hparams={"lr_typo": 1.0})


def test_zero_epochs_are_refused() -> None:
    with pytest.raises(OracleError, match="epochs must be at least 1, got 0"):
        run_lightning(MNIST, epochs=0, seed=0)


def test_a_folder_without_const_yaml_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OracleError, match="no const.yaml; pass a fixture folder"):
        load_fixture(tmp_path)


def test_a_search_space_hparam_needs_an_override(tmp_path: pathlib.Path) -> None:
    folder = copy_fixture(tmp_path)
    edit_config(folder, hyperparameters={"lr": {"type": "double", "minval": 0.1, "maxval": 1}})
    with pytest.raises(OracleError, match="'lr' is a search space \\('double'\\)"):
        load_fixture(folder).hparams()
    assert load_fixture(folder).hparams({"lr": 0.5})["lr"] == 0.5


def test_a_name_both_hparam_and_data_key_is_refused(tmp_path: pathlib.Path) -> None:
    folder = copy_fixture(tmp_path)
    edit_config(folder, hyperparameters={"image_size": 8})
    spec = load_fixture(folder)
    with pytest.raises(OracleError, match=r"\['image_size'\] is both a hyperparameter and a data"):
        spec.module_kwargs(spec.hparams())


def test_a_folder_with_two_candidate_modules_is_refused(tmp_path: pathlib.Path) -> None:
    folder = copy_fixture(tmp_path)
    (folder / "extra.py").write_text("")
    with pytest.raises(OracleError, match="expected exactly one module besides model_def.py"):
        load_fixture(folder)


def test_a_module_without_a_lightning_module_is_refused(tmp_path: pathlib.Path) -> None:
    folder = copy_fixture(tmp_path)
    (folder / "mnist_like_lm.py").write_text("import pytorch_lightning\n")
    with pytest.raises(OracleError, match=r"exactly one LightningModule subclass, found \[\]"):
        load_fixture(folder)


def test_a_failing_run_in_another_python_reports_its_output(tmp_path: pathlib.Path) -> None:
    with pytest.raises(OracleError, match="(?s)exited with 1.*no const.yaml"):
        run_lightning_in(sys.executable, tmp_path, epochs=1, seed=0)


# --- Lightning 1.9 -------------------------------------------------------------------------------


@pytest.mark.slow
@PL19_TIMEOUT
def test_the_gan_trains_two_epochs_under_lightning_1_9_deterministically(
    pl19_python: pathlib.Path,
) -> None:
    first = run_lightning_in(pl19_python, GAN, epochs=2, seed=11)
    second = run_lightning_in(pl19_python, GAN, epochs=2, seed=11)
    assert equal_weights(first["state_dict"], second["state_dict"])
    module, _ = untrained(GAN, seed=11)
    assert not equal_weights(first["state_dict"], module.state_dict())
    # Lightning 1.6+ counts optimizer steps: two per batch.
    assert (first["global_step"], first["epochs"]) == (2 * 2 * BATCHES_PER_EPOCH, 2)
    assert first["lrs"] == [0.002, 0.002]
    assert {"train_loss", "val_g_loss", "val_d_loss"} <= set(first["logged"])


@pytest.mark.slow
@PL19_TIMEOUT
def test_lr_schedulers_train_under_lightning_1_9_with_their_schedulers_and_epoch_hooks(
    pl19_python: pathlib.Path,
) -> None:
    first = run_lightning_in(pl19_python, SCHEDULERS, epochs=2, seed=5)
    second = run_lightning_in(pl19_python, SCHEDULERS, epochs=2, seed=5)
    assert equal_weights(first["state_dict"], second["state_dict"])
    # The step scheduler steps every second batch; the epoch one once an epoch.
    step_scheduler_steps = 2 * BATCHES_PER_EPOCH // 2
    assert first["lrs"] == pytest.approx([0.1 * 0.9**step_scheduler_steps, 0.1 * 0.5**2])
    weights, logged = first["state_dict"], first["logged"]
    assert int(weights["train_epoch_ends"]) == int(weights["val_epoch_ends"]) == 2
    assert float(weights["last_val_epoch_loss"]) == pytest.approx(logged["val_epoch_loss"])
    assert float(weights["last_train_epoch_loss"]) == pytest.approx(logged["train_epoch_loss"])
    module, (inputs, targets) = untrained(SCHEDULERS, seed=5)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(module(inputs), targets))
    assert logged["val_epoch_loss"] < before


@pytest.mark.slow
@PL19_TIMEOUT
def test_lightning_1_9_and_2_agree_bitwise_on_the_mnist_like_classifier(
    pl19_python: pathlib.Path, mnist_run: dict[str, Any]
) -> None:
    old = run_lightning_in(pl19_python, MNIST, epochs=2, seed=3)
    assert equal_weights(old["state_dict"], mnist_run["state_dict"])
    assert old["global_step"] == mnist_run["global_step"]


@pytest.mark.slow
@PL19_TIMEOUT
def test_lightning_1_9_and_2_draw_in_another_order_so_the_dropout_weights_differ(
    pl19_python: pathlib.Path,
) -> None:
    """1.9 creates epoch 0's iterator after on_train_epoch_start (2.x before on_train_start) and
    the validation one after on_validation_epoch_start (2.x before on_validation_start): the
    fixture's hooks draw too, so each Lightning gets other numbers. run-trial follows each."""
    old = run_lightning_in(pl19_python, DROPOUT, epochs=3, seed=42)
    new = run_lightning(DROPOUT, epochs=3, seed=42)
    assert old["global_step"] == new["global_step"] == 3 * BATCHES_PER_EPOCH
    assert not equal_weights(old["state_dict"], new["state_dict"])
    assert old["logged"]["val_shifted_loss"] != new["logged"]["val_shifted_loss"]


@pytest.mark.slow
@PL19_TIMEOUT
def test_the_lightning_1_9_environment_is_reused_once_built(pl19_python: pathlib.Path) -> None:
    assert ensure_venv(REPO / ".venv-pl19", PL19_STEPS).built is False
    done = subprocess.run(
        [
            str(pl19_python),
            "-c",
            "import pytorch_lightning, shim; print(pytorch_lightning.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == "1.9.5", done.stderr


@pytest.mark.slow
def test_a_changed_recipe_rebuilds_the_environment(tmp_path: pathlib.Path) -> None:
    venv = tmp_path / "venv"
    assert ensure_venv(venv, ()).built is True
    (venv / "leftover").write_text("")
    assert ensure_venv(venv, ()).built is False
    assert ensure_venv(venv, [["--no-index", "pip"]]).built is True
    assert not (venv / "leftover").exists()


@pytest.mark.slow
def test_two_concurrent_callers_build_the_environment_once(tmp_path: pathlib.Path) -> None:
    results: list[bool] = []

    def build() -> None:
        results.append(ensure_venv(tmp_path / "venv", ()).built)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


@pytest.mark.slow
def test_a_failed_build_says_which_step_failed_with_pips_output(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing-1.0-py3-none-any.whl"
    with pytest.raises(Pl19EnvError, match=f"(?s)failed to pip install {missing}.*does not exist"):
        ensure_venv(tmp_path / "venv", [[str(missing)]])
    assert not (tmp_path / "venv" / "pl19-recipe.json").exists()
