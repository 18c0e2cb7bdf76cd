"""TLS for `ferry serve` and `ferry dev --tls`: the server's SSL context and a local CA.

The context is built in the process that serves (each of `--workers N`): an `ssl.SSLContext`
does not cross a process boundary, the certificate and key paths do.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from ferry.config import Settings


class TLSFileError(RuntimeError):
    """The certificate or key cannot be read or do not belong together; the message says which."""


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The context `ferry serve` listens with, or None for plain HTTP."""
    if not settings.tls:
        return None
    for setting, name in (
        ("FERRY_TLS_CERT_FILE", settings.tls_cert_file),
        ("FERRY_TLS_KEY_FILE", settings.tls_key_file),
    ):
        if not os.access(name, os.R_OK) or not Path(name).is_file():
            raise TLSFileError(f"{setting}: cannot read {name}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (ssl.SSLError, ValueError) as error:
        pair = f"the certificate {settings.tls_cert_file} with the key {settings.tls_key_file}"
        raise TLSFileError(f"cannot load {pair}: {error}") from None
    return context


# `ferry dev --tls`: one CA per data directory, one server certificate per region.

_VALID = datetime.timedelta(days=825)  # the longest lifetime clients (macOS) accept for a leaf


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with its mode set before it holds anything."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


@dataclass(frozen=True)
class DevCA:
    """`DATA/ca/ca.crt` alone in its directory, so that directory can be a client's cert dir
    (skopeo's --cert-dir, docker's certs.d take every *.crt as a CA, and want a *.cert for any
    *.key); the key apart, 0600 in a 0700 directory."""

    cert_file: Path
    key_file: Path

    @classmethod
    def at(cls, data: Path) -> DevCA:
        return cls(data / "ca" / "ca.crt", data / "ca-key" / "ca.key")


def ensure_dev_ca(ca: DevCA) -> DevCA:
    """The CA, made on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if ca.cert_file.exists() and ca.key_file.exists():
        return ca
    ca.cert_file.parent.mkdir(parents=True, exist_ok=True)
    ca.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ferry dev CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(ca.key_file, pem_key, 0o600)
    _write(ca.cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca


def issue_server_certificate(ca: DevCA, directory: Path, name: str) -> ServerCertificate:
    """A certificate for 127.0.0.1 and localhost, signed by the CA in `ca_directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca.cert_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    result = ServerCertificate(directory / "server.crt", directory / "server.key")
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(result.key_file, pem_key, 0o600)
    _write(result.cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return result
