"""Test node agent: a stand-in for a kubelet that runs no containers.

This is NOT a kubelet and it runs no containers and no images. It lets the
end-to-end tests see real Jobs complete or fail on a control plane that has
no nodes: it registers a fake, Ready Node, binds pending Pods to it (there is
no scheduler), and runs each container's ``command`` + ``args`` as a plain
local process of the test's own Python environment. It then reports what
happened through the Pod status, the way a kubelet would: phase, conditions,
and ``containerStatuses[].state`` (running, then terminated with the real
exit code, reason, termination message and timestamps). The real Job
controller turns that into ``Complete``/``Failed`` by itself.

What a container gets
---------------------
* ``argv`` = ``command`` + ``args`` after ``$(VAR)`` expansion. An image's
  entrypoint is unknown, so a container without ``command`` fails to start
  (exit code 128, reason ``StartError``). ``python``/``python3`` as the
  program mean the interpreter that runs this agent, and that interpreter's
  directory is put first on ``PATH`` (so console scripts installed next to it
  such as ``baselinr`` are found).
* Environment: this agent's environment (which is the test run's), minus
  ``KUBECONFIG``, plus ``HOSTNAME``, ``KUBERNETES_SERVICE_HOST``/``_PORT``
  (the API server), then ``envFrom`` and ``env`` (``value``, ``valueFrom``
  ``secretKeyRef``/``configMapKeyRef``/``fieldRef``), like a kubelet. A
  missing Secret, ConfigMap or key there keeps the container waiting with
  reason ``CreateContainerConfigError`` and the kubelet's message (``secret
  "x" not found``, ``couldn't find key k in Secret ns/x``), retried every 2 s.
* Current directory: ``workingDir`` (path-mapped, see below) if set and
  present, else ``<pod dir>/containers/<name>/workdir``... unless unset, in
  which case the agent's own current directory (the test run's).
* Output (stdout and stderr) goes to ``<pod dir>/containers/<name>/log``.
  With ``--log-cert``/``--log-key`` the agent also serves the one kubelet
  endpoint the API server proxies ``pods/log`` to (``/containerLogs/...``,
  with ``tailLines`` and ``limitBytes``; no ``follow``), over TLS on a free
  loopback port that the Node's ``daemonEndpoints`` names: ``kubectl logs``
  and ``read_namespaced_pod_log`` work. Clients are not authenticated (the
  port is on loopback only).

Volumes and path mapping
------------------------
Each Pod gets a directory ``<root>/<namespace>/<pod name>-<uid prefix>/``
(the *pod dir*). Each volume is materialised in ``<pod dir>/volumes/<volume
name>/``: ``secret`` and ``configMap`` (keys or ``items``, ``defaultMode``),
``downwardAPI``, ``projected`` (including a real ``serviceAccountToken``
from the TokenRequest API, and ``ca.crt``), ``emptyDir`` (an empty
directory); ``hostPath`` is used as is; any other kind becomes an empty
directory.

Processes cannot see a ``mountPath`` such as ``/etc/baselinr``, so the
agent rewrites paths. For each container it builds a *path map* from every
``volumeMounts[].mountPath`` to ``<pod dir>/volumes/<volume>[/<subPath>]``
and from the container's ``terminationMessagePath`` (default
``/dev/termination-log``) to ``<pod dir>/containers/<name>/termination-log``
(unless that path lies inside a mounted volume, which then maps it). In
``command``, ``args``, ``workingDir`` and every literal ``env[].value``, any
occurrence of a mapped container path (longest first, only at path
boundaries: not preceded by a path character and followed by ``/``, or a
non-path character, or the end) is replaced by its host path. Environment
variables tell the process the same:

* ``NODE_AGENT_POD_DIR``: the pod dir;
* ``NODE_AGENT_TERMINATION_MESSAGE_PATH``: host path of the termination
  message file, read after exit (at most 4096 bytes; with
  ``terminationMessagePolicy: FallbackToLogsOnError`` the log tail if empty
  and the exit code is not 0);
* ``NODE_AGENT_PATH_MAP``: the path map as a JSON object, container path ->
  host path.

If the Pod mounts a service account token, ``KUBECONFIG`` points to
``<pod dir>/kubeconfig``, which uses that token: the process acts as the
Pod's service account, with its RBAC rights.

Lifecycle
---------
Init containers run one after the other (an init container with
``restartPolicy: Always`` is a sidecar: started, then stopped when the main
containers are done), then all containers together. ``restartPolicy``
``OnFailure``/``Always`` restarts a container in place with a short back-off
and counts ``restartCount``. Pod ``activeDeadlineSeconds`` fails the Pod with
reason ``DeadlineExceeded``. When a Pod is deleted, its processes get SIGTERM,
then SIGKILL after the grace period (at most 30 s), its status is reported,
and the Pod is removed (grace period 0), as a kubelet does.

Run: ``python node_agent.py --kubeconfig PATH --node-name NAME --root DIR``.
It only needs the standard library and PyYAML.

Why it stays beside the real node
---------------------------------
Scenarios whose outcome depends on what runs in a pod (the image, its user
and entrypoint, security contexts, mounts, the kubelet's own reasons, its
``pods/log``) run on a real kubelet and containerd in ``tests/node``. This
agent runs the rest of ``tests/e2e``: the operator's decisions with
migrations the test writes (a broken or slow version, one above the image's)
that a real node could run only from an image built per test (45 to 50 s
each here), with the operator inside the test process so that its metrics
and log are read directly; and it lets that tier run on machines without
root or cgroups. See ``tests/e2e/README.md``.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import datetime
import http.client
import http.server
import json
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("node-agent")

JSON = dict[str, Any]
TERMINAL_PHASES = ("Succeeded", "Failed")
MAX_TERMINATION_MESSAGE = 4096
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
SA_TOKEN_SECONDS = 3600


def now() -> str:
    """Current time in the API's RFC 3339 form (seconds, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the spawning thread dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# A minimal API client (standard library only, independent of client versions)
