"""Talking to S3 and S3-compatible servers: the destination URL, the client, and the errors.

Used by ``s3store`` (the only module that reads and writes objects). The
client is boto3's, built from ``ObjectStoreOptions`` (read once by the CLI
from its options and the environment) with credentials from the standard
AWS chain only: environment, shared profile, web identity (IRSA),
container and instance credentials; never from the command line, and
never printed. Every botocore failure is turned here into one line in the
engine's error families:

- credentials missing, unknown or refused, endpoint unreachable:
  ``ObjectStoreUnavailable`` (exit 3, like a database that cannot be reached);
- no such bucket, or no permission on it: ``DestinationError`` (exit 2),
  naming the bucket and what to grant or create.

Nothing of the server's own error text is shown (it may echo request
details); only its error code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baselinr.backup.errors import DestinationError
from baselinr.errors import EXIT_UNAVAILABLE, BaselinrError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # type: ignore[import-not-found]

SCHEME = "s3://"
MIB = 1024 * 1024
# Each part is held in memory once while it uploads: this is the bound on an upload's memory.
# S3 allows 10,000 parts, so 16 MiB parts carry a compressed table file of up to 156 GiB.
DEFAULT_PART_SIZE = 16 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
SSE_CHOICES = ("AES256", "aws:kms", "aws:kms:dsse")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
    "NotSignedUp",
}
_DENIED = {"AccessDenied", "AllAccessDisabled", "Forbidden", "403"}
_NO_BUCKET = {"NoSuchBucket"}


class ObjectStoreUnavailable(BaselinrError):
    """The object store cannot be reached, or refuses the credentials (exit 3)."""

    exit_code = EXIT_UNAVAILABLE


def is_s3(dest: str | None) -> bool:
    return bool(dest) and str(dest).lower().startswith(SCHEME)


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/prefix``: where a destination's backups are (the prefix may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> S3Url:
        rest = text[len(SCHEME) :]
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise UsageError(
                f"Backup destination {text[:120]!r}: {bucket[:63]!r} is not a bucket name",
                hint="Use s3://BUCKET/PREFIX, e.g. s3://my-backups/baselinr/prod.",
            )
        if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
            raise UsageError(
                f"Backup destination {text[:120]!r}: the prefix has an empty, '.' or '..' part",
                hint="Use s3://BUCKET/PREFIX with plain path parts, e.g. s3://my-backups/baselinr/prod.",
            )
        return cls(bucket, prefix)

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def url(self, *parts: str) -> str:
        return f"{SCHEME}{self.bucket}/{self.key(*parts)}".rstrip("/")


@dataclass(frozen=True)
class ObjectStoreOptions:
    """How to reach the object store; never credentials (those come from the AWS chain)."""

    endpoint_url: str | None = None
    region: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    part_size: int = DEFAULT_PART_SIZE

    def __post_init__(self) -> None:
        if self.sse is not None and self.sse not in SSE_CHOICES:
            raise UsageError(f"--sse {self.sse!r} is not one of {', '.join(SSE_CHOICES)}")
        if self.sse_kms_key_id and (self.sse or "").startswith("aws:kms") is False:
            raise UsageError("--sse-kms-key-id needs --sse aws:kms (or aws:kms:dsse)")
        if self.part_size < MIN_PART_SIZE:
            raise UsageError(f"The S3 part size must be at least {MIN_PART_SIZE // MIB} MiB, got {self.part_size} bytes")

    def encryption(self) -> dict[str, str]:
        """The server-side encryption arguments of every object written."""
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args


def make_client(options: ObjectStoreOptions) -> S3Client:
    """A boto3 S3 client; path-style addressing whenever an endpoint URL is given (S3-compatible servers)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError(
            "Backups in object storage (--dest s3://...) need the S3 client, which is not installed",
            hint="Install it with: pip install 'baselinr[s3]'",
        ) from None

    endpoint = options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=10,
        read_timeout=120,
        # Our own SHA-256 of every file is checked on read; the newer default CRC headers are not
        # understood by every S3-compatible server, so they are sent only where S3 requires them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint, region_name=options.region, config=config)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    if not code:
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        code = str(status or "")
    return code


@contextmanager
def translated(url: S3Url, doing: str) -> Iterator[None]:
    """Run an S3 call, turning a botocore failure into one line in our error families."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    try:
        yield
    except ProfileNotFound:
        raise UsageError(
            "AWS_PROFILE names a profile that is not in the AWS config files",
            hint="Set AWS_PROFILE to a profile of ~/.aws/config (or of AWS_CONFIG_FILE), or unset it.",
        ) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise ObjectStoreUnavailable(
            f"No AWS credentials found to {doing} {url.url()}",
            hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a web identity "
            "(IRSA) or container role.",
        ) from None
    except EndpointConnectionError:
        raise ObjectStoreUnavailable(
            f"Cannot reach the S3 endpoint to {doing} {url.url()}",
            hint="Check --endpoint-url (or AWS_ENDPOINT_URL) and that the server is up.",
        ) from None
    except ClientError as exc:
        raise translate(exc, url, doing) from None
    except BotoCoreError as exc:
        raise ObjectStoreUnavailable(
            f"S3 request failed to {doing} {url.url()} ({exc.__class__.__name__})",
            hint="Check --endpoint-url (or AWS_ENDPOINT_URL), --region and the network, then try again.",
        ) from None


def translate(exc: BaseException, url: S3Url, doing: str) -> BaselinrError:
    code = error_code(exc)
    if code in _BAD_CREDENTIALS:
        return ObjectStoreUnavailable(
            f"S3 refused the credentials to {doing} {url.url()} ({code})",
            hint="Check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the role) "
            "and the endpoint and region they belong to.",
        )
    if code in _NO_BUCKET or (code == "404" and doing == "list"):
        return DestinationError(
            f"Bucket {url.bucket} does not exist (needed to {doing} {url.url()})",
            hint=f"Create bucket {url.bucket}, or fix --dest (and --endpoint-url / --region if it is elsewhere).",
        )
    if code in _DENIED:
        return DestinationError(
            f"No permission to {doing} {url.url()} ({code})",
            hint=f"Grant these credentials s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject and "
            f"s3:AbortMultipartUpload on bucket {url.bucket}, or choose another --dest.",
        )
    return ObjectStoreUnavailable(
        f"S3 failed to {doing} {url.url()} ({code or exc.__class__.__name__})",
        hint="Try again; if it persists, check the server's logs for that error code.",
    )


def client_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError))
