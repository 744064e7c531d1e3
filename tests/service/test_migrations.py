"""The Alembic history builds exactly the tables the models describe."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import dispatch.models  # noqa: F401
import geo.models  # noqa: F401
import service.core.models  # noqa: F401


def test_migrations_match_the_models(sync_engine):
    with sync_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
