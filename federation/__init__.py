"""Guildhall federation: the Matrix Server-Server API and the pure protocol core."""
