"""Persistence: SQLAlchemy models, the engine/session factory, migrations and repositories."""
