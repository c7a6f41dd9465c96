"""``baselinr-operator`` (or ``python -m baselinr_operator``): run the operator with ``kopf run``.

Watches the namespaces of ``BASELINR_OPERATOR_NAMESPACES`` (default: all),
serves the liveness probe on ``BASELINR_OPERATOR_HEALTH_PORT`` at
``/healthz`` and metrics on ``BASELINR_OPERATOR_METRICS_PORT``; logs JSON lines
with ``BASELINR_OPERATOR_LOG_FORMAT=json``. Extra arguments go to ``kopf run``
(e.g. ``--verbose``). Runs ``--standalone`` (kopf's peering is not used): with
several replicas, ``BASELINR_OPERATOR_LEADER_ELECTION`` lets only the holder of a
Lease act (``leader``).
"""

from __future__ import annotations

import sys

from baselinr_operator.settings import OperatorSettings


def kopf_args(settings: OperatorSettings, extra: list[str]) -> list[str]:
    args = ["run", "--standalone", "-m", "baselinr_operator.handlers"]
    args += [f"--namespace={ns}" for ns in settings.namespaces] or ["--all-namespaces"]
    if settings.health_port:
        args.append(f"--liveness=http://0.0.0.0:{settings.health_port}/healthz")
    if settings.log_format == "json":
        args.append("--log-format=json")  # kopf's JSON lines; baselinr.logs adds level, resource and trace ids
    return args + extra


def main(argv: list[str] | None = None) -> None:
    from kopf.cli import main as kopf_main

    args = kopf_args(OperatorSettings.from_env(), list(sys.argv[1:] if argv is None else argv))
    kopf_main(args=args, prog_name="baselinr-operator")


if __name__ == "__main__":
    main()