# --------------------------------------------------------------------------


class ApiError(Exception):
    """An HTTP error answer of the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Api:
    """Just enough of a Kubernetes REST client, configured from a kubeconfig."""

    def __init__(self, kubeconfig: Path, scratch: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        contexts = {c["name"]: c["context"] for c in config["contexts"]}
        context = contexts[config["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
        user = {u["name"]: u["user"] for u in config["users"]}[context["user"]]
        url = urllib.parse.urlsplit(cluster["server"])
        self.server: str = cluster["server"]
        self.host: str = url.hostname or "127.0.0.1"
        self.port: int = url.port or 443
        self.base_path: str = url.path.rstrip("/")
        scratch.mkdir(parents=True, exist_ok=True)

        def material(data_key: str, file_key: str, holder: JSON, name: str) -> str | None:
            if holder.get(data_key):
                path = scratch / name
                path.write_bytes(base64.b64decode(holder[data_key]))
                path.chmod(0o600)
                return str(path)
            value = holder.get(file_key)
            return str(value) if value else None

        self.ca_file = material("certificate-authority-data", "certificate-authority", cluster, "ca.crt")
        self.ca_pem = Path(self.ca_file).read_text() if self.ca_file else ""
        if cluster.get("insecure-skip-tls-verify"):
            self.ssl = ssl._create_unverified_context()
        else:
            self.ssl = ssl.create_default_context(cafile=self.ca_file)
        cert = material("client-certificate-data", "client-certificate", user, "client.crt")
        key = material("client-key-data", "client-key", user, "client.key")
        if cert and key:
            self.ssl.load_cert_chain(cert, key)
        self.token: str | None = user.get("token")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        conn = self._connect(timeout)
        try:
            conn.request(method, self._url(path, query), body=self._body(body), headers=self._headers(content_type))
            resp = conn.getresponse()
            data = resp.read().decode()
            if resp.status >= 400:
                raise ApiError(resp.status, data)
            return json.loads(data) if data else None
        finally:
            conn.close()

    def watch(self, path: str, query: dict[str, str], timeout: float) -> Iterator[JSON]:
        """Yield watch events until the server ends the watch."""
        conn = self._connect(timeout + 15)
        try:
            conn.request("GET", self._url(path, {**query, "watch": "true"}), headers=self._headers(None))
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ApiError(resp.status, resp.read().decode())
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=timeout)

    def _url(self, path: str, query: dict[str, str] | None) -> str:
        url = self.base_path + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return url

    @staticmethod
    def _body(body: Any) -> bytes | None:
        return None if body is None else json.dumps(body).encode()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "e2e-node-agent"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


# --------------------------------------------------------------------------
# Path mapping
# --------------------------------------------------------------------------

_PATH_CHARS = r"A-Za-z0-9_.\-"


class PathMap:
    """Container paths -> host paths, applied to strings at path boundaries."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = {k.rstrip("/") or "/": v for k, v in mapping.items() if k.rstrip("/")}
        keys = sorted(self.mapping, key=len, reverse=True)
        if keys:
            alternation = "|".join(re.escape(k) for k in keys)
            self._regex: re.Pattern[str] | None = re.compile(rf"(?<![{_PATH_CHARS}/])({alternation})(?![{_PATH_CHARS}])")
        else:
            self._regex = None

    def rewrite(self, text: str) -> str:
        if self._regex is None:
            return text
        return self._regex.sub(lambda m: self.mapping[m.group(1)], text)

    def as_json(self) -> str:
        return json.dumps(self.mapping, sort_keys=True)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names replaced, ``$$`` -> ``$``."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(sub, text)


