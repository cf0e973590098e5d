"""Back-end tests on embeddings with known structure, plus save/load and error behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from auscult.backends import BACKENDS, BackendMeta, FORMAT_VERSION, load_backend
from auscult.backends.base import BackendVersionWarning, save_envelope
from auscult.data.clip import Clip
from auscult.errors import CheckpointError, ConfigError, DataError

D = 16


def _structured(seed: int = 0):
    """Two sections; per section a source cluster, a distinct target cluster and anomalies.

    Anomalies are normal-looking points pushed far off the training manifold.
    Returns train (x, meta) and test (x, meta, is_anomaly).
    """
    rng = np.random.default_rng(seed)
    tr_x, tr_sec, tr_dom, tr_att = [], [], [], []
    te_x, te_sec, te_dom, te_att, te_y = [], [], [], [], []
    for sec in ("00", "01"):
        centres = {d: rng.normal(size=D) * 10.0 / np.sqrt(D) * 3 for d in ("source", "target")}
        for dom, n_train in (("source", 120), ("target", 12)):
            c = centres[dom]
            def draw(n):
                return c + rng.normal(size=(n, D))
            tr_x.append(draw(n_train))
            tr_sec += [sec] * n_train
            tr_dom += [dom] * n_train
            tr_att += [f"att{i % 2}" for i in range(n_train)]
            n_test = 30
            normals = draw(n_test)
            shift = rng.normal(size=(n_test, D))
            shift *= 12.0 / np.linalg.norm(shift, axis=1, keepdims=True)
            anomalies = draw(n_test) + shift
            te_x += [normals, anomalies]
            te_sec += [sec] * (2 * n_test)
            te_dom += [dom] * (2 * n_test)
            te_att += [f"att{i % 2}" for i in range(2 * n_test)]
            te_y += [0] * n_test + [1] * n_test
    tr_x, te_x, te_y = np.concatenate(tr_x), np.concatenate(te_x), np.array(te_y)

    def logits(n, own, anomalous):
        lg = rng.normal(scale=0.5, size=(n, 4))
        lg[np.arange(n), own] += np.where(anomalous, 0.0, 4.0)
        return lg

    tr_cls = np.array([0 if d == "source" else 1 for d in tr_dom]) + 2 * (np.array(tr_sec) == "01")
    te_cls = np.array([0 if d == "source" else 1 for d in te_dom]) + 2 * (np.array(te_sec) == "01")
    tr_meta = BackendMeta(n=len(tr_x), section=tr_sec, domain=tr_dom, attribute=tr_att, machine=["fan"] * len(tr_x),
                          class_id=tr_cls, logits=logits(len(tr_x), tr_cls, np.zeros(len(tr_x), bool)))
    te_meta = BackendMeta(n=len(te_x), section=te_sec, domain=te_dom, attribute=te_att, machine=["fan"] * len(te_x),
                          class_id=te_cls, logits=logits(len(te_x), te_cls, te_y.astype(bool)))
    return tr_x, tr_meta, te_x, te_meta, te_y


@pytest.fixture(scope="module")
def data():
    return _structured()


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_ranks_anomalies_above_normals(name, data):
    tr_x, tr_meta, te_x, te_meta, y = data
    be = BACKENDS.build(name)
    scores = be.fit(tr_x, tr_meta).score(te_x, te_meta)
    assert scores.shape == (len(te_x),) and scores.dtype == np.float64 and np.all(np.isfinite(scores))
    assert roc_auc_score(y, scores) > 0.95
    for dom in ("source", "target"):  # target normals must not be mistaken for anomalies
        m = te_meta.domain == dom
        assert roc_auc_score(y[m], scores[m]) > 0.95, dom


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_save_load_roundtrip(name, data, tmp_path):
    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build(name).fit(tr_x, tr_meta)
    path = be.save(tmp_path / "be.npz")
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["be.npz"]  # no temp file left
    with np.load(path, allow_pickle=False) as npz:  # plain arrays, no pickled code
        assert "__header__" in npz.files
    loaded = load_backend(path)
    assert type(loaded) is type(be) and loaded.params == be.params
    np.testing.assert_array_equal(loaded.score(te_x, te_meta), be.score(te_x, te_meta))


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_refuses_unseen_section_and_bad_input(name, data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build(name).fit(tr_x, tr_meta)
    meta = te_meta.subset(np.arange(5))
    meta.section = np.array(["07"] * 5, dtype=object)
    with pytest.raises(DataError, match="section '07'"):
        be.score(te_x[:5], meta)
    with pytest.raises(DataError, match="NaN"):
        bad = te_x[:5].copy(); bad[2, 3] = np.nan
        be.score(bad, te_meta.subset(np.arange(5)))
    with pytest.raises(DataError, match="rows"):
        be.score(te_x[:4], te_meta.subset(np.arange(5)))
    with pytest.raises(DataError, match="2-D"):
        be.fit(tr_x[0], None)


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_is_deterministic(name, data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    a = BACKENDS.build(name).fit(tr_x, tr_meta).score(te_x, te_meta)
    b = BACKENDS.build(name).fit(tr_x, tr_meta).score(te_x, te_meta)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------- kNN


def _brute_knn(q, ref, k, metric):
    out = []
    for v in q:
        if metric == "cosine":
            d = [1 - np.dot(v, r) / (np.linalg.norm(v) * np.linalg.norm(r)) for r in ref]
        else:
            d = [np.sqrt(np.sum((v - r) ** 2)) for r in ref]
        out.append(np.mean(sorted(d)[:k]))
    return np.array(out)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 3])
def test_knn_equals_brute_force_min_over_domains(metric, k, data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build("knn", k=k, metric=metric).fit(tr_x, tr_meta)
    got = be.score(te_x, te_meta)
    for sec in ("00", "01"):
        q = te_meta.section == sec
        src = tr_x[(tr_meta.section == sec) & (tr_meta.domain == "source")]
        tgt = tr_x[(tr_meta.section == sec) & (tr_meta.domain == "target")]
        ref = np.minimum(_brute_knn(te_x[q], src, k, metric), _brute_knn(te_x[q], tgt, k, metric))
        np.testing.assert_allclose(got[q], ref, rtol=1e-9, atol=1e-9)


def test_knn_clips_k_to_small_reference_and_pools_without_domains(data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    sec = tr_meta.section == "00"
    tgt_n = int(((tr_meta.domain == "target") & sec).sum())
    big = BACKENDS.build("knn", k=1000, metric="euclidean", aggregate="kth").fit(tr_x, tr_meta)
    q = te_meta.section == "00"
    src = tr_x[sec & (tr_meta.domain == "source")]
    tgt = tr_x[sec & (tr_meta.domain == "target")]
    far = lambda ref: np.array([np.linalg.norm(ref - v, axis=1).max() for v in te_x[q]])
    np.testing.assert_allclose(big.score(te_x, te_meta)[q], np.minimum(far(src), far(tgt)))
    assert tgt_n < 1000
    pooled = BACKENDS.build("knn", separate_domains=False, metric="euclidean").fit(tr_x, tr_meta)
    np.testing.assert_allclose(pooled.score(te_x, te_meta)[q], _brute_knn(te_x[q], tr_x[sec], 1, "euclidean"), atol=1e-9)


def test_knn_rejects_bad_parameters():
    for kw in ({"k": 0}, {"k": 1.5}, {"metric": "manhattan"}, {"aggregate": "median"}, {"group_by": "domain"}):
        with pytest.raises(ConfigError):
            BACKENDS.build("knn", **kw)


# ------------------------------------------------------------------------------ k-means


def test_kmeans_target_centres_make_target_training_rows_score_zero(data):
    tr_x, tr_meta, _, _, _ = data
    be = BACKENDS.build("kmeans", n_clusters=4).fit(tr_x, tr_meta)
    scores = be.score(tr_x, tr_meta)
    tgt = tr_meta.domain == "target"
    np.testing.assert_allclose(scores[tgt], 0.0, atol=1e-9)
    assert scores[~tgt].min() >= 0 and scores[~tgt].mean() > 1e-4  # source rows are not centres
    state = be.groups_[("fan", "00")]
    assert state["source_centres"].shape == (4, D) and state["target_centres"].shape == (12, D)


def test_kmeans_with_fewer_source_rows_than_k_uses_each_row(data):
    tr_x, tr_meta, _, _, _ = data
    idx = np.flatnonzero(tr_meta.section == "00")
    idx = np.concatenate([idx[:5], idx[tr_meta.domain[idx] == "target"]])
    meta = tr_meta.subset(idx)
    be = BACKENDS.build("kmeans", n_clusters=16).fit(tr_x[idx], meta)
    np.testing.assert_allclose(be.score(tr_x[idx], meta), 0.0, atol=1e-9)
    q = np.random.default_rng(1).normal(size=(7, D))
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (tr_x[idx] / np.linalg.norm(tr_x[idx], axis=1, keepdims=True)).T
    np.testing.assert_allclose(be.score(q, meta.subset(np.arange(7))), 1 - cos.max(1), atol=1e-9)


# -------------------------------------------------------------------------- Mahalanobis


def _maha2(x, mean, prec):
    return np.array([(v - mean) @ prec @ (v - mean) for v in x])


@pytest.mark.parametrize("shrinkage", ["none", "ledoit-wolf"])
@pytest.mark.parametrize("center", [True, False])
def test_selective_mahalanobis_equals_min_of_hand_computed(shrinkage, center, data):
    from sklearn.covariance import LedoitWolf

    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build("selective_mahalanobis", shrinkage=shrinkage, center=center).fit(tr_x, tr_meta)
    got = be.score(te_x, te_meta)
    for sec in ("00", "01"):
        q = te_meta.section == sec
        dists = []
        for dom in ("source", "target"):
            rows = tr_x[(tr_meta.section == sec) & (tr_meta.domain == dom)]
            cov = LedoitWolf().fit(rows).covariance_ if shrinkage == "ledoit-wolf" else np.cov(rows, rowvar=False)
            prec = np.linalg.pinv(cov, hermitian=True)
            mean = rows.mean(0) if center else np.zeros(D)
            dists.append(_maha2(te_x[q], mean, prec))
        np.testing.assert_allclose(got[q], np.minimum(*dists), rtol=1e-6)


def test_selective_mahalanobis_needs_two_rows_per_domain(data):
    tr_x, tr_meta, _, _, _ = data
    idx = np.concatenate([np.arange(10), np.flatnonzero(tr_meta.domain == "target")[:1]])
    with pytest.raises(DataError, match="1 target training"):
        BACKENDS.build("selective_mahalanobis").fit(tr_x[idx], tr_meta.subset(idx))
    src_only = BACKENDS.build("selective_mahalanobis").fit(tr_x[:10], tr_meta.subset(np.arange(10)))
    assert set(src_only.groups_[("fan", "00")]) == {"source_mean", "source_precision"}


def test_mahalanobis_prototypes_with_shared_ledoit_wolf(data):
    from sklearn.covariance import LedoitWolf

    tr_x, tr_meta, te_x, te_meta, _ = data
    for assign in ("min", "own"):
        be = BACKENDS.build("mahalanobis", prototypes="attribute", assign=assign).fit(tr_x, tr_meta)
        got = be.score(te_x, te_meta)
        for sec in ("00", "01"):
            s = tr_meta.section == sec
            names = sorted(set(tr_meta.attribute[s]))
            means = {n: tr_x[s & (tr_meta.attribute == n)].mean(0) for n in names}
            resid = np.stack([tr_x[i] - means[tr_meta.attribute[i]] for i in np.flatnonzero(s)])
            prec = np.linalg.inv(LedoitWolf(assume_centered=True).fit(resid).covariance_)
            q = np.flatnonzero(te_meta.section == sec)
            d = {n: _maha2(te_x[q], means[n], prec) for n in names}
            ref = np.min(np.stack(list(d.values())), 0) if assign == "min" else np.array(
                [d[te_meta.attribute[i]][j] for j, i in enumerate(q)])
            np.testing.assert_allclose(got[q], ref, rtol=1e-6)


def test_mahalanobis_auto_prototypes_and_unseen_class(data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build("mahalanobis", assign="own").fit(tr_x, tr_meta)
    assert str(be.groups_[("fan", "00")]["kind"]) == "class"
    meta = te_meta.subset(np.arange(3))
    meta.class_id = np.array([9, 9, 9])
    with pytest.raises(DataError, match="not seen in fit"):
        be.score(te_x[:3], meta)
    plain = BACKENDS.build("mahalanobis").fit(tr_x, BackendMeta(n=len(tr_x), section=tr_meta.section))
    assert plain.groups_[("", "00")]["means"].shape == (1, D)


@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_backend_fits_a_group_with_one_domain_only(name, data):
    tr_x, tr_meta, te_x, te_meta, y = data
    for dom in ("source", "target"):
        idx = np.flatnonzero(tr_meta.domain == dom)
        be = BACKENDS.build(name).fit(tr_x[idx], tr_meta.subset(idx))
        q = te_meta.domain == dom
        scores = be.score(te_x[q], te_meta.subset(np.flatnonzero(q)))
        assert np.all(np.isfinite(scores)) and roc_auc_score(y[q], scores) > 0.9, dom


# --------------------------------------------------------------------------- classifier


def test_classifier_scores_equal_log_softmax_and_log_odds(data):
    from scipy.special import log_softmax, softmax

    tr_x, tr_meta, te_x, te_meta, _ = data
    rows = np.arange(te_meta.n)
    logp = log_softmax(te_meta.logits, axis=1)[rows, te_meta.class_id]
    p = softmax(te_meta.logits, axis=1)[rows, te_meta.class_id]
    nlp = BACKENDS.build("classifier").fit(tr_x, tr_meta).score(te_x, te_meta)
    np.testing.assert_allclose(nlp, -logp, rtol=1e-10)
    lo = BACKENDS.build("classifier", mode="log_odds").fit(tr_x, tr_meta).score(te_x, te_meta)
    np.testing.assert_allclose(lo, np.log((1 - p) / p), rtol=1e-8)
    # the same from probabilities instead of logits
    pm = te_meta.subset(rows)
    pm.probs, pm.logits = softmax(te_meta.logits, axis=1), None
    np.testing.assert_allclose(BACKENDS.build("classifier").fit(tr_x, tr_meta).score(te_x, pm), -logp, rtol=1e-8)
    np.testing.assert_allclose(BACKENDS.build("classifier", mode="log_odds").fit(tr_x, tr_meta).score(te_x, pm),
                               np.log((1 - p) / p), rtol=1e-6)


def test_classifier_errors(data):
    tr_x, tr_meta, te_x, te_meta, _ = data
    be = BACKENDS.build("classifier").fit(tr_x, tr_meta)
    m = te_meta.subset(np.arange(4))
    m.logits = m.logits[:, :3]
    with pytest.raises(DataError, match="4 classes"):
        be.score(te_x[:4], m)
    m = te_meta.subset(np.arange(4))
    m.logits = None
    with pytest.raises(DataError, match="logits or meta.probs"):
        be.score(te_x[:4], m)
    m = te_meta.subset(np.arange(4))
    m.class_id = np.array([0, 1, 2, 4])
    with pytest.raises(DataError, match="out of range"):
        be.score(te_x[:4], m)


# ------------------------------------------------------------------------- GMM and LOF


def test_gmm_and_lof_match_sklearn_per_domain_min(data):
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor

    tr_x, tr_meta, te_x, te_meta, _ = data
    s, q = tr_meta.section == "01", te_meta.section == "01"
    src, tgt = tr_x[s & (tr_meta.domain == "source")], tr_x[s & (tr_meta.domain == "target")]
    gms = [GaussianMixture(n_components=2, covariance_type="tied", random_state=3).fit(r) for r in (src, tgt)]
    be = BACKENDS.build("gmm", covariance_type="tied", seed=3).fit(tr_x, tr_meta)
    np.testing.assert_allclose(be.score(te_x, te_meta)[q], np.minimum(*[-g.score_samples(te_x[q]) for g in gms]), rtol=1e-10)
    lofs = [LocalOutlierFactor(n_neighbors=min(10, len(r) - 1), novelty=True).fit(r) for r in (src, tgt)]
    be = BACKENDS.build("lof", n_neighbors=10).fit(tr_x, tr_meta)
    np.testing.assert_allclose(be.score(te_x, te_meta)[q], np.minimum(*[-m.score_samples(te_x[q]) for m in lofs]), rtol=1e-10)
    pooled = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(tr_x[s])
    be = BACKENDS.build("lof", n_neighbors=10, separate_domains=False).fit(tr_x, tr_meta)
    np.testing.assert_allclose(be.score(te_x, te_meta)[q], -pooled.score_samples(te_x[q]), rtol=1e-10)


def test_gmm_full_covariance_on_few_rows_warns(data):
    tr_x, tr_meta, _, _, _ = data
    with pytest.warns(UserWarning, match="expect overfitting"):
        BACKENDS.build("gmm", covariance_type="full").fit(tr_x, tr_meta)


def test_domain_with_a_single_row_is_an_error(data):
    tr_x, tr_meta, _, _, _ = data
    idx = np.concatenate([np.arange(10), np.flatnonzero(tr_meta.domain == "target")[:1]])
    for name in ("gmm", "lof"):
        with pytest.raises(DataError, match="1 target training"):
            BACKENDS.build(name).fit(tr_x[idx], tr_meta.subset(idx))


# ------------------------------------------------------------------ grouping and metadata


def test_meta_from_clips_and_grouping_keeps_machines_apart(tmp_path):
    clips = [Clip(path=Path(f"{m}/train/section_00_{d}_{i}.wav"), machine=m, section="00", domain=d,
                  attributes_raw=f"a{i % 2}") for m in ("fan", "pump") for d in ("source", "target") for i in range(4)]
    meta = BackendMeta.from_clips(clips)
    assert list(meta.attribute[:2]) == ["a0", "a1"] and meta.is_target().sum() == 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(clips), 4))
    x[8:] += 50.0  # pump far away from fan
    be = BACKENDS.build("knn", metric="euclidean").fit(x, meta)
    assert sorted(be.groups_) == [("fan", "00"), ("pump", "00")]
    # a fan clip placed where pump lives is anomalous for fan, not hidden by pump's training rows
    q = BackendMeta.from_clips(clips[:1])
    assert be.score(x[8:9], q)[0] > 10
    by_machine = BACKENDS.build("knn", group_by="machine").fit(x, meta)
    assert sorted(by_machine.groups_) == [("fan",), ("pump",)]
    with pytest.raises(DataError, match="machine type 'valve'"):
        by_machine.score(x[:1], BackendMeta(n=1, machine=["valve"]))
    with pytest.raises(DataError, match="needs the machine type"):
        BACKENDS.build("knn", group_by="machine").fit(x, BackendMeta(n=len(x), section=meta.section))


def test_fit_without_meta_is_one_group_and_dimension_checked(data):
    tr_x, _, te_x, te_meta, _ = data
    be = BACKENDS.build("knn").fit(tr_x)
    assert list(be.groups_) == [()]
    assert be.score(te_x).shape == (len(te_x),)
    np.testing.assert_array_equal(be.score(te_x, te_meta), be.score(te_x))  # one group takes every row
    with pytest.raises(DataError, match="dimensions"):
        be.score(te_x[:, :4])
    per_section = BACKENDS.build("knn").fit(tr_x, BackendMeta(n=len(tr_x), section=["00"] * len(tr_x)))
    with pytest.raises(DataError, match="needs meta"):
        per_section.score(te_x)
    with pytest.raises(ConfigError, match="fit"):
        BACKENDS.build("knn").score(te_x)
    with pytest.raises(DataError, match="domain"):
        BackendMeta(n=2, domain=["source", "tgt"])


# ----------------------------------------------------------------------------- save/load


@pytest.fixture()
def fitted(data):
    tr_x, tr_meta, _, _, _ = data
    return BACKENDS.build("knn", k=2).fit(tr_x, tr_meta)


def test_newer_format_is_refused(fitted, tmp_path):
    p = save_envelope(fitted, tmp_path / "new.npz", format_version=FORMAT_VERSION + 1, auscult_version="9.0.0")
    with pytest.raises(CheckpointError, match=r"new\.npz.*format 2.*newer.*upgrade auscult"):
        load_backend(p)


def test_older_minor_version_warns_but_loads(fitted, data, tmp_path):
    _, _, te_x, te_meta, _ = data
    p = save_envelope(fitted, tmp_path / "old.npz", auscult_version="0.0.3")
    with pytest.warns(BackendVersionWarning, match="0.0.3.*older"):
        be = load_backend(p)
    np.testing.assert_array_equal(be.score(te_x, te_meta), fitted.score(te_x, te_meta))


def test_same_version_loads_without_warning(fitted, tmp_path, recwarn):
    load_backend(fitted.save(tmp_path / "b.npz"))
    assert not [w for w in recwarn if issubclass(w.category, BackendVersionWarning)]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "missing", "foreign"])
def test_corrupt_files_raise_checkpoint_error_naming_the_file(fitted, tmp_path, damage):
    p = fitted.save(tmp_path / "be.npz")
    raw = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        p.write_bytes(b"\x00junk" * 100)
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "missing":
        p.unlink()
    else:
        np.savez(p, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="be.npz"):
        load_backend(p)


def test_save_overwrites_atomically_and_refuses_unfitted(fitted, tmp_path):
    p = tmp_path / "sub" / "be.npz"
    fitted.save(p)
    fitted.save(p)
    assert sorted(x.name for x in p.parent.iterdir()) == ["be.npz"]
    with pytest.raises(ConfigError):
        BACKENDS.build("knn").save(tmp_path / "x.npz")


def test_registry_lists_every_family():
    assert set(BACKENDS.names()) >= {"knn", "kmeans", "mahalanobis", "selective_mahalanobis", "gmm", "lof", "classifier"}
    for entry in BACKENDS.entries():
        assert entry.description


def test_thread_limit_gives_the_same_scores_and_is_restored(data):
    from threadpoolctl import threadpool_info

    from auscult.backends import set_threads

    tr_x, tr_meta, te_x, te_meta, _ = data
    before = [i["num_threads"] for i in threadpool_info()]
    ref = BACKENDS.build("kmeans", n_clusters=4).fit(tr_x, tr_meta).score(te_x, te_meta)  # default: 1 thread
    assert [i["num_threads"] for i in threadpool_info()] == before
    set_threads(None)
    try:
        be = BACKENDS.build("kmeans", n_clusters=4)
        np.testing.assert_allclose(be.fit(tr_x, tr_meta).score(te_x, te_meta), ref, rtol=1e-9, atol=1e-12)
    finally:
        set_threads(1)
    with pytest.raises(ConfigError):
        set_threads(0)


def test_thread_limit_applies_inside_fit(data, monkeypatch):
    from threadpoolctl import threadpool_info

    from auscult.backends import KNNBackend

    seen = []
    orig = KNNBackend._fit_group

    def spy(self, x, meta, key):
        seen.append({i["user_api"]: i["num_threads"] for i in threadpool_info()})
        return orig(self, x, meta, key)

    monkeypatch.setattr(KNNBackend, "_fit_group", spy)
    tr_x, tr_meta, _, _, _ = data
    BACKENDS.build("knn").fit(tr_x, tr_meta)
    assert seen and all(set(d.values()) == {1} for d in seen)
