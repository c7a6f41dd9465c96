"""Minimal kopf operator used by the control plane tests.

On creation of a Widget it writes ``status.phase``/``status.message``
through the status subresource.
"""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = 30  # logging.WARNING: fewer Events
    settings.watching.server_timeout = 30
    settings.persistence.finalizer = "e2e.baselinr.dev/kopf-finalizer"


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Read $KUBECONFIG now: the kubernetes client library reads it once at
    # import time, which may be before the test points it at the cluster.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create("e2e.baselinr.dev", "v1", "widgets")
def widget_created(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Handled"
    patch.status["message"] = f"size={spec['size']}"
