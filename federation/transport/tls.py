"""TLS for outgoing federation connections.

Certificates are checked against the name discovery chose (the IP address
for IP literals, with no SNI; the host name otherwise, with SNI), trusting
the system's CAs plus an optional CA file; or not checked at all when the
operator turned verification off for local testing.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@implementer(IOpenSSLTrustRoot)
class SystemAndFileTrustRoot:
    """The platform's CA store plus the CAs in one PEM file."""

    def __init__(self, ca_path: Path) -> None:
        self._ca_path = str(ca_path)

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        context.set_default_verify_paths()
        context.load_verify_locations(self._ca_path)


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    """TLS without certificate checks (still with SNI for host names)."""

    def __init__(self, tls_name: str) -> None:
        self._sni = None if is_ip_literal(tls_name) else tls_name.encode("idna")
        self._context = ssl.CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tls_protocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        return connection


@implementer(IPolicyForHTTPS)
class FederationTlsPolicy:
    """Makes the TLS connection creator for a server's certificate name (and
    serves as an Agent's HTTPS policy, for `.well-known` requests)."""

    def __init__(self, ca_path: Path | None = None, verify: bool = True) -> None:
        self.verify = verify
        self._trust_root: Any = (
            SystemAndFileTrustRoot(ca_path) if ca_path is not None else ssl.platformTrust())

    def creator_for(self, tls_name: str) -> IOpenSSLClientConnectionCreator:
        name = tls_name.strip("[]")
        if not self.verify:
            return _UnverifiedCreator(name)
        # Twisted checks an IP SAN and sends no SNI when `name` is an IP address.
        return ssl.optionsForClientTLS(name, trustRoot=self._trust_root)

    def creatorForNetloc(self, hostname: bytes, port: int
                         ) -> IOpenSSLClientConnectionCreator:
        return self.creator_for(hostname.decode("ascii"))
