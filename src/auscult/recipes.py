"""Recipes (kept importable here): the code lives in :mod:`auscult.pipeline.recipe`."""

from .pipeline.recipe import (DATA_KEYS, MODEL_PER, THRESHOLD_KEYS, TOP_LEVEL_KEYS, Recipe, apply_overrides,
                              find_recipe, list_recipes, load_recipe, parse_override, recipes_dir, validate_recipe)

__all__ = ["Recipe", "recipes_dir", "list_recipes", "find_recipe", "load_recipe", "apply_overrides", "parse_override",
           "validate_recipe", "TOP_LEVEL_KEYS", "MODEL_PER", "DATA_KEYS", "THRESHOLD_KEYS"]
