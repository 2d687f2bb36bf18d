"""The real-time stream: /sync pushed over a WebSocket (autobahn), with requests."""
