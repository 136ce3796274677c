"""How a dataset's files are kept at rest: Crypt4GH-encrypted (always allowed), or plaintext (public only).

Plaintext storage exists for speed: a public dataset's files are open to anyone anyway, and serving them
straight from disk skips decryption, the largest cost of streaming (``docs/htsget.md``, Performance).
Anything that needs an access decision (registered, controlled) must stay encrypted at rest, so the option
is refused for those levels here, when a dataset is created and again at every ingest.
"""

from __future__ import annotations

from genoshare.access.granularity import AccessLevel
from genoshare.errors import InvalidInput


def check_plaintext_allowed(dataset_id: str, access_level: str) -> None:
    """Raise ``InvalidInput`` unless a dataset at ``access_level`` may store its files unencrypted."""
    if access_level != AccessLevel.PUBLIC:
        raise InvalidInput(
            f"dataset {dataset_id} is {access_level}: its files must stay Crypt4GH-encrypted at rest; "
            "--store-plaintext is only for public datasets"
        )
