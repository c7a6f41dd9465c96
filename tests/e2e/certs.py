"""Certificates and keys for the end-to-end test control plane.

Generates, with the ``cryptography`` package, a throw-away certificate
authority, the API server's serving certificate for 127.0.0.1/localhost,
client certificates (an administrator in ``system:masters`` and the
controller manager) and the service-account signing key pair. Everything is
ECDSA P-256, which is quick to generate and accepted by every component.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class CertPair:
    """PEM files of one certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterCerts:
    """All files the control plane needs, inside one directory."""

    ca: CertPair
    serving: CertPair
    admin: CertPair
    controller_manager: CertPair
    sa_key: Path
    sa_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(directory: Path) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name("baselinr-e2e-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    _write_cert(cert, pair.cert)
    _write_key(key, pair.key)
    return pair, cert, key


def _issue(
    directory: Path,
    stem: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organization: str | None = None,
    server: bool = False,
    extra_ips: tuple[str, ...] = (),
) -> CertPair:
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips),
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write_cert(cert, pair.cert)
    _write_key(key, pair.key)
    return pair


def generate(directory: Path, *, extra_ips: tuple[str, ...] = ()) -> ClusterCerts:
    """Write a fresh set of certificates and keys into ``directory``.

    ``extra_ips`` are further addresses of the API server's serving
    certificate (the real node tier's bridge address, which its pods dial).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_cert, ca_key = _make_ca(directory)
    serving = _issue(
        directory, "apiserver", ca_cert, ca_key, common_name="kube-apiserver", server=True, extra_ips=extra_ips
    )
    admin = _issue(directory, "admin", ca_cert, ca_key, common_name="e2e-admin", organization="system:masters")
    controller_manager = _issue(
        directory,
        "controller-manager",
        ca_cert,
        ca_key,
        common_name="system:kube-controller-manager",
        # The controllers share this identity (no per-controller service
        # account credentials), so give it full rights.
        organization="system:masters",
    )
    sa_private = _key()
    sa_key = directory / "sa.key"
    sa_pub = directory / "sa.pub"
    _write_key(sa_private, sa_key)
    sa_pub.write_bytes(
        sa_private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return ClusterCerts(ca, serving, admin, controller_manager, sa_key, sa_pub)


def issue_client(pki: ClusterCerts, stem: str, *, common_name: str, organization: str | None = None) -> CertPair:
    """A further client certificate signed by ``pki``'s CA, written beside it (e.g. a kubelet's)."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return _issue(pki.ca.cert.parent, stem, ca_cert, ca_key, common_name=common_name, organization=organization)
