"""What a file is served as once ``AccessPolicy.check_object`` has named the people its consent leaves out.

DRS, htsget and ``/data`` depend on this protocol rather than on the governance code that makes the
subsets (``genoshare.governance.subsets.Subsets``), which the composition root hands them: one service
package does not import another.
"""

from __future__ import annotations

from typing import Protocol

from genoshare.store.models import DataObject


class ServedFiles(Protocol):
    def served(self, row: DataObject, excluded: frozenset[str]) -> DataObject:
        """``row`` itself when nobody is excluded, else its copy without ``excluded`` (made once, then reused)."""
        ...
