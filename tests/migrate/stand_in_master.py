"""A Determined master's preemption API on a local HTTP server, and the trial side that talks to it.

``StandInMaster`` (in the test process) answers what ``determined.core.PreemptContext`` asks a
master, as the master does: ``GET /api/v1/allocations/{id}/signals/preemption`` (a long poll that
returns ``{"preempt": true}`` once the experiment is paused, ``false`` when ``timeout_seconds``
pass) and ``POST .../signals/ack_preemption``; and what a user's ``det experiment pause`` sends
(``POST /api/v1/experiments/{id}/pause``). Every request is recorded. ``trial_env`` is the
environment a trial container gets (``DET_MASTER``, ``DET_ALLOCATION_ID``, ``DET_TRIAL_ID``, ...).

``BIND`` (run in the trial's process, before the script) reads that environment with determined's
own ``ClusterInfo._from_env`` / ``TrialInfo._from_env``, so ``det.get_cluster_info()`` returns
this trial with its ``latest_checkpoint``, and points ``det.core.init`` at a ``det.core.Context``
built as on a cluster from real parts: a task session logged in with ``login_from_task``, a real
``PreemptContext`` on it; checkpoints and metrics stay off-cluster (determined's own dummy
checkpoint and train contexts: this server is no metrics or checkpoint store). With
``TEST_PAUSE_AT=k`` the user pauses the experiment (the CLI's binding) when the trial reports
batch ``k``.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import threading
import urllib.parse
from types import TracebackType
from typing import Any

__all__ = ["BIND", "StandInMaster", "bind_to_master"]

TASK_TOKEN = "task-token"
USER_TOKEN = "user-token"

# Python for ``run_migrated(setup=...)``: the repository on the path, then the binding.
BIND = (
    f"sys.path.append({str(pathlib.Path(__file__).resolve().parents[2])!r})\n"
    "from tests.migrate.stand_in_master import bind_to_master; bind_to_master()"
)


class StandInMaster:
    """One allocation of one trial of experiment ``experiment_id``."""

    def __init__(self, allocation_id: str = "trial-1.alloc-1", experiment_id: int = 1) -> None:
        self.allocation_id, self.experiment_id = allocation_id, experiment_id
        self.requests: list[tuple[str, str]] = []  # (method, path without the query)
        self._paused = False
        self._closing = False
        self._changed = threading.Condition()
        master = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                master._answer(self, "GET")

            def do_POST(self) -> None:
                master._answer(self, "POST")

            def log_message(self, *_: Any) -> None:
                pass  # the record is self.requests

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInMaster:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._changed:  # release a long poll the trial left open when it exited
            self._closing = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def trial_env(
        self, config: dict[str, Any], *, latest_checkpoint: str | None = None, pause_at: int = 0
    ) -> dict[str, str]:
        """What the master puts in a trial container's environment (for trial 1, seeded from
        ``reproducibility.experiment_seed``, as the off-cluster run is)."""
        hparams = {
            name: value["val"] if isinstance(value, dict) else value  # {type: const, val: ...}
            for name, value in (config.get("hyperparameters") or {}).items()
        }
        env = {
            "DET_MASTER": self.url,
            "DET_CLUSTER_ID": "stand-in",
            "DET_AGENT_ID": "local",
            "DET_SLOT_IDS": "[]",
            "DET_TASK_ID": self.allocation_id.split(".")[0],
            "DET_ALLOCATION_ID": self.allocation_id,
            "DET_SESSION_TOKEN": TASK_TOKEN,
            "DET_USER": "determined",
            "DET_TASK_TYPE": "TRIAL",
            "DET_TRIAL_ID": "1",
            "DET_EXPERIMENT_ID": str(self.experiment_id),
            "DET_TRIAL_SEED": str(config["reproducibility"]["experiment_seed"]),
            "DET_HPARAMS": json.dumps(hparams),
            "DET_EXPERIMENT_CONFIG": json.dumps(config),
            "DET_STEPS_COMPLETED": "0",
            "DET_TRIAL_RUN_ID": "1",
            "TEST_PAUSE_AT": str(pause_at),
        }
        if latest_checkpoint is not None:
            env["DET_LATEST_CHECKPOINT"] = latest_checkpoint
        return env

    def _answer(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(url.query)
        self.requests.append((method, url.path))
        signals = f"/api/v1/allocations/{self.allocation_id}/signals"
        task = request.headers.get("Grpc-Metadata-x-allocation-token") == f"Bearer {TASK_TOKEN}"
        user = request.headers.get("Authorization") == f"Bearer {USER_TOKEN}"
        status: int = 404
        body: dict[str, Any] = {"error": {"error": f"no route {method} {url.path}"}}
        if (method, url.path) == ("GET", f"{signals}/preemption"):
            status, body = (200, {"preempt": self._wait(query)}) if task else (401, {})
        elif (method, url.path) == ("POST", f"{signals}/ack_preemption"):
            status, body = (200, {}) if task else (401, {})
        elif (method, url.path) == ("POST", f"/api/v1/experiments/{self.experiment_id}/pause"):
            status, body = (200, {}) if user else (401, {})
            if user:
                with self._changed:
                    self._paused = True
                    self._changed.notify_all()
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the trial exited while its long poll was open
            pass

    def _wait(self, query: dict[str, list[str]]) -> bool:
        """The long poll: answer at once when paused, else when paused or after the timeout."""
        timeout = float(query.get("timeout_seconds", ["0"])[0])
        with self._changed:
            self._changed.wait_for(lambda: self._paused or self._closing, timeout=timeout)
            return self._paused


def bind_to_master() -> None:
    """In the trial's process: ``det.get_cluster_info()`` and ``det.core.init()`` as on a cluster
    whose master is the ``StandInMaster`` named by ``DET_MASTER``."""
    import os

    import determined as det
    import determined._info
    from determined import core
    from determined.common import api, util
    from determined.common.api import authentication, bindings, certs

    info = det.ClusterInfo._from_env()
    info._trial_info = det.TrialInfo._from_env()
    determined._info._info = info  # what det.get_cluster_info() returns on a cluster
    pause_at = int(os.environ["TEST_PAUSE_AT"])

    def init(
        *,
        distributed: core.DistributedContext | None = None,
        checkpoint_storage: str | dict[str, Any] | None = None,
        preempt_mode: core.PreemptMode = core.PreemptMode.WorkersAskChief,
        tensorboard_mode: core.TensorboardMode = core.TensorboardMode.AUTO,
    ) -> core.Context:
        session = authentication.login_from_task(
            master_address=info.master_url, cert=certs.default_load(info.master_url)
        ).with_retry(util.get_max_retries_config())
        local = core._dummy_init(
            distributed=distributed,
            checkpoint_storage=checkpoint_storage,
            preempt_mode=preempt_mode,
        )
        preempt = core.PreemptContext(session, info.allocation_id, local.distributed, preempt_mode)
        train = local.train
        report = train.report_training_metrics

        def report_then_pause(
            steps_completed: int,
            metrics: dict[str, Any],
            batch_metrics: list[dict[str, Any]] | None = None,
        ) -> None:
            report(steps_completed, metrics, batch_metrics)
            if steps_completed == pause_at:
                user = api.Session(info.master_url, "determined", USER_TOKEN, cert=None)
                bindings.post_PauseExperiment(user, id=info.trial.experiment_id)
                # The watcher thread ends once it has the master's answer: after this the
                # script's next should_preempt() is True, at this batch and no later.
                assert preempt._watcher is not None
                preempt._watcher.join(timeout=60)
                assert not preempt._watcher.is_alive(), "the master's answer never came"

        train.report_training_metrics = report_then_pause  # type: ignore[method-assign]
        return core.Context(
            checkpoint=local.checkpoint,
            _session=session,
            distributed=local.distributed,
            preempt=preempt,
            train=train,
            searcher=local.searcher,
            info=info,
            profiler=local.profiler,
        )

    det.core.init = init
