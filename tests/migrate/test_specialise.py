"""``core_loop.py`` is written for the migrated module: what it does not use is left out, and a
module that later needs it stops with a message. The numerics of each written loop are proven by
``test_equivalence.py`` (the fixtures' loops); here: what is read from the source, what is left
out, and the run-time checks of a loop written for less.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import determined as det
import libcst as cst
import pytest
import torch

from migrate.classes import find_classes
from migrate.engine import plan
from migrate.specialise import TEMPLATE, Uses, _specialise, specialise
from migrate.uses import module_uses

from .golden import REPO

FIXTURES = REPO / "fixtures"
MNIST_HOOKS = {"training_step", "validation_step", "configure_optimizers"}


def _uses(folder: Path, file: str = "model_def.py") -> Uses:
    path = folder / file
    classes = find_classes(cst.parse_module(path.read_bytes()))
    trial = next(c for c in classes if c.kind is not None and c.kind.name == "TRIAL")
    return module_uses(str(path), trial, classes)


def _load(code: bytes, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up while they are made
    try:
        exec(compile(code, f"{name}.py", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.parametrize(
    ("case", "several", "schedulers", "mixed"),
    [
        ("mnist_like", False, False, False),
        ("dropout", False, False, False),
        ("gan", True, False, False),
        ("lr_schedulers", True, True, False),
        ("legacy_api", False, True, False),
        ("mixed_precision", False, False, True),
    ],
)
def test_what_each_fixtures_module_uses_is_read_from_its_source(
    case: str, several: bool, schedulers: bool, mixed: bool
) -> None:
    uses = _uses(FIXTURES / case)
    assert (uses.several_optimizers, uses.lr_schedulers, uses.mixed_precision) == (
        several,
        schedulers,
        mixed,
    )
    assert uses.hooks is not None and {"training_step", "configure_optimizers"} <= uses.hooks
    assert len(uses.modules) == 1 and uses.modules[0].endswith("_lm.py)")


def _code_names(path: Path) -> set[str]:
    """The identifiers a loop's code uses and the hooks it calls (docstrings left aside)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.args else None
            if node.func.attr in ("hook", "overrides") and isinstance(first, ast.Constant):
                names.add(f"hook:{first.value}")
    return names


MULTI_OPTIMIZER = {"toggle_optimizer", "untoggle_optimizer", "frequencies", "_active"}
SCHEDULERS = {"_step_schedulers", "_step_plateau_schedulers", "ReduceLROnPlateau"}
PRECISION = {"GradScaler", "autocast", "scaler"}


def test_a_one_optimizer_full_precision_loop_has_no_code_for_more() -> None:
    names = _code_names(FIXTURES / "mnist_like" / "expected" / "core_loop.py")
    assert not names & (MULTI_OPTIMIZER | SCHEDULERS | PRECISION)
    assert not {n for n in names if n.startswith("hook:")} - {f"hook:{h}" for h in MNIST_HOOKS}
    assert "SEVERAL_OPTIMIZERS" not in names and "_LEFT_OUT_HOOKS" in names
    several = _code_names(FIXTURES / "gan" / "expected" / "core_loop.py")
    assert several >= MULTI_OPTIMIZER and not several & (SCHEDULERS | PRECISION)
    mixed = _code_names(FIXTURES / "mixed_precision" / "expected" / "core_loop.py")
    assert mixed >= PRECISION and not mixed & (MULTI_OPTIMIZER | SCHEDULERS)
    scheduled = _code_names(FIXTURES / "legacy_api" / "expected" / "core_loop.py")
    assert scheduled >= SCHEDULERS and not scheduled & (MULTI_OPTIMIZER | PRECISION)


def test_the_whole_template_keeps_every_feature_and_hook() -> None:
    full = specialise(Uses()).decode()
    template = TEMPLATE.read_text()
    for name in ("toggle_optimizer", "GradScaler", "_step_schedulers", "training_epoch_end"):
        assert name in full
    calls = template.count('self.hook("') + template.count('module.hook("')
    assert full.count('self.hook("') + full.count('module.hook("') == calls
    assert "SEVERAL_OPTIMIZERS" not in full and "it serves any LightningModule" in full
    compile(full, "core_loop.py", "exec")


