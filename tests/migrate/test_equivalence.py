"""A migrated trial trains exactly as the legacy trial does under run-trial.

Each fixture's migrated tree (``fixtures/<case>/expected/``, which ``test_golden.py`` proves is
what ``migrate-trial`` writes) runs as ``python3 model_def.py <its entrypoint's arguments>`` on
the real ``determined`` 0.38 off-cluster context; the legacy trial runs under ``run-trial``. Both
must report the same training and validation metrics at the same steps and end with bitwise
the same weights, on Lightning 2.x and, for the 1.x-style fixtures, on Lightning 1.9.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from tests.conftest import free_port
from tests.migrate.equivalence import (
    FIXTURES,
    assert_same_reports,
    assert_same_weights,
    newest_weights,
    run_legacy,
    run_migrated,
    script_arguments,
)
from tests.oracle.pl19 import pl19_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CASES = ["mnist_like", "gan", "lr_schedulers", "mixed_precision", "dropout"]
LEGACY_STYLE = ["gan", "lr_schedulers", "dropout"]  # 1.x hooks: optimizer_idx, *_epoch_end


def _check(case: str, tmp_path: pathlib.Path, python: str) -> None:
    migrated = run_migrated(FIXTURES / case / "expected", tmp_path / "home", python)
    legacy = run_legacy(FIXTURES / case, tmp_path / "run-trial", python)
    assert any(group == "validation" for group, _, _ in legacy.reports)
    assert_same_reports(migrated.reports, legacy.reports)
    assert_same_weights(migrated.weights, legacy.weights)


@pytest.mark.parametrize("case", CASES)
def test_the_migrated_script_reports_and_trains_as_the_legacy_trial(
    case: str, tmp_path: pathlib.Path
) -> None:
    _check(case, tmp_path, sys.executable)


@pytest.mark.parametrize("case", LEGACY_STYLE)
def test_on_lightning_1_9_too(case: str, tmp_path: pathlib.Path) -> None:
    _check(case, tmp_path, str(pl19_python()))


def test_two_ranks_under_torchrun_train_the_migrated_script_like_one_process(
    tmp_path: pathlib.Path,
) -> None:
    """Global batch 32 as 2 x 16 (gloo): the same math as one process, summed in another order."""
    tree = FIXTURES / "mnist_like" / "expected"
    single = run_migrated(tree, tmp_path / "one")
    home = tmp_path / "two"
    runner = tmp_path / "run_script.py"
    # Determined's launcher runs the script under torchrun; a file, since torchrun needs one.
    runner.write_text(
        "import runpy, sys\nsys.path.insert(0, '.')\nsys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    command += ["--master-port", str(free_port()), str(runner), *script_arguments(tree)]
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    two = newest_weights(home / "data" / "determined")
    for name, value in single.weights.items():
        torch.testing.assert_close(two[name], value, rtol=0, atol=1e-5)
