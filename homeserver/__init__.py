"""The Guildhall homeserver: Matrix Client-Server API on Twisted."""
