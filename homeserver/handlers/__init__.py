"""Use cases: what each endpoint does, with no twisted.web and no SQL."""
