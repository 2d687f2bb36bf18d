"""Guildhall client: async SDK, calls, GUI and command-line mode."""
