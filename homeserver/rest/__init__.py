"""Thin HTTP resources: parse, validate, one handler call, return (status, body)."""
