"""A trial in a package (``entrypoint: pkg.model_def:Trial``) migrates to ``python3 -m
pkg.model_def ...``, which runs from the experiment's folder, the working directory Determined's
launcher gives it, with the package's own imports as the legacy harness resolved them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from migrate.cli import migrate_main

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "mnist_like"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def package_trial(root: Path, import_line: str) -> Path:
    """The mnist_like fixture as ``pkg/model_def.py`` beside ``pkg/lm.py``."""
    package = root / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "lm.py").write_text((FIXTURE / "mnist_like_lm.py").read_text())
    trial = (FIXTURE / "model_def.py").read_text()
    (package / "model_def.py").write_text(trial.replace("from mnist_like_lm import", import_line))
    config = (FIXTURE / "const.yaml").read_text()
    (root / "const.yaml").write_text(config.replace("model_def:", "pkg.model_def:"))
    return root


@pytest.mark.parametrize("import_line", ["from .lm import", "from pkg.lm import"])
def test_a_trial_in_a_package_migrates_to_a_module_run_that_trains(
    tmp_path: Path, import_line: str
) -> None:
    experiment = package_trial(tmp_path / "experiment", import_line)
    assert migrate_main([str(experiment)]) == 0
    assert (experiment / "pkg" / "core_loop.py").is_file()
    words = shlex.split(yaml.safe_load((experiment / "const.yaml").read_text())["entrypoint"])
    assert words[:3] == ["python3", "-m", "pkg.model_def"]
    words[words.index("--max-length") + 1] = "batches=4"
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    env.pop("DET_MASTER", None)
    env.pop("PYTHONPATH", None)  # the package resolves from the working directory alone
    done = subprocess.run(
        [sys.executable, *words[1:]],
        cwd=experiment,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    stored = list((home / "data" / "determined").glob("*/metadata.json"))
    assert [json.loads(path.read_text())["steps_completed"] for path in stored] == [4]
