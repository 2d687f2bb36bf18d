"""Storage: SQLAlchemy Core tables, migrations and narrow stores.

SQL lives only here. Every transaction is a named function run on a thread
pool, never on the reactor thread.
"""
