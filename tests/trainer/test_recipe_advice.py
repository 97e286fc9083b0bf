"""Recipe advice: settings outside their advised range are named with the reason, never changed."""

from __future__ import annotations

from trainer.advice import advise
from trainer.recipes import list_recipes, load_recipe


def fields(
    recipe_name: str, overrides: dict[str, object] | None = None, **kw: object
) -> dict[str, str]:
    recipe = load_recipe(recipe_name, overrides)
    return {w.field: w.message for w in advise(recipe, **kw)}  # type: ignore[arg-type]


def test_bundled_recipes_are_within_the_advised_ranges() -> None:
    for name in list_recipes():
        assert advise(load_recipe(name)) == [], name


def test_learning_rate_is_checked_per_method() -> None:
    lora = fields("knowledge_qa", {"learning_rate": 1e-2})
    assert "training.learning_rate" in lora
    assert "5e-05..0.0005" in lora["training.learning_rate"]
    assert "too high" in lora["training.learning_rate"]
    # 2e-4 is right for LoRA but far too high for full fine-tuning
    full = fields("full_finetune", {"learning_rate": 2e-4})
    assert "1e-06..5e-05" in full["training.learning_rate"]
    assert "too low" in fields("knowledge_qa", {"learning_rate": 1e-6})["training.learning_rate"]


def test_alpha_not_a_multiple_of_rank_is_named() -> None:
    warned = fields("knowledge_qa", {"alpha": 20})
    assert "multiple of rank 16" in warned["method_config.alpha"]
    assert fields("knowledge_qa", {"alpha": 48}) == {}


def test_dropout_and_rank_follow_the_corpus_size() -> None:
    small = fields("knowledge_qa", {"dropout": 0.0, "rank": 64}, records=200)
    assert "small corpora overfit" in small["method_config.dropout"]
    assert "memorize" in small["method_config.rank"]
    large = fields("knowledge_qa", {"dropout": 0.3}, records=50_000)
    assert "large corpus" in large["method_config.dropout"]
    assert fields("knowledge_qa", {"dropout": 0.0}) == {}  # unknown size: no size rule


def test_partial_fine_tuning_frozen_layers() -> None:
    assert (
        "trains every layer"
        in fields("partial_finetune", {"freeze_layers": 0})["method_config.freeze_layers"]
    )
    assert (
        "top 1 layer"
        in fields("partial_finetune", {"freeze_layers": -1})["method_config.freeze_layers"]
    )


def test_precision_on_cpu_and_eval_without_a_split() -> None:
    warned = fields(
        "knowledge_qa",
        {"precision": "bf16", "eval_steps": 5, "val_fraction": 0.0},
        device="cpu",
    )
    assert "needs a CUDA device" in warned["training.precision"]
    assert "validation split" in warned["training.eval_steps"]
    assert "training.precision" not in fields("knowledge_qa", {"precision": "bf16"}, device="cuda")


def test_advice_never_changes_the_recipe_and_new_fields_keep_old_hashes() -> None:
    recipe = load_recipe("knowledge_qa", {"learning_rate": 1e-2})
    before = recipe.resolved()
    advise(recipe, records=10, device="cpu")
    assert recipe.resolved() == before
    assert "eval_steps" not in before["training"]  # defaults of later fields are not hashed
    assert load_recipe("knowledge_qa", {"eval_steps": 5}).hash != load_recipe("knowledge_qa").hash
