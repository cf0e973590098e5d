"""Recipes: lookup by name or path, --set overrides with YAML types, validation errors naming the key."""

from __future__ import annotations

import pytest

from auscult.errors import ConfigError
from auscult.recipes import apply_overrides, find_recipe, list_recipes, load_recipe, parse_override


def test_every_shipped_recipe_loads_and_builds():
    names = [r["name"] for r in list_recipes()]
    assert {f"dcase{y}/autoencoder" for y in (2020, 2021, 2022, 2023)} | {"synthetic/autoencoder"} <= set(names)
    for name in names:
        cfg = load_recipe(name)
        assert cfg["name"] == name and cfg["model_per"] in ("all", "machine", "section")
        if cfg["method"] == "autoencoder":
            assert cfg["threshold"]["method"] == "gamma" and cfg["threshold"]["quantile"] == 0.9


def test_dcase_recipes_hold_the_baseline_settings():
    for year in (2020, 2021, 2022, 2023):
        cfg = load_recipe(f"dcase{year}/autoencoder")
        assert cfg["year"] == year and cfg["model_per"] == "machine"
        assert cfg["features"] == {"n_fft": 1024, "hop_length": 512, "n_mels": 128, "power": 2.0}
        assert cfg["model"]["context"] == 5 and cfg["model"].get("normalize", False) is False
        assert cfg["train"]["lr"] == 0.001 and cfg["train"]["optimizer"] == "adam"


def test_dcase2026_recipes_hold_the_baseline_settings_on_the_near_mic():
    """The organisers' 2026 baseline: baseline.yaml's settings, channel 0 (near mic) only; every seed method's
    2026 recipe reads the near mic too; the noise-aware method gets both mics and scores the near one."""
    cfg = load_recipe("dcase2026/autoencoder")
    assert cfg["year"] == 2026 and cfg["model_per"] == "machine" and cfg["seed"] == 13711
    assert cfg["audio"]["channel"] == "near" and cfg["audio"]["length"] == "keep"
    assert cfg["features"] == {"n_fft": 1024, "hop_length": 512, "n_mels": 128, "power": 2.0}
    assert cfg["model"]["context"] == 5 and cfg["model"].get("normalize", False) is False
    assert {k: cfg["train"][k] for k in ("epochs", "batch_size", "lr", "optimizer")} == \
        {"epochs": 100, "batch_size": 256, "lr": 0.001, "optimizer": "adam"}
    assert cfg["score"]["kind"] == "mse" and cfg["data"]["holdout"] == 0.1
    names = {r["name"] for r in list_recipes() if r["name"].startswith("dcase2026/")}
    assert {"dcase2026/clsia", "dcase2026/osscl", "dcase2026/ssl4asd", "dcase2026/protoasd",
            "dcase2026/autoencoder_mc"} <= names
    for name in names - {"dcase2026/autoencoder_mc"}:
        c = load_recipe(name)
        assert c["year"] == 2026 and c["audio"]["channel"] == "near", name
    mc = load_recipe("dcase2026/autoencoder_mc")
    assert mc["audio"]["channel"] == "both" and mc["mics"] == {"train": "both", "score": "near", "norm": "per_mic",
                                                              "backend": "per_mic"}


@pytest.mark.parametrize("text, value", [
    ("train.epochs=5", 5), ("train.lr=1e-4", 1e-4), ("train.patience=null", None), ("train.patience=~", None),
    ("data.machines=[fan, valve]", ["fan", "valve"]), ("model.normalize=true", True), ("description=a b", "a b"),
    ("score.kind='mse'", "mse"), ("audio.channel=0", 0),
])
def test_override_values_are_yaml_typed(text, value):
    path, v = parse_override(text)
    assert v == value and type(v) is type(value)
    cfg = apply_overrides({"train": {"epochs": 1}}, [text])
    node = cfg
    for p in path:
        node = node[p]
    assert node == value


def test_overrides_do_not_touch_the_input_and_apply_in_order():
    base = {"train": {"epochs": 1}}
    out = apply_overrides(base, ["train.epochs=2", "train.epochs=3", "new.deep.key=1"])
    assert base == {"train": {"epochs": 1}}
    assert out["train"]["epochs"] == 3 and out["new"]["deep"]["key"] == 1


