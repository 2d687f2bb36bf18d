"""TLS for the federation listener: a self-signed development certificate,
and the server-side context built from PEM files.

Matrix servers talk HTTPS only. For an IP-literal server name peers send no
SNI and check an IP subjectAltName (a CN is not enough), so the development
certificate carries an IP SAN for IP literals and a DNS SAN otherwise.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.ssl import CertificateOptions

from federation.protocol.identifiers import split_server_name

SELF_SIGNED_VALIDITY = datetime.timedelta(days=3650)
# Peers' clocks may run a little behind ours.
BACKDATE = datetime.timedelta(hours=1)


def subject_alt_name(server_name: str) -> x509.GeneralName:
    """The SAN a certificate for `server_name` needs: its host, without the port."""
    host, _port = split_server_name(server_name)
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def generate_self_signed(server_name: str, cert_path: Path, key_path: Path) -> None:
    """Write a self-signed certificate for `server_name` and its key (PEM, key 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    host, _port = split_server_name(server_name)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host.strip("[]"))])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + SELF_SIGNED_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([subject_alt_name(server_name)]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def server_tls_options(cert_path: Path, key_path: Path) -> CertificateOptions:
    """The listener's TLS context: the leaf certificate first, then any chain."""
    try:
        leaf, *chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
        private_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except ValueError as exc:
        raise ValueError(f"bad PEM in {cert_path} or {key_path}: {exc}") from exc
    return CertificateOptions(privateKey=private_key, certificate=leaf,
                              extraCertChain=chain or None)
