"""The Server-Server API resources: thin, each area a `register(router, ...)`."""
