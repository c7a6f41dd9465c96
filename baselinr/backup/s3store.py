"""Where backups live in object storage: ``s3://bucket/prefix`` on S3 or an S3-compatible server.

The same interface as ``store.LocalStore`` (begin, create_file, publish,
abort; entries, complete, remove, resolve), so ``writer``, ``reader`` and
``restore`` do not know which one they have. Layout::

    s3://bucket/prefix/baselinr-prod-v3-20260509T073512Z/baselinr_results.copy.gz
    s3://bucket/prefix/baselinr-prod-v3-20260509T073512Z/manifest.json    (written last)

Object stores have no atomic rename, so the manifest is the completion
marker: every table file is uploaded (each a single PUT or a completed
multipart upload, which S3 makes visible whole or not at all), then the
manifest in one PUT. A backup without ``manifest.json`` is listed as
partial and nothing verifies or restores it; deleting one removes the
manifest first, so a half-deleted backup is never taken for a whole one.
Any error removes what was written and aborts the open multipart upload; a
killed process leaves a partial backup (and perhaps an unfinished multipart
upload), which ``prune --partial-older-than`` removes once nothing has been
written to it for that long. An unfinished upload is found through its
marker, ``<file>.uploading`` beside the file, which holds the upload's id
and is rewritten after each part (so its time is the upload's last
activity) and deleted once the upload completes: ListMultipartUploads is
not needed, so neither is its permission nor a server that implements it
(it is still asked, where it answers, for an upload killed before its
marker was written).

Files stream with bounded memory: ``_Upload`` holds one part
(``ObjectStoreOptions.part_size``, 16 MiB by default) while it uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from baselinr.backup.errors import BackupError
from baselinr.backup.manifest import MANIFEST_FILE, Manifest, parse_manifest
from baselinr.backup.s3 import MAX_PARTS, MIB, ObjectStoreOptions, S3Url, error_code, make_client, translated
from baselinr.backup.store import COMPLETE, MAX_MANIFEST_BYTES, PARTIAL, Entry, check_entry, valid_name
from baselinr.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # type: ignore[import-not-found]

_DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
UPLOAD_MARKER = ".uploading"
_NO_UPLOAD_LISTING = {"NotImplemented", "AccessDenied", "501", "403", "405"}


class S3Files:
    """One backup's objects, read with bounded memory (the response body is streamed)."""

    def __init__(self, client: S3Client, url: S3Url, name: str) -> None:
        self.client = client
        self.url = url
        self.name = name

    @property
    def location(self) -> str:
        return self.url.url(self.name)

    def __str__(self) -> str:
        return self.location

    @contextmanager
    def open(self, file: str) -> Iterator[BinaryIO]:
        body = self._get(file)
        try:
            yield cast(BinaryIO, _Body(body))
        finally:
            body.close()

    def _get(self, file: str) -> Any:
        from botocore.exceptions import ClientError

        key = self.url.key(self.name, file)
        with translated(self.url, "read"):
            try:
                return self.client.get_object(Bucket=self.url.bucket, Key=key)["Body"]
            except ClientError as exc:
                if error_code(exc) in ("NoSuchKey", "404"):
                    raise FileNotFoundError(key) from None
                raise

    def read_manifest(self) -> Manifest:
        where = self.location
        try:
            with self.open(MANIFEST_FILE) as body:
                data = body.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise BackupError(
                f"{where} is not a complete backup: it has no manifest.json",
                hint="An interrupted backup has no manifest; take a new backup.",
            ) from None
        except OSError as exc:
            raise BackupError(f"Cannot read {where}/{MANIFEST_FILE}: {exc}") from None
        if len(data) > MAX_MANIFEST_BYTES:
            raise BackupError(f"{where}: manifest.json is more than {MAX_MANIFEST_BYTES:,} bytes, more than any real backup's")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BackupError(f"{where}: manifest.json is not UTF-8 text") from None
        return parse_manifest(text, where)


