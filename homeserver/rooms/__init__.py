"""Rooms: the single writer every event enters through, and room state."""
