"""``spec.backup.objectStore``: parsed, bounded by the operator's settings, and turned into the backup Job's
arguments and environment (credentials from the config Secret as the AWS chain's variables, never arguments)."""

from __future__ import annotations

from typing import Any

import pytest

from baselinr.cli.app import cli
from baselinr_operator.jobs import Owner, build_backup_job
from baselinr_operator.policy import OBJECT_STORE_KIND, violations
from baselinr_operator.settings import OperatorSettings
from baselinr_operator.spec import SpecError, parse_spec

OWNER = Owner("analytics", "data", "uid-1")
STORE = {
    "bucket": "my-backups",
    "prefix": "/baselinr/prod/",
    "endpoint": "http://minio.storage:9000",
    "region": "eu-west-1",
    "credentialsSecretRef": {"name": "baselinr-storage"},
}


def spec(store: dict[str, Any] | None = None, **backup: Any) -> Any:
    return parse_spec(
        {
            "targetVersion": 3,
            "configSecretRef": {"name": "baselinr-storage"},
            "backup": {"mode": "Required", "objectStore": store or STORE, **backup},
        }
    )


def test_parsed_with_a_clean_url() -> None:
    store = spec().backup.object_store
    assert store.url == "s3://my-backups/baselinr/prod"
    assert (store.endpoint, store.region, store.credentials_secret) == (
        "http://minio.storage:9000",
        "eu-west-1",
        "baselinr-storage",
    )
    assert spec({"bucket": "my-backups"}).backup.object_store.url == "s3://my-backups"


@pytest.mark.parametrize(
    ("store", "backup", "needle"),
    [
        ({"bucket": "Not_A_Bucket"}, {}, "bucket name"),
        ({"bucket": "my-backups", "prefix": "a/../b"}, {}, "'..'"),
        (None, {"volume": {"persistentVolumeClaim": {"claimName": "b"}}}, "not both"),
    ],
)
def test_bad_specs(store: dict[str, Any] | None, backup: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec(store, **backup)
    assert needle in str(caught.value)


def test_off_unless_the_operator_allows_it_and_credentials_only_from_the_config_secret() -> None:
    default = OperatorSettings()
    assert OBJECT_STORE_KIND not in default.allowed_volume_kinds
    assert any("spec.backup.objectStore is not allowed" in v for v in violations(spec(), default))
    allowed = OperatorSettings(allowed_volume_kinds=("persistentVolumeClaim", OBJECT_STORE_KIND))
    assert violations(spec(), allowed) == []
    other = {**STORE, "credentialsSecretRef": {"name": "someone-elses"}}
    assert violations(spec(other), allowed) == [
        "spec.backup.objectStore.credentialsSecretRef may only name the config Secret 'baselinr-storage'"
    ]


def test_the_job_writes_to_the_bucket_with_credentials_from_the_secret() -> None:
    job = build_backup_job(OWNER, spec(keep=3), 1, "registry.example.com/data/baselinr:0.1.0")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert args[args.index("--dest") + 1] == "s3://my-backups/baselinr/prod"
    assert args[args.index("--endpoint-url") + 1] == "http://minio.storage:9000"
    assert args[args.index("--region") + 1] == "eu-west-1" and args[args.index("--keep") + 1] == "3"
    env = {e["name"]: e for e in container["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "baselinr-storage"
        assert env[key]["valueFrom"]["secretKeyRef"]["key"] == key
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "backups" not in {v["name"] for v in pod["volumes"]}
    assert not any("AWS" in a for a in args)

    # Without a Secret: no credentials in the Job; the ServiceAccount's web identity (or the node) provides them.
    bare = build_backup_job(OWNER, spec({"bucket": "my-backups"}), 1, "img")
    assert not [e for e in bare["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"].startswith("AWS_")]


def test_the_job_command_takes_the_object_store_options() -> None:
    """The arguments the builder writes are options of ``baselinr job backup``."""
    import click

    ctx = click.Context(cli)
    job = cli.get_command(ctx, "job")
    assert isinstance(job, click.Group)
    backup = job.get_command(ctx, "backup")
    assert backup is not None
    names = {opt for p in backup.params for opt in p.opts}
    assert {"--dest", "--endpoint-url", "--region", "--keep"} <= names
