"""API keys: identities with one role each, issued, listed, revoked and checked.

A key reads ``byr_<key id>_<secret>``: the key id (``k`` + 12 hex digits) is public and names the
key in events and lists; the secret is 32 random bytes (URL-safe base64) shown once, when the key is
issued. The log (``ApiKeyIssued``) keeps an Argon2id hash of the secret (argon2-cffi, RFC 9106
parameters), so a copy of the log or the state database does not give anyone a working key.

Argon2id is slow on purpose (about 0.15 s here), too slow to run on every request; a key that
verified once is remembered in this process as the SHA-256 of the whole key, so later requests
cost a dictionary lookup and a constant-time comparison. Revocation is checked on every request
against the projection, which the server brings up to the log before it answers when the log
moved (a key revoked with ``byr keys revoke`` on the server's home stops working at once).

Roles (see docs/API.md for what each may do): ``admin`` manages institutions and keys;
``contributor`` acts for one institution; ``auditor`` reads anchors, reports without texts,
balances and verifies; ``trainer`` reads the accepted feed and trains.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ledger.application import CorpusLedger
from ledger.errors import Conflict, InvalidRequest, NotFound
from ledger.events import ApiKeyIssued, ApiKeyRevoked
from ledger.ids import require_institution_id
from ledger.projections.keys import ApiKeyView

KEY_PREFIX = "byr"
_KEY_RE = re.compile(r"^byr_(k[0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_LABEL_CHARS = 100

OPERATOR = "operator"
"""Who issues or revokes with ``byr keys`` on the server's home (no key needed there)."""


class Role(StrEnum):
    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    AUDITOR = "auditor"
    TRAINER = "trainer"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the key's id, role and (contributors) institution.

    ``local`` is the principal of a server started with ``--insecure-local``: every check passes.
    """

    key_id: str
    role: Role | None
    institution_id: str | None = None
    local: bool = False

    @classmethod
    def insecure_local(cls) -> Principal:
        return cls(key_id="local", role=None, local=True)

    def has(self, *roles: Role) -> bool:
        return self.local or self.role in roles

    def owns(self, institution_id: str) -> bool:
        """Whether this principal acts for ``institution_id`` (sees its texts and salts)."""
        return self.local or (
            self.role is Role.CONTRIBUTOR and self.institution_id == institution_id
        )

    @property
    def attribution(self) -> str:
        """What events this principal causes record as their author."""
        return self.key_id


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: the secret ``key`` is here and nowhere else."""

    key: str
    key_id: str
    role: str
    institution_id: str | None
    label: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotAuthorized(InvalidRequest):
    """A valid key whose role (or institution) does not allow the request (HTTP 403)."""


class InvalidKey(InvalidRequest):
    """No key, a malformed, unknown or revoked key (HTTP 401)."""


def generate_key() -> str:
    """A new API key, ``byr_<key id>_<secret>`` (48 random bits of id, 256 of secret); nothing
    is recorded until it is issued (:meth:`KeyService.create`)."""
    return f"byr_k{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidRequest(f"role: expected one of {', '.join(r.value for r in Role)}") from None


