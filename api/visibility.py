"""What a principal may see of a batch or record (see the role matrix in docs/API.md).

Texts and salts are the owner's: a record's canonical fields, its salt and its unsalted hash are
shown to the contributor of the institution that submitted it (and to ``--insecure-local``);
everyone else gets the record with those fields null. The trainer reads texts through the
accepted feed, not here.
"""

from __future__ import annotations

import dataclasses

from api.services.keys import NotAuthorized, Principal, Role
from ledger.views import RecordView


def check_institution(who: Principal, institution_id: str) -> None:
    """A contributor may only touch its own institution's batches and records; the other roles
    pass (what they see is limited by :func:`record_for`)."""
    if who.role is Role.CONTRIBUTOR and not who.owns(institution_id):
        raise NotAuthorized("this belongs to another institution")


def require_owner(who: Principal, institution_id: str, *, what: str) -> None:
    """Only the owning contributor may (proof bundles: they hold the text and the salt)."""
    if not who.owns(institution_id):
        raise NotAuthorized(f"only the institution that submitted a record may {what}")


def record_for(view: RecordView, who: Principal, institution_id: str) -> RecordView:
    """``view`` as ``who`` may see it: whole for the owner, without text, salt and unsalted
    hash for anyone else."""
    if who.owns(institution_id):
        return view
    return dataclasses.replace(view, record=None, salt=None, record_hash=None)
