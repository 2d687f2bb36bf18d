"""Outgoing federation: server discovery, TLS, X-Matrix signed requests, backoff."""
