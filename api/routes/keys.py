"""API keys: issue, list and revoke (admin only), and the caller's own key (any role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, AnyRole, PartsDep, PrincipalDep, StateDep
from api.errors import error_responses
from api.schemas import INSTITUTION_ID_PATTERN
from api.services.keys import MAX_LABEL_CHARS, Role

router = APIRouter(prefix="/keys", tags=["keys"], responses=error_responses(401, 403))


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # the key service's rule: a contributor key names its institution, no other key does
        json_schema_extra={
            "if": {"properties": {"role": {"const": Role.CONTRIBUTOR.value}}},
            "then": {
                "required": ["institution_id"],
                "properties": {
                    "institution_id": {"type": "string", "pattern": INSTITUTION_ID_PATTERN}
                },
            },
            "else": {"properties": {"institution_id": {"type": "null"}}},
        },
    )

    role: Role
    institution_id: str | None = Field(
        None, description="The institution a contributor key acts for (contributors only)."
    )
    label: str = Field(
        "",
        max_length=MAX_LABEL_CHARS,
        description="What the key is for: printable characters, once trimmed.",
    )


class KeyMePublic(BaseModel):
    """The caller's own key, as a client (the web console) needs it to know who it acts as."""

    key_id: str
    role: Role | None = Field(description="null only on a server serving without keys.")
    institution_id: str | None = Field(description="The institution a contributor acts for.")
    label: str
    local: bool = Field(description="A server serving without keys (--insecure-local).")


@router.get("/me", dependencies=[AnyRole])
def read_own_key(state: StateDep, who: PrincipalDep) -> KeyMePublic:
    """The key this request was made with: its id, role, institution and label (never the
    secret or its hash). Any valid key may ask."""
    return KeyMePublic.model_validate(state.keys.describe(who))


@router.post("", status_code=201, dependencies=[Admin], responses=error_responses(404, 422))
def create_key(body: KeyCreate, parts: PartsDep, who: PrincipalDep) -> dict[str, Any]:
    """Issue a key. The answer holds the key itself (``key``), shown this once: the server keeps
    only an Argon2id hash of its secret."""
    issued = parts.keys.create(
        role=body.role,
        institution_id=body.institution_id,
        label=body.label,
        issued_by=who.attribution,
    )
    return issued.to_dict()


@router.get("", dependencies=[Admin])
def list_keys(parts: PartsDep) -> list[dict[str, Any]]:
    """Every key ever issued (revoked ones included), without secrets or their hashes."""
    return [k.to_public() for k in parts.keys.list()]


@router.delete("/{key_id}", dependencies=[Admin], responses=error_responses(404))
def revoke_key(key_id: str, parts: PartsDep, who: PrincipalDep) -> dict[str, Any]:
    """Revoke a key: it stops working on the next request. Idempotent."""
    return parts.keys.revoke(key_id, revoked_by=who.attribution).to_public()
