"""Every table of the node on one metadata object: what Alembic migrates and the schema test compares.

Packages keep their own tables next to their code; importing those modules registers their tables on
``Base.metadata``.
"""

from genoshare.access import privacy_tables
from genoshare.beacon import tables as beacon_tables
from genoshare.store.models import Base

metadata = Base.metadata
#: The modules whose tables live outside ``store.models``.
TABLE_MODULES = (beacon_tables, privacy_tables)
