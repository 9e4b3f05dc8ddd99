"""Loading const.yaml: the realistic config parses, and YAML-level errors name file and line."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable

import pytest
from determined import pytorch as det_pytorch

from shim.config import (
    ConfigError,
    Length,
    SearcherConfig,
    load_experiment_config,
    parse_experiment_config,
)
from shim.core.info import const_hparams
from tests.config.conftest import minimal

Write = Callable[[str], pathlib.Path]

MNIST = """
    name: mnist_pytorch_lightning_const
    description: a legacy LightningAdapter trial
    labels: [mnist, lightning]
    data:
      url: https://example.invalid/mnist.tar.gz
    hyperparameters:
      global_batch_size: 64
      learning_rate: 0.001
      dropout: {type: const, val: 0.25}
      optimizer:
        momentum: 0.9
    records_per_epoch: 60000
    searcher:
      name: single
      metric: val_loss
      smaller_is_better: true
      max_length:
        epochs: 2
    min_validation_period:
      batches: 200
    min_checkpoint_period:
      epochs: 1
    scheduling_unit: 50
    checkpoint_storage:
      type: shared_fs
      host_path: /tmp
      storage_path: determined-checkpoint
      save_trial_latest: 2
    entrypoint: model_def:MNISTTrial
    resources:
      slots_per_trial: 2
    max_restarts: 3
    reproducibility:
      experiment_seed: 1234
    environment:
      image: determinedai/environments:py-3.8-pytorch-1.12-lightning-1.5-cpu
    bind_mounts:
      - host_path: /data
        container_path: /data
"""


def test_a_realistic_mnist_config_parses_into_typed_fields(write_config: Write) -> None:
    config = load_experiment_config(write_config(MNIST))

    assert config.entrypoint == "model_def:MNISTTrial"
    assert (config.entrypoint_module, config.entrypoint_qualname) == ("model_def", "MNISTTrial")
    assert config.global_batch_size == 64
    assert config.searcher == SearcherConfig(
        name="single", metric="val_loss", smaller_is_better=True, max_length=Length("epochs", 2)
    )
    assert config.min_validation_period == Length("batches", 200)
    assert config.min_checkpoint_period == Length("epochs", 1)
    assert config.scheduling_unit == 50
    assert config.checkpoint_policy == "best"
    assert config.checkpoint_storage == {
        "type": "shared_fs",
        "host_path": "/tmp",
        "storage_path": "determined-checkpoint",
        "save_experiment_best": 0,
        "save_trial_best": 1,
        "save_trial_latest": 2,
    }
    assert config.data == {"url": "https://example.invalid/mnist.tar.gz"}
    assert (config.slots_per_trial, config.max_restarts, config.experiment_seed) == (2, 3, 1234)
    assert config.records_per_epoch == 60000
    assert config.perform_initial_validation is False
    assert config.source.endswith("const.yaml")


def test_the_realistic_config_resolves_to_its_constant_hyperparameters(
    write_config: Write,
) -> None:
    config = load_experiment_config(write_config(MNIST))

    hparams = config.resolve_hparams({})

    assert hparams == {
        "global_batch_size": 64,
        "learning_rate": 0.001,
        "dropout": 0.25,
        "optimizer": {"momentum": 0.9},
    }
    assert hparams == const_hparams(config.hyperparameters)


def test_raw_carries_cluster_only_fields_and_determined_defaults(write_config: Write) -> None:
    raw = load_experiment_config(write_config(MNIST)).raw

    assert raw["environment"]["image"].startswith("determinedai/")
    assert raw["bind_mounts"] == [{"host_path": "/data", "container_path": "/data"}]
    assert raw["optimizations"]["aggregation_frequency"] == 1
    assert raw["profiling"] == {"enabled": False}
    assert raw["perform_initial_validation"] is False


def test_raw_periods_are_what_determineds_harness_turns_into_train_units(
    write_config: Write,
) -> None:
    config = load_experiment_config(write_config(MNIST))

    checkpoint = det_pytorch.TrainUnit._from_values(
        **config.raw["min_checkpoint_period"], global_batch_size=config.global_batch_size
    )
    validation = det_pytorch.TrainUnit._from_values(
        **config.raw["min_validation_period"], global_batch_size=config.global_batch_size
    )

    assert isinstance(checkpoint, det_pytorch.Epoch) and checkpoint.value == 1
    assert isinstance(validation, det_pytorch.Batch) and validation.value == 200


def test_records_per_epoch_is_accepted_with_a_notice_naming_its_line(write_config: Write) -> None:
    config = load_experiment_config(write_config(MNIST))

    assert len(config.notices) == 1
    assert re.search(r"const\.yaml:12: records_per_epoch is ignored", config.notices[0])


def test_a_config_without_records_per_epoch_has_no_notice() -> None:
    config = parse_experiment_config(
        {
            "entrypoint": "m:T",
            "hyperparameters": {"global_batch_size": 1},
            "searcher": {"name": "single", "metric": "loss"},
        }
    )

    assert config.notices == ()
    assert config.records_per_epoch is None


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the experiment config") as err:
        load_experiment_config(path)

    assert err.value.path == str(path)
    assert err.value.line is None


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "const.yaml"
    path.write_bytes(b"name: \xff\xfe\n")

    with pytest.raises(ConfigError, match=r"const\.yaml: the experiment config is not UTF-8"):
        load_experiment_config(path)


def test_invalid_yaml_is_a_config_error_with_the_line_of_the_problem(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        searcher:
          name: single
            metric: loss
        """
    )

    with pytest.raises(ConfigError, match=r"const\.yaml:4: not valid YAML: ") as err:
        load_experiment_config(path)

    assert err.value.line == 4


