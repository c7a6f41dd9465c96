"""Benchmark of the BaselinrSchema operator on a local control plane (the e2e tier's, started here).

Measures, with the operator running as its own process (``python -m
baselinr_operator``, as its own user ``baselinr-operator``) and its Jobs run
by the node agent against SQLite:

  (a) from a ``targetVersion`` change to the migrate Job's creation, and
  (b) from that Job's completion to the resource being ``Ready``,
      medians (and max) over ``--repeat`` upgrades (at least 5);
  (c) ``--resources`` BaselinrSchemas (each its own Secret and database)
      created at once: time from the first one's creation until all are
      ``Ready``, and the operator's memory (peak RSS, ``VmHWM``) before and
      after (``--resources 0`` leaves it out).

With ``--fleet 100,300,1000`` it measures a fleet instead, each size on a
control plane and operator of its own: N BaselinrSchemas across 10
namespaces (``backup.mode: Skip``, each its own Secret and SQLite file),
created at once by 8 client threads, with no node to run Jobs at first, so
the operator's throughput does not depend on how fast Jobs run: from each
resource's creation to its Job's (p50, p95, max) and from the first creation
until all N Jobs exist; then (up to ``--fleet-ready-max`` resources) the node
agent starts and runs them all, and the time until all N are ``Ready``. For
both it prints the operator's CPU seconds (``/proc/PID/stat``), its peak RSS
(``VmHWM``) and its API requests per resource, by verb and resource, from
the audit log; ``--profile DIR`` records the operator with py-spy meanwhile.

Every time comes from the API server's own clock: the kube-apiserver started
here writes an audit log, and each instant is the ``stageTimestamp`` of a
request's ``ResponseComplete`` event, i.e. when the server had stored it:
(a) from the spec patch (``kubectl patch``, told apart by its user agent) to
the Job's create; (b) from the Job status update that adds ``Complete`` to
the first resource write that shows ``Ready`` at the target. The audit log
has microseconds; the objects' own timestamps
(``metadata.managedFields[].time``, ``creationTimestamp``) have whole
seconds, too coarse for a median of about 0.1 s, so they are only checked to
agree with the audit figures to within their one-second resolution. No client
is spawned inside a measured interval. The policy (``AUDIT_POLICY``) logs the
bodies of only what is timed; every other request of the operator's user is
logged at ``Metadata`` level, to be counted.

Run: python bench/operator_latency.py [--repeat 10] [--resources 200]
     python bench/operator_latency.py --fleet 100,300,1000 [--fleet-ready-max 300] [--fleet-repeat 1] [--profile DIR]
Needs the control plane binaries (tests/e2e/controlplane/build.sh builds them once).
Not a test: timings on shared machines are noisy and never gate CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import certs  # noqa: E402
from tests.e2e.cluster import ControlPlane, ensure_binaries, free_port, write_kubeconfig  # noqa: E402
from tests.support.packages import sql_migration, write_package  # noqa: E402

CRD = ROOT / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
NS = "bench"
FLEET_NAMESPACES = tuple(f"fleet-{i}" for i in range(10))
OPERATOR_USER = "baselinr-operator"  # the operator's own client certificate: its requests are told apart by user
SCHEMAS = {"group": "baselinr.io", "resources": ["baselinrschemas", "baselinrschemas/status"]}
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        # (a), (b): the bodies of the writes that are timed, in the bench namespace.
        {
            "level": "RequestResponse",
            "namespaces": [NS],
            "verbs": ["create", "update", "patch"],
            "resources": [{"group": "batch", "resources": ["jobs", "jobs/status"]}, SCHEMAS],
        },
        # The fleet: the operator's status writes (which one shows Ready), and every resource and Job created.
        {
            "level": "RequestResponse",
            "users": [OPERATOR_USER],
            "namespaces": list(FLEET_NAMESPACES),
            "verbs": ["update", "patch"],
            "resources": [{"group": "baselinr.io", "resources": ["baselinrschemas/status"]}],
        },
        {
            "level": "Request",
            "namespaces": list(FLEET_NAMESPACES),
            "verbs": ["create"],
            "resources": [{"group": "batch", "resources": ["jobs"]}, {"group": "baselinr.io", "resources": ["baselinrschemas"]}],
        },
        # Every other request of the operator, counted.
        {"level": "Metadata", "users": [OPERATOR_USER]},
        {"level": "None"},
    ],
}


class AuditedControlPlane(ControlPlane):
    """The e2e control plane, its API server writing an audit log of the requests measured here."""

    def __init__(self, bin_dir: Path, work_dir: Path, *, node_agent: bool = True) -> None:
        super().__init__(bin_dir, work_dir, node_agent=node_agent)
        self.audit_log = work_dir / "audit.log"

    def _apiserver_argv(self, pki: certs.ClusterCerts) -> list[str]:
        policy = self.work_dir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        audit = [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                 "--audit-log-mode=blocking", "--audit-log-maxbackup=0"]  # fmt: skip
        return [*super()._apiserver_argv(pki), *audit]

    def operator_kubeconfig(self) -> Path:
        """A kubeconfig of the operator's own user (in ``system:masters``: its rights are not what is measured)."""
        assert self.certs is not None
        pair = certs.issue_client(self.certs, "operator", common_name=OPERATOR_USER, organization="system:masters")
        path = self.work_dir / "operator.kubeconfig"
        write_kubeconfig(path, server=self.server, ca=self.certs.ca.cert, cert=pair.cert, key=pair.key, user=OPERATOR_USER)
        return path


