"""The experiment-config migration: before/after pairs, error paths, Determined 0.38's schema
rules and idempotency, over inline configs, Determined-shaped legacy configs and the project's."""

from __future__ import annotations

import pickle
import re
import shlex
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from migrate import MigrateError, SourceError
from migrate.config import ConfigChange, ConfigMigrationError, migrate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).with_name("configs")
# The project's legacy configs (`entrypoint: module:Class`); a script entrypoint needs no migration.
PROJECT_CONFIGS = sorted(
    path
    for path in [*ROOT.glob("fixtures/*/const.yaml"), *ROOT.glob("tests/run/trials/*/const.yaml")]
    if re.search(r"^entrypoint: *[\w.]+:\w+ *$", path.read_text(), re.MULTILINE)
)
FILE_PAIRS = sorted(CONFIGS.glob("*.migrated.yaml"))
REMOVED = (
    "min_validation_period",
    "min_checkpoint_period",
    "scheduling_unit",
    "records_per_epoch",
    "perform_initial_validation",
    "checkpoint_policy",
    "optimizations",
)


def _text(source: str) -> str:
    return textwrap.dedent(source).lstrip("\n")


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


# -- Determined 0.38's schema, as far as a migrated config touches it -----------------------------
# The determined 0.38 wheel ships no expconf schemas (the harness copy was removed in 0.21.1);
# these are the property lists of schemas/expconf/v0/{experiment,searcher-*}.json at 0.38.1 and
# the master's SearcherConfig.AssertCurrent rules. Each key list is additionalProperties: false.
_EXPERIMENT_KEYS = frozenset(
    {
        "bind_mounts",
        "checkpoint_policy",
        "checkpoint_storage",
        "data",
        "data_layer",
        "debug",
        "description",
        "entrypoint",
        "environment",
        "hyperparameters",
        "integrations",
        "internal",
        "labels",
        "log_policies",
        "max_restarts",
        "min_checkpoint_period",
        "min_validation_period",
        "name",
        "optimizations",
        "pbs",
        "perform_initial_validation",
        "preemption_timeout",
        "profiling",
        "project",
        "records_per_epoch",
        "reproducibility",
        "resources",
        "retention_policy",
        "scheduling_unit",
        "searcher",
        "security",
        "slurm",
        "tensorboard_storage",
        "workspace",
    }
)
_COMMON = "max_length metric name smaller_is_better source_checkpoint_uuid source_trial_id"
_SEARCHER_KEYS = {
    "single": frozenset(_COMMON.split()),
    "grid": frozenset(f"{_COMMON} max_concurrent_trials".split()),
    "random": frozenset(f"{_COMMON} max_concurrent_trials max_trials".split()),
    "adaptive_asha": frozenset(
        f"{_COMMON} bracket_rungs divisor max_concurrent_trials max_rungs max_time max_trials "
        "mode stop_once time_metric".split()
    ),
    "async_halving": frozenset(
        f"{_COMMON} divisor max_concurrent_trials max_time max_trials num_rungs stop_once "
        "time_metric".split()
    ),
}


def rejections_by_0_38(config: Mapping[str, Any]) -> list[str]:
    """Why Determined 0.38 would refuse ``config`` (empty: accepted as far as checked here)."""
    reasons = [f"unknown top-level key {key!r}" for key in set(config) - _EXPERIMENT_KEYS]
    entrypoint = config.get("entrypoint")
    if not (
        entrypoint is None
        or isinstance(entrypoint, str)
        or (isinstance(entrypoint, list) and all(isinstance(a, str) for a in entrypoint))
    ):
        reasons.append(f"entrypoint {entrypoint!r} is not a string or list of strings")
    searcher = config.get("searcher") or {}
    name = searcher.get("name")
    allowed = _SEARCHER_KEYS.get(name)
    if allowed is None:
        return [*reasons, f"searcher name {name!r} is not a 0.38 searcher"]
    reasons += [f"searcher {name} has no key {key!r}" for key in set(searcher) - allowed]
    if name in ("adaptive_asha", "async_halving") and not (
        isinstance(searcher.get("time_metric"), str) and isinstance(searcher.get("max_time"), int)
    ):
        reasons.append(f"the `{name}` searcher requires `max_time` and `time_metric` to be set")
    return reasons