def test_a_duplicate_key_is_refused_with_both_lines(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        searcher: {name: single, metric: loss}
        hyperparameters: {global_batch_size: 8}
        searcher: {name: single, metric: acc}
        """
    )

    with pytest.raises(
        ConfigError, match=r"const\.yaml:4: duplicate key 'searcher' \(first on line 2\)"
    ) as err:
        load_experiment_config(path)

    assert err.value.key == "searcher"


@pytest.mark.parametrize(
    ("text", "kind"), [("", "NoneType"), ("- a\n- b\n", "list"), ("just text\n", "str")]
)
def test_a_document_that_is_not_a_mapping_is_refused(
    write_config: Write, text: str, kind: str
) -> None:
    with pytest.raises(
        ConfigError, match=rf"const\.yaml: an experiment config must be a mapping .*got {kind}"
    ):
        load_experiment_config(write_config(text))


def test_errors_point_at_the_line_of_the_offending_key(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        hyperparameters:
          global_batch_size: 8
        searcher:
          name: single
          metric: loss
          max_length:
            epoch: 2
        """
    )

    with pytest.raises(
        ConfigError,
        match=re.escape("const.yaml:8: unknown key 'searcher.max_length.epoch'; did you mean"),
    ) as err:
        load_experiment_config(path)

    assert (err.value.line, err.value.key) == (8, "searcher.max_length.epoch")


def test_a_missing_key_points_at_its_parent(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        hyperparameters:
          global_batch_size: 8
        searcher:
          name: single
        """
    )

    with pytest.raises(
        ConfigError, match=re.escape("const.yaml:4: missing required key 'searcher.metric'")
    ):
        load_experiment_config(path)


def test_an_error_inside_a_list_points_at_the_item(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        hyperparameters: {global_batch_size: 8}
        searcher: {name: single, metric: loss}
        labels:
          - fine
          - 3
        """
    )

    with pytest.raises(
        ConfigError, match=re.escape("const.yaml:6: 'labels[1]' must be a string, got 3")
    ):
        load_experiment_config(path)


def test_a_dict_config_has_no_line_numbers_in_its_errors() -> None:
    with pytest.raises(ConfigError, match=r"^job\.json: missing required key 'entrypoint'") as err:
        parse_experiment_config(minimal(entrypoint=None), source="job.json")

    assert (err.value.path, err.value.line, err.value.key) == ("job.json", None, "entrypoint")


def test_anchors_and_merge_keys_load_as_yaml_defines_them(write_config: Write) -> None:
    path = write_config(
        """
        base: &searcher {name: single, metric: loss}
        """
    )
    with pytest.raises(ConfigError, match=r"const\.yaml:1: unknown key 'base'"):
        load_experiment_config(path)

    path = write_config(
        """
        entrypoint: model_def:T
        hyperparameters: {global_batch_size: 8}
        searcher:
          <<: {name: single, metric: loss}
          smaller_is_better: false
        """
    )
    searcher = load_experiment_config(path).searcher
    assert (searcher.name, searcher.metric, searcher.smaller_is_better) == ("single", "loss", False)


def test_a_misspelt_searcher_key_is_named_with_its_line_and_the_fix(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        hyperparameters:
          global_batch_size: 8
        searcher:
          name: single
          metirc: loss
        """
    )

    with pytest.raises(
        ConfigError, match=re.escape("const.yaml:6: unknown key 'searcher.metirc'; did you mean")
    ):
        load_experiment_config(path)


def test_a_wrong_type_is_named_with_its_line_and_the_value_given(write_config: Write) -> None:
    path = write_config(
        """
        entrypoint: model_def:T
        searcher: {name: single, metric: loss}
        hyperparameters:
          learning_rate: 0.1
          global_batch_size: abc
        """
    )

    with pytest.raises(
        ConfigError,
        match=re.escape(
            "const.yaml:5: 'hyperparameters.global_batch_size' must be an int >= 1, got 'abc'"
        ),
    ) as err:
        load_experiment_config(path)

    assert (err.value.line, err.value.key) == (5, "hyperparameters.global_batch_size")
