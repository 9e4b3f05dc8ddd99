"""Any valid config survives yaml.safe_dump and load_experiment_config unchanged."""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.config import load_experiment_config, parse_experiment_config


def _text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    # PyYAML's emitter writes NEL (U+0085) in a way its own loader reads back as a space.
    return st.text(st.characters(exclude_characters="\x85"), min_size=min_size, max_size=max_size)


_NAMES = st.text(alphabet="abcdefxyz_", min_size=1, max_size=8)
_IDENTIFIERS = st.lists(_NAMES, min_size=1, max_size=3).map(".".join)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | _text(max_size=20)
)
_JSONISH = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_NUMBERS = st.floats(min_value=-1e6, max_value=1e6) | st.integers(-(10**6), 10**6)


@st.composite
def _bounds(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> dict[str, Any]:
    low, high = sorted([draw(values), draw(values)])
    return {"minval": low, "maxval": high}


_SPACES = st.one_of(
    _SCALARS,
    st.fixed_dictionaries({"type": st.just("const"), "val": _JSONISH}),
    st.builds(lambda b: {"type": "int", **b}, _bounds(st.integers(-1000, 1000))),
    st.builds(lambda b: {"type": "double", **b}, _bounds(_NUMBERS)),
    st.builds(lambda b, base: {"type": "log", "base": base, **b}, _bounds(st.integers(-6, 2)),
              st.sampled_from([2, 10, 2.718281828459045])),
    st.fixed_dictionaries({"type": st.just("categorical"), "vals": st.lists(_SCALARS, min_size=1,
                                                                            max_size=4)}),
)  # fmt: skip
_HPARAMS = st.dictionaries(
    _NAMES.filter(lambda name: name not in ("type", "global_batch_size")),
    st.recursive(_SPACES, lambda inner: st.dictionaries(_NAMES.filter(lambda n: n != "type"),
                                                        inner, max_size=3), max_leaves=6),
    max_size=4,
)  # fmt: skip
_GBS = st.integers(1, 4096) | st.builds(lambda v: {"type": "const", "val": v}, st.integers(1, 64))
_LENGTH = st.integers(1, 10**6) | st.dictionaries(
    st.sampled_from(["batches", "epochs", "records"]), st.integers(1, 10**6), min_size=1, max_size=1
)
_PERIOD = st.integers(0, 10**6) | st.dictionaries(
    st.sampled_from(["batches", "epochs", "records"]), st.integers(0, 10**6), min_size=1, max_size=1
)
_SEARCHER = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["single", "random", "grid", "adaptive_asha"]),
        "metric": _text(min_size=1, max_size=20),
    },
    optional={
        "smaller_is_better": st.booleans(),
        "max_length": _LENGTH,
        "max_trials": st.integers(1, 100),
    },
)
_STORAGE = st.fixed_dictionaries(
    {"type": st.just("shared_fs"), "host_path": _text(min_size=1, max_size=20)},
    optional={"storage_path": _text(max_size=20), "save_trial_best": st.integers(0, 5)},
)
_CONFIGS = st.fixed_dictionaries(
    {
        "entrypoint": st.builds(lambda mod, cls: f"{mod}:{cls}", _IDENTIFIERS, _IDENTIFIERS),
        "hyperparameters": st.builds(lambda gbs, rest: {"global_batch_size": gbs, **rest},
                                     _GBS, _HPARAMS),
        "searcher": _SEARCHER,
    },
    optional={
        "name": _text(max_size=20),
        "labels": st.lists(_text(max_size=8), max_size=3),
        "data": st.dictionaries(_text(max_size=8), _JSONISH, max_size=4),
        "records_per_epoch": st.integers(0, 10**6),
        "min_validation_period": _PERIOD,
        "min_checkpoint_period": _PERIOD,
        "scheduling_unit": st.integers(1, 1000),
        "perform_initial_validation": st.booleans(),
        "checkpoint_policy": st.sampled_from(["best", "all", "none"]),
        "checkpoint_storage": _STORAGE,
        "resources": st.fixed_dictionaries({"slots_per_trial": st.integers(0, 8)}),
        "max_restarts": st.integers(0, 10),
        "reproducibility": st.fixed_dictionaries({"experiment_seed": st.integers(0, 2**31)}),
        "optimizations": st.fixed_dictionaries({"aggregation_frequency": st.integers(1, 8)}),
        "environment": st.dictionaries(_text(max_size=8), _JSONISH, max_size=2),
    },
)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(config=_CONFIGS)
def test_a_valid_config_round_trips_through_yaml(config: dict[str, Any]) -> None:
    expected = parse_experiment_config(config)

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "const.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        loaded = load_experiment_config(path)

    assert loaded == expected
    assert loaded.raw == expected.raw
    assert {key: loaded.raw[key] for key in config if key not in _NORMALISED} == {
        key: value for key, value in config.items() if key not in _NORMALISED
    }


# Fields whose validated form adds defaults or turns a plain int into {batches: n}.
_NORMALISED = {
    "searcher",
    "checkpoint_storage",
    "min_validation_period",
    "min_checkpoint_period",
    "resources",
    "optimizations",
}
