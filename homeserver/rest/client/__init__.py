"""Client-Server API resources (`/_matrix/client/...`)."""