class KeyService:
    """Issue, list, revoke and check the API keys of one ledger."""

    def __init__(self, *, ledger: CorpusLedger, hasher: PasswordHasher | None = None) -> None:
        self.ledger = ledger
        self._hasher = hasher or PasswordHasher()
        self._verified: dict[str, bytes] = {}
        """key id -> sha256 of the whole key, for keys that verified in this process."""
        self._lock = threading.Lock()

    # -- managing ------------------------------------------------------------------------------

    def create(
        self,
        *,
        role: Role | str,
        institution_id: str | None = None,
        label: str = "",
        issued_by: str = OPERATOR,
        key: str | None = None,
    ) -> IssuedKey:
        """Issue a key. A contributor key needs an active, registered institution; the other
        roles take none. Raises :class:`InvalidRequest` naming the field.

        ``key`` issues a key the operator generated beforehand (:func:`generate_key`, ``byr keys
        generate``) so that it can be handed to a deployment through its environment; by default
        a new one is drawn here."""
        role = parse_role(role) if isinstance(role, str) else role
        if role is Role.CONTRIBUTOR:
            if institution_id is None:
                raise InvalidRequest("institution_id: a contributor key acts for one institution")
            require_institution_id(institution_id)
            institution = self.ledger.institution(institution_id)
            if not institution.active:
                raise InvalidRequest("institution_id: the institution is not active")
        elif institution_id is not None:
            raise InvalidRequest(f"institution_id: only contributor keys name one, not {role}")
        label = label.strip()
        if len(label) > MAX_LABEL_CHARS or any(not c.isprintable() for c in label):
            raise InvalidRequest(f"label: at most {MAX_LABEL_CHARS} printable characters")
        if key is None:
            key = generate_key()
        match = _KEY_RE.match(key)
        if match is None:
            raise InvalidRequest("key: not an API key of the form byr_<key id>_<secret>")
        key_id, secret = match.groups()
        if self.ledger.api_key(key_id) is not None:
            raise Conflict("key: its key id is already issued; generate another key")
        self.ledger.append(
            f"key-{key_id}",
            [
                ApiKeyIssued(
                    key_id=key_id,
                    role=role.value,
                    institution_id=institution_id,
                    label=label,
                    secret_hash=self._hasher.hash(secret),
                    issued_by=issued_by,
                )
            ],
            expected_version=0,
        )
        view = self.ledger.api_key(key_id)
        assert view is not None
        return IssuedKey(
            key=f"{KEY_PREFIX}_{key_id}_{secret}",
            key_id=key_id,
            role=role.value,
            institution_id=institution_id,
            label=label,
            created_at=view.created_at,
        )

    def list(self) -> list[ApiKeyView]:
        self.ledger.sync()
        return self.ledger.api_keys()

    def revoke(self, key_id: str, *, revoked_by: str = OPERATOR) -> ApiKeyView:
        """Revoke a key (idempotent); raises :class:`NotFound` for an unknown key id."""
        self.ledger.sync()
        view = self.ledger.api_key(key_id)
        if view is None:
            raise NotFound("no API key has this id (see `byr keys list`)")
        if view.active:
            self.ledger.append(
                f"key-{key_id}", [ApiKeyRevoked(key_id=key_id, revoked_by=revoked_by)]
            )
        with self._lock:
            self._verified.pop(key_id, None)
        revoked = self.ledger.api_key(key_id)
        assert revoked is not None
        return revoked

    def has_active_admin(self) -> bool:
        self.ledger.sync()
        return any(k.active and k.role == Role.ADMIN for k in self.ledger.api_keys())

    def describe(self, who: Principal) -> dict[str, Any]:
        """What the key ``who`` authenticated with says about itself: ``key_id``, ``role``,
        ``institution_id``, ``label`` and ``local`` (a server serving without keys, where
        ``role`` is ``None`` and every check passes). Nothing secret, not even the hash."""
        if who.local:
            return {
                "key_id": who.key_id,
                "role": None,
                "institution_id": None,
                "label": "",
                "local": True,
            }
        view = self.ledger.api_key(who.key_id)
        return {
            "key_id": who.key_id,
            "role": who.role.value if who.role is not None else None,
            "institution_id": who.institution_id,
            "label": view.label if view is not None else "",
            "local": False,
        }

    # -- checking ------------------------------------------------------------------------------

    def authenticate(self, key: str) -> Principal:
        """The principal of ``key``; raises :class:`InvalidKey` (never saying which part was
        wrong, and never repeating the key) for a malformed, unknown or revoked key.

        Reads the projection as it stands: the caller brings it up to the log first.
        """
        match = _KEY_RE.match(key)
        if match is None:
            raise InvalidKey("the API key is not valid")
        key_id, secret = match.group(1), match.group(2)
        view = self.ledger.api_key(key_id)
        if view is None or not view.active:
            with self._lock:
                self._verified.pop(key_id, None)
            raise InvalidKey("the API key is not valid (unknown or revoked)")
        digest = hashlib.sha256(key.encode("ascii")).digest()
        with self._lock:
            known = self._verified.get(key_id)
        if known is None or not hmac.compare_digest(known, digest):
            try:
                self._hasher.verify(view.secret_hash, secret)
            except (VerificationError, InvalidHashError):
                raise InvalidKey("the API key is not valid") from None
            with self._lock:
                self._verified[key_id] = digest
        return Principal(key_id=key_id, role=Role(view.role), institution_id=view.institution_id)
