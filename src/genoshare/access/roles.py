"""Who holds which role at this node: data stewards, access committee members, and the node's operator.

Roles come from the node, never from what a caller claims: a steward is an account (subject at issuer)
listed in the settings (``roles.stewards``), a committee member an account on a dataset's committee list.
The operator, at the node's own command line, holds the data directory with its keys and database; that is
their credential, so they act as steward of every dataset. Only the command line makes an ``Operator``;
a request never does, whatever subject its passport names.

The web portal asks ``Roles.is_steward`` and ``Roles.committees_of`` to decide what a signed-in user sees.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from genoshare.access.passports import Identity
from genoshare.errors import NotFound, PermissionDenied
from genoshare.settings import Account
from genoshare.store.db import Database
from genoshare.store.models import Dataset


@dataclass(frozen=True)
class Operator:
    """The node's operator acting at its own command line: steward of every dataset."""

    #: The operating-system account that ran the command, as the audit log names them.
    user: str

    @property
    def actor(self) -> str:
        """How the audit log names the operator; without ``@``, so never the name of a passport holder."""
        return f"operator:{self.user}"

    @classmethod
    def at_command_line(cls) -> Operator:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # a container user with no name
            user = f"uid-{os.getuid()}"
        return cls(user.replace("@", "_"))


#: Who acts on access requests: a passport holder (through the API) or the operator (command line).
Caller = Identity | Operator


class Roles:
    """Decides who is a steward and who sits on which access committee."""

    def __init__(self, database: Database, stewards: Iterable[Account]) -> None:
        self.database = database
        self._stewards = frozenset((account.subject, account.issuer) for account in stewards)

    def is_steward(self, caller: Caller | None) -> bool:
        """True for the operator and for a passport of an account listed in ``roles.stewards``."""
        if isinstance(caller, Operator):
            return True
        return caller is not None and (caller.subject, caller.issuer) in self._stewards

    def committees_of(self, caller: Caller) -> set[str]:
        """The datasets on whose access committee the caller sits (all of them for a steward)."""
        with self.database.sessions() as session:
            committees = list(session.execute(select(Dataset.id, Dataset.committee)))
        if self.is_steward(caller):
            return {dataset_id for dataset_id, _ in committees}
        return {dataset_id for dataset_id, members in committees if caller.actor in (members or ())}

    def on_any_committee(self, caller: Caller, dataset_ids: Sequence[str]) -> bool:
        """Whether the caller sits on the committee of at least one of these datasets (a steward on all)."""
        if self.is_steward(caller):
            return True
        with self.database.sessions() as session:
            committees = session.scalars(select(Dataset.committee).where(Dataset.id.in_(list(dataset_ids))))
            return any(caller.actor in (members or ()) for members in committees)

    def require_committee(self, caller: Caller, dataset_ids: Sequence[str]) -> None:
        """Allow a committee's step (decide a request, read a usage report) for every one of these datasets.

        Raises ``NotFound`` for a dataset the node does not have and ``PermissionDenied`` for one whose
        committee the caller is not on; a steward passes for every dataset.
        """
        if self.is_steward(caller):
            return
        wanted = list(dict.fromkeys(dataset_ids))
        with self.database.sessions() as session:
            rows = session.execute(select(Dataset.id, Dataset.committee).where(Dataset.id.in_(wanted)))
            committees = {dataset_id: members for dataset_id, members in rows}
        for dataset_id in wanted:
            if dataset_id not in committees:
                raise NotFound(f"no dataset {dataset_id!r}")
            if caller.actor not in (committees[dataset_id] or ()):
                raise PermissionDenied(f"you are not on the access committee of dataset {dataset_id}")
