"""Every field of the experiment config: defaults, accepted forms, and each error message."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from shim.config import CLUSTER_ONLY, ConfigError, Length, parse_experiment_config
from tests.config.conftest import MINIMAL, minimal

_DELETE = object()


def _with(dotted: str, value: Any) -> dict[str, Any]:
    """The minimal config with the value at a dotted key path set (or deleted)."""
    config = copy.deepcopy(MINIMAL)
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return config


def test_a_minimal_config_gets_determineds_defaults() -> None:
    config = parse_experiment_config(minimal())

    assert config.scheduling_unit == 100
    assert config.checkpoint_policy == "best"
    assert config.perform_initial_validation is False
    assert (config.max_restarts, config.slots_per_trial) == (5, 1)
    assert config.min_validation_period is None and config.min_checkpoint_period is None
    assert config.checkpoint_storage is None and config.experiment_seed is None
    assert config.data == {}
    assert config.searcher.smaller_is_better is True and config.searcher.max_length is None
    assert config.raw["min_validation_period"] == {"batches": 0}
    assert config.raw["records_per_epoch"] == 0
    assert config.source == "<config>"


def test_null_means_the_default_as_in_determineds_schema() -> None:
    config = parse_experiment_config(minimal(max_restarts=5) | {"max_restarts": None})

    assert config.max_restarts == 5


def test_the_validated_config_is_a_copy_of_the_input() -> None:
    given = minimal(data={"nested": {"x": 1}})

    config = parse_experiment_config(given)
    config.data["nested"]["x"] = 2

    assert given["data"]["nested"]["x"] == 1


@pytest.mark.parametrize("key", CLUSTER_ONLY)
def test_cluster_only_fields_are_accepted_and_kept_unchecked(key: str) -> None:
    content = {"anything": ["goes", {"here": 1}]}

    config = parse_experiment_config(minimal(**{key: content}))

    assert config.raw[key] == content


@pytest.mark.parametrize("entrypoint", ["model_def:MNISTTrial", "pkg.model_def:Outer.Trial", "m:T"])
def test_module_class_entrypoints_are_accepted(entrypoint: str) -> None:
    assert parse_experiment_config(minimal(entrypoint=entrypoint)).entrypoint == entrypoint


def test_a_plain_int_max_length_counts_batches_and_stays_an_int_in_raw() -> None:
    config = parse_experiment_config(_with("searcher.max_length", 500))

    assert config.searcher.max_length == Length("batches", 500)
    assert config.raw["searcher"]["max_length"] == 500


def test_a_plain_int_period_counts_batches_and_becomes_a_mapping_in_raw() -> None:
    config = parse_experiment_config(minimal(min_checkpoint_period=50))

    assert config.min_checkpoint_period == Length("batches", 50)
    assert config.raw["min_checkpoint_period"] == {"batches": 50}


def test_a_zero_period_is_accepted_and_means_never() -> None:
    period = parse_experiment_config(minimal(min_validation_period={"epochs": 0}))

    assert period.min_validation_period == Length("epochs", 0)
    assert period.min_validation_period is not None and period.min_validation_period.never


def test_search_fields_of_other_searchers_are_accepted() -> None:
    searcher = {
        "name": "adaptive_asha",
        "metric": "loss",
        "max_trials": 16,
        "max_concurrent_trials": 4,
        "mode": "standard",
        "divisor": 4,
        "max_rungs": 5,
        "time_metric": "batches",
        "max_time": 1000,
        "bracket_rungs": [1, 2],
        "source_trial_id": 7,
        "source_checkpoint_uuid": "abc",
    }

    config = parse_experiment_config(minimal(searcher=searcher))

    assert (config.searcher.max_trials, config.searcher.source_trial_id) == (16, 7)
    assert config.searcher.source_checkpoint_uuid == "abc"


def test_each_storage_type_takes_its_own_fields_and_the_retention_defaults() -> None:
    storages = [
        {"type": "shared_fs", "host_path": "/h", "storage_path": "s", "propagation": "rprivate"},
        {"type": "directory", "container_path": "/c"},
        {"type": "s3", "bucket": "b", "prefix": "p", "endpoint_url": "http://x"},
        {"type": "gcs", "bucket": "b"},
        {"type": "azure", "container": "c", "connection_string": "x"},
    ]
    for storage in storages:
        config = parse_experiment_config(minimal(checkpoint_storage=storage))
        assert config.checkpoint_storage == storage | {
            "save_experiment_best": 0,
            "save_trial_best": 1,
            "save_trial_latest": 1,
        }


def test_a_search_space_global_batch_size_has_no_constant_value() -> None:
    config = parse_experiment_config(
        _with("hyperparameters.global_batch_size", {"type": "int", "minval": 8, "maxval": 64})
    )

    with pytest.raises(ConfigError, match="is a search space; its value comes from --hparam"):
        _ = config.global_batch_size
    assert config.resolve_hparams({"global_batch_size": "16"})["global_batch_size"] == 16


def test_a_const_global_batch_size_is_read_from_its_val() -> None:
    config = parse_experiment_config(
        _with("hyperparameters.global_batch_size", {"type": "const", "val": 16})
    )

    assert config.global_batch_size == 16


def test_configs_compare_equal_whatever_their_source() -> None:
    assert parse_experiment_config(minimal(), "a.yaml") == parse_experiment_config(minimal(), "b")


ERRORS: list[tuple[dict[str, Any], str]] = [
    # unknown keys, with and without a close match
    (minimal(serAcher={}), "unknown key 'serAcher'; did you mean 'searcher'?"),
    (minimal(zzz=1), "unknown key 'zzz'; remove it or check its spelling"),
    (_with("searcher.metirc", "x"), "unknown key 'searcher.metirc'; did you mean 'metric'?"),
    (_with("resources.qqq", 1), "unknown key 'resources.qqq'; known keys here: agent_label,"),
    (_with("optimizations.aggregation", 2), "did you mean 'aggregation_frequency'?"),
    # required keys
    (minimal(entrypoint=None), "missing required key 'entrypoint'; add the trial class"),
    (minimal(searcher=None), "missing required key 'searcher'; add e.g. searcher: {name: single"),
    (_with("searcher.name", _DELETE), "missing required key 'searcher.name'"),
    (_with("searcher.metric", _DELETE), "missing required key 'searcher.metric'; name the"),
    (minimal(hyperparameters=None), "missing required key 'hyperparameters.global_batch_size'"),
    (minimal(hyperparameters={"lr": 0.1}), "add e.g. 'global_batch_size: 32' under hyperp"),
    # entrypoint
    (minimal(entrypoint="python3 -c train"), "'entrypoint' is the command 'python3 -c train', "
     "but run-trial runs a Python script, 'python3 script.py [ARGS...]'"),
    (minimal(entrypoint=["bash", "train.sh"]), "is the command 'bash train.sh'"),
    (minimal(entrypoint="train.py"), "is the command 'train.py'"),
    (minimal(entrypoint="python3 'train.py"), "'entrypoint' \"python3 'train.py\" is not a valid "
     "command: No closing quotation"),
    (minimal(entrypoint=["python3", 3]), "'entrypoint' as a list must hold strings"),
    (minimal(entrypoint="model_def.MNISTTrial"), "'entrypoint' must be module:Class (e.g. "
     "model_def:MNISTTrial), got 'model_def.MNISTTrial'; did you mean 'model_def:MNISTTrial'?"),
    (minimal(entrypoint="Trial"), "'entrypoint' must be module:Class (e.g. model_def:MNISTTrial)"
     ", got 'Trial'"),
    (minimal(entrypoint="model-def:Trial"), "with Python names on both sides"),
    (minimal(entrypoint="model_def:"), "with Python names on both sides"),
    (minimal(entrypoint=42), "'entrypoint' must be a string module:Class, got 42"),
    # global_batch_size
    (_with("hyperparameters.global_batch_size", "abc"),
     "'hyperparameters.global_batch_size' must be an int >= 1, got 'abc'"),
    (_with("hyperparameters.global_batch_size", 0), "must be an int >= 1, got 0"),
    (_with("hyperparameters.global_batch_size", True), "must be an int >= 1, got True"),
    (_with("hyperparameters.global_batch_size", 1.5), "must be an int >= 1, got 1.5"),
    (_with("hyperparameters.global_batch_size", {"type": "const", "val": 0}),
     "'hyperparameters.global_batch_size.val' must be an int >= 1, got 0"),
    (_with("hyperparameters.global_batch_size", {"type": "int", "minval": 0, "maxval": 4}),
     "'hyperparameters.global_batch_size.minval' must be an int >= 1, got 0"),
    (_with("hyperparameters.global_batch_size", {"type": "categorical", "vals": [8, "x"]}),
     "'hyperparameters.global_batch_size.vals' must be an int >= 1, got 'x'"),
    (_with("hyperparameters.global_batch_size", {"type": "double", "minval": 1, "maxval": 2}),
     "'hyperparameters.global_batch_size' must be an int >= 1, got {'type': 'double'"),
    # searcher
    (_with("searcher.name", "singel"), "'searcher.name' must be one of 'single', 'random', "
     "'grid', 'adaptive_asha', 'async_halving', 'custom', got 'singel'; did you mean 'single'?"),
    (_with("searcher.metric", 3), "'searcher.metric' must be a string, got 3"),
    (_with("searcher.smaller_is_better", "yes"),
     "'searcher.smaller_is_better' must be true or false, got 'yes'"),
    (_with("searcher.max_length", {"epochs": 0}),
     "'searcher.max_length.epochs' must be an int >= 1, got 0"),
    (_with("searcher.max_length", {"epochs": 1.5}), "'searcher.max_length' must be a mapping "
     "with one of batches, epochs, records and an int, e.g. {epochs: 2}, or a plain int of "
     "batches; got {'epochs': 1.5}"),
    (_with("searcher.max_length", {"batches": 1, "epochs": 2}), "must be a mapping with one of"),
    (_with("searcher.max_length", "ten"), "got 'ten'"),
    (_with("searcher.max_length", True), "got True"),
    (_with("searcher.max_length", -3), "'searcher.max_length' must be an int >= 1, got -3"),
    (_with("searcher.max_length", {"epoch": 2}),
     "unknown key 'searcher.max_length.epoch'; did you mean 'epochs'?"),
    (_with("searcher.max_length", {"weeks": 2}),
     "unknown key 'searcher.max_length.weeks'; known keys here: batches, epochs, records"),
    (_with("searcher.mode", "fast"), "'searcher.mode' must be one of 'aggressive', 'standard'"),
    (_with("searcher.max_concurrent_trials", -1), "must be an int >= 0, got -1"),
    (_with("searcher.bracket_rungs", [1, "a"]), "'searcher.bracket_rungs' must be a list of ints"),
    (_with("searcher.divisor", "4"), "'searcher.divisor' must be a number, got '4'"),
    (minimal(searcher=["single"]), "'searcher' must be a mapping, got ['single']"),
    # periods and the other top-level fields
    (minimal(min_validation_period=-1),
     "'min_validation_period' must be an int >= 0 (0 means never), got -1"),
    (minimal(min_checkpoint_period={"records": -5}),
     "'min_checkpoint_period.records' must be an int >= 0 (0 means never), got -5"),
    (minimal(scheduling_unit=0), "'scheduling_unit' must be an int >= 1, got 0"),
    (minimal(perform_initial_validation="no"), "must be true or false, got 'no'"),
    (minimal(checkpoint_policy="bset"), "'checkpoint_policy' must be one of 'best', 'all', "
     "'none', got 'bset'; did you mean 'best'?"),
    (minimal(max_restarts=-1), "'max_restarts' must be an int >= 0, got -1"),
    (minimal(records_per_epoch=-5), "'records_per_epoch' must be an int >= 0, got -5"),
    (minimal(resources={"slots_per_trial": -1}), "'resources.slots_per_trial' must be an int >= 0"),
    (minimal(reproducibility={"experiment_seed": "x"}),
     "'reproducibility.experiment_seed' must be an int >= 0, got 'x'"),
    (minimal(optimizations={"aggregation_frequency": 0}),
     "'optimizations.aggregation_frequency' must be an int >= 1, got 0"),
    (minimal(labels="x"), "'labels' must be a list of strings, got 'x'"),
    (minimal(name=3), "'name' must be a string, got 3"),
    (minimal(data=[1]), "'data' must be a mapping, got [1]"),
    # checkpoint storage
    (minimal(checkpoint_storage={"host_path": "/h"}),
     "missing required key 'checkpoint_storage.type'; add e.g. 'type: shared_fs' (one of "
     "shared_fs, directory, s3, gcs, azure)"),
    (minimal(checkpoint_storage={"type": "nfs"}), "'checkpoint_storage.type' must be one of"),
    (minimal(checkpoint_storage={"type": "shared_fs"}),
     "missing required key 'checkpoint_storage.host_path'; a shared_fs checkpoint_storage needs"),
    (minimal(checkpoint_storage={"type": "shared_fs", "host_path": "/h", "storagepath": "s"}),
     "unknown key 'checkpoint_storage.storagepath'; did you mean 'storage_path'?"),
    (minimal(checkpoint_storage={"type": "s3", "bucket": "b", "host_path": "/h"}),
     "unknown key 'checkpoint_storage.host_path'"),
    (minimal(checkpoint_storage={"type": "gcs", "bucket": "b", "save_trial_best": -1}),
     "'checkpoint_storage.save_trial_best' must be an int >= 0, got -1"),
    (minimal(checkpoint_storage={"type": "gcs", "bucket": 3}),
     "'checkpoint_storage.bucket' must be a string, got 3"),
    (minimal(checkpoint_storage="shared_fs"), "'checkpoint_storage' must be a mapping"),
    # hyperparameter spaces
    (minimal(hyperparameters=[1]), "'hyperparameters' must be a mapping, got [1]"),
    (_with("hyperparameters.lr", {"type": "doubel", "minval": 0, "maxval": 1}),
     "'hyperparameters.lr.type' must be one of const, int, double, log, categorical, got "
     "'doubel'; did you mean 'double'?"),
    (_with("hyperparameters.opt", {"type": ["x"]}), "'hyperparameters.opt.type' must be one of"),
    (_with("hyperparameters.n", {"type": "int", "minval": 1}),
     "missing required key 'hyperparameters.n.maxval'; the upper bound"),
    (_with("hyperparameters.n", {"type": "int", "minval": "a", "maxval": 2}),
     "'hyperparameters.n.minval' must be an int, got 'a'"),
    (_with("hyperparameters.n", {"type": "int", "minval": 1, "max": 2}),
     "unknown key 'hyperparameters.n.max'; did you mean 'maxval'?"),
    (_with("hyperparameters.lr", {"type": "double", "minval": 1, "maxval": 0.1}),
     "'hyperparameters.lr' has minval 1 above maxval 0.1; swap them"),
    (_with("hyperparameters.lr", {"type": "log", "base": 0, "minval": -4, "maxval": -1}),
     "'hyperparameters.lr.base' must be a number > 0, got 0"),
    (_with("hyperparameters.lr", {"type": "log", "minval": -4, "maxval": -1}),
     "missing required key 'hyperparameters.lr.base'; give the base"),
    (_with("hyperparameters.opt", {"type": "categorical", "vals": []}),
     "'hyperparameters.opt.vals' must be a non-empty list, got []"),
    (_with("hyperparameters.opt", {"type": "categorical"}),
     "missing required key 'hyperparameters.opt.vals'; give a list of values"),
    (_with("hyperparameters.c", {"type": "const"}),
     "missing required key 'hyperparameters.c.val'; give its value"),
    (_with("hyperparameters.n", {"type": "int", "minval": 1, "maxval": 2, "count": 0}),
     "'hyperparameters.n.count' must be an int >= 1, got 0"),
    (_with("hyperparameters.group", {1: 2}), "hyperparameter names must be strings, got 1"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "message"), ERRORS)
def test_an_invalid_field_is_a_config_error_that_says_what_to_fix(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=r"^<config>: " + ".*" + re.escape(message)):
        parse_experiment_config(config)


def test_a_config_error_names_the_key_at_fault() -> None:
    with pytest.raises(ConfigError) as err:
        parse_experiment_config(_with("searcher.max_length", {"epochs": 0}))

    assert (err.value.path, err.value.line) == ("<config>", None)
    assert err.value.key == "searcher.max_length.epochs"
