"""The operator hands its trace to its Jobs: ``TRACEPARENT`` and its ``OTEL_*`` settings in each Job's Pod."""

from __future__ import annotations

from typing import Any

import pytest

from baselinr_operator.jobs import BUILDERS, CONTAINER, Owner, build_job
from baselinr_operator.settings import TRACE_ENV_PASSED, OperatorSettings
from baselinr_operator.spec import parse_spec
from baselinr_operator.status import Step

OWNER = Owner("analytics", "data", "uid-1")
SPEC = parse_spec(
    {
        "targetVersion": 3,
        "configSecretRef": {"name": "baselinr-storage"},
        "backup": {"mode": "Required", "volume": {"persistentVolumeClaim": {"claimName": "backups"}}},
        "jobTemplate": {"env": [{"name": "TRACEPARENT", "value": "00-from-the-spec"}, {"name": "TZ", "value": "UTC"}]},
    }
)
PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def env_of(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == CONTAINER
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), names  # one entry per name: no doubt which one the Pod gets
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("step", list(BUILDERS))
def test_every_job_continues_the_trace_it_is_given(step: str) -> None:
    trace = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.tracing:4318", "TRACEPARENT": PARENT}
    env = env_of(build_job(step, OWNER, SPEC, 1, "baselinr:0.1.0", f"analytics-{step.lower()}-v3-1", trace))
    assert env["BASELINR_RESOURCE"] == "data/analytics"  # what the Pod's JSON log lines name
    assert env["TRACEPARENT"] == PARENT  # the operator's, not the one the resource's template asked for
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.tracing:4318"
    assert env["TZ"] == "UTC"  # the template's other entries stay


def test_untraced_jobs_carry_only_what_the_template_asks() -> None:
    env = env_of(build_job(Step.MIGRATE, OWNER, SPEC, 1, "baselinr:0.1.0", "analytics-migrate-v3-1"))
    assert env["TRACEPARENT"] == "00-from-the-spec" and not any(k.startswith("OTEL_") for k in env)


def test_the_operator_passes_its_otel_settings_but_never_headers() -> None:
    settings = OperatorSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cret",
            "OTEL_SERVICE_NAME": "baselinr-operator",
            "BASELINR_TRACE_SQL": "1",
        }
    )
    passed = dict(settings.trace_env)
    assert passed == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "BASELINR_TRACE_SQL": "1",
    }
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in TRACE_ENV_PASSED and "OTEL_SERVICE_NAME" not in TRACE_ENV_PASSED
    assert OperatorSettings.from_env({}).trace_env == ()
