"""Recipe presets load, validate, apply overrides and hash deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.errors import ConfigError, RecipeNotFound
from trainer.methods import Method
from trainer.recipes import list_recipes, load_recipe, recipe_hash

TEACHING_TASKS = {
    "knowledge_qa",
    "code_explanation",
    "formula_derivation",
    "teaching_dialogue",
    "concept_explanation",
    "exercise_generation",
}


def test_bundled_recipes_cover_the_teaching_tasks_and_every_method() -> None:
    names = set(list_recipes())
    assert names >= TEACHING_TASKS
    methods = {load_recipe(name).method for name in names}
    assert methods == set(Method)


@pytest.mark.parametrize("name", list_recipes())
def test_every_bundled_recipe_resolves_with_sane_values(name: str) -> None:
    recipe = load_recipe(name)
    resolved = recipe.resolved()
    assert resolved["name"] == name
    assert resolved["method"] == recipe.method.value
    assert recipe.hash == recipe_hash(resolved)
    assert len(recipe.hash) == 64
    assert recipe.description
    config = resolved["method_config"]
    if "rank" in config:
        assert 8 <= config["rank"] <= 64
        assert config["alpha"] == 2 * config["rank"]


def test_recipe_hash_is_stable_and_tracks_every_setting() -> None:
    base = load_recipe("knowledge_qa")
    assert load_recipe("knowledge_qa").hash == base.hash
    assert load_recipe("knowledge_qa", {"seed": 7}).hash != base.hash
    assert load_recipe("knowledge_qa", {"method_config.dropout": 0.1}).hash != base.hash


def test_overrides_apply_to_the_right_section() -> None:
    recipe = load_recipe(
        "knowledge_qa",
        {"rank": 32, "training.learning_rate": "5e-5", "max_steps": 10, "method_config.dropout": 0},
    )
    assert recipe.method_config.to_dict()["rank"] == 32
    assert recipe.method_config.to_dict()["alpha"] == 64
    assert recipe.training.learning_rate == 5e-5
    assert recipe.training.max_steps == 10


def test_switching_method_keeps_the_options_the_new_method_has() -> None:
    recipe = load_recipe("knowledge_qa", {"method": "qlora"})
    assert recipe.method is Method.QLORA
    assert recipe.method_config.to_dict()["rank"] == 16
    full = load_recipe("knowledge_qa", {"method": "full"})
    assert full.method_config.to_dict() == {"gradient_checkpointing": False}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 2.0}, r"training: learning_rate must be in \(0, 1\]"),
        ({"training.batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"training.scheduler": "exponential"}, r"training\.scheduler: 'exponential'"),
        ({"training.epochs": "three"}, r"training\.epochs: expected an integer"),
        ({"training.bogus": 1}, r"unknown field training\.bogus"),
        ({"bogus": 1}, "unknown field 'bogus'"),
        ({"rank": 4}, "rank must be between 8 and 64"),
        ({"method_config.targets": "heads"}, r"method lora\.targets: 'heads' is not one of"),
        ({"method": "prefix_tuning"}, "unknown method 'prefix_tuning'"),
        ({"val_fraction": 0.9}, "val_fraction"),
    ],
)
def test_bad_overrides_are_rejected_naming_the_field(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe("knowledge_qa", overrides)


def test_recipe_files_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("name: custom\nmethod: lora\nmethod_config: {rank: 12}\n", encoding="utf-8")
    recipe = load_recipe(path)
    assert recipe.method_config.to_dict()["alpha"] == 24
    assert recipe.task == "custom"

    path.write_text("name: custom\nmethod: lora\ntraining: {epochs: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"recipe custom\.training: epochs must be"):
        load_recipe(path)
    path.write_text("name: custom\nmethod: lora\nschedule: fast\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown field"):
        load_recipe(path)
    path.write_text("method: lora\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing field name"):
        load_recipe(path)


def test_unknown_recipe_lists_the_bundled_ones() -> None:
    with pytest.raises(RecipeNotFound, match="knowledge_qa"):
        load_recipe("poetry")


def test_loading_recipes_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trainer, trainer.recipes, trainer.manifest\n"
        "trainer.recipes.load_recipe('teaching_dialogue')\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
