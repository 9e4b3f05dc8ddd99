"""``run-trial export-lightning CHECKPOINT_DIR OUT.ckpt``: a Lightning ``.ckpt`` from a trial
checkpoint, which ``LightningModule.load_from_checkpoint`` (and ``Trainer(ckpt_path=...)``'s
weights) accept."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import torch

from shim.errors import ShimError
from shim.pytorch.state import load_state_file

__all__ = ["export_lightning", "export_main"]


def export_lightning(checkpoint_dir: pathlib.Path, out: pathlib.Path) -> dict[str, Any]:
    """Write ``out`` (atomically) and return the Lightning checkpoint dict."""
    if not (checkpoint_dir / "metadata.json").is_file():
        raise ShimError(
            f"{checkpoint_dir} is not a complete checkpoint (no metadata.json); pass the folder "
            "<storage>/<uuid> that run-trial printed"
        )
    content = load_state_file(checkpoint_dir, torch.device("cpu"))
    models = content.get("models_state_dict") or []
    if len(models) != 1:
        raise ShimError(
            f"{checkpoint_dir} holds {len(models)} models; a LightningAdapter checkpoint holds one"
        )
    adapter = content.get("callbacks", {}).get("_lightning_module", {})
    trial = content.get("trial_state", {})
    ckpt = {
        "epoch": int(trial.get("epochs_trained", 0)),
        "global_step": int(adapter.get("global_step", trial.get("batches_trained", 0))),
        "pytorch-lightning_version": _lightning_version(),
        "state_dict": models[0],
        "optimizer_states": list(content.get("optimizers_state_dict", [])),
        "lr_schedulers": list(content.get("lr_schedulers_state_dict", [])),
        "callbacks": {},
        "hparams_name": "kwargs",
        "hyper_parameters": dict(adapter.get("hyper_parameters", {})),
    }
    if "scaler_state_dict" in content:
        ckpt["MixedPrecision"] = content["scaler_state_dict"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, out)
    return ckpt


def export_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="run-trial export-lightning",
        description="Write a Lightning .ckpt from a run-trial checkpoint folder.",
    )
    parser.add_argument("checkpoint", type=pathlib.Path, help="<storage>/<uuid> folder")
    parser.add_argument("out", type=pathlib.Path, help="the .ckpt file to write")
    args = parser.parse_args(list(argv))
    try:
        export_lightning(args.checkpoint, args.out)
    except ShimError as exc:
        print(f"run-trial export-lightning: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _lightning_version() -> str:
    try:
        import pytorch_lightning

        return str(pytorch_lightning.__version__)
    except ImportError:
        import lightning

        return str(lightning.__version__)