# --------------------------------------------------------------------------
# One container process
# --------------------------------------------------------------------------


class ContainerRun:
    """State of one container of a pod, as it will be reported in its status."""

    def __init__(self, spec: JSON, pod_dir: Path, *, init: bool = False) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.dir = pod_dir / "containers" / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.message = ""
        self.restart_count = 0
        self.last_state: JSON = {}
        self.termination_path: Path = self.dir / "termination-log"
        self.waiting_reason = "PodInitializing" if not init else "ContainerCreating"
        self.waiting_message = ""
        self.next_start = 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.exit_code is None

    @property
    def done(self) -> bool:
        return self.exit_code is not None

    def status(self) -> JSON:
        status: JSON = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "restartCount": self.restart_count,
            "ready": (self.running and not self.init) or (self.sidecar and self.running),
            "started": self.running,
        }
        if self.proc is not None:
            status["containerID"] = f"nodeagent://{self.proc.pid}"
        if self.exit_code is not None:
            status["state"] = {"terminated": self.terminated()}
        elif self.proc is not None and self.started_at:
            status["state"] = {"running": {"startedAt": self.started_at}}
        else:
            status["state"] = {"waiting": {"reason": self.waiting_reason}}
            if self.waiting_message:
                status["state"]["waiting"]["message"] = self.waiting_message
        if self.last_state:
            status["lastState"] = self.last_state
        return status

    def terminated(self) -> JSON:
        data: JSON = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at or now(),
            "finishedAt": self.finished_at or now(),
        }
        if self.message:
            data["message"] = self.message
        if self.proc is not None:
            data["containerID"] = f"nodeagent://{self.proc.pid}"
        return data

    def fail_to_start(self, message: str) -> None:
        self.started_at = self.finished_at = now()
        self.exit_code = 128
        self.reason = "StartError"
        self.message = message

    def start(self, argv: list[str], env: dict[str, str], cwd: str | None) -> None:
        self.exit_code = None
        self.reason = self.message = ""
        self.finished_at = None
        try:
            self.termination_path.unlink()
        except OSError:
            pass
        with self.log_path.open("ab") as out:
            out.write(f"--- start {now()}: {argv!r}\n".encode())
            out.flush()
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                self.fail_to_start(f"cannot start {argv[0]!r}: {exc}")
                return
        self.started_at = now()

    def poll(self) -> bool:
        """Collect the exit status if the process ended; True if it did just now."""
        if self.proc is None or self.exit_code is not None:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        self.finished_at = now()
        self.exit_code = code if code >= 0 else 128 - code
        self.reason = "Completed" if code == 0 else "Error"
        self.message = self._termination_message()
        return True

    def kill(self, grace: float) -> None:
        """SIGTERM the container's process group, SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def _termination_message(self) -> str:
        message = ""
        try:
            with self.termination_path.open("rb") as f:
                message = f.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
        except OSError:
            pass
        if not message and self.exit_code and self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            try:
                lines = self.log_path.read_text(errors="replace").splitlines()[-80:]
            except OSError:
                lines = []
            message = "\n".join(line for line in lines if not line.startswith("--- start "))[-2048:]
        return message

    def archive(self) -> None:
        """Move the finished run to lastState before a restart."""
        self.last_state = {"terminated": self.terminated()}
        self.restart_count += 1
        self.next_start = time.monotonic() + min(10.0, 0.5 * 2**self.restart_count)


# --------------------------------------------------------------------------
# One pod
# --------------------------------------------------------------------------


class PodRunner:
    """Runs one bound pod's containers in a thread and reports its status."""

    def __init__(self, agent: NodeAgent, pod: JSON) -> None:
        self.agent = agent
        self.api = agent.api
        self.pod = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = agent.root / self.namespace / f"{self.name}-{self.uid[:8]}"
        self.spec: JSON = pod["spec"]
        self.restart_policy: str = self.spec.get("restartPolicy", "Always")
        self.init_runs = [ContainerRun(c, self.dir, init=True) for c in self.spec.get("initContainers", [])]
        self.runs = [ContainerRun(c, self.dir) for c in self.spec.get("containers", [])]
        self.start_time = now()
        self.started_mono = time.monotonic()
        self.phase = "Pending"
        self.pod_reason = ""
        self.pod_message = ""
        self.initialized = not self.init_runs
        self.deleting = threading.Event()
        self.delete_grace = 30.0
        self.finished = threading.Event()
        self.volume_dirs: dict[str, Path] = {}
        self.thread = threading.Thread(target=self._main, name=f"pod-{self.namespace}/{self.name}", daemon=True)

    # -- public ------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def request_delete(self, grace: float) -> None:
        self.delete_grace = min(max(grace, 0.0), 30.0)
        self.deleting.set()

    def kill_now(self) -> None:
        for run in [*self.init_runs, *self.runs]:
            run.kill(0.5)

    # -- thread ------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: runner crashed", self.namespace, self.name)
            self.kill_now()
            self.phase, self.pod_reason, self.pod_message = "Failed", "NodeAgentError", "node agent error, see its log"
            self._report()
        finally:
            self.finished.set()
            if self.deleting.is_set():
                self._finalize_delete()

    def _run(self) -> None:
        self._report()
        if not self._prepare_volumes():
            return
        for run in self.init_runs:
            if not self._run_init(run):
                return
        self.initialized = True
        if self.deleting.is_set():
            return
        for run in self.runs:
            if not self._wait_for_config(run):
                return
            self._start_container(run)
        self._report()
        self._supervise()

    def _wait_for_config(self, run: ContainerRun) -> bool:
        """Like a kubelet: a missing Secret or ConfigMap (or key) in env keeps the container waiting in
        CreateContainerConfigError, retried until it exists or the pod is deleted or past its deadline."""
        while True:
            try:
                self._env(run, self._path_map(run))
            except _MissingConfig as exc:
                if (run.waiting_reason, run.waiting_message) != ("CreateContainerConfigError", str(exc)):
                    run.waiting_reason, run.waiting_message = "CreateContainerConfigError", str(exc)
                    log.info("pod %s/%s: %s", self.namespace, self.name, exc)
                    self._report()
                if self.deleting.wait(2.0) or self._deadline_exceeded():
                    self._check_stop([])
                    return False
                continue
            except _StartError:
                pass  # reported by _start_container
            run.waiting_message = ""
            return True

    def _deadline_exceeded(self) -> bool:
        deadline = self.spec.get("activeDeadlineSeconds")
        return deadline is not None and time.monotonic() - self.started_mono > float(deadline)

    def _check_stop(self, runs: list[ContainerRun]) -> bool:
        """Handle deletion and the pod deadline; True if the pod must stop."""
        if self.deleting.is_set():
            for run in runs:
                run.kill(self.delete_grace)
            self._collect(runs)
            self.phase = "Failed" if any(r.exit_code for r in self.runs) or not self._all_done() else "Succeeded"
            self._mark_unfinished_killed()
            self._report()
            return True
        if self._deadline_exceeded():
            for run in runs:
                run.kill(min(30.0, float(self.spec.get("terminationGracePeriodSeconds", 30))))
            self._collect(runs)
            self._mark_unfinished_killed()
            self.phase, self.pod_reason = "Failed", "DeadlineExceeded"
            self.pod_message = "Pod was active on the node longer than the specified deadline"
            self._report()
            return True
        return False

    def _all_done(self) -> bool:
        return all(r.done for r in self.runs)

    def _mark_unfinished_killed(self) -> None:
        for run in [*self.init_runs, *self.runs]:
            if run.exit_code is None:
                run.started_at = run.started_at or now()
                run.finished_at = now()
                run.exit_code = 137
                run.reason = "ContainerStatusUnknown" if run.proc is None else "Error"
                run.message = run.message or "container was stopped by the node agent"

    def _collect(self, runs: list[ContainerRun]) -> None:
        for run in runs:
            run.poll()

    def _should_restart(self, run: ContainerRun) -> bool:
        if run.sidecar:
            return True
        policy = self.restart_policy
        return policy == "Always" or (policy == "OnFailure" and bool(run.exit_code))

    def _run_init(self, run: ContainerRun) -> bool:
        self._start_container(run)
        self._report()
        if run.sidecar:
            return True
        while True:
            if self._check_stop([run, *self._sidecars()]):
                return False
            if run.poll():
                self._log_exit(run)
                if run.exit_code == 0:
                    self._report()
                    return True
                if self.restart_policy == "Never":
                    self._stop_sidecars()
                    self.phase = "Failed"
                    self._mark_unfinished_waiting_as_never_started()
                    self._report()
                    return False
                run.archive()
                self._report()
            if run.done and time.monotonic() >= run.next_start:
                self._start_container(run)
                self._report()
            time.sleep(0.1)

    def _mark_unfinished_waiting_as_never_started(self) -> None:
        for run in self.runs:
            run.waiting_reason = "PodInitializing"

    def _sidecars(self) -> list[ContainerRun]:
        return [r for r in self.init_runs if r.sidecar]

    def _stop_sidecars(self) -> None:
        for run in self._sidecars():
            run.kill(2.0)
            run.poll()

    def _supervise(self) -> None:
        while True:
            if self._check_stop([*self.runs, *self._sidecars()]):
                return
            changed = False
            for run in [*self.runs, *self._sidecars()]:
                if run.poll():
                    self._log_exit(run)
                    changed = True
                    if self._should_restart(run):
                        run.archive()
                elif run.done and self._should_restart(run) and run.last_state and time.monotonic() >= run.next_start:
                    self._start_container(run)
                    changed = True
            if self._all_done() and not any(self._should_restart(r) for r in self.runs):
                self._stop_sidecars()
                self.phase = "Succeeded" if all(r.exit_code == 0 for r in self.runs) else "Failed"
                self._report()
                return
            if changed:
                self._report()
            time.sleep(0.1)

    def _log_exit(self, run: ContainerRun) -> None:
        log.info(
            "pod %s/%s container %s exited %s (%s) message=%r",
            self.namespace,
            self.name,
            run.name,
            run.exit_code,
            run.reason,
            run.message[:200],
        )
        if run.exit_code:
            try:
                tail = run.log_path.read_text(errors="replace").splitlines()[-10:]
            except OSError:
                tail = []
            for line in tail:
                log.info("  %s| %s", run.name, line)

    # -- volumes -----------------------------------------------------------

    def _prepare_volumes(self) -> bool:
        """Materialise the pod's volumes; waits (like a kubelet) for missing sources."""
        while True:
            try:
                for volume in self.spec.get("volumes", []):
                    self.volume_dirs[volume["name"]] = self._materialise(volume)
                return True
            except _NotYet as exc:
                for run in [*self.init_runs, *self.runs]:
                    run.waiting_reason = "ContainerCreating"
                log.info("pod %s/%s: waiting for volume source: %s", self.namespace, self.name, exc)
                if self.deleting.wait(1.0):
                    self._mark_unfinished_killed()
                    self.phase = "Failed"
                    self._report()
                    return False

    def _materialise(self, volume: JSON) -> Path:
        name = volume["name"]
        if "hostPath" in volume:
            host = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                host.mkdir(parents=True, exist_ok=True)
            return host
        target: Path = self.dir / "volumes" / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        if "secret" in volume:
            src = volume["secret"]
            self._write_source(target, "secrets", src.get("secretName", ""), src, src.get("defaultMode"))
        elif "configMap" in volume:
            src = volume["configMap"]
            self._write_source(target, "configmaps", src.get("name", ""), src, src.get("defaultMode"))
        elif "downwardAPI" in volume:
            self._write_downward(target, volume["downwardAPI"].get("items", []))
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode")
            for source in volume["projected"].get("sources") or []:
                if "secret" in source:
                    src = source["secret"]
                    self._write_source(target, "secrets", src.get("name", ""), src, mode)
                elif "configMap" in source:
                    src = source["configMap"]
                    self._write_source(target, "configmaps", src.get("name", ""), src, mode)
                elif "downwardAPI" in source:
                    self._write_downward(target, source["downwardAPI"].get("items", []))
                elif "serviceAccountToken" in source:
                    self._write_token(target, source["serviceAccountToken"])
        return target

    def _write_source(self, target: Path, kind: str, name: str, src: JSON, mode: int | None) -> None:
        try:
            obj = self.api.request("GET", f"/api/v1/namespaces/{self.namespace}/{kind}/{name}")
        except ApiError as exc:
            if exc.status == 404 and src.get("optional"):
                return
            raise _NotYet(f"{kind}/{name}: HTTP {exc.status}") from exc
        data: dict[str, bytes] = {}
        if kind == "secrets":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = src.get("items")
        if items:
            for item in items:
                if item["key"] not in data:
                    if src.get("optional"):
                        continue
                    raise _NotYet(f"{kind}/{name} has no key {item['key']}")
                self._write_file(target / item["path"], data[item["key"]], item.get("mode", mode))
        else:
            for key, value in data.items():
                self._write_file(target / key, value, mode)

    @staticmethod
    def _write_file(path: Path, content: bytes, mode: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode if mode is not None else 0o644)

    def _write_downward(self, target: Path, items: list[JSON]) -> None:
        for item in items:
            if "fieldRef" in item:
                value = self._field(item["fieldRef"]["fieldPath"])
                self._write_file(target / item["path"], value.encode(), item.get("mode"))

    def _write_token(self, target: Path, src: JSON) -> None:
        spec: JSON = {
            "expirationSeconds": int(src.get("expirationSeconds", SA_TOKEN_SECONDS)),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid},
        }
        if src.get("audience"):
            spec["audiences"] = [src["audience"]]
        sa = self.spec.get("serviceAccountName") or "default"
        try:
            result = self.api.request(
                "POST",
                f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiError as exc:
            raise _NotYet(f"token for service account {sa}: HTTP {exc.status}") from exc
        token = result["status"]["token"]
        self._write_file(target / src.get("path", "token"), token.encode(), 0o600)
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cluster",
                    "cluster": {
                        "server": self.api.server,
                        "certificate-authority-data": base64.b64encode(self.api.ca_pem.encode()).decode(),
                    },
                }
            ],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": sa, "namespace": self.namespace}}],
            "current-context": "pod",
        }
        self._write_file(self.dir / "kubeconfig", yaml.safe_dump(kubeconfig).encode(), 0o600)

    def _field(self, path: str) -> str:
        meta = self.pod["metadata"]
        simple: dict[str, str] = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.agent.node_name,
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
        }
        if path in simple:
            return simple[path]
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        return ""

    # -- containers --------------------------------------------------------

    def _path_map(self, run: ContainerRun) -> PathMap:
        mapping: dict[str, str] = {}
        for mount in run.spec.get("volumeMounts") or []:
            host = self.volume_dirs.get(mount["name"])
            if host is None:
                continue
            if mount.get("subPath"):
                host = host / mount["subPath"]
            mapping[mount["mountPath"]] = str(host)
        message_path = run.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        mapped = PathMap(mapping).rewrite(message_path)
        if mapped == message_path:
            mapping[message_path] = str(run.dir / "termination-log")
            mapped = str(run.dir / "termination-log")
        run.termination_path = Path(mapped)
        return PathMap(mapping)

    def _env(self, run: ContainerRun, paths: PathMap) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        python_dir = str(Path(sys.executable).parent)
        env["PATH"] = python_dir + os.pathsep + env.get("PATH", os.defpath)
        env["HOSTNAME"] = self.name
        env["KUBERNETES_SERVICE_HOST"] = self.api.host
        env["KUBERNETES_SERVICE_PORT"] = str(self.api.port)
        env["NODE_AGENT_POD_DIR"] = str(self.dir)
        env["NODE_AGENT_TERMINATION_MESSAGE_PATH"] = str(run.termination_path)
        env["NODE_AGENT_PATH_MAP"] = paths.as_json()
        if (self.dir / "kubeconfig").exists():
            env["KUBECONFIG"] = str(self.dir / "kubeconfig")
        container_env: dict[str, str] = {}
        for source in run.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self._object_data("configmaps", ref["name"], bool(ref.get("optional")))
            else:
                ref = source["secretRef"]
                data = self._object_data("secrets", ref["name"], bool(ref.get("optional")))
            container_env.update({prefix + k: v for k, v in data.items()})
        for item in run.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                value = self._value_from(item["valueFrom"], run)
                if value is None:
                    continue
            else:
                value = paths.rewrite(expand(item.get("value", ""), container_env))
            container_env[name] = value
        env.update(container_env)
        return env

    def _object_data(self, kind: str, name: str, optional: bool) -> dict[str, str]:
        try:
            obj = self.api.request("GET", f"/api/v1/namespaces/{self.namespace}/{kind}/{name}")
        except ApiError as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise _MissingConfig(f'{kind[:-1]} "{name}" not found') from exc
            raise _StartError(f"{kind}/{name}: HTTP {exc.status}") from exc
        data = obj.get("data") or {}
        if kind == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        return dict(data)

    def _value_from(self, source: JSON, run: ContainerRun) -> str | None:
        for key, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                data = self._object_data(kind, ref["name"], bool(ref.get("optional")))
                if ref["key"] not in data:
                    if ref.get("optional"):
                        return None
                    label = "Secret" if kind == "secrets" else "ConfigMap"
                    raise _MissingConfig(f"couldn't find key {ref['key']} in {label} {self.namespace}/{ref['name']}")
                return data[ref["key"]]
        if "fieldRef" in source:
            return self._field(source["fieldRef"]["fieldPath"])
        return None  # resourceFieldRef and friends: not supported

    def _start_container(self, run: ContainerRun) -> None:
        paths = self._path_map(run)
        try:
            env = self._env(run, paths)
        except _StartError as exc:
            run.fail_to_start(f"cannot build the environment: {exc}")
            return
        spec_env = {k: v for k, v in env.items()}
        argv = [paths.rewrite(expand(a, spec_env)) for a in [*(run.spec.get("command") or []), *(run.spec.get("args") or [])]]
        if not run.spec.get("command"):
            run.fail_to_start("container has no command; the node agent cannot run image entrypoints")
            return
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        cwd: str | None = None
        if run.spec.get("workingDir"):
            cwd = paths.rewrite(run.spec["workingDir"])
            if not Path(cwd).is_dir():
                fallback = run.dir / "workdir"
                fallback.mkdir(exist_ok=True)
                log.info("pod %s/%s: workingDir %s does not exist here, using %s", self.namespace, self.name, cwd, fallback)
                cwd = str(fallback)
        run.start(argv, env, cwd)
        log.info("pod %s/%s container %s started: %r", self.namespace, self.name, run.name, argv)

    # -- status ------------------------------------------------------------

    def _conditions(self) -> list[JSON]:
        ts = now()
        terminal = self.phase in TERMINAL_PHASES
        containers_ready = not terminal and bool(self.runs) and all(r.running for r in self.runs)

        def cond(kind: str, ok: bool, reason: str = "") -> JSON:
            c: JSON = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": ts}
            if reason and not ok:
                c["reason"] = reason
            return c

        ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        return [
            cond("PodReadyToStartContainers", not terminal),
            cond("Initialized", self.initialized, "ContainersNotInitialized"),
            cond("Ready", containers_ready, ready_reason),
            cond("ContainersReady", containers_ready, ready_reason),
            cond("PodScheduled", True),
        ]

    def _report(self) -> None:
        phase = self.phase
        if phase == "Pending" and self.initialized and any(r.running or r.done for r in self.runs):
            phase = "Running"
        status: JSON = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": self._conditions(),
            "containerStatuses": [r.status() for r in self.runs],
        }
        if self.init_runs:
            status["initContainerStatuses"] = [r.status() for r in self.init_runs]
        if self.pod_reason:
            status["reason"] = self.pod_reason
            status["message"] = self.pod_message
        try:
            self.api.request(
                "PATCH",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                {"status": status},
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name, exc)
        except OSError as exc:
            log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name, exc)

    def _finalize_delete(self) -> None:
        """The kubelet's last step of a graceful deletion: remove the object now."""
        try:
            self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", self.namespace, self.name, exc)


