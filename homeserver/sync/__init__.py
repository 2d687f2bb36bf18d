"""Sync: the notifier shared by /sync and the WebSocket, and the sync handler."""
