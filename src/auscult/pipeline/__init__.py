"""The research door: recipes, run folders, train / score / evaluate / run, and the demo.

* :mod:`.recipe` -- recipes (YAML per dataset and method), ``--set`` overrides, the typed :class:`Recipe`;
* :mod:`.run` -- train -> score -> evaluate over run directories (the layout is in its docstring);
* :mod:`.demo` -- ``auscult demo``;
* :mod:`.cli` -- ``auscult train / score / run / evaluate / list / demo``.

``auscult.api`` re-exports the functions. (The names ``run`` and ``demo`` below are the functions;
their modules are ``auscult.pipeline.run`` / ``auscult.pipeline.demo`` via ``import``.) Nothing here
imports torch: the methods are imported when a recipe is built.
"""

from __future__ import annotations

from .recipe import Recipe, apply_overrides, list_recipes, load_recipe
from .run import (MODEL_FILE, Progress, default_cache_dir, evaluate, group_clips, group_dir, group_key, load_group_model,
                  load_method, resolve_run, score, select_train_clips, train)
from .run import run  # noqa: E402  (the function; binds over the submodule attribute of the same name)
from .demo import demo  # noqa: E402

__all__ = ["train", "score", "evaluate", "run", "demo", "load_method", "load_group_model", "group_clips", "group_key",
           "group_dir", "default_cache_dir", "select_train_clips", "resolve_run", "Progress", "MODEL_FILE", "Recipe",
           "load_recipe", "list_recipes", "apply_overrides"]