class _NotYet(Exception):
    """A volume source is missing; the kubelet would keep retrying."""


class _StartError(Exception):
    """A container cannot be started (reported in its status)."""


class _MissingConfig(_StartError):
    """An env source (Secret, ConfigMap or key) is missing: the container waits in CreateContainerConfigError."""


# --------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------


class LogHandler(http.server.BaseHTTPRequestHandler):
    """``GET /containerLogs/<namespace>/<pod>/<container>``: the container's output, as a kubelet serves it."""

    root: Path = Path(".")

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        _, namespace, pod, container = parts
        query = urllib.parse.parse_qs(url.query)
        logs = [
            f
            for f in (self.root / namespace).glob(f"{glob_escape(pod)}-*/containers/{glob_escape(container)}/log")
            if len(f.parents[2].name) == len(pod) + 9
        ]
        if not logs:
            self.send_error(404, f"container {container} of pod {namespace}/{pod} not found")
            return
        newest = max(logs, key=lambda f: f.stat().st_mtime)
        lines = [ln for ln in newest.read_bytes().splitlines(True) if not ln.startswith(b"--- start ")]
        if "tailLines" in query:
            lines = lines[-max(int(query["tailLines"][0]), 0) :] if int(query["tailLines"][0]) else []
        body = b"".join(lines)
        if "limitBytes" in query:
            body = body[: int(query["limitBytes"][0])]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("log server: " + format, *args)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def serve_logs(root: Path, cert: Path, key: Path) -> int:
    """Start the log endpoint on a free loopback port (TLS with ``cert``/``key``); returns the port."""
    handler = type("BoundLogHandler", (LogHandler,), {"root": root})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="log-server", daemon=True).start()
    return int(server.server_address[1])


