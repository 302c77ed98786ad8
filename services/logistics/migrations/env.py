"""Alembic environment for the logistics database."""

from services.kit.migrate import run_env
from services.logistics.store.tables import metadata

run_env(metadata)
