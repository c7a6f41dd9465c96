"""A real trace receiver for the tracing tests: Jaeger's all-in-one, and reading traces back from it.

The binary is built from the Go module proxy by ``tests/tracing/jaeger/build.sh``
(once per machine, then cached; ``scripts/test`` runs it first). ``start_jaeger``
runs it on free loopback ports with its in-memory store: the OTLP/HTTP receiver
the engine and the operator export to, and the query HTTP API (``/api/traces``,
the one Jaeger's UI reads) the tests read the spans back through. Stopped by
process id at the end of the session.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tests" / "tracing" / "jaeger" / "build.sh"


@dataclass(frozen=True)
class Span:
    """One span as Jaeger's query API returns it, flattened for assertions."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start_us: int
    duration_us: int
    tags: dict[str, Any]
    events: tuple[dict[str, Any], ...]


@dataclass
class Jaeger:
    """A running all-in-one: where to send spans and where to read them."""

    otlp_endpoint: str  # for OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP)
    query_url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """The environment that makes a process trace into this receiver as ``service``."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint, "OTEL_SERVICE_NAME": service, **extra}

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.query_url}{path}", timeout=10) as r:
            return json.load(r)

    def raw_traces(self, service: str) -> list[dict[str, Any]]:
        """Every trace with a span of ``service``, as the query API returns them (its JSON)."""
        try:
            return list(self._get(f"/api/traces?service={service}&limit=100&lookback=1h")["data"] or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # no span of this service has arrived yet
                return []
            raise

    def trace(self, trace_id: str, *, until: Any = None, timeout: float = 30) -> list[Span]:
        """The spans of one trace, once ``until(spans)`` holds (or ``timeout`` has passed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = [s for t in self._get(f"/api/traces/{trace_id}")["data"] or [] for s in flatten(t)]
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                found = []
            if (found and (until is None or until(found))) or time.monotonic() > deadline:
                return found
            time.sleep(0.3)

    def raw_trace(self, trace_id: str) -> Any:
        return self._get(f"/api/traces/{trace_id}")

    def spans(self, service: str, *, at_least: int = 1, timeout: float = 30) -> list[Span]:
        """The spans of every trace ``service`` took part in, once ``at_least`` of ``service``'s
        own have arrived (spans are exported in batches, after the process has exited)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for t in self.raw_traces(service) for s in flatten(t)]
            if sum(s.service == service for s in found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def flatten(trace: dict[str, Any]) -> list[Span]:
    processes = {k: v["serviceName"] for k, v in trace.get("processes", {}).items()}
    out = []
    for s in trace["spans"]:
        parents = [r["spanID"] for r in s.get("references") or [] if r.get("refType") == "CHILD_OF"]
        out.append(
            Span(
                trace_id=s["traceID"],
                span_id=s["spanID"],
                parent_id=parents[0] if parents else None,
                name=s["operationName"],
                service=processes.get(s["processID"], "?"),
                start_us=int(s["startTime"]),
                duration_us=int(s["duration"]),
                tags={t["key"]: t["value"] for t in s.get("tags") or []},
                events=tuple({f["key"]: f["value"] for f in log.get("fields") or []} for log in s.get("logs") or []),
            )
        )
    return out


def binary() -> Path:
    """The all-in-one binary (built now if this machine has not built it yet)."""
    done = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD} failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@contextmanager
def start_jaeger(workdir: Path, host: str = "127.0.0.1") -> Iterator[Jaeger]:
    """Run Jaeger on free ports of ``host`` (loopback; a test bridge's address for pods) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("otlp_http", "otlp_grpc", "query_http", "query_grpc", "admin", "http", "grpc")}
    args = [
        str(binary()),
        f"--collector.otlp.http.host-port={host}:{ports['otlp_http']}",
        f"--collector.otlp.grpc.host-port={host}:{ports['otlp_grpc']}",
        f"--collector.http-server.host-port={host}:{ports['http']}",
        f"--collector.grpc-server.host-port={host}:{ports['grpc']}",
        f"--query.http-server.host-port={host}:{ports['query_http']}",
        f"--query.grpc-server.host-port={host}:{ports['query_grpc']}",
        f"--admin.http.host-port={host}:{ports['admin']}",
    ]
    log = workdir / "jaeger.log"
    with log.open("wb") as out:
        # Its own traces would land in the store the tests read: off.
        env = {"PATH": "/usr/bin:/bin", "SPAN_STORAGE_TYPE": "memory", "OTEL_TRACES_EXPORTER": "none"}
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    jaeger = Jaeger(f"http://{host}:{ports['otlp_http']}", f"http://{host}:{ports['query_http']}", proc, log)
    try:
        _wait_ready(jaeger, host, ports["admin"])
        yield jaeger
    finally:
        jaeger.stop()


def _wait_ready(jaeger: Jaeger, host: str, admin_port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if jaeger.proc.poll() is not None:
            raise RuntimeError(f"jaeger exited with {jaeger.proc.returncode}:\n{jaeger.log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{host}:{admin_port}/", timeout=2) as r:
                if r.status == 200 and json.load(r).get("status") == "Server available":
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"jaeger did not become ready in {timeout}s:\n{jaeger.log.read_text(errors='replace')[-3000:]}")