@pytest.mark.parametrize(
    "uses",
    [
        Uses(),
        Uses(False, False, False, frozenset(MNIST_HOOKS)),
        Uses(True, False, True, frozenset()),
        Uses(False, True, False, None),
    ],
    ids=["full", "minimal", "several-mixed-no-hooks", "schedulers"],
)
def test_every_written_loop_passes_ruff_and_mypy_style_checks(uses: Uses, tmp_path: Path) -> None:
    path = tmp_path / "core_loop.py"
    path.write_bytes(specialise(uses))
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--config"]
    command += [str(REPO / "pyproject.toml"), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    check = [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", str(path)]
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0


def test_folding_keeps_the_branch_that_runs_and_drops_what_nothing_reads() -> None:
    template = textwrap.dedent(
        '''\
        """Doc."""

        import itertools
        import math

        SEVERAL_OPTIMIZERS: bool = True
        _LEFT_OUT_HOOKS: frozenset[str] = frozenset()


        def run(module, x):
            extra = (x,) if x else ()
            if SEVERAL_OPTIMIZERS and len(x) > 1:
                return _several(x, *extra)
            elif_value = 1 if not SEVERAL_OPTIMIZERS else 2
            if module.overrides("on_x") and module.hook("on_x") == -1:
                return None
            module.hook("on_y", x)
            module.hook("on_z", x)
            return math.floor(elif_value)


        def _several(x, *extra):
            return list(itertools.chain(x, extra))


        def left_out():
            return _LEFT_OUT_HOOKS
        '''
    ).encode()
    out = _specialise(Uses(False, True, True, frozenset({"on_z"})), template).decode()
    assert "SEVERAL_OPTIMIZERS" not in out and "_several" not in out and "itertools" not in out
    run = out[out.index("def run") : out.index("def left_out")]
    assert "extra" not in run and "on_x" not in run
    assert 'module.hook("on_z", x)' in out and 'module.hook("on_y"' not in out
    assert "elif_value = 1\n" in out
    assert '"on_x",\n        "on_y",' in out  # the left-out hooks, for the run-time check
    namespace: dict[str, Any] = {}
    exec(compile(out, "t.py", "exec"), namespace)

    class Module:
        called: list[str] = []

        def hook(self, name: str, *args: Any) -> None:
            self.called.append(name)

    module = Module()
    assert namespace["run"](module, [1, 2]) == 1
    assert module.called == ["on_z"]
    assert namespace["left_out"]() == {"on_x", "on_y"}


class _Trial:
    def __init__(self, lm: Any) -> None:
        self.lightning_module = lm


def _context(loop: types.ModuleType) -> Any:
    return loop.TrialContext(
        hparams={},
        data_config={},
        experiment_config={},
        per_slot_batch_size=2,
        global_batch_size=2,
        distributed=det.core.DummyDistributedContext(),
        device=torch.device("cpu"),
        trial_id=1,
        trial_seed=0,
    )


def _module_class(configure: Any, **hooks: Any) -> type:
    import pytorch_lightning as pl

    def training_step(self: Any, batch: Any, batch_idx: int) -> Any:
        return self.layer(batch).sum()

    def init(self: Any) -> None:
        pl.LightningModule.__init__(self)
        self.layer = torch.nn.Linear(2, 1)

    body = {"__init__": init, "training_step": training_step, "configure_optimizers": configure}
    return type("Net", (pl.LightningModule,), {**body, **hooks})


def test_a_loop_written_for_one_optimizer_stops_when_the_module_returns_two() -> None:
    loop = _load(specialise(Uses(False, False, False, frozenset(MNIST_HOOKS))), "one_opt")

    def two(self: Any) -> Any:
        return [torch.optim.SGD(self.parameters(), lr=0.1) for _ in range(2)]

    module = loop._Module(_Trial(_module_class(two)()), _context(loop))
    with pytest.raises(ValueError, match="returned 2 optimizers; this core_loop.py was written"):
        module.configure(4, 8)


def test_a_loop_written_without_schedulers_stops_when_the_module_returns_one() -> None:
    loop = _load(specialise(Uses(False, False, False, frozenset(MNIST_HOOKS))), "no_sched")

    def scheduled(self: Any) -> Any:
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

    module = loop._Module(_Trial(_module_class(scheduled)()), _context(loop))
    with pytest.raises(ValueError, match="returned an LR scheduler; this core_loop.py was"):
        module.configure(4, 8)


def test_a_loop_written_without_a_hook_stops_when_the_module_overrides_it() -> None:
    loop = _load(specialise(Uses(False, False, False, frozenset(MNIST_HOOKS))), "no_hook")

    def one(self: Any) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_batch_start(self: Any, batch: Any, batch_idx: int) -> None:
        return None

    net = _module_class(one, on_train_batch_start=on_train_batch_start)()
    with pytest.raises(TypeError, match="Net overrides on_train_batch_start, which this core"):
        loop._Module(_Trial(net), _context(loop))
    loop._Module(_Trial(_module_class(one)()), _context(loop)).configure(4, 8)  # as written


TRIAL = """\
from determined.pytorch.lightning import LightningAdapter
{imports}

class Trial(LightningAdapter):
    def __init__(self, context) -> None:
        super().__init__(context, lightning_module={module}(){precision})
"""
LM = """\
import pytorch_lightning as pl
{imports}

class {name}({base}):
    def training_step(self, batch, batch_idx{extra}):
        return batch

    def configure_optimizers(self):
        return {optimizers}
"""


def _folder(
    tmp_path: Path,
    *,
    base: str = "pl.LightningModule",
    imports: str = "",
    extra: str = "",
    optimizers: str = "torch.optim.SGD(self.parameters(), lr=0.1)",
    trial_imports: str = "from nets import Net",
    module: str = "Net",
    precision: str = "",
) -> Path:
    (tmp_path / "nets.py").write_text(
        LM.format(name="Net", base=base, imports=imports, extra=extra, optimizers=optimizers)
    )
    trial = TRIAL.format(imports=trial_imports, module=module, precision=precision)
    (tmp_path / "model_def.py").write_text(trial)
    return tmp_path


def test_a_module_from_another_package_gets_the_whole_template(tmp_path: Path) -> None:
    folder = _folder(tmp_path, trial_imports="from bolts.models import GAN", module="GAN")
    assert _uses(folder) == Uses(mixed_precision=False)


def test_a_module_whose_base_is_another_packages_gets_the_whole_template(tmp_path: Path) -> None:
    folder = _folder(tmp_path, base="bolts.GAN", imports="import bolts")
    assert _uses(folder) == Uses(mixed_precision=False)


def test_a_module_through_a_local_base_class_reads_both(tmp_path: Path) -> None:
    folder = _folder(tmp_path, base="Base", imports="from base import Base")
    (tmp_path / "base.py").write_text(
        "import lightning.pytorch as pl\n\n\nclass Base(pl.LightningModule):\n"
        "    def on_train_start(self):\n        pass\n"
    )
    uses = _uses(folder)
    assert uses.hooks is not None and {"on_train_start", "training_step"} <= uses.hooks
    assert uses.modules == ("`Net` (nets.py)",)


def test_optimizer_idx_several_optimizers_schedulers_and_precision_are_read(
    tmp_path: Path,
) -> None:
    folder = _folder(
        tmp_path,
        extra=", optimizer_idx",
        optimizers="[a, b], [sched]",
        precision=", precision='bf16'",
    )
    uses = _uses(folder)
    assert (uses.several_optimizers, uses.lr_schedulers, uses.mixed_precision) == (True,) * 3


@pytest.mark.parametrize("precision", ["", ", precision=32", ", precision='32-true'"])
def test_full_precision_is_read_from_the_trial(tmp_path: Path, precision: str) -> None:
    assert not _uses(_folder(tmp_path, precision=precision)).mixed_precision


def test_a_precision_from_an_hparam_keeps_mixed_precision(tmp_path: Path) -> None:
    folder = _folder(tmp_path, precision=", precision=context.get_hparam('precision')")
    assert _uses(folder).mixed_precision


def test_two_trials_in_one_folder_share_a_loop_written_for_both(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "gan.py").write_text(
        LM.format(
            name="Gan",
            base="pl.LightningModule",
            imports="",
            extra=", optimizer_idx",
            optimizers="[a, b]",
        )
    )
    (folder / "gan_def.py").write_text(
        TRIAL.format(imports="from gan import Gan", module="Gan", precision="")
    )
    (folder / "const.yaml").write_text(
        "entrypoint: model_def:Trial\nhyperparameters:\n  global_batch_size: 2\n"
        "searcher:\n  name: single\n  metric: loss\n  max_length:\n    batches: 2\n"
    )
    (folder / "gan.yaml").write_text(
        "entrypoint: gan_def:Trial\nhyperparameters:\n  global_batch_size: 2\n"
        "searcher:\n  name: single\n  metric: loss\n  max_length:\n    batches: 2\n"
    )
    run = plan([str(folder)])
    assert not run.errors, run.errors
    loops = [c for c in run.changes if c.path.endswith("core_loop.py")]
    assert len(loops) == 1
    assert loops[0].after == specialise(_uses(folder).union(_uses(folder, "gan_def.py")))
    assert b"several optimizers" in loops[0].after and b"`Gan` (gan.py)" in loops[0].after
