"""A Determined Core API script: a small dropout regressor on synthetic data, trained with Adam.

Resumable exactly: each checkpoint holds the model, the optimizer and torch's RNG state, and the
batches come in an order that depends only on the trial seed and the step. Off a cluster (plain
``python3 model_def.py``) hparams and data come from ``const.yaml`` beside it.

Test hooks: ``CORE_SCRIPT_STOP_AT=k`` sends this process SIGTERM after batch k;
``CORE_SCRIPT_CRASH_AT=k`` raises at batch k unless the run resumed from a checkpoint.
"""

import argparse
import os
import pathlib
import signal
import types

import determined as det
import torch
import yaml


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-length", required=True, help="batches=N")
    parser.add_argument("--validation-period", type=int, default=0)
    parser.add_argument("--checkpoint-period", type=int, default=0)
    args = parser.parse_args()
    unit, _, count = args.max_length.partition("=")
    if unit != "batches":
        parser.error(f"--max-length {args.max_length}: only batches=N is supported")
    args.batches = int(count)
    return args


def local_info() -> types.SimpleNamespace:
    config = yaml.safe_load(pathlib.Path(__file__).with_name("const.yaml").read_text())
    trial = types.SimpleNamespace(
        trial_id=1,
        trial_seed=config["reproducibility"]["experiment_seed"],
        hparams=config["hyperparameters"],
    )
    return types.SimpleNamespace(trial=trial, user_data=config["data"], latest_checkpoint=None)


def make_data(data: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(data["records"], data["features"], generator=generator)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(data["records"], 1, generator=generator)
    return x, y


def batch_at(x: torch.Tensor, y: torch.Tensor, step: int, size: int, seed: int) -> tuple:
    """Batch ``step`` (0-based) of a per-epoch shuffle seeded by the trial seed and the epoch."""
    per_epoch = len(x) // size
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch))
    rows = order[index * size : (index + 1) * size]
    return x[rows], y[rows]


def main() -> None:
    args = parse_args()
    info = det.get_cluster_info() or local_info()
    hparams = info.trial.hparams
    seed = info.trial.trial_seed
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(info.user_data["features"], hparams["hidden"]),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hparams["hidden"], 1),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=hparams["lr"])
    x, y = make_data(info.user_data, seed)
    stop_at = int(os.environ.get("CORE_SCRIPT_STOP_AT", "0"))
    crash_at = int(os.environ.get("CORE_SCRIPT_CRASH_AT", "0"))
    distributed = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        distributed = det.core.DistributedContext.from_torch_distributed()

    with det.core.init(distributed=distributed) as core_context:
        chief = core_context.distributed.rank == 0
        done = checkpointed = validated = 0
        if info.latest_checkpoint is not None:
            with core_context.checkpoint.restore_path(info.latest_checkpoint) as path:
                state = torch.load(path / "state_dict.pth", weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            done = checkpointed = state["steps_completed"]

        def checkpoint() -> None:
            nonlocal checkpointed
            if checkpointed == done:
                return
            checkpointed = done
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state(),
                "steps_completed": done,
            }
            if chief:
                with core_context.checkpoint.store_path({"steps_completed": done}) as (path, _):
                    torch.save(state, path / "state_dict.pth")

        def validate() -> None:
            nonlocal validated
            if validated == done:
                return
            validated = done
            model.eval()
            with torch.no_grad():
                val_loss = torch.nn.functional.mse_loss(model(x), y).item()
            model.train()
            if chief:
                core_context.train.report_validation_metrics(
                    done, {"val_loss": val_loss, "batches": done}
                )

        resumed = info.latest_checkpoint is not None
        while done < args.batches:
            inputs, targets = batch_at(x, y, done, hparams["batch_size"], seed)
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == crash_at and not resumed:
                raise RuntimeError(f"crash at batch {done}")
            if chief:
                core_context.train.report_training_metrics(
                    done, {"loss": loss.item(), "lr": hparams["lr"]}
                )
                core_context.train.report_progress(done / args.batches)
            if done == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
            last = done == args.batches
            if last or (args.validation_period and done % args.validation_period == 0):
                validate()
            if last or (args.checkpoint_period and done % args.checkpoint_period == 0):
                checkpoint()
            if core_context.preempt.should_preempt():
                checkpoint()
                return
        validate()
        checkpoint()


if __name__ == "__main__":
    main()
