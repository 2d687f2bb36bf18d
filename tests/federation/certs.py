"""A throwaway certificate authority for federation tests.

Matrix federation is HTTPS only, and Synapse checks a peer's certificate
against an IP SAN when the server name is an IP literal (no SNI, a CN is not
enough). `TestCA` makes a CA once per test session and issues leaf
certificates with IP and DNS SANs for loopback servers; servers trust the CA
(`--federation-ca`, Synapse's `federation_custom_ca_list`) with verification on.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# RSA: every TLS stack our peers use (OpenSSL via Twisted, Python's ssl) loads it.
KEY_BITS = 2048
VALIDITY = datetime.timedelta(days=30)
# Clocks of the processes under test may disagree slightly with ours.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class IssuedCert:
    """A leaf certificate and its private key, as PEM files."""

    cert_path: Path
    key_path: Path
    ips: tuple[str, ...]
    dns_names: tuple[str, ...]


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Guildhall tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


class TestCA:
    """A CA whose key lives in `directory`; `issue` writes leaf certificates there."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, directory: Path, name: str = "Guildhall test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        public = self._key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = _write(directory / "ca.crt",
                                self.certificate.public_bytes(serialization.Encoding.PEM))
        self._serials = itertools.count(1)

    def issue(self, ips: tuple[str, ...] | list[str] = (),
              dns_names: tuple[str, ...] | list[str] = ()) -> IssuedCert:
        """A server certificate valid for these IP addresses and DNS names."""
        ips, dns_names = tuple(ips), tuple(dns_names)
        if not ips and not dns_names:
            raise ValueError("a certificate needs at least one IP or DNS name")
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        alt_names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        alt_names += [x509.DNSName(name) for name in dns_names]
        ca_key_id = self.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name((ips + dns_names)[0])).issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_key_id), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        stem = f"leaf{next(self._serials)}-" + re.sub(r"[^A-Za-z0-9.]", "_",
                                                      (ips + dns_names)[0])
        return IssuedCert(
            cert_path=_write(self.directory / f"{stem}.crt",
                             certificate.public_bytes(serialization.Encoding.PEM)),
            key_path=_write(self.directory / f"{stem}.key", _key_pem(key), private=True),
            ips=ips, dns_names=dns_names)

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context that trusts this CA only, with hostname checks on."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.cert_path))
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context
