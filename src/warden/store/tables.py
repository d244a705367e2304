"""Every table module, imported so `metadata` knows the whole schema.

Alembic's environment and the models-versus-migrations check read
`metadata` from here; a new table module is added to the import list below.
"""

from __future__ import annotations

from warden.store import (  # noqa: F401
    banks,
    console,
    decisions,
    feed_tables,
    invites,
    keypoint_features,
    places,
    tokens,
)
from warden.store.base import Base

metadata = Base.metadata