def test_the_0_38_rules_refuse_what_determined_refuses() -> None:
    legacy_asha = _load((CONFIGS / "gan_mnist_pl_distributed.yaml").read_text())
    assert rejections_by_0_38(legacy_asha) == [
        "the `adaptive_asha` searcher requires `max_time` and `time_metric` to be set"
    ]
    single = {"searcher": {"name": "single", "metric": "m", "time_metric": "batches"}}
    assert rejections_by_0_38(single) == ["searcher single has no key 'time_metric'"]
    assert rejections_by_0_38({"foo": 1, "searcher": {"name": "adaptive"}}) == [
        "unknown top-level key 'foo'",
        "searcher name 'adaptive' is not a 0.38 searcher",
    ]


# -- before/after pairs -------------------------------------------------------------------------

PAIRS: dict[str, tuple[str, str]] = {
    "a single trial: the length and periods become arguments": (
        """
        name: mnist
        entrypoint: model_def:MNISTLikeTrial
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: single
          metric: val_loss
          max_length:
            epochs: 2
        min_validation_period:
          epochs: 1
        min_checkpoint_period:
          epochs: 1
        """,
        """
        name: mnist
        entrypoint: python3 model_def.py --max-length epochs=2 --validation-period epochs=1 --checkpoint-period epochs=1 --metric val_loss
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: single
          metric: val_loss
        """,  # noqa: E501
    ),
    "a plain int length counts batches, and the defaults are not written": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: acc, smaller_is_better: false, max_length: 500}
        scheduling_unit: 100
        checkpoint_policy: best
        perform_initial_validation: false
        min_validation_period: 0
        """,
        """
        name: trial
        entrypoint: python3 model_def.py --max-length batches=500 --metric acc --larger-is-better
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: acc, smaller_is_better: false}
        """,
    ),
    "every moved field that differs from the default is an argument": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: random
          metric: loss
          max_trials: 4
          max_length: {records: 6400}
        min_validation_period: {records: 640}
        scheduling_unit: 10
        perform_initial_validation: true
        checkpoint_policy: none
        """,
        """
        name: trial
        entrypoint: python3 model_def.py --max-length records=6400 --validation-period records=640 --scheduling-unit 10 --perform-initial-validation --checkpoint-policy none --metric loss
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: random
          metric: loss
          max_trials: 4
        """,  # noqa: E501
    ),
    "several slots run under Determined's torch_distributed launcher": (
        """
        name: trial
        entrypoint: model_def:GANTrial
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: loss, max_length: {batches: 16}}
        resources:
          slots_per_trial: 2
        """,
        """
        name: trial
        entrypoint: python3 -m determined.launch.torch_distributed python3 model_def.py --max-length batches=16 --metric loss
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: loss}
        resources:
          slots_per_trial: 2
        """,  # noqa: E501
    ),
    "adaptive_asha gets time_metric and max_time where max_length was": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters:
          global_batch_size: {type: const, val: 64}
        searcher:
          name: adaptive_asha
          metric: val_loss
          max_length:
            records: 60000   # one pass over MNIST
          max_trials: 16
        """,
        """
        name: trial
        entrypoint: python3 model_def.py --max-length records=60000 --metric val_loss
        hyperparameters:
          global_batch_size: {type: const, val: 64}
        searcher:
          name: adaptive_asha
          metric: val_loss
          time_metric: batches
          max_time: 937
          max_trials: 16
        """,
    ),
    "async_halving in flow style keeps its flow style": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters: {global_batch_size: 32}
        searcher: {name: async_halving, metric: loss, num_rungs: 3, max_trials: 8, stop_once: false, max_length: {epochs: 4}}
        """,  # noqa: E501
        """
        name: trial
        entrypoint: python3 model_def.py --max-length epochs=4 --metric loss
        hyperparameters: {global_batch_size: 32}
        searcher: {name: async_halving, metric: loss, num_rungs: 3, max_trials: 8, time_metric: epochs, max_time: 4}
        """,  # noqa: E501
    ),
    "an ASHA time_metric already given is kept": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: adaptive_asha
          metric: loss
          max_trials: 2
          time_metric: epochs
          max_length: {epochs: 3}
        """,
        """
        name: trial
        entrypoint: python3 model_def.py --max-length epochs=3 --metric loss
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: adaptive_asha
          metric: loss
          max_trials: 2
          time_metric: epochs
          max_time: 3
        """,
    ),
    "a removed key's own comments go with it, the next key's stay": (
        """
        # Experiment header
        name: x   # the name
        entrypoint: 'model_def:Trial'   # legacy form
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: single
          metric: loss
          # length of the run
          max_length:
            batches: 10
            # (was 20)
          # the metric is a loss
          smaller_is_better: true
        records_per_epoch: 100  # ignored anyway
        # The data section
        data:
          a: "quoted"
        """,
        """
        # Experiment header
        name: x   # the name
        entrypoint: 'python3 model_def.py --max-length batches=10 --metric loss'   # legacy form
        hyperparameters: {global_batch_size: 32}
        searcher:
          name: single
          metric: loss
          # the metric is a loss
          smaller_is_better: true
        # The data section
        data:
          a: "quoted"
        """,
    ),
    "a comment after a blank line heads its run, and goes only with all of it": (
        """
        name: x
        entrypoint: model_def:Trial
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: loss, max_length: 5}

        # Periods
        min_validation_period: {batches: 1}
        min_checkpoint_period: {batches: 1}

        # Storage and restarts
        scheduling_unit: 1
        max_restarts: 0
        """,
        """
        name: x
        entrypoint: python3 model_def.py --max-length batches=5 --validation-period batches=1 --checkpoint-period batches=1 --scheduling-unit 1 --metric loss
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: loss}

        # Storage and restarts
        max_restarts: 0
        """,  # noqa: E501
    ),
    "optimizations and records_per_epoch are dropped, anchors and aliases kept": (
        """
        name: trial
        entrypoint: model_def:Trial
        hyperparameters:
          global_batch_size: &gbs 32
          per_slot: *gbs
        searcher:
          name: grid
          metric: loss
          max_length: &len {epochs: 1}
        min_checkpoint_period: *len
        optimizations:
          aggregation_frequency: 1
          mixed_precision: O0
        records_per_epoch: 1000
        """,
        """
        name: trial
        entrypoint: python3 model_def.py --max-length epochs=1 --checkpoint-period epochs=1 --metric loss
        hyperparameters:
          global_batch_size: &gbs 32
          per_slot: *gbs
        searcher:
          name: grid
          metric: loss
        """,  # noqa: E501
    ),
    "a module in a package runs with -m, and a metric the shell would split is quoted": (
        """
        name: trial
        entrypoint: "pkg.model_def:Trial"
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: "val loss", max_length: {batches: 1}}
        """,
        """
        name: trial
        entrypoint: "python3 -m pkg.model_def --max-length batches=1 --metric 'val loss'"
        hyperparameters: {global_batch_size: 32}
        searcher: {name: single, metric: "val loss"}
        """,
    ),
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_a_legacy_config_migrates_to_the_expected_text(case: str) -> None:
    before, after = (_text(source) for source in PAIRS[case])
    result = migrate_config(before, path="const.yaml")
    assert result.text == after
    assert result.trial == _load(before)["entrypoint"]
    assert rejections_by_0_38(_load(result.text)) == []


@pytest.mark.parametrize("after", FILE_PAIRS, ids=lambda path: path.name)
def test_determined_shaped_legacy_configs_migrate_to_their_golden_files(after: Path) -> None:
    before = after.with_name(after.name.replace(".migrated", ""))
    result = migrate_config(before.read_text(), path=str(before))
    assert result.text == after.read_text()
    assert rejections_by_0_38(_load(result.text)) == []


def test_the_mnist_config_reports_each_change_at_its_original_line() -> None:
    path = CONFIGS / "mnist_pl_const.yaml"
    result = migrate_config(path.read_text(), path=str(path))
    assert result.trial == "model_def:MNISTTrial"
    assert [(c.key, c.line) for c in result.changes] == [
        ("searcher.max_length", 17),
        ("records_per_epoch", 20),
        ("min_validation_period", 22),
        ("min_checkpoint_period", 24),
        ("scheduling_unit", 27),
        ("checkpoint_policy", 28),
        ("entrypoint", 33),
    ]
    assert all(isinstance(c, ConfigChange) for c in result.changes)
    by_key = {c.key: c.message for c in result.changes}
    assert "--max-length batches=937" in by_key["searcher.max_length"]
    assert "ignored for PyTorch trials" in by_key["records_per_epoch"]
    assert "--checkpoint-policy all" in by_key["checkpoint_policy"]


def test_the_distributed_asha_config_notes_what_was_dropped_and_why() -> None:
    path = CONFIGS / "gan_mnist_pl_distributed.yaml"
    by_key = {c.key: c.message for c in migrate_config(path.read_text()).changes}
    assert by_key["searcher.max_length"].startswith("replaced by time_metric: epochs and max_time")
    assert by_key["searcher.stop_once"] == "removed: deprecated in Determined 0.38"
    assert (
        "aggregation_frequency: 2, which the migrated loop does not do" in (by_key["optimizations"])
    )
    assert "--perform-initial-validation" in by_key["perform_initial_validation"]


@pytest.mark.parametrize("path", PROJECT_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_project_configs_migrate_and_keep_everything_else(path: Path) -> None:
    before = _load(path.read_text())
    result = migrate_config(path.read_text(), path=str(path))
    after = _load(result.text)
    assert result.trial == before["entrypoint"]
    assert rejections_by_0_38(after) == []
    args = shlex.split(after["entrypoint"])
    assert args[args.index("model_def.py") - 1] == "python3"
    length = before["searcher"]["max_length"]
    assert args[args.index("--max-length") + 1] == "{}={}".format(*next(iter(length.items())))
    assert args[args.index("--metric") + 1] == before["searcher"]["metric"]
    gone = {"entrypoint", *REMOVED}
    assert {k: v for k, v in after.items() if k not in gone} == {
        k: v for k, v in before.items() if k not in gone
    } | {"searcher": {k: v for k, v in before["searcher"].items() if k != "max_length"}}


def test_crlf_line_endings_are_kept() -> None:
    before = "name: x\r\nentrypoint: model_def:T\r\nsearcher:\r\n  name: single\r\n  metric: m\r\n"
    before += "  max_length: {epochs: 1}\r\nrecords_per_epoch: 5\r\nmax_restarts: 0\r\n"
    before += "hyperparameters: {global_batch_size: 8}\r\n"
    result = migrate_config(before)
    assert result.text == (
        "name: x\r\nentrypoint: python3 model_def.py --max-length epochs=1 --metric m\r\n"
        "searcher:\r\n  name: single\r\n  metric: m\r\nmax_restarts: 0\r\n"
        "hyperparameters: {global_batch_size: 8}\r\n"
    )


def test_script_names_the_migrated_file_in_the_entrypoint() -> None:
    before = "entrypoint: model_def:T\nsearcher: {name: single, metric: m, max_length: 3}\n"
    before += "hyperparameters: {global_batch_size: 8}\n"
    result = migrate_config(before, script="train.py")
    assert _load(result.text)["entrypoint"].startswith("python3 train.py --max-length batches=3")


def test_a_module_in_a_package_runs_with_dash_m_under_the_launcher_too() -> None:
    before = "entrypoint: pkg.sub.model_def:T\nsearcher: {name: single, metric: m, max_length: 3}\n"
    before += "hyperparameters: {global_batch_size: 8}\nresources: {slots_per_trial: 2}\n"
    result = migrate_config(before, script="pkg/sub/model_def.py")
    assert shlex.split(_load(result.text)["entrypoint"])[:7] == [
        "python3", "-m", "determined.launch.torch_distributed",
        "python3", "-m", "pkg.sub.model_def", "--max-length",
    ]  # fmt: skip


# -- unchanged, and idempotent -------------------------------------------------------------------

UNCHANGED = {
    "a script entrypoint": "entrypoint: python3 train.py --epochs 1\n"
    "searcher: {name: single, metric: m, max_length: {epochs: 1}}\n",
    "a list entrypoint": "entrypoint: [python3, train.py]\nsearcher: {name: single, metric: m}\n",
    "no entrypoint": "name: x  # nothing to do\nsearcher:\n    name: single\n",
    "an empty document": "# only a comment\n",
    "a module:Class with arguments": "entrypoint: model_def:T --x\n",
}


@pytest.mark.parametrize("case", list(UNCHANGED))
def test_a_config_without_a_legacy_entrypoint_is_returned_unchanged(case: str) -> None:
    result = migrate_config(UNCHANGED[case])
    assert (result.text, result.changes, result.trial) == (UNCHANGED[case], (), None)


def _every_config() -> list[tuple[str, str]]:
    texts = [(case, _text(before)) for case, (before, _) in PAIRS.items()]
    texts += [(case, text) for case, text in UNCHANGED.items()]
    files = [*PROJECT_CONFIGS, *sorted(CONFIGS.glob("*.yaml"))]
    return texts + [(str(path.relative_to(ROOT)), path.read_text()) for path in files]


@pytest.mark.parametrize(("name", "text"), _every_config(), ids=[n for n, _ in _every_config()])
def test_migrating_a_migrated_config_changes_nothing(name: str, text: str) -> None:
    once = migrate_config(text, path=name)
    twice = migrate_config(once.text, path=name)
    assert (twice.text, twice.changes, twice.trial) == (once.text, (), None)
    if once.trial is not None:
        assert rejections_by_0_38(_load(once.text)) == []


# -- errors ---------------------------------------------------------------------------------------


def _error(source: str) -> ConfigMigrationError:
    with pytest.raises(ConfigMigrationError) as caught:
        migrate_config(_text(source), path="const.yaml")
    return caught.value


def test_a_config_without_max_length_names_the_searcher_line_and_what_to_add() -> None:
    source = """
        entrypoint: model_def:T
        searcher:
          name: single
          metric: m
        """
    with pytest.raises(MigrateError, match=r"^const\.yaml:2:1: searcher\.max_length is missing.*"
                       r"add e\.g\. 'max_length: \{epochs: 1\}' under searcher"):  # fmt: skip
        migrate_config(_text(source), path="const.yaml")


_NO_BATCH_SIZE = """
    name: t
    entrypoint: model_def:T
    searcher: {name: single, metric: m, max_length: {batches: 4}}
    """


def test_a_config_without_global_batch_size_names_the_hyperparameters_line_and_what_to_add() -> (
    None
):
    source = _text(_NO_BATCH_SIZE) + "hyperparameters:\n  lr: 0.1\n"
    with pytest.raises(
        ConfigMigrationError,
        match=r"^const\.yaml:4:1: hyperparameters\.global_batch_size is missing; Determined's "
        r"PyTorchTrial required it, and without it the migrated script would take the number of "
        r"processes as the global batch size: add e\.g\. 'global_batch_size: 32' under "
        r"hyperparameters, then rerun$",
    ):
        migrate_config(source, path="const.yaml")


def test_a_config_without_hyperparameters_is_an_error_at_its_first_line() -> None:
    error = _error(_NO_BATCH_SIZE)
    assert (error.line, error.column) == (1, 1)
    assert "hyperparameters.global_batch_size is missing" in error.reason


@pytest.mark.parametrize(
    "value",
    ["8", "{type: const, val: 8}", "{type: int, minval: 2, maxval: 64}", "{type: categorical, "
     "vals: [2, 4]}"],
)  # fmt: skip
def test_a_global_batch_size_of_at_least_the_slots_migrates(value: str) -> None:
    source = _text(_NO_BATCH_SIZE) + "resources: {slots_per_trial: 2}\n"
    source += f"hyperparameters:\n  global_batch_size: {value}\n"
    result = migrate_config(source, path="const.yaml")
    assert f"global_batch_size: {value}\n" in result.text


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("1", "1"),  # fewer than the two slots: Determined refused it
        ("'32'", "'32'"),
        ("true", "True"),
        ("{type: categorical, vals: [4, 0]}", "{'type': 'categorical', 'vals': [4, 0]}"),
        ("{type: double, minval: 2, maxval: 4}", "{'type': 'double', 'minval': 2, 'maxval': 4}"),
    ],
)
def test_a_global_batch_size_that_is_no_int_of_at_least_the_slots_is_an_error_at_its_line(
    value: str, got: str
) -> None:
    source = _text(_NO_BATCH_SIZE) + "resources: {slots_per_trial: 2}\n"
    source += f"hyperparameters:\n  global_batch_size: {value}\n"
    with pytest.raises(
        ConfigMigrationError,
        match=rf"^const\.yaml:6:3: hyperparameters\.global_batch_size must be an int >= 2 \(the "
        rf"resources\.slots_per_trial\), .* got {re.escape(got)}; change it, then rerun$",
    ):
        migrate_config(source, path="const.yaml")


@pytest.mark.parametrize("name", ["adaptive", "adaptive_simple", "sync_halving", "custom"])
def test_a_searcher_removed_in_0_38_is_an_error_naming_adaptive_asha(name: str) -> None:
    error = _error(f"""
        entrypoint: model_def:T
        searcher:
          metric: m
          name: {name}
          max_length: 3
        """)
    assert (error.line, isinstance(error, SourceError)) == (4, True)
    assert f"the '{name}' searcher was removed in Determined 0.38; use 'name: adaptive_asha'" in (
        str(error)
    )


def test_asha_is_not_a_searcher_name() -> None:
    with pytest.raises(ConfigMigrationError, match=r":2:12: 'asha' is not a Determined searcher; "
                       "use 'name: adaptive_asha'"):  # fmt: skip
        migrate_config("entrypoint: model_def:T\nsearcher: {name: asha, metric: m}\n")


def test_text_that_is_not_yaml_names_line_and_column() -> None:
    with pytest.raises(ConfigMigrationError, match=r"^c\.yaml:4:3: not valid YAML: .*fix the"):
        migrate_config("entrypoint: model_def:T\nsearcher:\n  - a\n  b: 1\n", path="c.yaml")


def test_a_duplicate_key_is_not_valid_yaml() -> None:
    with pytest.raises(ConfigMigrationError, match=r"^c\.yaml:2:1: not valid YAML: .*duplicate"):
        migrate_config("name: a\nname: b\n", path="c.yaml")


def test_records_under_asha_need_a_constant_global_batch_size() -> None:
    error = _error("""
        entrypoint: model_def:T
        hyperparameters:
          global_batch_size: {type: int, minval: 16, maxval: 64}
        searcher: {name: adaptive_asha, metric: m, max_trials: 4, max_length: {records: 640}}
        """)
    assert error.line == 3
    assert "not a constant int >= 1 here" in error.reason
    assert "give max_length in batches or epochs" in error.reason


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "searcher: {name: single, metric: m, max_length: {steps: 3}}",
            r":2:37: searcher\.max_len",
        ),
        ("searcher: {name: single, metric: m, max_length: 0}", r"N >= 1; got 0"),
        ("searcher: {name: single, max_length: 3}", r":2:1: searcher\.metric is missing"),
        ("searcher: [single]", r":2:1: 'searcher' must be a mapping"),
    ],
)
def test_a_searcher_that_gives_no_usable_length_or_metric_is_an_error(
    line: str, expected: str
) -> None:
    with pytest.raises(ConfigMigrationError, match=expected):
        migrate_config(f"entrypoint: model_def:T\n{line}\n")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("min_validation_period: {epochs: -1}", r":3:1: min_validation_period must be .*0 means"),
        ("min_checkpoint_period: soon", r":3:1: min_checkpoint_period must be"),
        ("scheduling_unit: 0", r":3:1: scheduling_unit must be >= 1, got 0"),
        ("scheduling_unit: true", r"scheduling_unit must be an int >= 1, got True"),
        ("perform_initial_validation: 'yes'", r"must be true or false, got 'yes'"),
        ("checkpoint_policy: some", r"checkpoint_policy must be best, all or none, got 'some'"),
        ("resources: {slots_per_trial: two}", r"resources\.slots_per_trial must be an int"),
    ],
)
def test_a_moved_field_with_a_value_the_script_cannot_take_is_an_error(
    field: str, expected: str
) -> None:
    source = (
        f"entrypoint: model_def:T\nsearcher: {{name: single, metric: m, max_length: 1}}\n{field}\n"
    )
    with pytest.raises(ConfigMigrationError, match=expected):
        migrate_config(source)


def test_an_alias_of_an_anchor_in_a_removed_key_is_an_error_at_the_alias() -> None:
    error = _error("""
        entrypoint: model_def:T
        records_per_epoch: &rpe 60000
        searcher: {name: single, metric: m, max_length: 3}
        data:
          train_size: *rpe
        """)
    assert (error.line, error.column) == (5, 15)
    assert "the alias *rpe names an anchor inside a key this migration removes" in error.reason
    assert error.reason.endswith("write the value out here instead of the alias, then rerun")


def test_a_field_from_a_merge_key_is_an_error_naming_the_merge() -> None:
    error = _error("""
        entrypoint: model_def:T
        base: &base {metric: m, max_length: 3}
        searcher:
          <<: *base
          name: single
        """)
    assert error.line == 3
    assert "searcher.max_length comes from a '<<' merge key" in error.reason


def test_a_searcher_written_as_an_alias_is_an_error() -> None:
    with pytest.raises(ConfigMigrationError, match=r"searcher is written as an alias \(\*s\)"):
        migrate_config("s: &s {name: single, metric: m, max_length: 1}\n"
                       "entrypoint: model_def:T\nsearcher: *s\n")  # fmt: skip


def test_an_asha_time_metric_in_other_units_than_max_length_is_an_error() -> None:
    with pytest.raises(ConfigMigrationError, match=r":3:3: searcher\.time_metric is 'epochs' but "
                       "max_length counts batches; set searcher.max_time"):  # fmt: skip
        migrate_config("entrypoint: model_def:T\nsearcher:\n  time_metric: epochs\n"
                       "  name: adaptive_asha\n  metric: m\n  max_length: 3\n")  # fmt: skip


def test_the_error_survives_pickling_for_worker_processes() -> None:
    error = ConfigMigrationError("c.yaml", "why", 3, 4)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.line, copy.column) == (
        ConfigMigrationError,
        "c.yaml:3:4: why",
        3,
        4,
    )


def test_a_removed_key_on_the_last_line_without_a_newline_leaves_no_blank_tail() -> None:
    before = (
        "name: x\nhyperparameters: {global_batch_size: 8}\n\nentrypoint: model_def:T\n"
        "searcher: {name: single, metric: m, max_length: 2}"
    )
    before += "\n\nscheduling_unit:"
    result = migrate_config(before)
    assert result.text == (
        "name: x\nhyperparameters: {global_batch_size: 8}\n\n"
        "entrypoint: python3 model_def.py --max-length batches=2 --metric m\n"
        "searcher: {name: single, metric: m}\n"
    )
    assert [c.message for c in result.changes if c.key == "scheduling_unit"] == [
        "removed: 100 is the default of --scheduling-unit (deprecated in Determined 0.38: "
        "the training code sets it)"
    ]


def test_an_alias_of_the_rewritten_entrypoint_is_an_error() -> None:
    before = "entrypoint: &ep model_def:T\nsearcher: {name: single, metric: m, max_length: 1}\n"
    expected = r":3:10: the alias \*ep names an anchor inside a key this migration removes or re"
    with pytest.raises(ConfigMigrationError, match=expected):
        migrate_config(before + "labels: [*ep]\n")
