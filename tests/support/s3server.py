"""A real S3 server for the object-storage backup tests: s3s-fs on loopback.

s3s-fs (the s3s project's S3 service over a local directory, crates.io,
Apache-2.0) is built once per machine by ``tests/s3/build-s3s-fs.sh``
(cached under ``~/.cache/baselinr-test``; ``BASELINR_TEST_S3S_FS`` names
another binary). ``start_s3`` runs it in a fresh temporary directory on a
free loopback port with one access key, and it is stopped by process id at
the end of the session. It signs and checks requests (SigV4) like S3, keeps
multipart uploads as files of its own (``.upload_id-*`` in its root, which
the tests look at to see an upload aborted), and has one identity: there
are no access policies to deny a listing with, and server-side encryption
headers are accepted and not applied.

Why s3s-fs, measured from scratch on the 2-CPU machine of the test runs
(see the report in the change that added it): SeaweedFS's S3 gateway, the
other candidate, is one ``weed`` binary of about 1,900 Go packages, over
400 CPU-seconds to compile (more than four minutes of the CI run's budget);
s3s-fs builds in a fraction of that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

BUILD = Path(__file__).resolve().parents[1] / "s3" / "build-s3s-fs.sh"
REGION = "us-east-1"


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


@dataclass
class S3Server:
    """A running S3 server: its endpoint, its keys, and the directory it keeps objects and uploads in."""

    endpoint: str
    admin: Keys
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def env(self, keys: Keys | None = None) -> dict[str, str]:
        """The environment a client needs: the AWS chain's variables, and nothing from a user's profile."""
        return {
            **(keys or self.admin).env(),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self, keys: Keys | None = None) -> Any:
        import boto3
        from botocore.config import Config

        k = keys or self.admin
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=k.access_key,
            aws_secret_access_key=k.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 3},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def unfinished_uploads(self) -> list[str]:
        """The multipart uploads the server still holds (their part files in its root)."""
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith(".upload_id-"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def s3s_fs_binary() -> str:
    explicit = os.environ.get("BASELINR_TEST_S3S_FS")
    if explicit:
        return explicit
    proc = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"building s3s-fs failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def start_s3(root: Path, host: str = "127.0.0.1") -> S3Server:
    """s3s-fs on a free port of ``host`` (loopback; a test bridge's address for pods)."""
    binary = s3s_fs_binary()
    base = root / f"s3-{uuid.uuid4().hex[:8]}"
    data = base / "data"
    data.mkdir(parents=True)
    admin = Keys("BASELINRTEST" + uuid.uuid4().hex[:8].upper(), "secret-" + uuid.uuid4().hex)
    port = free_port()
    log = base / "s3s-fs.log"
    cmd = [
        binary,
        "--host",
        host,
        "--port",
        str(port),
        "--access-key",
        admin.access_key,
        "--secret-key",
        admin.secret_key,
        str(data),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    server = S3Server(f"http://{host}:{port}", admin, data, proc, log)
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"s3s-fs exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            server.client().list_buckets()
            return server
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"s3s-fs was not ready in 60s ({last}):\n{log.read_text(errors='replace')[-3000:]}")
