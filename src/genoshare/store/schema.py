"""Every table of the node on one metadata object: what Alembic migrates and the schema test compares.

``store.models`` holds the node's core tables; the Beacon's, the privacy defences' and the network's tables
have modules of their own here, and importing them registers their tables on ``Base.metadata``.
"""

from genoshare.store import beacon_tables, network_tables, privacy_tables
from genoshare.store.models import Base

metadata = Base.metadata
#: The modules whose tables live outside ``store.models``.
TABLE_MODULES = (beacon_tables, privacy_tables, network_tables)
