"""The recipe library: the bundled training recipes, resolved, with their advice.

One service for both doors, so that ``byr recipes [NAME] --json`` and ``GET /v1/recipes[/{name}]``
answer the same document: ``name``, ``method``, ``description``, ``hash``, ``recipe`` (every
setting, defaults filled in) and ``warnings`` (the settings outside their advised range and why,
from :mod:`trainer.advice`; advice only, nothing is changed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ledger.errors import InvalidRequest, NotFound

MAX_OVERRIDES = 64
"""At most this many ``key=value`` overrides in one request."""
MAX_OVERRIDE_CHARS = 200


def parse_overrides(items: Iterable[str], *, where: str = "overrides") -> dict[str, Any]:
    """``key=value`` pairs as recipe overrides; values are read as YAML scalars (numbers,
    booleans, lists). Raises :class:`InvalidRequest` starting with ``where``."""
    import yaml

    overrides: dict[str, Any] = {}
    for count, item in enumerate(items, start=1):
        if count > MAX_OVERRIDES:
            raise InvalidRequest(f"{where}: at most {MAX_OVERRIDES}")
        if len(item) > MAX_OVERRIDE_CHARS:
            raise InvalidRequest(f"{where}: each at most {MAX_OVERRIDE_CHARS} characters")
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"{where}: expected key=value")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InvalidRequest(f"{where}: a value is not YAML") from None
    return overrides


def recipe_names() -> list[str]:
    """The names of the bundled recipes, sorted."""
    from trainer.recipes import list_recipes

    return list_recipes()


def describe_recipe(
    name: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    records: int | None = None,
    allow_paths: bool = False,
) -> dict[str, Any]:
    """The bundled recipe ``name`` resolved with ``overrides``, and the advice on it for a corpus
    of ``records`` records (the rules that need the size are left out without it).
    ``allow_paths`` also reads a recipe YAML file by path (the command line, not HTTP).

    Raises :class:`NotFound` for an unknown recipe and :class:`InvalidRequest` naming a bad
    override (its value left out)."""
    from api.services.training import without_value
    from trainer.advice import advise
    from trainer.errors import ConfigError, RecipeNotFound
    from trainer.recipes import list_recipes, load_recipe

    if not allow_paths and name not in list_recipes():
        # load_recipe would also read a YAML file by path
        raise NotFound(f"no recipe {name!r}; bundled recipes: {', '.join(list_recipes())}")
    try:
        recipe = load_recipe(name, dict(overrides) if overrides else None)
    except RecipeNotFound as exc:
        raise NotFound(str(exc)) from exc
    except ConfigError as exc:
        raise InvalidRequest(without_value(str(exc))) from exc
    return {
        "name": recipe.name,
        "method": recipe.method.value,
        "description": recipe.description,
        "hash": recipe.hash,
        "recipe": recipe.resolved(),
        "warnings": [w.to_dict() for w in advise(recipe, records=records)],
    }


def recipe_library(*, records: int | None = None) -> list[dict[str, Any]]:
    """Every bundled recipe as :func:`describe_recipe` shows it (no overrides)."""
    return [describe_recipe(name, records=records) for name in recipe_names()]
