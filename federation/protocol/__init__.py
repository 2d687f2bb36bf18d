"""The pure Matrix protocol core.

Identifiers, canonical JSON, room versions, PDUs, redaction, hashing, signing,
power levels, auth-event selection, authorization rules and state resolution.
Everything here is a function of its inputs: no I/O, no clock, no reactor. It
imports only the standard library, canonicaljson, signedjson and PyNaCl.
"""
