"""Sync machinery shared by /sync and the WebSocket: the notifier, the change
index and caches, tokens and filters (the /sync use case is handlers/sync.py)."""
