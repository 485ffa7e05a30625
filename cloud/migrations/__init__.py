"""Alembic migrations, shipped inside the package and run by ``cloud.db.migrate``."""
