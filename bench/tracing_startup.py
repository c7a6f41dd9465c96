"""What tracing costs a command's wall time: off (no ``OTEL_*``), on to a real receiver, on to the console.

Usage:
    python3 bench/tracing_startup.py [--repeat 7] [--baseline /path/to/other/checkout]

Runs ``baselinr migrate status`` and a no-op ``baselinr migrate apply`` as
fresh ``python -m baselinr`` processes on a SQLite database at the latest
version, each variant once per round, the rounds interleaved; prints the
median wall time of each and its ratio to tracing off:

- ``off``: no ``OTEL_*`` variable (OpenTelemetry is not imported);
- ``otlp``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` to Jaeger's all-in-one on loopback
  (``tests/tracing/jaeger/build.sh`` builds it; the spans are exported at exit);
- ``console``: ``OTEL_TRACES_EXPORTER=console`` (stderr to /dev/null);
- ``baseline`` (with ``--baseline``): the same command from another checkout,
  e.g. ``git worktree add /tmp/before <commit before tracing>``, tracing off:
  the peer that says what the off path costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(code_root: Path, config: Path, args: list[str], env: dict[str, str]) -> float:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "PYTHONPATH": str(code_root), **env}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "baselinr", "migrate", *args, "--config", str(config)],
        env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args} exited {done.returncode} with {env}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds; medians are reported (default 7, at least 5)")
    parser.add_argument("--baseline", type=Path, help="another checkout to run with tracing off, as the peer")
    opts = parser.parse_args()
    repeat = max(opts.repeat, 5)
    from tests.support.jaeger import start_jaeger

    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as d:
        work = Path(d)
        config = work / "config.yml"
        config.write_text(f"storage:\n  connection:\n    type: sqlite\n    filepath: {work / 'b.db'}\n")
        run(ROOT, config, ["apply"], {})
        with start_jaeger(work / "jaeger") as jaeger:
            variants: dict[str, tuple[Path, dict[str, str]]] = {
                "off": (ROOT, {}),
                "otlp": (ROOT, {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_SERVICE_NAME": "bench"}),
                "console": (ROOT, {"OTEL_TRACES_EXPORTER": "console"}),
            }
            if opts.baseline:
                variants["baseline"] = (opts.baseline.resolve(), {})
            commands = {"status": ["status"], "no-op apply": ["apply"]}
            times: dict[tuple[str, str], list[float]] = {(c, v): [] for c in commands for v in variants}
            for _ in range(repeat):
                for command, args in commands.items():
                    for variant, (code_root, env) in variants.items():
                        times[(command, variant)].append(run(code_root, config, args, env))
    load = os.getloadavg()
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f}; SQLite at the latest version; median of {repeat} interleaved rounds")
    for command in commands:
        off = statistics.median(times[(command, "off")])
        for variant in variants:
            median = statistics.median(times[(command, variant)])
            print(f"  {command:12} {variant:9} {median * 1000:7.1f} ms   {median / off:5.2f}x off")


if __name__ == "__main__":
    main()
