"""The Core API loop template (``migrate/templates/core_loop.py``) as a module of its own.

Its training numerics are proven against run-trial in ``test_equivalence.py``; here: the
entrypoint arguments, the off-cluster cluster info, and the batch order against Determined's
``DataLoader`` as run-trial implements it, at every start position.
"""

from __future__ import annotations

import importlib.util
import pathlib
import shlex
import sys
import types
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from shim.pytorch.data import DataLoader as DeterminedDataLoader
from tests.migrate.equivalence import FIXTURES, script_arguments

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "migrate" / "templates" / "core_loop.py"


@pytest.fixture(scope="module")
def core_loop() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("core_loop", TEMPLATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["core_loop"] = module  # dataclasses look their module up while they are made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["core_loop"]
    return module


def test_the_entrypoint_arguments_give_the_old_configs_length_and_periods(
    core_loop: Any,
) -> None:
    settings = core_loop.RunSettings.from_args(
        shlex.split(
            "--max-length epochs=2 --validation-period batches=8 --checkpoint-period records=64 "
            "--scheduling-unit 4 --perform-initial-validation --checkpoint-policy all "
            "--metric val_acc --larger-is-better"
        )
    )
    assert settings.max_length == ("epochs", 2)
    assert settings.validation_period == ("batches", 8)
    assert settings.checkpoint_period == ("records", 64)
    assert (settings.scheduling_unit, settings.perform_initial_validation) == (4, True)
    assert (settings.checkpoint_policy, settings.metric) == ("all", "val_acc")
    assert settings.smaller_is_better is False
    defaults = core_loop.RunSettings.from_args(["--max-length", "batches=5"])
    assert defaults.validation_period is None and defaults.smaller_is_better is True


@pytest.mark.parametrize("length", ["steps=5", "batches=five", "batches"])
def test_a_bad_length_argument_exits_2_naming_the_units(
    core_loop: Any, length: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        core_loop.RunSettings.from_args(["--max-length", length])
    assert exit_info.value.code == 2
    assert "UNIT=N, UNIT one of ('batches', 'epochs', 'records')" in capsys.readouterr().err


def test_off_cluster_the_config_beside_the_script_gives_hparams_data_and_seed(
    core_loop: Any, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "const.yaml"
    config.write_text(
        "hyperparameters:\n  global_batch_size: 8\n  lr: {type: const, val: 0.1}\n"
        "data:\n  size: 3\nreproducibility:\n  experiment_seed: 11\n"
    )
    info = core_loop.local_cluster_info(config)
    assert info.trial.hparams == {"global_batch_size": 8, "lr": 0.1}
    assert info.user_data == {"size": 3}
    assert (info.trial.trial_id, info.trial.trial_seed, info.latest_checkpoint) == (1, 11, None)


def test_off_cluster_a_searched_hyperparameter_is_refused_with_its_name(
    core_loop: Any, tmp_path: pathlib.Path
) -> None:
    config = tmp_path / "const.yaml"
    config.write_text("hyperparameters:\n  lr: {type: double, minval: 0.1, maxval: 1}\n")
    with pytest.raises(SystemExit, match=r"hyperparameter 'lr' is a search space \(double\)"):
        core_loop.local_cluster_info(config)


def _indices(batches: Any) -> list[list[int]]:
    return [batch[0].tolist() for batch in batches]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_training_batches_follow_determineds_order_from_every_start_on_every_rank(
    core_loop: Any, shuffle: bool, size: int
) -> None:
    """Determined's order (seeded shuffle per epoch, repeat, shard, skip) as run-trial builds
    it, for every start position over three epochs of a dataset that does not divide evenly."""
    dataset = TensorDataset(torch.arange(22))
    seed = 1234
    for rank in range(size):
        oracle_loader = DeterminedDataLoader(dataset, batch_size=4, shuffle=shuffle)
        oracle_loader.set_shuffle_seed(seed)
        torch_loader = DataLoader(dataset, batch_size=4, shuffle=shuffle)
        batches = core_loop._Batches(torch_loader, seed, size, rank, 2)
        epoch_len = batches.epoch_len
        assert epoch_len == -(-6 // size)  # the chief's share of 6 batches
        for start in range(3 * epoch_len):
            oracle = oracle_loader.get_data_loader(
                repeat=True, skip=start, num_replicas=size, rank=rank
            )
            expected = _indices(b for b, _ in zip(oracle, range(2 * epoch_len), strict=False))
            batches.seek(start)
            got: list[list[int]] = []
            position = start
            while len(got) < len(expected):
                got += _indices(batches.open(position))
                position = (position // epoch_len + 1) * epoch_len
            assert got[: len(expected)] == expected, (rank, start)


@pytest.mark.parametrize("size", [1, 2])
def test_validation_passes_are_sharded_and_reshuffled_as_determineds_loader(
    core_loop: Any, size: int
) -> None:
    dataset = TensorDataset(torch.arange(10))
    for rank in range(size):
        oracle = DeterminedDataLoader(dataset, batch_size=3, shuffle=True)
        dist = types.SimpleNamespace(size=size, rank=rank)
        loader = core_loop._validation_loader(DataLoader(dataset, batch_size=3, shuffle=True), dist)
        for _ in range(3):
            # Each pass draws from torch's RNG exactly what run-trial's pass draws.
            state = torch.get_rng_state()
            expected = _indices(oracle.get_data_loader(num_replicas=size, rank=rank))
            after_oracle = torch.get_rng_state()
            torch.set_rng_state(state)
            assert _indices(loader) == expected
            assert torch.equal(torch.get_rng_state(), after_oracle)


@pytest.mark.parametrize(
    "config", sorted(FIXTURES.glob("*/expected/const.yaml")), ids=lambda p: p.parent.parent.name
)
def test_every_migrated_entrypoint_parses_with_the_template(
    core_loop: Any, config: pathlib.Path
) -> None:
    """What the config migration writes is what the loop reads."""
    settings = core_loop.RunSettings.from_args(script_arguments(config.parent)[1:])
    assert settings.max_length[1] > 0 and settings.metric


def test_a_checkpoint_that_would_not_load_safely_is_refused_when_saved(core_loop: Any) -> None:
    import numpy as np

    content = {"callbacks": {"_lightning_module": {"epoch_outputs": [{"x": np.zeros(2)}]}}}
    with pytest.raises(TypeError, match=r"\['epoch_outputs'\]\[0\]\['x'\] is a numpy.ndarray"):
        core_loop._check_loadable(content, "state_dict.pth")
    core_loop._check_loadable({"ok": [torch.zeros(2), 1, "a", None, (2.0,)]}, "state_dict.pth")


def test_sync_dist_merges_each_ranks_accumulation_as_lightning_reduces_it(core_loop: Any) -> None:
    """A mean over all ranks' batches (sum of value * batch size / all batches), sum, max, min."""
    ranks = [
        {
            "m": ["mean", 0.0 * 16, 16.0, None],
            "s": ["sum", 2.0, 0.0, None],
            "x": ["max", 0, 0, 3.0],
        },
        {
            "m": ["mean", 1.0 * 48, 48.0, None],
            "s": ["sum", 5.0, 0.0, None],
            "x": ["max", 0, 0, 7.0],
        },
    ]
    merged: dict[str, list[Any]] = {}
    for per_rank in ranks:
        for name, other in per_rank.items():
            core_loop._merge(merged.setdefault(name, [other[0], 0.0, 0.0, None]), other)
    results = {name: core_loop._result(bucket) for name, bucket in merged.items()}
    assert results == {"m": 0.75, "s": 7.0, "x": 7.0}
