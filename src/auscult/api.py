"""The Python API, mirroring the CLI (``auscult train / score / evaluate / run / demo``)::

    import auscult.api as ac
    run_dir = ac.train("synthetic/autoencoder", data="data/synth-small", out="runs/ae",
                       overrides=["train.epochs=10"])
    ac.score(run_dir, data="data/synth-small")       # submission/ + scores/test_scores.csv
    result = ac.evaluate(run_dir)                    # report/ + report.html; an auscult.eval.Result
    print(result.official_score)

    run_dir, result = ac.run("dcase2023/autoencoder", data="/data/dcase2023/dev_data")

Every function takes the same arguments as its command; see :mod:`auscult.pipeline` for the
run-directory layout. Recipes: :func:`load_recipe`, :func:`list_recipes`. A fitted group can be
reloaded with :func:`load_method` (``method.score(clips, audio)``).
"""

from __future__ import annotations

from .pipeline import demo, evaluate, group_clips, load_method, run, score, train
from .recipes import apply_overrides, list_recipes, load_recipe

__all__ = ["train", "score", "evaluate", "run", "demo", "load_recipe", "list_recipes", "apply_overrides",
           "load_method", "group_clips"]