def test_override_applies_through_load_recipe():
    cfg = load_recipe("synthetic/autoencoder", ["train.epochs=7", "model_per=section", "data.sections=[0]"])
    assert cfg["train"]["epochs"] == 7 and cfg["model_per"] == "section" and cfg["data"]["sections"] == ["00"]


@pytest.mark.parametrize("overrides, match", [
    (["trian.epochs=3"], r"unknown recipe key\(s\) \['trian'\]"),
    (["train.epochz=3"], "epochz"),
    (["model_per=rack"], "model_per"),
    (["score.kind=l2"], "score.kind"),
    (["threshold.quantile=1.5"], "threshold.quantile"),
    (["threshold.method=otsu"], "threshold.method"),
    (["threshold.on=test"], "threshold.on"),
    (["data.holdout=1"], "data.holdout"),
    (["data.holdout=0.1", "data.bogus=1"], "bogus"),
    (["audio.length=crop"], "duration"),
    (["seed=abc"], "seed"),
    (["year=1999"], "year"),
    (["method=nope"], "unknown method 'nope'"),
    (["train=3", "train.epochs=1"], "train is a int"),
    (["train.epochs"], "key=value"),
    (["=3"], "bad key"),
    (["train.epochs=[1"], "not valid YAML"),
])
def test_validation_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_recipe("synthetic/autoencoder", overrides)


def test_recipe_by_path_and_file_errors(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("method: autoencoder\ntrain: {epochs: 2}\n")
    cfg = load_recipe(str(p))
    assert cfg["train"]["epochs"] == 2 and cfg["model_per"] == "machine" and cfg["seed"] == 0
    assert find_recipe(p) == p
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_recipe(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(tmp_path / "list.yaml")
    (tmp_path / "nomethod.yaml").write_text("train: {epochs: 2}\n")
    with pytest.raises(ConfigError, match="no 'method'"):
        load_recipe(tmp_path / "nomethod.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="synthetic/autoencoder"):  # the message lists known names
        load_recipe("synthetic/autoencodr")


def test_list_walks_every_registry_a_recipe_is_composed_from():
    """`auscult list` shows methods (with capabilities), nets, losses, back-ends, front-ends,
    augmentations and recipes, each entry with a one-line description."""
    import json

    from typer.testing import CliRunner

    from auscult.cli import app

    res = CliRunner().invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    listing = json.loads(res.stdout)
    assert set(listing) == {"methods", "nets", "losses", "backends", "frontends", "augmentations", "recipes"}
    assert {"mixup", "logmixupexp", "rrc", "statex", "featex"} <= {e["name"] for e in listing["augmentations"]}
    assert {"logmel", "inverted_logmel"} <= {e["name"] for e in listing["frontends"]}
    assert {"autoencoder", "logmel_knn", "clsia", "osscl", "protoasd", "ssl4asd"} <= {e["name"] for e in listing["methods"]}
    for section, rows in listing.items():
        for e in rows:
            assert e["description"].strip() and "\n" not in e["description"], (section, e)
    caps = {e["name"]: e["capabilities"] for e in listing["methods"]}
    assert "explain" in caps["autoencoder"] and "export" in caps["logmel_knn"]


def test_typed_recipe_round_trips_and_method_sections_are_checked_without_building():
    from auscult.methods import METHODS
    from auscult.pipeline.recipe import Recipe, validate_recipe

    cfg = load_recipe("synthetic/clsia")
    rec = Recipe.from_dict(cfg)
    assert rec.method == "clsia" and rec.audio["duration"] == 4.0 and rec.backend["name"] == "knn"
    assert set(rec.sections) == {"net", "augment", "train", "clsia"} and rec.to_dict() == cfg
    # an unknown key of a method's own section is refused from the registered defaults alone
    with pytest.raises(ConfigError, match=r"clsia: unknown setting\(s\) \['queue'\]"):
        validate_recipe({**cfg, "clsia": {"queue": 3}}, build=False)
    with pytest.raises(ConfigError, match="unknown recipe key"):
        validate_recipe({**cfg, "model": {"context": 5}}, build=False)  # an autoencoder section on clsia
    with pytest.raises(ConfigError, match="backend.name"):
        validate_recipe({**cfg, "backend": {"name": "nope"}}, build=False)
    assert METHODS.defaults("clsia")["clsia"]["queue_size"] == 4096
