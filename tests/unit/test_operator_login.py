"""The operator's login in a Pod: the API server that KUBERNETES_SERVICE_HOST/PORT name.

Found on the real node (``tests/node``): kopf's ``login_with_service_account`` always dials
``https://kubernetes.default.svc``, which needs cluster DNS, while the operator's own client
(``baselinr_operator.kube``) follows the service environment variables, as the kubernetes
library does. Both now take the same server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client
from kubernetes.config import incluster_config


def _operator() -> tuple[Any, Any]:
    """The handlers module and the client module, imported when a test runs: importing the handlers
    registers them with kopf's process-wide registry, which any other operator that the same test
    session runs in-process (``tests/e2e/test_controlplane.py``'s sample) would then run too."""
    from baselinr_operator import handlers, kube

    return handlers, kube


@pytest.fixture
def pod_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("pod-token")  # as the kubelet writes it: no newline
    ca.write_text("not parsed here\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.213.47.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    saved = client.Configuration.get_default_copy()
    yield
    client.Configuration.set_default(saved)


def test_login_in_a_pod_dials_the_service_host_not_cluster_dns(pod_account: None) -> None:
    handlers, kube = _operator()
    login: Any = handlers.login  # kopf's decorator types it as a generic activity
    info = login(logger=logging.getLogger("test"), settings=kopf.OperatorSettings())
    assert info is not None
    assert info.server == "https://10.213.47.1:6443"
    assert info.token == "pod-token"
    cfg, _ = kube.configuration(None)
    assert cfg.host == info.server  # the operator's own client: the same server
