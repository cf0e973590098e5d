"""Nothing auscult loads may execute code (issue 15, item 1).

A malicious pickle -- an object whose ``__reduce__`` opens (creates) a marker file when it is
unpickled -- is planted in every place auscult loads from: a run's group model, a legacy pickled
``model.pt``, a training checkpoint, a back-end file, a bundle's ``arrays.npz``, CLSIA pre-trained
weights and the generic ``fileio`` tree. Each load must raise a typed error, and the marker must
never have been created.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from auscult.errors import CheckpointError


class Evil:
    """Unpickling this runs ``open(marker, "w")``: the marker file appears iff code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a pickle was executed while loading"


def _evil_npz(path: Path, marker: Path, **arrays) -> Path:
    """An .npz whose member ``evil`` is a pickled object array (np.savez pickles object arrays)."""
    np.savez(path, evil=np.array([Evil(marker)], dtype=object), **arrays)
    # sanity: the planted file really runs code when unpickled (so the tests below can fail)
    probe = path.with_name("probe_" + path.name)
    np.savez(probe, evil=np.array([Evil(marker.with_name("PROBE"))], dtype=object))
    with np.load(probe, allow_pickle=True) as z:
        z["evil"]
    assert marker.with_name("PROBE").exists()
    marker.with_name("PROBE").unlink()
    probe.unlink()
    return path


def test_generic_tree_refuses_a_pickled_member(tmp_path, marker):
    from auscult.fileio import load_tree, save_tree

    good = save_tree(tmp_path / "good.npz", {"a": np.arange(3), "b": [1, "x", None]}, {"format": "t"})
    header, tree = load_tree(good)
    assert header["format"] == "t" and tree["b"] == [1, "x", None] and tree["a"].tolist() == [0, 1, 2]
    with zipfile.ZipFile(good) as z:
        head = z.read("__header__.npy")
    bad = _evil_npz(tmp_path / "bad.npz", marker)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("__header__.npy", head)
    with pytest.raises(CheckpointError, match="pickled"):
        load_tree(bad)


def test_run_model_with_a_pickle_is_refused(tmp_path, marker):
    from auscult.engine import RunDir
    from auscult.pipeline import load_method
    from auscult.recipes import load_recipe

    cfg = load_recipe("synthetic/logmel_knn")
    rd = RunDir.create(tmp_path, "run", config=cfg, seed=0)
    gdir = rd.path / "models" / "fan"
    gdir.mkdir(parents=True)
    _evil_npz(gdir / "model.npz", marker, __header__=np.frombuffer(json.dumps(
        {"format": "auscult-run-model", "format_version": 1, "tree": {"method": "logmel_knn", "state": {
            "bank": {"__ndarray__": "evil"}}}}).encode(), dtype=np.uint8))
    with pytest.raises(CheckpointError, match="model.npz.*pickled"):
        load_method(rd.path, "fan", device="cpu")


def test_legacy_pickled_run_model_is_refused_with_how_to_retrain(tmp_path, marker):
    from auscult.engine import RunDir
    from auscult.pipeline import load_method
    from auscult.recipes import load_recipe

    rd = RunDir.create(tmp_path, "run", config=load_recipe("synthetic/autoencoder"), seed=0)
    gdir = rd.path / "models" / "fan"
    gdir.mkdir(parents=True)
    (gdir / "model.pt").write_bytes(pickle.dumps({"method": "autoencoder", "state": Evil(marker)}))
    with pytest.raises(CheckpointError, match=r"model.pt.*pickled format.*auscult train .*--resume"):
        load_method(rd.path, "fan", device="cpu")


def test_checkpoint_with_a_pickle_is_refused(tmp_path, marker):
    import torch

    from auscult.engine.checkpoint import (FORMAT, FORMAT_VERSION, capture_rng_state, load_checkpoint,
                                           save_checkpoint)
    from auscult.engine.trainer import load_trained_model

    good = save_checkpoint(tmp_path / "good.pt", {"model": {"w": torch.ones(2)}, "epoch": 1,
                                                  "rng": capture_rng_state()})
    assert load_checkpoint(good)["epoch"] == 1  # RNG states and all: tensors and plain values only
    bad = tmp_path / "last.pt"
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "model": {}, "x": Evil(marker)}, bad)
    with pytest.raises(CheckpointError, match="last.pt.*pickled objects"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="last.pt"):
        load_trained_model(torch.nn.Linear(2, 2), bad)


def test_backend_file_with_a_pickle_is_refused(tmp_path, marker):
    from auscult.backends import BACKENDS, BackendMeta, load_backend

    be = BACKENDS.build("knn", k=1, group_by=None).fit(np.eye(4), BackendMeta(n=4))
    good = be.save(tmp_path / "good.npz")
    with zipfile.ZipFile(good) as z:
        head = z.read("__header__.npy")
    bad = _evil_npz(tmp_path / "be.npz", marker)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("__header__.npy", head)
    with pytest.raises(CheckpointError, match="be.npz.*pickled"):
        load_backend(bad)


def test_bundle_arrays_with_a_pickle_are_refused(tmp_path, marker):
    from auscult.monitor.bundle import load_bundle

    env = {"format": "auscult-bundle", "format_version": 2, "versions": {}, "sample_rate": 16000, "window_s": 1.0,
           "hop_s": 0.5, "methods": [{"name": "logmel_knn", "config": {}, "state": {"bank": {"__ndarray__": "evil"}}}],
           "machines": {"fan": {"method": 0, "threshold": {}, "calibration": {}}}}
    _evil_npz(tmp_path / "a.npz", marker)
    path = tmp_path / "evil.auscult"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("bundle.json", json.dumps(env))
        z.writestr("arrays.npz", (tmp_path / "a.npz").read_bytes())
    with pytest.warns(UserWarning):  # made by another auscult version (empty versions)
        with pytest.raises(CheckpointError, match="evil.auscult.*pickled"):
            load_bundle(path)


def test_clsia_pretrained_weights_with_a_pickle_are_refused(tmp_path, marker):
    import torch

    from auscult.methods.clsia.pretrain import FORMAT, load_pretrained

    bad = tmp_path / "encoder.pt"
    torch.save({"format": FORMAT, "version": 1, "encoder": {}, "x": Evil(marker)}, bad)
    with pytest.raises(CheckpointError, match="encoder.pt"):
        load_pretrained(bad)


def test_no_weights_only_false_in_src():
    """`grep -rn "weights_only=False" src` is empty: every torch.load refuses pickled objects."""
    src = Path(__file__).resolve().parents[1] / "src"
    hits = [f"{p}:{i + 1}" for p in src.rglob("*.py") for i, line in enumerate(p.read_text().splitlines())
            if "weights_only=False" in line]
    assert hits == []
    loads = [f"{p}:{i + 1}" for p in src.rglob("*.py") for i, line in enumerate(p.read_text().splitlines())
             if "torch.load(" in line and "weights_only=True" not in line]
    assert loads == []
