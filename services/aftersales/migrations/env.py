"""Alembic environment for the after-sales database."""

from services.aftersales.store.tables import metadata
from services.kit.migrate import run_env

run_env(metadata)