class _Body:
    """A response body whose network failures are ``OSError`` (so ``reader`` reports them per table)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return cast(bytes, self._body.read(None if size is None or size < 0 else size))
        except BotoCoreError as exc:
            raise OSError(f"reading from S3 failed ({exc.__class__.__name__})") from None


@dataclass
class S3Work:
    """A backup being written: its name, and the keys written so far (removed if it fails)."""

    name: str
    keys: list[str] = field(default_factory=list)


class S3Store:
    """A destination ``s3://bucket/prefix``; the client is built from ``options`` and the AWS chain."""

    def __init__(self, dest: str, options: ObjectStoreOptions | None = None) -> None:
        self.url = S3Url.parse(dest)
        self.options = options or ObjectStoreOptions()
        self._client: S3Client | None = None

    @property
    def location(self) -> str:
        return self.url.url()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            with translated(self.url, "connect to"):
                self._client = make_client(self.options)
        return self._client

    def files(self, name: str) -> S3Files:
        return S3Files(self.client, self.url, name)

    # --- writing ---------------------------------------------------------------

    def begin(self, name: str) -> S3Work:
        """Check the bucket can be listed and no backup of that name exists or is being written."""
        valid_name(name)
        prefix = self.url.key(name) + "/"
        with translated(self.url, "list"):
            found = self.client.list_objects_v2(Bucket=self.url.bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
        if found:
            raise UsageError(
                f"A backup named {name} already exists (or is being written) in {self.location}",
                hint="Choose another --name, or let the default name (with the time) be used.",
            )
        return S3Work(name)

    @contextmanager
    def create_file(self, work: S3Work, file: str) -> Iterator[BinaryIO]:
        """A new object, uploaded as it is written (one part in memory at a time)."""
        key = self.url.key(work.name, file)
        upload = _Upload(self, key)
        work.keys.append(key)
        try:
            yield cast(BinaryIO, upload)
            upload.finish()
        except BaseException:
            upload.abort()
            raise

    def destination_error(self, exc: OSError) -> None:
        return None  # S3 failures are already one-line errors (``s3.translated``)

    def publish(self, work: S3Work, name: str) -> str:
        """Nothing to rename: the manifest, uploaded last by ``writer``, made the backup complete."""
        return self.url.url(name)

    def abort(self, work: S3Work) -> None:
        """Remove what a failed backup wrote; best effort (a leftover is a partial backup, never a complete one)."""
        try:
            self._delete_all(self.url.key(work.name) + "/")
        except Exception:  # noqa: BLE001 - the error that made the backup fail is the one to report
            pass

    # --- reading ---------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every backup under the prefix, oldest first: complete ones have a manifest that checks out."""
        objects: dict[str, list[dict[str, Any]]] = {}
        base = self.url.key() + "/" if self.url.prefix else ""
        with translated(self.url, "list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.url.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    name, slash, _rest = obj["Key"][len(base) :].partition("/")
                    if slash:
                        objects.setdefault(name, []).append(obj)
        entries: list[Entry] = []
        for name, objs in objects.items():
            activity = max(o["LastModified"].timestamp() for o in objs)
            location = self.url.url(name)
            if not valid_name(name, strict=False):
                continue
            if not any(o["Key"].endswith("/" + MANIFEST_FILE) and o["Key"].count("/") == base.count("/") + 1 for o in objs):
                problem = "incomplete: no manifest.json (interrupted, still being written, or being deleted)"
                entries.append(Entry(name, location, PARTIAL, problem=problem, last_activity=activity))
                continue
            try:
                manifest = self.files(name).read_manifest()
            except BackupError as exc:
                entries.append(Entry(name, location, "invalid", problem=exc.message, last_activity=activity))
                continue
            entries.append(check_entry(name, location, manifest, activity))
        return sorted(entries, key=lambda e: (e.manifest.created_at if e.manifest else f"t:{e.last_activity}", e.name))

    def complete(self) -> list[Entry]:
        return [e for e in self.entries() if e.status == COMPLETE]

    def remove(self, entry: Entry) -> None:
        """The manifest first (the backup is then no longer complete), then every other object."""
        prefix = self.url.key(entry.name) + "/"
        with translated(self.url, "delete from"):
            self.client.delete_object(Bucket=self.url.bucket, Key=prefix + MANIFEST_FILE)
            self._delete_all(prefix)

    def _delete_all(self, prefix: str) -> None:
        """Abort the unfinished uploads under ``prefix`` (by their markers, and by listing where the server can),
        then delete every object."""
        from botocore.exceptions import ClientError

        bucket = self.url.bucket
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        uploads = []
        for key in keys:
            if key.endswith(UPLOAD_MARKER):
                upload_id = self.client.get_object(Bucket=bucket, Key=key)["Body"].read(1024).decode("utf-8", "replace")
                uploads.append((key[: -len(UPLOAD_MARKER)], upload_id.strip()))
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
                uploads += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        except ClientError as exc:
            if error_code(exc) not in _NO_UPLOAD_LISTING:
                raise
        for key, upload_id in dict.fromkeys(uploads):
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if error_code(exc) not in ("NoSuchUpload", "404", "InvalidRequest"):
                    raise
        objects = [{"Key": k} for k in keys]
        for i in range(0, len(objects), _DELETE_BATCH):
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": objects[i : i + _DELETE_BATCH], "Quiet": True})

    def resolve(self, ref: str) -> S3Files:
        """A backup by name, or ``latest`` (the newest complete one)."""
        if ref == "latest":
            complete = self.complete()
            if not complete:
                raise BackupError(f"No complete backup in {self.location}")
            return self.files(complete[-1].name)
        if not valid_name(ref, strict=False):
            raise UsageError(
                f"Backup {ref[:80]!r} is not a backup name", hint=f"'baselinr backup list --dest {self.location}' lists them."
            )
        with translated(self.url, "list"):
            found = self.client.list_objects_v2(Bucket=self.url.bucket, Prefix=self.url.key(ref) + "/", MaxKeys=1)
        if not found.get("KeyCount", 0):
            raise UsageError(
                f"Backup {ref} not found in {self.location}", hint=f"'baselinr backup list --dest {self.location}' lists them."
            )
        return self.files(ref)


class _Upload:
    """A file written to S3 as it is produced: a single PUT if it fits one part, else a multipart upload."""

    def __init__(self, store: S3Store, key: str) -> None:
        self.store = store
        self.key = key
        self.part_size = store.options.part_size
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            # The part is sent as it is (no copy of it): only the few bytes past it move to a new buffer.
            part, self.buffer = self.buffer, self.buffer[self.part_size :]
            del part[self.part_size :]
            self._send_part(part)
        return len(data)

    def flush(self) -> None:
        pass

    def _send_part(self, data: bytes | bytearray) -> None:
        s = self.store
        with translated(s.url, "write to"):
            if self.upload_id is None:
                started = s.client.create_multipart_upload(Bucket=s.url.bucket, Key=self.key, **s.options.encryption())
                self.upload_id = started["UploadId"]
                self._mark()
            number = len(self.parts) + 1
            if number > MAX_PARTS:
                raise UsageError(
                    f"{self.key} is larger than {MAX_PARTS:,} parts of {self.part_size // MIB} MiB",
                    hint="Set a larger part size with BASELINR_S3_PART_SIZE_MB.",
                )
            done = s.client.upload_part(Bucket=s.url.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data)
            self.parts.append({"PartNumber": number, "ETag": done["ETag"]})
            self._mark()

    def _mark(self) -> None:
        """Record (or touch) the unfinished upload's marker: its id, for whoever cleans up after a kill."""
        s = self.store
        assert self.upload_id is not None
        s.client.put_object(
            Bucket=s.url.bucket, Key=self.key + UPLOAD_MARKER, Body=self.upload_id.encode(), **s.options.encryption()
        )

    def finish(self) -> None:
        s = self.store
        if self.upload_id is None:
            with translated(s.url, "write to"):
                s.client.put_object(Bucket=s.url.bucket, Key=self.key, Body=bytes(self.buffer), **s.options.encryption())
            return
        if self.buffer:
            self._send_part(self.buffer)
            self.buffer = bytearray()
        with translated(s.url, "write to"):
            s.client.complete_multipart_upload(
                Bucket=s.url.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
            s.client.delete_object(Bucket=s.url.bucket, Key=self.key + UPLOAD_MARKER)

    def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            self.store.client.abort_multipart_upload(Bucket=self.store.url.bucket, Key=self.key, UploadId=self.upload_id)
            self.store.client.delete_object(Bucket=self.store.url.bucket, Key=self.key + UPLOAD_MARKER)
        except Exception:  # noqa: BLE001 - best effort: the failure being raised is the one to report
            pass