class NodeAgent:
    """Registers the node, binds and runs pods, honours deletions."""

    def __init__(self, api: Api, node_name: str, root: Path) -> None:
        self.log_port = 10250  # the kubelet's; replaced by the log server's own port when it runs
        self.api = api
        self.node_name = node_name
        self.root = root
        self.runners: dict[str, PodRunner] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    # -- node ----------------------------------------------------------------

    def register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.baselinr.test/fake": "true",
                },
            },
        }
        try:
            self.api.request("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        ts = now()
        capacity = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.log_port}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "NodeAgentReady",
                    "message": "test node agent (not a kubelet) is running",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "e2e-node-agent",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "none://local-processes",
                "bootID": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
        }
        self.api.request(
            "PATCH",
            f"/api/v1/nodes/{self.node_name}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def _heartbeat_loop(self) -> None:
        while not self.stop.wait(20.0):
            try:
                self.heartbeat()
            except (ApiError, OSError) as exc:
                log.warning("node heartbeat failed: %s", exc)

    # -- pods ----------------------------------------------------------------

    def handle(self, kind: str, pod: JSON) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec", {})
        uid = meta["uid"]
        node = spec.get("nodeName") or ""
        phase = pod.get("status", {}).get("phase", "Pending")
        with self.lock:
            runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner is not None:
                runner.request_delete(0)
                runner.kill_now()
            return
        if meta.get("deletionTimestamp"):
            if node != self.node_name:
                return
            if runner is not None and not runner.finished.is_set():
                runner.request_delete(float(meta.get("deletionGracePeriodSeconds") or 0))
            else:
                # Not running here (already finished, or never started): just remove it.
                self._delete_now(meta)
            return
        if not node:
            if spec.get("schedulerName", "default-scheduler") == "default-scheduler" and phase == "Pending":
                self._bind(meta)
            return
        if node != self.node_name or runner is not None or phase in TERMINAL_PHASES:
            return
        runner = PodRunner(self, pod)
        with self.lock:
            self.runners[uid] = runner
        runner.start()

    def _bind(self, meta: JSON) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
            log.info("bound pod %s/%s to %s", meta["namespace"], meta["name"], self.node_name)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], exc)

    def _delete_now(self, meta: JSON) -> None:
        try:
            self.api.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("deleting %s/%s failed: %s", meta["namespace"], meta["name"], exc)

    def watch_loop(self) -> None:
        """List, then watch all pods; re-list when the watch expires."""
        while not self.stop.is_set():
            try:
                listing = self.api.request("GET", "/api/v1/pods")
                for pod in listing.get("items", []):
                    self.handle("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    query = {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "60"}
                    for event in self.api.watch("/api/v1/pods", query, timeout=60):
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            raise ApiError(int(obj.get("code", 500)), json.dumps(obj))
                        rv = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            self.handle(kind, obj)
            except (ApiError, OSError, ValueError, KeyError) as exc:
                if self.stop.is_set():
                    return
                log.info("pod watch restarted: %s", exc)
                time.sleep(0.5)

    def shutdown(self) -> None:
        self.stop.set()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.kill_now()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", default="e2e-node")
    parser.add_argument("--root", type=Path, default=None, help="directory for pod files (default: a temp dir)")
    parser.add_argument("--log-cert", type=Path, default=None, help="TLS certificate of the pods/log endpoint")
    parser.add_argument("--log-key", type=Path, default=None, help="its private key (both given: the endpoint runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")

    root: Path = args.root or Path(tempfile.mkdtemp(prefix="node-agent-"))
    root.mkdir(parents=True, exist_ok=True)
    api = Api(args.kubeconfig, root / ".credentials")
    agent = NodeAgent(api, args.node_name, root)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        agent.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.log_cert and args.log_key:
        agent.log_port = serve_logs(root, args.log_cert, args.log_key)
        log.info("serving container logs on 127.0.0.1:%d", agent.log_port)
    agent.register_node()
    log.info("node %s registered; pod files under %s", args.node_name, root)
    threading.Thread(target=agent._heartbeat_loop, name="heartbeat", daemon=True).start()
    threading.Thread(target=agent.watch_loop, name="watch", daemon=True).start()
    while not agent.stop.wait(1.0):
        pass
    agent.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
