"""The recipe library (``byr recipes``): the bundled training recipes, resolved, with advice."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.deps import AnyRole
from api.errors import error_responses
from api.routes.training import RecipeWarningPublic
from api.services.recipes import (
    MAX_OVERRIDE_CHARS,
    MAX_OVERRIDES,
    describe_recipe,
    parse_overrides,
    recipe_library,
)

router = APIRouter(
    prefix="/recipes",
    tags=["training"],
    dependencies=[AnyRole],
    responses=error_responses(401, 403, 422),
)

Records = Annotated[
    int | None,
    Query(ge=1, le=100_000_000, description="Corpus size, for the advice that depends on it."),
]


class RecipePublic(BaseModel):
    """A recipe: its method, description, hash, every setting (``recipe``, defaults filled in)
    and the settings outside their advised range, with the reason (advice only)."""

    name: str
    method: str
    description: str
    hash: str
    recipe: dict[str, Any]
    warnings: list[RecipeWarningPublic]


@router.get("")
def list_recipes(records: Records = None) -> list[RecipePublic]:
    """Every bundled recipe, as `byr recipes --json` lists them."""
    return [RecipePublic.model_validate(r) for r in recipe_library(records=records)]


@router.get("/{name}", responses=error_responses(404))
def show_recipe(
    name: Annotated[
        str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="A bundled recipe name.")
    ],
    records: Records = None,
    overrides: Annotated[
        list[str],
        Query(
            alias="set",
            description=f"Override a field, `key=value` (`training.<field>`, "
            f"`method_config.<field>`, `method`; at most {MAX_OVERRIDES}, each at most "
            f"{MAX_OVERRIDE_CHARS} characters; values read as YAML scalars), as `byr recipes "
            "NAME --set`.",
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults
) -> RecipePublic:
    """One recipe resolved with the overrides, and the advice on it (`byr recipes NAME
    --json`); 404 for a name that is not bundled, 422 naming a bad override."""
    parsed = parse_overrides(overrides, where="query parameter set")
    return RecipePublic.model_validate(describe_recipe(name, overrides=parsed, records=records))
