"""resolve_hparams: constants as given, search spaces from --hparam, every refusal explained."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable
from typing import Any

import pytest

from shim.config import ConfigError, load_experiment_config, resolve_hparams

SPACE: dict[str, Any] = {
    "global_batch_size": 32,
    "dropout": {"type": "const", "val": 0.5},
    "layers": {"type": "int", "minval": 1, "maxval": 4},
    "optimizer": {
        "lr": {"type": "log", "base": 10, "minval": -4, "maxval": -1},
        "momentum": {"type": "double", "minval": 0.0, "maxval": 0.99},
        "name": {"type": "categorical", "vals": ["adam", "sgd", "yes"]},
    },
    "widths": {"type": "categorical", "vals": [[8, 8], [16, 16]]},
    "flag": {"type": "categorical", "vals": [True, 1]},
}
ALL = {
    "layers": "2",
    "optimizer.lr": "0.001",
    "optimizer.momentum": "0.9",
    "optimizer.name": "sgd",
    "widths": "[16, 16]",
    "flag": "1",
}


def _overrides(**changes: str | None) -> dict[str, str]:
    out = dict(ALL)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            out.pop(key)
        else:
            out[key] = value
    return out


def test_constants_and_overrides_make_one_nested_set_of_hyperparameters() -> None:
    assert resolve_hparams(SPACE, ALL) == {
        "global_batch_size": 32,
        "dropout": 0.5,
        "layers": 2,
        "optimizer": {"lr": 0.001, "momentum": 0.9, "name": "sgd"},
        "widths": [16, 16],
        "flag": 1,
    }


def test_override_values_take_the_type_the_space_gives_trials() -> None:
    hparams = resolve_hparams(SPACE, _overrides(optimizer__momentum="0", flag="true"))

    assert hparams["optimizer"]["momentum"] == 0.0
    assert isinstance(hparams["optimizer"]["momentum"], float)
    assert hparams["flag"] is True


def test_a_category_that_yaml_reads_as_a_boolean_still_matches_its_string() -> None:
    assert resolve_hparams(SPACE, _overrides(optimizer__name="yes"))["optimizer"]["name"] == "yes"


def test_a_log_bound_typed_as_printed_is_inside_the_space() -> None:
    assert resolve_hparams(SPACE, _overrides(optimizer__lr="0.1"))["optimizer"]["lr"] == 0.1


def test_constants_may_be_overridden_with_any_value() -> None:
    hparams = resolve_hparams(SPACE, _overrides(dropout="0.1", global_batch_size="64"))

    assert (hparams["dropout"], hparams["global_batch_size"]) == (0.1, 64)


def test_the_input_space_is_left_untouched() -> None:
    hparams = resolve_hparams(SPACE, ALL)
    hparams["widths"].append(0)

    assert SPACE["widths"]["vals"] == [[8, 8], [16, 16]]


def test_every_search_space_without_a_value_is_listed_with_the_fix() -> None:
    message = (
        "<config>: hyperparameters 'layers' (an int from 1 to 4), 'optimizer.lr' (a number from "
        "0.0001 to 0.1 (10**-4 to 10**-1)), 'optimizer.momentum' (a number from 0.0 to 0.99), "
        "'optimizer.name' (one of 'adam', 'sgd', 'yes'), 'widths' (one of [8, 8], [16, 16]) and "
        "'flag' (one of True, 1) are search spaces, and run-trial runs a single trial; give each "
        "a value with --hparam layers=VALUE --hparam optimizer.lr=VALUE "
        "--hparam optimizer.momentum=VALUE --hparam optimizer.name=VALUE --hparam widths=VALUE "
        "--hparam flag=VALUE, or make them constants in the config"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_hparams(SPACE, {})


def test_a_single_missing_value_is_named_in_the_singular() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "hyperparameter 'layers' (an int from 1 to 4) is a search space, and run-trial runs "
            "a single trial; give it a value with --hparam layers=VALUE, or make it a constant"
        ),
    ):
        resolve_hparams(SPACE, _overrides(layers=None))


REFUSED: list[tuple[dict[str, str], str]] = [
    (_overrides(layers="9"),
     "--hparam layers=9: hyperparameter 'layers' must be an int from 1 to 4 (its search space "
     "at <config>), got 9"),
    (_overrides(layers="2.5"), "'layers' must be an int from 1 to 4"),
    (_overrides(layers="true"), "'layers' must be an int from 1 to 4 (its search space at "
     "<config>), got True"),
    (_overrides(optimizer__lr="0.5"), "--hparam optimizer.lr=0.5: hyperparameter 'optimizer.lr' "
     "must be a number from 0.0001 to 0.1 (10**-4 to 10**-1)"),
    (_overrides(optimizer__momentum="high"), "must be a number from 0.0 to 0.99 (its search "
     "space at <config>), got 'high'"),
    (_overrides(optimizer__name="rmsprop"), "--hparam optimizer.name=rmsprop: hyperparameter "
     "'optimizer.name' must be one of 'adam', 'sgd', 'yes'"),
    (_overrides(widths="[8, 16]"), "must be one of [8, 8], [16, 16]"),
    (_overrides(flag="2"), "'flag' must be one of True, 1 (its search space at <config>), got 2"),
    (_overrides(layers="[1"), "--hparam layers=[1: the value is not valid YAML"),
    (_overrides(layer="2"), "--hparam layer=2: no hyperparameter 'layer' in <config>; did you "
     "mean 'layers'?"),
    (_overrides(zzzzz="2"), "no hyperparameter 'zzzzz' in <config>; known: dropout, flag, "
     "global_batch_size, layers, optimizer.lr"),
    (_overrides(optimizer="{}"), "--hparam optimizer={}: 'optimizer' is a group of "
     "hyperparameters; set its members, e.g. --hparam optimizer.lr=VALUE"),
    (_overrides(global_batch_size="abc"),
     "--hparam global_batch_size=abc: global_batch_size must be an int >= 1, got 'abc'"),
    (_overrides(global_batch_size="0"), "global_batch_size must be an int >= 1, got 0"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_an_override_the_space_does_not_allow_is_refused(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_hparams(SPACE, overrides)


def test_an_invalid_space_is_refused_before_any_override_is_read() -> None:
    with pytest.raises(ConfigError, match=re.escape("'hyperparameters.n.maxval'")):
        resolve_hparams({"n": {"type": "int", "minval": 0}}, {"n": "1"})


def test_override_errors_name_the_line_of_the_search_space(
    write_config: Callable[[str], pathlib.Path],
) -> None:
    config = load_experiment_config(
        write_config(
            """
            entrypoint: model_def:T
            searcher: {name: single, metric: loss}
            hyperparameters:
              global_batch_size: 8
              optimizer:
                lr: {type: double, minval: 0.001, maxval: 0.1}
            """
        )
    )

    with pytest.raises(ConfigError, match=r"its search space at \S*const\.yaml:6\), got 1") as err:
        config.resolve_hparams({"optimizer.lr": "1"})

    assert (err.value.line, err.value.key) == (6, "hyperparameters.optimizer.lr")
    with pytest.raises(ConfigError, match=r"const\.yaml:6: hyperparameter 'optimizer\.lr'"):
        config.resolve_hparams({})
