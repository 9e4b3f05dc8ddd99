"""Runs resume-sweep cases: each run of a case is a forked child running ``run-trial``'s ``main``.

The worker imports torch and Lightning once; every run is a fresh fork, so a real SIGTERM, a
crash restart or a real SIGKILL ends only that run and leaves no state behind. In every run,
the checkpoint writes are instrumented: each write, rename, delete and ``trial.json`` save is a
numbered event (logged to the case's events file), a run may be SIGKILLed at event N, and each
published checkpoint is logged to the case's history file.

    python -m tests.run.sweep_worker JOBS.json RESULTS.json
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import signal
import sys
import traceback
from typing import Any

import torch
import yaml

import shim.cli
import shim.core.checkpoint as core_checkpoint
import shim.runner

TRIAL = pathlib.Path(__file__).resolve().parent / "trials" / "sweep"
RUN_TIMEOUT_S = 120


def write_config(folder: pathlib.Path, settings: dict[str, Any]) -> pathlib.Path:
    config = yaml.safe_load((TRIAL / "const.yaml").read_text())
    for key, value in settings.items():
        if key in ("save_trial_latest", "save_trial_best"):
            config["checkpoint_storage"][key] = value
        elif value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path = folder / "const.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _instrument(case: pathlib.Path, kill_at: int | None) -> None:
    """Number every step of a checkpoint's life; SIGKILL this process at step ``kill_at``."""
    count = 0
    events = (case / "events.txt").open("a", buffering=1)
    history = (case / "history.jsonl").open("a", buffering=1)

    def event(name: str) -> None:
        nonlocal count
        count += 1
        events.write(f"{count} {name}\n")
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def around(owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            event(f"before {name}")
            result = original(*args, **kwargs)
            event(f"after {name}")
            return result

        setattr(owner, attr, wrapped)

    publish = core_checkpoint.CheckpointContext._publish

    def published(self: Any, partial: Any, storage_id: str, metadata: dict[str, Any]) -> None:
        publish(self, partial, storage_id, metadata)
        record = {"uuid": storage_id, "steps": metadata["steps_completed"]}
        history.write(json.dumps({**record, "metric": metadata.get("validation_metric")}) + "\n")
        event("after rename into place")

    around(torch, "save", "state_dict.pth")
    around(core_checkpoint, "_write_json", "metadata.json")
    core_checkpoint.CheckpointContext._publish = published  # type: ignore[method-assign]
    around(core_checkpoint.CheckpointContext, "delete", "delete")
    around(shutil, "rmtree", "rmtree of a renamed checkpoint")
    around(shim.runner.RunRecord, "save", "trial.json")


def _digest(value: Any, h: Any) -> None:
    if isinstance(value, torch.Tensor):
        h.update(f"{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            h.update(str(key).encode())
            _digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _digest(item, h)
    else:
        h.update(repr(value).encode())


def _final_state(case: pathlib.Path, stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1])
    content = torch.load(
        pathlib.Path(summary["latest_checkpoint_path"]) / "state_dict.pth", weights_only=True
    )
    digests = {}
    for key in ("models_state_dict", "optimizers_state_dict", "rng_state"):
        h = hashlib.sha256()
        _digest(content[key], h)
        digests[key] = h.hexdigest()
    validations: dict[str, Any] = {}
    for line in pathlib.Path(summary["metrics_path"]).read_text().splitlines():
        record = json.loads(line)
        if record["group"] == "validation":
            validations[str(record["steps_completed"])] = record["metrics"]
    return {"summary": summary, "digests": digests, "validations": validations}


def run_once(case: pathlib.Path, config: pathlib.Path, run: dict[str, Any], index: int) -> int:
    out, err = case / f"run{index}.out", case / f"run{index}.err"
    argv = [str(config), str(TRIAL), "--plain", "--json", "--checkpoint-storage"]
    argv.append(str(case / "storage"))
    pid = os.fork()
    if pid == 0:  # the child: one run-trial invocation
        code = 70
        try:
            # A run that hangs dies of SIGALRM and fails its case instead of stalling the sweep.
            signal.alarm(RUN_TIMEOUT_S)
            os.environ.update(run.get("env", {}))
            for fd, path in ((1, out), (2, err)):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            _instrument(case, run.get("kill_at"))
            code = shim.cli.main(argv)
            if run.get("final") and code == 0:
                sys.stdout.flush()
                state = _final_state(case, out.read_text())
                (case / "final.json").write_text(json.dumps(state))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_case(job: dict[str, Any]) -> dict[str, Any]:
    case = pathlib.Path(job["folder"])
    case.mkdir(parents=True)
    config = write_config(case, job["settings"])
    runs = job["runs"]
    codes = []
    for index, run in enumerate(runs):
        run = {**run, "final": index == len(runs) - 1}
        codes.append(run_once(case, config, run, index))
    storage = case / "storage"
    kept = []
    for folder in sorted(storage.iterdir()) if storage.exists() else []:
        if not folder.name.startswith(".") and (folder / "metadata.json").is_file():
            metadata = json.loads((folder / "metadata.json").read_text())
            kept.append({"uuid": folder.name, "steps": metadata["steps_completed"]})
    history_file = case / "history.jsonl"
    history = [json.loads(line) for line in history_file.read_text().splitlines()]
    final = case / "final.json"
    return {
        "id": job["id"],
        "codes": codes,
        "stderr": [(case / f"run{i}.err").read_text()[-3000:] for i in range(len(runs))],
        "final": json.loads(final.read_text()) if final.exists() else None,
        "kept": kept,
        "history": history,
        "leftovers": sorted(p.name for p in storage.glob(".*")) if storage.exists() else [],
        "events": (case / "events.txt").read_text().splitlines(),
    }


def _warm_up(folder: pathlib.Path) -> None:
    """One short run here, so the lazy imports (Determined, TensorBoard, Lightning's modules)
    happen once, before the forks, instead of in every run."""
    config = write_config(folder, {})
    argv = [str(config), str(TRIAL), "--plain", "--max-length", "1"]
    with open(os.devnull, "w") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            code = shim.cli.main([*argv, "--checkpoint-storage", str(folder / "storage")])
        finally:
            os.dup2(saved, 2)
    assert code == 0, f"the warm-up run exited {code}"


def main() -> None:
    jobs = json.loads(pathlib.Path(sys.argv[1]).read_text())
    # One thread: the runs fork from this process, and a forked OpenMP pool would hang.
    torch.set_num_threads(1)
    warm = pathlib.Path(jobs[0]["folder"]).parent / f".warm-up-{os.getpid()}"
    warm.mkdir(parents=True)
    _warm_up(warm)
    results = [run_case(job) for job in jobs]
    pathlib.Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
