"""Benchmark of the BaselinrSchema operator on a local control plane (the e2e tier's, started here).

Measures, with the operator running as its own process (``python -m
baselinr_operator``) and its Jobs run by the node agent against SQLite:

  (a) from a ``targetVersion`` change to the migrate Job's creation, and
  (b) from that Job's completion to the resource being ``Ready``,
      medians (and max) over ``--repeat`` upgrades, seen by this script's own
      watches of Jobs and BaselinrSchemas (one clock);
  (c) ``--resources`` BaselinrSchemas (each its own Secret and database)
      created at once: time until all are ``Ready``, and the operator's memory
      (peak RSS, ``VmHWM``) before and after.

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
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.cluster import ControlPlane, ensure_binaries, free_port  # noqa: E402
from tests.support.packages import sql_migration, write_package  # noqa: E402

CRD = ROOT / "deploy" / "crds" / "baselinrschemas.baselinr.io.yaml"
NS = "bench"


class Watch(threading.Thread):
    """Records (monotonic time, event type, object) of one list of objects, from a watch stream."""

    def __init__(self, kubeconfig: Path, kind: str) -> None:
        super().__init__(daemon=True)
        self.kubeconfig, self.kind = kubeconfig, kind
        self.seen: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        from kubernetes import client, config, watch

        api = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        while not self.stop.is_set():
            try:
                self._stream(client, api, watch)
            except Exception:  # noqa: BLE001 - the stream broke (or the control plane is stopping): start a new one
                time.sleep(0.2)

    def _stream(self, client: Any, api: Any, watch: Any) -> None:
        w = watch.Watch()
        if self.kind == "jobs":
            stream = w.stream(client.BatchV1Api(api).list_namespaced_job, NS, timeout_seconds=30, _preload_content=False)
        else:
            stream = w.stream(client.CustomObjectsApi(api).list_namespaced_custom_object, "baselinr.io", "v1alpha1",
                              NS, "baselinrschemas", timeout_seconds=30)  # fmt: skip
        for event in stream:
            obj = event["object"]
            if not isinstance(obj, dict):
                obj = api.sanitize_for_serialization(obj)
            with self.lock:
                self.seen.append((time.monotonic(), event["type"], obj))
            if self.stop.is_set():
                return

    def first(self, predicate: Any) -> float | None:
        with self.lock:
            for t, _, obj in self.seen:
                if predicate(obj):
                    return t
        return None


def kubectl(bin_dir: Path, kubeconfig: Path, *args: str, input: str | None = None) -> str:
    proc = subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args], input=input,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def wait(probe: Any, timeout: float, what: str) -> Any:
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
                "env": [{"name": "PYTHONPATH", "value": str(pkg_root)}, {"name": "BASELINR_MIGRATIONS_PACKAGE", "value": pkg}]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--resources", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="baselinr-bench-operator-"))
    data = Path(tempfile.mkdtemp(prefix="baselinr-bench-data-", dir="/var/tmp"))  # not under /tmp: see tests/e2e
    data.chmod(0o755)
    versions = {v: sql_migration(v, f"CREATE TABLE bench_{v} (id INTEGER)") for v in range(2, args.repeat + 2)}
    pkg = write_package(data / "pkgs", versions)
    bin_dir = ensure_binaries()
    cp = ControlPlane(bin_dir, work / "cp")
    operator: subprocess.Popen[bytes] | None = None
    watches: list[Watch] = []
    try:
        cp.start()
        kc = cp.kubeconfig
        kubectl(bin_dir, kc, "apply", "-f", str(CRD))
        kubectl(bin_dir, kc, "wait", "--for=condition=Established", "crd/baselinrschemas.baselinr.io")
        kubectl(bin_dir, kc, "create", "namespace", NS)
        wait(lambda: subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kc}", "get", "sa", "default", "-n", NS],
                                    capture_output=True).returncode == 0, 30, "service account")  # fmt: skip
        health = free_port()
        env = {**os.environ, "KUBECONFIG": str(kc), "BASELINR_OPERATOR_NAMESPACES": NS, "BASELINR_OPERATOR_METRICS_PORT": "0",
               "BASELINR_OPERATOR_HEALTH_PORT": str(health), "BASELINR_OPERATOR_IMAGE": "baselinr:bench",
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        log = open(work / "operator.log", "wb")  # closed when the process ends
        operator = subprocess.Popen([sys.executable, "-m", "baselinr_operator"], env=env, stdout=log, stderr=subprocess.STDOUT)
        jobs, schemas = Watch(kc, "jobs"), Watch(kc, "schemas")
        watches = [jobs, schemas]
        for w in watches:
            w.start()
        import urllib.request

        wait(lambda: _ok(f"http://127.0.0.1:{health}/healthz", urllib.request), 60, "the operator's liveness endpoint")

        # (a) and (b): upgrades of one resource, one version at a time.
        manifests = [secret("lat", data / "lat.db"), schema("lat", "lat", 1, pkg, data / "pkgs")]
        kubectl(bin_dir, kc, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        wait(lambda: schemas.first(lambda o: _ready(o, "lat", 1)), 120, "lat at v1")
        to_job, to_ready = [], []
        for target in range(2, args.repeat + 2):
            t0 = time.monotonic()
            bump = json.dumps({"spec": {"targetVersion": target}})
            kubectl(bin_dir, kc, "patch", "bschema", "lat", "-n", NS, "--type=merge", "-p", bump)
            t_ready = wait(lambda t=target: schemas.first(lambda o: _ready(o, "lat", t)), 120, f"lat at v{target}")
            name_part = f"lat-migrate-v{target}-"
            t_job = jobs.first(lambda o, n=name_part: o["metadata"]["name"].startswith(n))
            t_done = jobs.first(lambda o, n=name_part: o["metadata"]["name"].startswith(n) and _complete(o))
            assert t_job is not None and t_done is not None
            to_job.append(t_job - t0)
            to_ready.append(t_ready - t_done)
        before = memory(operator.pid)

        # (c): many resources at once.
        n = args.resources
        items: list[dict[str, Any]] = []
        for i in range(n):
            items += [secret(f"s{i}", data / f"s{i}.db"), schema(f"s{i}", f"s{i}", 1, pkg, data / "pkgs")]
        t0 = time.monotonic()
        kubectl(bin_dir, kc, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

        def all_ready() -> bool:
            out = json.loads(kubectl(bin_dir, kc, "get", "bschema", "-n", NS, "-o", "json"))
            ready = [o for o in out["items"] if o["metadata"]["name"] != "lat" and o.get("status", {}).get("phase") == "Ready"]
            return bool(len(ready) == n)

        wait(all_ready, 3600, f"{n} resources Ready")
        all_seconds = time.monotonic() - t0
        after = memory(operator.pid)
        print(f"operator latency over {args.repeat} upgrades (one migration each, SQLite):")
        print(f"  targetVersion change -> migrate Job created: median {statistics.median(to_job) * 1000:.0f} ms, "
              f"max {max(to_job) * 1000:.0f} ms")  # fmt: skip
        print(f"  migrate Job complete  -> resource Ready:      median {statistics.median(to_ready) * 1000:.0f} ms, "
              f"max {max(to_ready) * 1000:.0f} ms")  # fmt: skip
        print(f"{n} resources created at once: all Ready in {all_seconds:.1f} s")
        print(f"  operator RSS before: {before['VmRSS']} MiB; after: {after['VmRSS']} MiB; peak (VmHWM): {after['VmHWM']} MiB")
    finally:
        for w in watches:
            w.stop.set()
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
