"""A Determined master's REST API for one trial, on a local HTTP server that records every call.

``RecordingMaster`` answers what determined 0.38's real ``det.core.init()`` context asks a master
during a trial, as the master answers it: ``POST /api/v1/runs/start`` (prepare for reporting,
with the storage id), ``POST /api/v1/trials/{id}/metrics``, ``.../progress``, ``.../early_exit``,
``POST``/``PATCH /api/v1/checkpoints`` (a checkpoint reported, deleted), the preemption long poll
``GET /api/v1/allocations/{id}/signals/preemption`` (``{"preempt": true}`` once the trial is to
stop, ``false`` after ``timeout_seconds``) and its ``ack_preemption``. Every call needs the task's
token, as the master checks it. ``calls`` holds ``(method, path, json body)`` in arrival order.

With ``preempt_at_progress=p`` the master preempts the trial when it reports progress ``>= p``
(as when a user pauses the experiment then): the progress call is answered only once the long
poll has carried the signal, so the trial sees it in its next ``should_preempt()``.

``write_info_files`` writes what a trial container holds in ``/run/determined/info`` (the JSON of
``ClusterInfo._to_file`` / ``TrialInfo._to_file`` / ...); ``read_info_files`` reads them with
determined's own ``_from_file`` readers; ``SITE`` is a folder whose ``sitecustomize`` makes
``det.get_cluster_info()`` return that, from the folder named by ``STAND_IN_INFO_DIR`` instead of
``/run/determined/info``.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import threading
import urllib.parse
from types import TracebackType
from typing import Any

__all__ = [
    "SITE",
    "TASK_TOKEN",
    "RecordingMaster",
    "container_env",
    "read_info_files",
    "write_info_files",
]

TASK_TOKEN = "task-token"
SITE = pathlib.Path(__file__).resolve().parent / "stand_in_site"


class RecordingMaster:
    """The master of trial ``trial_id`` in experiment ``experiment_id``, allocation
    ``allocation_id``."""

    def __init__(
        self,
        allocation_id: str,
        *,
        trial_id: int = 1,
        experiment_id: int = 1,
        preempt_at_progress: float | None = None,
    ) -> None:
        self.allocation_id, self.trial_id = allocation_id, trial_id
        self.experiment_id = experiment_id
        self.calls: list[tuple[str, str, Any]] = []
        self._preempt_at = preempt_at_progress
        self._preempt = False
        self._signal_sent = threading.Event()
        self._closing = False
        self._changed = threading.Condition()
        master = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                master._answer(self, "GET")

            def do_POST(self) -> None:
                master._answer(self, "POST")

            def do_PATCH(self) -> None:
                master._answer(self, "PATCH")

            def log_message(self, *_: Any) -> None:
                pass  # the record is self.calls

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingMaster:
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

    def bodies(self, method: str, path: str) -> list[Any]:
        """The JSON bodies of the calls ``method path``, in order."""
        return [body for m, p, body in self.calls if (m, p) == (method, path)]

    def _answer(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.calls.append((method, url.path, body))
        trial = f"/api/v1/trials/{self.trial_id}"
        signals = f"/api/v1/allocations/{self.allocation_id}/signals"
        status, answer = 404, {"error": {"error": f"no route {method} {url.path}"}}
        if request.headers.get("Grpc-Metadata-x-allocation-token") != f"Bearer {TASK_TOKEN}":
            status, answer = 401, {"error": {"error": "unauthenticated"}}
        elif (method, url.path) == ("POST", "/api/v1/runs/start"):
            status, answer = 200, {"storageId": 1}
        elif (method, url.path) in {
            ("POST", f"{trial}/metrics"),
            ("POST", f"{trial}/early_exit"),
            ("POST", "/api/v1/checkpoints"),
            ("PATCH", "/api/v1/checkpoints"),
            ("POST", f"{signals}/ack_preemption"),
        }:
            status, answer = 200, {}
        elif (method, url.path) == ("POST", f"{trial}/progress"):
            status, answer = 200, {}
            if self._preempt_at is not None and body["progress"] >= self._preempt_at:
                self._start_preemption()
        elif (method, url.path) == ("GET", f"{signals}/preemption"):
            query = urllib.parse.parse_qs(url.query)
            status, answer = 200, {"preempt": self._wait(query)}
        self._send(request, status, answer)
        if answer.get("preempt"):
            self._signal_sent.set()

    def _start_preemption(self) -> None:
        with self._changed:
            if self._preempt:
                return
            self._preempt = True
            self._changed.notify_all()
        if not self._signal_sent.wait(timeout=60):
            raise RuntimeError("the trial's preemption long poll never came for the signal")

    def _wait(self, query: dict[str, list[str]]) -> bool:
        """The long poll: at once when the trial is to stop, else then or after the timeout."""
        timeout = float(query.get("timeout_seconds", ["0"])[0])
        with self._changed:
            self._changed.wait_for(lambda: self._preempt or self._closing, timeout=timeout)
            return self._preempt

    @staticmethod
    def _send(request: http.server.BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the trial exited while its long poll was open
            pass


def container_env(master: RecordingMaster, slots: int = 1) -> dict[str, str]:
    """The ``DET_*`` variables determined reads from a trial container's environment at run time
    (the login from the task's token, TensorBoard's folder), beside the info files."""
    return {
        "DET_MASTER": master.url,
        "DET_CLUSTER_ID": "stand-in",
        "DET_AGENT_ID": "agent-0",
        "DET_SLOT_IDS": json.dumps(list(range(slots))),
        "DET_TASK_ID": master.allocation_id.rpartition(".")[0],
        "DET_ALLOCATION_ID": master.allocation_id,
        "DET_SESSION_TOKEN": TASK_TOKEN,
        "DET_USER": "determined",
        "DET_TASK_TYPE": "TRIAL",
        "DET_TRIAL_ID": str(master.trial_id),
        "DET_EXPERIMENT_ID": str(master.experiment_id),
    }


def write_info_files(
    folder: pathlib.Path,
    master: RecordingMaster,
    config: dict[str, Any],
    hparams: dict[str, Any],
    *,
    trial_seed: int,
    latest_checkpoint: str | None = None,
    slots: int = 1,
) -> None:
    """What ``prep_container`` writes in a trial container's ``/run/determined/info``: cluster,
    trial, rendezvous and resources JSON, in the shape of determined's ``_to_file``; one container
    with ``slots`` slots."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster = {
        "master_url": master.url,
        "cluster_id": "stand-in",
        "agent_id": "agent-0",
        "slot_ids": list(range(slots)),
        "task_id": master.allocation_id.rpartition(".")[0],
        "allocation_id": master.allocation_id,
        "session_token": TASK_TOKEN,
        "task_type": "TRIAL",
        "master_cert_name": None,
        "master_cert_file": None,
        "latest_checkpoint": latest_checkpoint,
    }
    trial = {
        "trial_id": master.trial_id,
        "experiment_id": master.experiment_id,
        "trial_seed": trial_seed,
        "hparams": hparams,
        "config": config,
        "steps_completed": 0,
        "trial_run_id": 1,
        "debug": False,
        "inter_node_network_interface": None,
    }
    rendezvous = {
        "container_addrs": ["127.0.0.1"],
        "container_rank": 0,
        "container_slot_counts": [slots],
    }
    for name, content in (
        ("cluster.json", cluster),
        ("trial.json", trial),
        ("rendezvous.json", rendezvous),
        ("resources.json", {"gpu_uuids": []}),
    ):
        (folder / name).write_text(json.dumps(content))


def read_info_files(folder: pathlib.Path) -> Any:
    """``det.ClusterInfo`` as ``det.get_cluster_info()`` builds it in a trial container, from
    ``folder`` instead of ``/run/determined/info`` (its readers take the other files from there)."""
    import determined._info as info_module

    info = info_module.ClusterInfo._from_file(str(folder / "cluster.json"))
    if info is None:
        raise FileNotFoundError(f"no cluster.json in {folder}")
    info._trial_info = info_module.TrialInfo._from_file(str(folder / "trial.json"))
    info._rendezvous_info = info_module.RendezvousInfo._from_file(str(folder / "rendezvous.json"))
    info._resources_info = info_module.ResourcesInfo._from_file(str(folder / "resources.json"))
    return info