def new_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """The complete lines an append-only log (the audit log) gained past ``offset``, and the new offset."""
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    complete = chunk[: chunk.rfind(b"\n") + 1]
    return complete.splitlines(), offset + len(complete)


class Audit:
    """The audit log's successful write events with their bodies, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def refresh(self) -> list[dict[str, Any]]:
        lines, self.offset = new_lines(self.path, self.offset)
        for line in lines:
            event = json.loads(line)
            ok = event.get("stage") == "ResponseComplete" and (event.get("responseStatus") or {}).get("code", 0) < 300
            if ok and "responseObject" in event:  # the timed writes (the others are only counted, in a fleet)
                self.events.append(event)
        return self.events

    def first(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first event ``predicate`` accepts, waiting for the log to show it."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.refresh() if predicate(e)), None)

        event: dict[str, Any] = wait(found, timeout, what)
        return event


def stamp(event: dict[str, Any]) -> float:
    """The API server's time of a stored write, in seconds since the epoch (microseconds)."""
    return datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()


def seconds_of(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def writes(kind: str, name: str | None = None, subresource: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def match(e: dict[str, Any]) -> bool:
        ref = e.get("objectRef") or {}
        return bool(
            ref.get("resource") == kind
            and (name is None or (e.get("responseObject") or {}).get("metadata", {}).get("name") == name)
            and (subresource is None or ref.get("subresource") == subresource)
        )

    return match


def both(*predicates: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda e: all(p(e) for p in predicates)


def spec_patch(target: int) -> Callable[[dict[str, Any]], bool]:
    """This script's ``kubectl patch`` of ``lat``'s targetVersion (the operator's own writes have another agent)."""
    return both(
        writes("baselinrschemas", "lat"),
        lambda e: e.get("verb") == "patch" and not (e.get("objectRef") or {}).get("subresource"),
        lambda e: str(e.get("userAgent", "")).startswith("kubectl"),
        lambda e: e["responseObject"].get("spec", {}).get("targetVersion") == target,
    )


def job_created(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return both(
        lambda e: e.get("verb") == "create" and (e.get("objectRef") or {}).get("resource") == "jobs",
        lambda e: str(e["responseObject"]["metadata"]["name"]).startswith(prefix),
    )


def job_completed(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return both(
        lambda e: (e.get("objectRef") or {}).get("resource") == "jobs",
        lambda e: str(e["responseObject"]["metadata"]["name"]).startswith(prefix),
        lambda e: _complete(e["responseObject"]),
    )


def ready_write(name: str, version: int) -> Callable[[dict[str, Any]], bool]:
    return both(writes("baselinrschemas", name), lambda e: _ready(e["responseObject"], name, version))


def managed_time(obj: dict[str, Any], manager: str) -> float | None:
    """``managedFields`` time (whole seconds) of the last update of the spec by ``manager``."""
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and not entry.get("subresource") and entry.get("time"):
            return seconds_of(entry["time"])
    return None


class Watch(threading.Thread):
    """Keeps the latest version of each object of one kind, from a watch stream (to wait on, not to time)."""

    def __init__(self, kubeconfig: Path, kind: str) -> None:
        super().__init__(daemon=True)
        self.kubeconfig, self.kind = kubeconfig, kind
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        from kubernetes import client, config, watch

        api = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        while not self.stop.is_set():
            try:
                w = watch.Watch()
                stream = w.stream(client.CustomObjectsApi(api).list_namespaced_custom_object, "baselinr.io", "v1alpha1",
                                  NS, "baselinrschemas", timeout_seconds=30)  # fmt: skip
                for event in stream:
                    obj = event["object"]
                    with self.lock:
                        self.objects[obj["metadata"]["name"]] = obj
                    if self.stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - the stream broke (or the control plane is stopping): start a new one
                time.sleep(0.2)

    def count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        with self.lock:
            return sum(1 for o in self.objects.values() if predicate(o))


def kubectl(bin_dir: Path, kubeconfig: Path, *args: str, input: str | None = None) -> str:
    proc = subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args], input=input,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def schema(name: str, secret: str, target: int, pkg: str, pkg_root: Path, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "baselinr.io/v1alpha1",
        "kind": "BaselinrSchema",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetVersion": target,
            "configSecretRef": {"name": secret},
            "backup": {"mode": "Skip"},
            "jobTemplate": {
                # This repository's baselinr, as the operator's: it is what is measured.
                "env": [
                    {"name": "PYTHONPATH", "value": f"{pkg_root}{os.pathsep}{ROOT}"},
                    {"name": "BASELINR_MIGRATIONS_PACKAGE", "value": pkg},
                ]
            },
        },
    }


def secret(name: str, db: Path, namespace: str = NS) -> dict[str, Any]:
    config = yaml.safe_dump({"storage": {"connection": {"type": "sqlite", "database": db.stem, "filepath": str(db)}}})
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"config.yml": config}}


def memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024
    return fields


def ms_summary(values: Iterable[float]) -> str:
    v = list(values)
    return f"median {statistics.median(v) * 1000:.0f} ms, min {min(v) * 1000:.0f} ms, max {max(v) * 1000:.0f} ms (n={len(v)})"


def start_operator(cp: AuditedControlPlane, work: Path, namespaces: Iterable[str]) -> subprocess.Popen[bytes]:
    """``python -m baselinr_operator`` as its own user, this repository's code first; back once it is live."""
    import urllib.request

    health = free_port()
    env = {**os.environ, "KUBECONFIG": str(cp.operator_kubeconfig()), "BASELINR_OPERATOR_NAMESPACES": ",".join(namespaces),
           "BASELINR_OPERATOR_METRICS_PORT": "0", "BASELINR_OPERATOR_HEALTH_PORT": str(health),
           "BASELINR_OPERATOR_IMAGE": "baselinr:bench",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    log = open(work / "operator.log", "wb")  # closed when the process ends
    operator = subprocess.Popen([sys.executable, "-m", "baselinr_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait(lambda: operator.poll() is None and _ok(f"http://127.0.0.1:{health}/healthz", urllib.request), 60,
         "the operator's liveness endpoint")  # fmt: skip
    return operator


def stop_operator(operator: subprocess.Popen[bytes] | None) -> None:
    if operator is not None:
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="upgrades timed (at least 5)")
    parser.add_argument("--resources", type=int, default=200, help="resources created at once (0: leave out)")
    parser.add_argument("--fleet", default="", metavar="N,N,...", help="measure fleets of these sizes (e.g. 100,300,1000)")
    parser.add_argument("--fleet-ready-max", type=int, default=300, metavar="N",
                        help="run the Jobs (and time all Ready) only for fleets up to N resources")  # fmt: skip
    parser.add_argument("--fleet-repeat", type=int, default=1, metavar="R", help="rounds over the fleet sizes (interleaved)")
    parser.add_argument("--settle", type=float, default=15.0, metavar="S",
                        help="seconds after the last Ready (or Job) before the requests are counted")  # fmt: skip
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record the operator with py-spy (raw, 50 Hz) while the fleet's Jobs are created")  # fmt: skip
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="copy each fleet's audit log and operator log there")  # fmt: skip
    args = parser.parse_args()
    if args.repeat < 5 or args.resources < 0:
        parser.error("--repeat must be at least 5 and --resources at least 0")
    if args.fleet:
        try:
            sizes = [int(n) for n in args.fleet.split(",")]
        except ValueError:
            parser.error("--fleet takes sizes such as 100,300,1000")
        if min(sizes) < 1 or args.fleet_repeat < 1:
            parser.error("--fleet sizes and --fleet-repeat must be at least 1")
        fleet(sizes, args)
    else:
        latency(args)


def latency(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="baselinr-bench-operator-"))
    data = Path(tempfile.mkdtemp(prefix="baselinr-bench-data-", dir="/var/tmp"))  # not under /tmp: see tests/e2e
    data.chmod(0o755)
    versions = {v: sql_migration(v, f"CREATE TABLE bench_{v} (id INTEGER)") for v in range(2, args.repeat + 2)}
    pkg = write_package(data / "pkgs", versions)
    bin_dir = ensure_binaries()
    cp = AuditedControlPlane(bin_dir, work / "cp")
    operator: subprocess.Popen[bytes] | None = None
    schemas: Watch | None = None
    try:
        cp.start()
        audit = Audit(cp.audit_log)
        kc = cp.kubeconfig
        kubectl(bin_dir, kc, "apply", "-f", str(CRD))
        kubectl(bin_dir, kc, "wait", "--for=condition=Established", "crd/baselinrschemas.baselinr.io")
        kubectl(bin_dir, kc, "create", "namespace", NS)
        wait(lambda: subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kc}", "get", "sa", "default", "-n", NS],
                                    capture_output=True).returncode == 0, 30, "service account")  # fmt: skip
        operator = start_operator(cp, work, (NS,))
        schemas = Watch(kc, "schemas")
        schemas.start()

        # (a) and (b): upgrades of one resource, one version at a time.
        manifests = [secret("lat", data / "lat.db"), schema("lat", "lat", 1, pkg, data / "pkgs")]
        kubectl(bin_dir, kc, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        audit.first(ready_write("lat", 1), 120, "lat at v1")
        to_job, to_ready, coarse_ok = [], [], 0
        for target in range(2, args.repeat + 2):
            bump = json.dumps({"spec": {"targetVersion": target}})
            kubectl(bin_dir, kc, "patch", "bschema", "lat", "-n", NS, "--type=merge", "-p", bump)
            prefix = f"lat-migrate-v{target}-"
            patched = audit.first(spec_patch(target), 60, f"the audit event of the patch to v{target}")
            created = audit.first(job_created(prefix), 120, f"the creation of Job {prefix}*")
            done = audit.first(job_completed(prefix), 120, f"Job {prefix}* Complete")
            ready = audit.first(ready_write("lat", target), 120, f"lat Ready at v{target}")
            to_job.append(stamp(created) - stamp(patched))
            to_ready.append(stamp(ready) - stamp(done))
            # The objects' own timestamps (whole seconds) must agree to within their resolution.
            changed = managed_time(patched["responseObject"], "kubectl-patch")
            born = seconds_of(created["responseObject"]["metadata"]["creationTimestamp"])
            if changed is not None and abs((born - changed) - to_job[-1]) <= 1.0:
                coarse_ok += 1
        before = memory(operator.pid)

        # (c): many resources at once.
        n = args.resources
        all_seconds = 0.0
        if n:
            items: list[dict[str, Any]] = []
            for i in range(n):
                items += [secret(f"s{i}", data / f"s{i}.db"), schema(f"s{i}", f"s{i}", 1, pkg, data / "pkgs")]
            kubectl(bin_dir, kc, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            many = [f"s{i}" for i in range(n)]
            wanted = set(many)
            wait(lambda: schemas.count(lambda o: o["metadata"]["name"] in wanted and _ready(o, o["metadata"]["name"], 1))
                 == n, 3600, f"{n} resources Ready")  # fmt: skip
            first = min(stamp(audit.first(both(writes("baselinrschemas", s), lambda e: e.get("verb") == "create"), 60,
                                          f"creation of {s}")) for s in many)  # fmt: skip
            last = max(stamp(audit.first(ready_write(s, 1), 60, f"{s} Ready")) for s in many)
            all_seconds = last - first
        after = memory(operator.pid)
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"operator latency over {args.repeat} upgrades (one migration each, SQLite), API server audit timestamps:")
        print(f"  targetVersion patch stored -> migrate Job stored:        {ms_summary(to_job)}")
        print(f"  Job status Complete stored -> resource Ready stored:     {ms_summary(to_ready)}")
        print(f"  agree with managedFields time / creationTimestamp (1 s resolution): {coarse_ok} of {len(to_job)}")
        if n:
            print(f"{n} resources created at once: first created -> all Ready in {all_seconds:.1f} s")
        print(f"  operator RSS before: {before['VmRSS']} MiB; after: {after['VmRSS']} MiB; peak (VmHWM): {after['VmHWM']} MiB")
        print(f"load average at the end: {load} ({os.cpu_count()} CPUs)")
    except SystemExit:
        tail = (work / "operator.log").read_text(errors="replace")[-3000:] if (work / "operator.log").exists() else ""
        print(f"operator log (tail):\n{tail}", file=sys.stderr)
        if schemas is not None:
            with schemas.lock:
                shown = {k: o.get("status") for k, o in list(schemas.objects.items())[:3]}
            print(f"resources' status: {json.dumps(shown, indent=1)[-3000:]}", file=sys.stderr)
        raise
    finally:
        if schemas is not None:
            schemas.stop.set()
        stop_operator(operator)
        cp.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


# --- the fleet ------------------------------------------------------------------------------


class FleetAudit:
    """One pass over the audit log as it grows, keeping only what the fleet figures need."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.created: dict[str, float] = {}  # "ns/name" -> when the resource was stored
        self.jobs: dict[str, float] = {}  # "ns/name" -> when its first Job was stored
        self.ready: dict[str, float] = {}  # "ns/name" -> the operator's first status write showing Ready at v1
        self.requests: Counter[str] = Counter()  # the operator's requests by "verb resource[/subresource]"
        self.refused: Counter[str] = Counter()  # of those, the ones answered with a status >= 400, by kind and status
        self.first_get: dict[str, float] = {}  # "ns/name" -> when the operator's first read of it arrived (its reconcile)
        self.server_seconds: dict[str, list[float]] = {}  # the operator's requests: received -> response, by kind

    def refresh(self) -> FleetAudit:
        lines, self.offset = new_lines(self.path, self.offset)
        for line in lines:
            self._take(json.loads(line))
        return self

    def _take(self, e: dict[str, Any]) -> None:
        if e.get("stage") != "ResponseComplete":
            return
        ref = e.get("objectRef") or {}
        code = (e.get("responseStatus") or {}).get("code", 0)
        by_operator = (e.get("user") or {}).get("username") == OPERATOR_USER
        if by_operator:
            kind = request_kind(e)
            self.requests[kind] += 1
            if e.get("verb") != "watch":
                self.server_seconds.setdefault(kind, []).append(stamp(e) - received(e))
            if code >= 400:
                self.refused[f"{kind} {code}"] += 1
        ns = ref.get("namespace")
        if code >= 300 or ns not in FLEET_NAMESPACES:
            return
        verb, resource, sub = e.get("verb"), ref.get("resource"), ref.get("subresource")
        if verb == "create" and not sub:
            meta = (e.get("requestObject") or {}).get("metadata") or {}
            if resource == "baselinrschemas":
                self.created.setdefault(f"{ns}/{meta.get('name')}", stamp(e))
            elif resource == "jobs" and by_operator:
                for owner in meta.get("ownerReferences") or []:
                    if owner.get("kind") == "BaselinrSchema":
                        self.jobs.setdefault(f"{ns}/{owner['name']}", stamp(e))
        elif resource == "baselinrschemas" and verb == "get" and not sub and by_operator:
            self.first_get.setdefault(f"{ns}/{ref.get('name')}", received(e))
        elif resource == "baselinrschemas" and sub == "status" and by_operator:
            obj = e.get("responseObject") or {}
            name = (obj.get("metadata") or {}).get("name")
            if name and _ready(obj, name, 1):
                self.ready.setdefault(f"{ns}/{name}", stamp(e))


def received(event: dict[str, Any]) -> float:
    """When the API server received the request of an audit event."""
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()


def request_kind(e: dict[str, Any]) -> str:
    """``get baselinrschemas``, ``patch baselinrschemas/status``, ``list pods``; ``get /apis`` for discovery."""
    ref = e.get("objectRef") or {}
    if not ref.get("resource"):
        return f"{e.get('verb')} {str(e.get('requestURI', '')).split('?')[0]}"
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{e.get('verb')} {ref['resource']}{sub}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def create_all(api: Any, kind: str, bodies: list[dict[str, Any]], threads: int = 8) -> None:
    """Create ``bodies`` (Secrets or BaselinrSchemas) from ``threads`` client threads at once."""
    from kubernetes import client

    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    def one(body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        if kind == "Secret":
            core.create_namespaced_secret(ns, body, _preload_content=False)
        else:
            custom.create_namespaced_custom_object("baselinr.io", "v1alpha1", ns, "baselinrschemas", body,
                                                   _preload_content=False)  # fmt: skip

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bodies))


def fleet(sizes: list[int], args: argparse.Namespace) -> None:
    bin_dir = ensure_binaries()
    results: list[dict[str, Any]] = []
    for round_ in range(1, args.fleet_repeat + 1):
        for n in sizes:
            result = fleet_run(bin_dir, n, n <= args.fleet_ready_max, args, round_)
            results.append(result)
            print_fleet(result, args)
    if len(results) > 1:
        print("\nsummary (each row one fleet, its own control plane and operator):")
        print("| N | round | all Jobs | create->Job p50 / p95 / max | all Ready | CPU s to Jobs / all | peak RSS | requests/N |")
        print("|---:|---:|---:|---|---:|---|---:|---:|")
        for r in results:
            ready = f"{r['all_ready']:.1f} s" if r["all_ready"] is not None else "-"
            print(f"| {r['n']} | {r['round']} | {r['all_jobs']:.1f} s | {r['p50']:.2f} / {r['p95']:.2f} / {r['max']:.2f} s | "
                  f"{ready} | {r['cpu_jobs']:.1f} / {r['cpu_all']:.1f} | {r['hwm']} MiB | {r['per_resource']:.1f} |")  # fmt: skip


def fleet_run(bin_dir: Path, n: int, run_jobs: bool, args: argparse.Namespace, round_: int) -> dict[str, Any]:
    """One fleet of ``n`` resources on a control plane and an operator of its own; its figures."""
    work = Path(tempfile.mkdtemp(prefix="baselinr-bench-fleet-"))
    data = Path(tempfile.mkdtemp(prefix="baselinr-bench-data-", dir="/var/tmp"))  # not under /tmp: see tests/e2e
    data.chmod(0o755)
    pkg = write_package(data / "pkgs", {})  # Baselinr's v1 alone: the Jobs are short
    cp = AuditedControlPlane(bin_dir, work / "cp", node_agent=False)
    operator: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        cp.start()
        kc = cp.kubeconfig
        kubectl(bin_dir, kc, "apply", "-f", str(CRD))
        kubectl(bin_dir, kc, "wait", "--for=condition=Established", "crd/baselinrschemas.baselinr.io")
        namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in FLEET_NAMESPACES]
        kubectl(bin_dir, kc, "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": namespaces}))
        for ns in FLEET_NAMESPACES:  # the Job controller cannot create Pods before the namespace's default account exists
            wait(lambda ns=ns: cp._get_json(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 60, f"{ns}'s default account")
        names = [(FLEET_NAMESPACES[i % len(FLEET_NAMESPACES)], f"s{i}") for i in range(n)]
        api = cp_client(kc)
        create_all(api, "Secret", [secret(name, data / f"{name}.db", ns) for ns, name in names])
        operator = start_operator(cp, work, ())  # all namespaces, the chart's default
        audit = FleetAudit(cp.audit_log)
        time.sleep(2.0)  # the operator's start-up requests (discovery, lists, watches) are in the log: not counted
        audit.refresh()
        at_start = Counter(audit.requests)
        cpu0, rss0 = cpu_seconds(operator.pid), memory(operator.pid)["VmRSS"]
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            out = args.profile / f"operator-{n}-r{round_}.txt"
            argv = ["py-spy", "record", "--pid", str(operator.pid), "--format", "raw", "--rate", "50", "--nonblocking",
                    "--output", str(out)]  # fmt: skip
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        create_all(api, "BaselinrSchema", [schema(name, name, 1, pkg, data / "pkgs", ns) for ns, name in names])
        wait(lambda: len(audit.refresh().jobs) >= n, 1800, f"{n} Jobs")
        cpu_jobs = cpu_seconds(operator.pid) - cpu0
        requests_jobs = audit.requests - at_start
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            spy = None
        created = audit.created
        first, last_created = min(created.values()), max(created.values())
        delays = [audit.jobs[k] - created[k] for k in created]
        queued = [audit.first_get[k] - created[k] for k in created]
        reconciled = [audit.jobs[k] - audit.first_get[k] for k in created]
        server = {kind: statistics.median(v) for kind, v in audit.server_seconds.items() if len(v) >= n // 2}
        all_jobs = max(audit.jobs.values()) - first
        all_ready = after_agent = None
        if run_jobs:
            agent_started = time.time()  # the same host clock as the API server's
            cp.start_node_agent()
            wait(lambda: len(audit.refresh().ready) >= n, 3600, f"{n} resources Ready")
            last_ready = max(audit.ready.values())
            all_ready, after_agent = last_ready - first, last_ready - agent_started
        time.sleep(args.settle)
        audit.refresh()
        requests_all = audit.requests - at_start
        return {
            "n": n, "round": round_, "spread": last_created - first, "p50": percentile(delays, 50),
            "p95": percentile(delays, 95), "max": max(delays), "all_jobs": all_jobs, "all_ready": all_ready,
            "queued": (percentile(queued, 50), percentile(queued, 95)), "server": server,
            "reconciled": (percentile(reconciled, 50), percentile(reconciled, 95)),
            "after_agent": after_agent, "cpu_jobs": cpu_jobs, "cpu_all": cpu_seconds(operator.pid) - cpu0,
            "rss0": rss0, "rss_end": memory(operator.pid)["VmRSS"], "hwm": memory(operator.pid)["VmHWM"],
            "requests_jobs": requests_jobs, "requests_all": requests_all,
            "per_resource": sum(requests_all.values()) / n, "refused": audit.refused,
            "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        }  # fmt: skip
    except SystemExit:
        tail = (work / "operator.log").read_text(errors="replace")[-3000:] if (work / "operator.log").exists() else ""
        print(f"operator log (tail):\n{tail}", file=sys.stderr)
        raise
    finally:
        if spy is not None:
            spy.kill()
        stop_operator(operator)
        cp.stop()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in (cp.audit_log, work / "operator.log"):
                if log.exists():
                    shutil.copy(log, args.keep_logs / f"{log.stem}-{n}-r{round_}{log.suffix}")
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def cp_client(kubeconfig: Path) -> Any:
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    api.configuration.connection_pool_maxsize = 16
    return api


def print_fleet(r: dict[str, Any], args: argparse.Namespace) -> None:
    n = r["n"]
    print(f"\nfleet of {n} BaselinrSchemas in {len(FLEET_NAMESPACES)} namespaces (backup.mode Skip, SQLite), round {r['round']}:")
    print(f"  created by 8 client threads: first -> last stored in {r['spread']:.1f} s")
    print(f"  create -> Job stored: p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, max {r['max']:.2f} s; "
          f"first created -> all {n} Jobs stored: {r['all_jobs']:.1f} s (no node runs them meanwhile)")  # fmt: skip
    (q50, q95), (r50, r95) = r["queued"], r["reconciled"]
    print(f"    of which: created -> the operator's first read of it (queued) p50 {q50:.2f} s, p95 {q95:.2f} s; "
          f"that read -> its Job stored p50 {r50:.2f} s, p95 {r95:.2f} s")  # fmt: skip
    median_ms = ", ".join(f"{kind} {seconds * 1000:.0f}" for kind, seconds in sorted(r["server"].items()))
    print(f"    the API server's time per request of the operator (median, ms): {median_ms}")
    if r["all_ready"] is not None:
        print(f"  node agent started after that: all {n} Ready {r['after_agent']:.1f} s later "
              f"({r['all_ready']:.1f} s after the first creation)")  # fmt: skip
    else:
        print(f"  Jobs not run (more than --fleet-ready-max {args.fleet_ready_max}): Ready not timed")
    print(f"  operator CPU: {r['cpu_jobs']:.1f} s until all Jobs stored, {r['cpu_all']:.1f} s in all; "
          f"RSS {r['rss0']} MiB before, {r['rss_end']} MiB at the end, peak (VmHWM) {r['hwm']} MiB")  # fmt: skip
    for label, requests in (("until all Jobs stored", r["requests_jobs"]), (f"in all (+{args.settle:g} s)", r["requests_all"])):
        total = sum(requests.values())
        mix = ", ".join(f"{kind} {count / n:.2f}" for kind, count in requests.most_common())
        print(f"  operator API requests {label}: {total} ({total / n:.1f} per resource): {mix}")
    if r["refused"]:
        print(f"  of the operator's requests, refused (>= 400): {dict(r['refused'])}")
    print(f"  load average at the end: {r['load']} ({os.cpu_count()} CPUs)")


def _ok(url: str, request: Any) -> bool:
    try:
        with request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _ready(obj: dict[str, Any], name: str, version: int) -> bool:
    s = obj.get("status") or {}
    return bool(obj["metadata"]["name"] == name and s.get("phase") == "Ready" and s.get("currentVersion") == version)


def _complete(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


if __name__ == "__main__":
    main()
