"""Train a fixture with the real Lightning Trainer: the per-step oracle for run-trial.

    python -m tests.oracle.lightning_run FIXTURE_DIR --epochs N --seed S --out result.pt

runs in any environment with ``pytorch_lightning`` (2.x, or 1.9 for the legacy 1.x fixtures) and
saves the same dict ``run_lightning`` returns, loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from tests.oracle.fixture_spec import OracleError, load_fixture

__all__ = ["OracleError", "RunTrialShuffle", "main", "run_lightning", "run_lightning_in"]

_REPO = pathlib.Path(__file__).resolve().parents[2]
# Set by seed_everything and deterministic=True; put back so the caller's process is unchanged.
_ENV_KEYS = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")


def run_lightning(
    fixture_dir: pathlib.Path, *, epochs: int, seed: int, hparams: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Fit the fixture's module for ``epochs`` epochs, batch size ``global_batch_size``, seeding
    with ``seed`` right before the module is built.

    With the ``shuffle`` hyperparameter on, the training data comes in run-trial's order: the
    permutation of epoch ``e`` is the one ``DataLoader(shuffle=True)`` with shuffle seed ``seed``
    yields, and, like it, draws nothing from the global RNG.

    Returns ``state_dict`` (CPU tensors), ``global_step``, ``epochs``, ``lrs`` (the last lr of
    each optimizer's first param group) and ``logged`` (``trainer.callback_metrics`` as floats).
    """
    if epochs < 1:
        raise OracleError(f"epochs must be at least 1, got {epochs}")
    spec = load_fixture(pathlib.Path(fixture_dir))
    values = spec.hparams(hparams)
    batch_size = int(values["global_batch_size"])
    # Imported once the arguments are known to be good: a refusal costs no Lightning import.
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    with _restored_global_state(), tempfile.TemporaryDirectory() as root:
        pl.seed_everything(seed)
        module = spec.build_module(values)
        datamodule = spec.build_datamodule(values)
        datamodule.prepare_data()
        datamodule.setup("fit")
        dataset = datamodule.train_dataloader().dataset
        sampler = RunTrialShuffle(dataset, seed) if values.get("shuffle") else None
        train = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
        val = DataLoader(datamodule.val_dataloader().dataset, batch_size=batch_size)
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=True,
            default_root_dir=root,
        )
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        return _result(module, trainer)


class RunTrialShuffle:
    """A sampler with run-trial's shuffled order: Lightning calls ``set_epoch`` before each
    training epoch (as for a ``DistributedSampler``); nothing is drawn from the global RNG."""

    def __init__(self, dataset: Any, seed: int) -> None:
        from shim.pytorch.samplers import SeededRandomSampler

        self._permutations = SeededRandomSampler(dataset, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self._permutations.permutation(self.epoch))

    def __len__(self) -> int:
        return len(self._permutations)


def run_lightning_in(
    python: pathlib.Path | str,
    fixture_dir: pathlib.Path,
    *,
    epochs: int,
    seed: int,
    hparams: dict[str, Any] | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """``run_lightning`` in another Python environment (e.g. ``pl19_python()``)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "result.pt"
        command = [str(python), "-m", "tests.oracle.lightning_run", str(fixture_dir)]
        command += ["--epochs", str(epochs), "--seed", str(seed), "--out", str(out)]
        if hparams:
            command += ["--hparams", json.dumps(hparams)]
        done = subprocess.run(
            command, cwd=_REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise OracleError(
                f"{' '.join(command)} exited with {done.returncode} (run from {_REPO}):\n{tail}"
            )
        result: dict[str, Any] = torch.load(out, weights_only=True)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.oracle.lightning_run")
    parser.add_argument("fixture_dir", type=pathlib.Path)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--hparams", type=json.loads, default=None, help="JSON object")
    args = parser.parse_args(argv)
    result = run_lightning(
        args.fixture_dir, epochs=args.epochs, seed=args.seed, hparams=args.hparams
    )
    import torch

    torch.save(result, args.out)
    return 0


def _result(module: Any, trainer: Any) -> dict[str, Any]:
    return {
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "lrs": [float(opt.param_groups[0]["lr"]) for opt in trainer.optimizers],
        "logged": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }


@contextlib.contextmanager
def _restored_global_state() -> Iterator[None]:
    """The Trainer switches torch to deterministic algorithms for good; switch back after."""
    import torch

    algorithms = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    environ = {key: os.environ.get(key) for key in _ENV_KEYS}
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for key, value in environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    sys.exit(main())
