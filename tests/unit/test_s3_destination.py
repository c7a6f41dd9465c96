"""The object-storage destination without a server: URLs, options, and S3 error codes turned into our errors.

What the test S3 server (s3s-fs) cannot show is checked here on botocore's
own exception objects: an access policy that denies the listing, and the
server-side encryption arguments every object is written with. The rest
runs against the real server in ``tests/integration/test_backup_s3.py``.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from baselinr.backup.errors import DestinationError
from baselinr.backup.s3 import MIB, ObjectStoreOptions, ObjectStoreUnavailable, S3Url, translate, translated
from baselinr.errors import EXIT_UNAVAILABLE, EXIT_USAGE, UsageError

URL = S3Url.parse("s3://my-backups/baselinr/prod")


def client_error(code: str, status: int = 403, message: str = "secret-looking AKIA... detail") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2"
    )


def test_url_parts() -> None:
    assert (URL.bucket, URL.prefix) == ("my-backups", "baselinr/prod")
    assert URL.key("b1", "manifest.json") == "baselinr/prod/b1/manifest.json"
    assert URL.url("b1") == "s3://my-backups/baselinr/prod/b1"
    bare = S3Url.parse("s3://my-backups/")
    assert (bare.prefix, bare.key("b1"), bare.url()) == ("", "b1", "s3://my-backups")


@pytest.mark.parametrize("dest", ["s3://A_B/x", "s3://", "s3://ab", "s3://ok-bucket/a/../b", "s3://ok-bucket/a//b"])
def test_bad_destinations_are_usage_errors(dest: str) -> None:
    with pytest.raises(UsageError) as caught:
        S3Url.parse(dest)
    assert "s3://BUCKET/PREFIX" in str(caught.value)


def test_access_denied_is_exit_2_naming_the_permissions_and_never_the_servers_text() -> None:
    err = translate(client_error("AccessDenied"), URL, "list")
    assert isinstance(err, DestinationError) and err.exit_code == EXIT_USAGE
    assert "No permission to list s3://my-backups/baselinr/prod" in str(err) and "s3:ListBucket" in str(err)
    assert "AKIA" not in str(err)


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "NotSignedUp"])
def test_refused_credentials_are_exit_3(code: str) -> None:
    err = translate(client_error(code), URL, "write to")
    assert isinstance(err, ObjectStoreUnavailable) and err.exit_code == EXIT_UNAVAILABLE
    assert "refused the credentials" in str(err) and code in str(err) and "AKIA" not in str(err)


def test_missing_bucket_is_exit_2_saying_to_create_it() -> None:
    err = translate(client_error("NoSuchBucket", 404), URL, "list")
    assert isinstance(err, DestinationError) and "Create bucket my-backups" in str(err)


def test_translated_wraps_only_botocore_errors() -> None:
    with pytest.raises(DestinationError):
        with translated(URL, "list"):
            raise client_error("AccessDenied")
    with pytest.raises(KeyError):
        with translated(URL, "list"):
            raise KeyError("not S3's")


def test_encryption_arguments_pass_through() -> None:
    assert ObjectStoreOptions().encryption() == {}
    assert ObjectStoreOptions(sse="AES256").encryption() == {"ServerSideEncryption": "AES256"}
    kms = ObjectStoreOptions(sse="aws:kms", sse_kms_key_id="arn:aws:kms:eu-west-1:1:key/k")
    assert kms.encryption() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "arn:aws:kms:eu-west-1:1:key/k"}


@pytest.mark.parametrize(
    "kwargs",
    [{"sse": "rot13"}, {"sse_kms_key_id": "k"}, {"sse": "AES256", "sse_kms_key_id": "k"}, {"part_size": 4 * MIB}],
)
def test_bad_options_are_usage_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ObjectStoreOptions(**kwargs)  # type: ignore[arg-type]


def test_an_unknown_profile_is_a_usage_error_naming_it() -> None:
    from botocore.exceptions import ProfileNotFound

    with pytest.raises(UsageError) as caught:
        with translated(URL, "list"):
            raise ProfileNotFound(profile="nope")
    assert "AWS_PROFILE" in str(caught.value) and caught.value.exit_code == EXIT_USAGE
