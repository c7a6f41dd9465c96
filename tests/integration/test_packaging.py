"""The package alone carries what its drivers need: installed into a fresh virtualenv (no system
site-packages, nothing else installed), PyMySQL's RSA path works, which MySQL 8's default
authentication (``caching_sha2_password`` over a connection without TLS) takes.

pip installs the package and its declared dependencies from the package index, as a user's
``pip install .`` does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cli import ROOT

RSA_PATH = """
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
import pymysql._auth

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
print(len(pymysql._auth.sha2_rsa_encrypt(b"password", b"s" * 20, pem)))
"""


def test_a_fresh_install_carries_pymysql_rsa(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran = subprocess.run([python, "-c", RSA_PATH], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.strip() == "256", ran.stderr[-3000:]
