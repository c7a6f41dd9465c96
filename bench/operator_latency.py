"""Benchmark of the BaselinrSchema operator on a local control plane (the e2e tier's, started here).

Measures, with the operator running as its own process (``python -m
baselinr_operator``) and its Jobs run by the node agent against SQLite:

  (a) from a ``targetVersion`` change to the migrate Job's creation, and
  (b) from that Job's completion to the resource being ``Ready``,
      medians (and max) over ``--repeat`` upgrades (at least 5);
  (c) ``--resources`` BaselinrSchemas (each its own Secret and database)
      created at once: time from the first one's creation until all are
      ``Ready``, and the operator's memory (peak RSS, ``VmHWM``) before and
      after (``--resources 0`` leaves it out).

Every time comes from the API server's own clock: the kube-apiserver started
here writes an audit log (``RequestResponse`` for writes to Jobs and
BaselinrSchemas in the bench namespace, nothing else), and each instant is
the ``stageTimestamp`` of a write's ``ResponseComplete`` event, i.e. when the
server had stored it: (a) from the spec patch (``kubectl patch``, told apart
by its user agent) to the Job's create; (b) from the Job status update that
adds ``Complete`` to the first resource write that shows ``Ready`` at the
target. The audit log has microseconds; the objects' own timestamps
(``metadata.managedFields[].time``, ``creationTimestamp``) have whole
seconds, too coarse for a median of about 0.1 s, so they are only checked to
agree with the audit figures to within their one-second resolution. No client
is spawned inside a measured interval.

Run: python bench/operator_latency.py [--repeat 10] [--resources 200]
Needs the control plane binaries (tests/e2e/controlplane/build.sh builds them once).
Not a test: timings on shared machines are noisy and never gate CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import certs  # noqa: E402
from tests.e2e.cluster import ControlPlane, ensure_binaries, free_port  # noqa: E402
from tests.support.packages import sql_migration, write_package  # noqa: E402

CRD = ROOT / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
NS = "bench"
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {
            "level": "RequestResponse",
            "namespaces": [NS],
            "verbs": ["create", "update", "patch"],
            "resources": [
                {"group": "batch", "resources": ["jobs", "jobs/status"]},
                {"group": "baselinr.io", "resources": ["baselinrschemas", "baselinrschemas/status"]},
            ],
        },
        {"level": "None"},
    ],
}


class AuditedControlPlane(ControlPlane):
    """The e2e control plane, its API server writing an audit log of the writes measured here."""

    def __init__(self, bin_dir: Path, work_dir: Path) -> None:
        super().__init__(bin_dir, work_dir)
        self.audit_log = work_dir / "audit.log"

    def _apiserver_argv(self, pki: certs.ClusterCerts) -> list[str]:
        policy = self.work_dir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        audit = [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                 "--audit-log-mode=blocking", "--audit-log-maxbackup=0"]  # fmt: skip
        return [*super()._apiserver_argv(pki), *audit]


class Audit:
    """The audit log's successful write events, read as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def refresh(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(complete)
            for line in complete.splitlines():
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete" and (event.get("responseStatus") or {}).get("code", 0) < 300:
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


def schema(name: str, secret: str, target: int, pkg: str, pkg_root: Path) -> dict[str, Any]:
    return {
        "apiVersion": "baselinr.io/v1alpha1",
        "kind": "BaselinrSchema",
        "metadata": {"name": name, "namespace": NS},
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


def secret(name: str, db: Path) -> dict[str, Any]:
    config = yaml.safe_dump({"storage": {"connection": {"type": "sqlite", "database": db.stem, "filepath": str(db)}}})
    meta = {"name": name, "namespace": NS}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="upgrades timed (at least 5)")
    parser.add_argument("--resources", type=int, default=200, help="resources created at once (0: leave out)")
    args = parser.parse_args()
    if args.repeat < 5 or args.resources < 0:
        parser.error("--repeat must be at least 5 and --resources at least 0")

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
        health = free_port()
        env = {**os.environ, "KUBECONFIG": str(kc), "BASELINR_OPERATOR_NAMESPACES": NS, "BASELINR_OPERATOR_METRICS_PORT": "0",
               "BASELINR_OPERATOR_HEALTH_PORT": str(health), "BASELINR_OPERATOR_IMAGE": "baselinr:bench",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        log = open(work / "operator.log", "wb")  # closed when the process ends
        operator = subprocess.Popen([sys.executable, "-m", "baselinr_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
        schemas = Watch(kc, "schemas")
        schemas.start()
        import urllib.request

        wait(lambda: _ok(f"http://127.0.0.1:{health}/healthz", urllib.request), 60, "the operator's liveness endpoint")

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
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        cp.stop()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


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
