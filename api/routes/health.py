"""Liveness: answers without touching the ledger, so it stays quick while a long request runs."""

from __future__ import annotations

from fastapi import APIRouter

from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> HealthPublic:
    """The process is up and serving requests."""
    return HealthPublic()
