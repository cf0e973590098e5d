"""Small-data back-ends: SMOTE, normalised k-NN, cross-fitted (leave-one-out) scores, score fusion
and the ensemble back-end -- each checked against a computation written out from its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from auscult.backends import BACKENDS, BackendMeta, ScoreFusion, cross_fit_scores, load_backend, smote
from auscult.backends.loo import fold_indices
from auscult.errors import ConfigError, DataError


def _euclid(a, b):
    return math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(a, b)))


def _two_domain_data(seed=0, d=6, n_src=40, n_tgt=6):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n_src, d)) * np.linspace(0.5, 3.0, d)  # unequal scales: standardisation matters
    tgt = rng.normal(size=(n_tgt, d)) * 0.3 + 4.0
    x = np.concatenate([src, tgt])
    dom = ["source"] * n_src + ["target"] * n_tgt
    q = np.concatenate([rng.normal(size=(5, d)), rng.normal(size=(5, d)) * 0.3 + 4.0, rng.normal(size=(3, d)) + 9.0])
    return x, BackendMeta(n=len(x), domain=dom), q


# ------------------------------------------------------------------------------------------- SMOTE
def test_smote_rows_lie_between_a_row_and_one_of_its_k_nearest():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 4))
    rows, parents = smote(x, 30, k=2, seed=5)
    assert rows.shape == (30, 4) and parents.shape == (30, 2)
    np.testing.assert_array_equal(rows[:7], x)
    np.testing.assert_array_equal(parents[:7], np.stack([np.arange(7)] * 2, 1))
    for r, (a, b) in zip(rows[7:], parents[7:]):
        others = sorted((_euclid(x[a], x[j]), j) for j in range(7) if j != a)
        assert b in [j for _, j in others[:2]]  # one of a's 2 nearest other rows
        u = np.dot(r - x[a], x[b] - x[a]) / np.dot(x[b] - x[a], x[b] - x[a])
        assert -1e-12 <= u <= 1 + 1e-12
        np.testing.assert_allclose(r, x[a] + u * (x[b] - x[a]), atol=1e-12)  # on the segment
    assert np.bincount(parents[7:, 0], minlength=7).max() - np.bincount(parents[7:, 0], minlength=7).min() <= 1
    again, _ = smote(x, 30, k=2, seed=5)
    np.testing.assert_array_equal(rows, again)
    assert not np.array_equal(rows, smote(x, 30, k=2, seed=6)[0])
    same, p = smote(x, 5)
    assert same is not None and len(same) == 7 and np.array_equal(p[:, 0], np.arange(7))


# ----------------------------------------------------------------------------------- normalised kNN
def _standardise(x, q):
    mu = [sum(col) / len(col) for col in x.T]
    sd = [math.sqrt(sum((v - m) ** 2 for v in col) / len(col)) + 1e-8 for col, m in zip(x.T, mu)]
    f = lambda a: np.array([[(v - m) / s for v, m, s in zip(row, mu, sd)] for row in a])
    return f(x), f(q)


def _kth_other(rows, i, k, skip=()):
    d = sorted(_euclid(rows[i], rows[j]) for j in range(len(rows)) if j != i and j not in skip)
    return d[min(k, len(d)) - 1]


def _oracle_local(x, dom, q, k):
    zx, zq = _standardise(x, q)
    out = []
    for v in zq:
        per_set = []
        for name in ("source", "target"):
            rows = [r for r, dd in zip(zx, dom) if dd == name]
            dists = sorted((_euclid(v, r), j) for j, r in enumerate(rows))
            dk, j = dists[min(k, len(rows)) - 1]
            per_set.append(dk / _kth_other(rows, j, min(k, len(rows) - 1)))
        out.append(min(per_set))
    return np.array(out)


def _oracle_domain_z(x, dom, q, k):
    zx, zq = _standardise(x, q)
    out = []
    for v in zq:
        per_set = []
        for name in ("source", "target"):
            rows = [r for r, dd in zip(zx, dom) if dd == name]
            own = [_kth_other(rows, i, min(k, len(rows) - 1)) for i in range(len(rows))]
            m = sum(own) / len(own)
            s = math.sqrt(sum((o - m) ** 2 for o in own) / (len(own) - 1))
            dk = sorted(_euclid(v, r) for r in rows)[min(k, len(rows)) - 1]
            per_set.append((dk - m) / s)
        out.append(min(per_set))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 3])
def test_knn_local_density_equals_the_definition(k):
    x, meta, q = _two_domain_data()
    be = BACKENDS.build("knn_norm", k=k, normalize="local", group_by=None).fit(x, meta)
    np.testing.assert_allclose(be.score(q), _oracle_local(x, list(meta.domain), q, k), rtol=1e-9)


@pytest.mark.parametrize("k", [1, 2])
def test_knn_domain_z_equals_the_definition(k):
    x, meta, q = _two_domain_data(seed=1)
    be = BACKENDS.build("knn_norm", k=k, normalize="domain_z", group_by=None).fit(x, meta)
    np.testing.assert_allclose(be.score(q), _oracle_domain_z(x, list(meta.domain), q, k), rtol=1e-9)


def test_knn_plain_kth_distance_without_standardising():
    x, meta, q = _two_domain_data(seed=2)
    be = BACKENDS.build("knn_norm", k=2, normalize="none", standardize=False, separate_domains=False,
                        group_by=None).fit(x, meta)
    want = [sorted(_euclid(v, r) for r in x)[1] for v in q]
    np.testing.assert_allclose(be.score(q), want, rtol=1e-12)


def test_local_density_with_smote_leaves_a_rows_own_interpolations_out():
    x, meta, q = _two_domain_data(seed=4, n_tgt=5)
    be = BACKENDS.build("knn_norm", normalize="local", smote_target=20, smote_k=2, seed=7, group_by=None).fit(x, meta)
    zx, zq = _standardise(x, q)
    tgt = zx[40:]
    rows, parents = smote(tgt, 20, 2, seed=7 + 1)  # the source set is built first (seed + 0)
    want = []
    for v in zq:
        src = sorted((_euclid(v, r), j) for j, r in enumerate(zx[:40]))
        s_src = src[0][0] / _kth_other(zx[:40], src[0][1], 1)
        dists = sorted((_euclid(v, r), j) for j, r in enumerate(rows))
        d1, j = dists[0]
        # the nearest row's density is measured among rows sharing no original parent with it
        skip = {i for i in range(len(rows)) if set(parents[i]) & set(parents[j])}
        want.append(min(s_src, d1 / _kth_other(rows, j, 1, skip)))
    np.testing.assert_allclose(be.score(q), want, rtol=1e-9)


def test_local_density_puts_sparse_and_dense_normals_on_one_scale():
    """A dense source cluster and a sparse target cluster: the plain k-NN distance flags the
    target normals, the normalised scores do not."""
    rng = np.random.default_rng(0)
    src, tgt = rng.normal(size=(200, 3)) * 0.2, rng.normal(size=(8, 3)) * 2.0 + 20
    x = np.concatenate([src, tgt])
    meta = BackendMeta(n=len(x), domain=["source"] * 200 + ["target"] * 8)
    normal = np.concatenate([rng.normal(size=(30, 3)) * 0.2, rng.normal(size=(30, 3)) * 2.0 + 20])
    anomal = np.concatenate([rng.normal(size=(30, 3)) * 0.2 + 1.2, rng.normal(size=(30, 3)) * 2.0 + 32])
    y = np.r_[np.zeros(60), np.ones(60)]
    aucs = {}
    for norm in ("none", "local", "domain_z"):
        be = BACKENDS.build("knn_norm", normalize=norm, standardize=False, group_by=None).fit(x, meta)
        aucs[norm] = roc_auc_score(y, be.score(np.concatenate([normal, anomal])))
    assert aucs["local"] > 0.95 and aucs["domain_z"] > 0.95
    assert aucs["none"] < aucs["local"] - 0.1


def test_knn_norm_errors():
    x, meta, q = _two_domain_data(n_tgt=1)
    for norm in ("domain_z", "local"):
        with pytest.raises(DataError, match="1 target training row"):
            BACKENDS.build("knn_norm", normalize=norm, smote_target=10, group_by=None).fit(x, meta)
    BACKENDS.build("knn_norm", normalize="none", group_by=None).fit(x, meta)  # a plain distance needs one row
    for bad in ({"k": 0}, {"normalize": "lof"}, {"metric": "manhattan"}, {"smote_target": -1}):
        with pytest.raises(ConfigError):
            BACKENDS.build("knn_norm", **bad)


# ------------------------------------------------------------------------------- cross-fitted scores
def test_leave_one_out_knn_is_the_distance_to_the_nearest_other_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 5))
    be = BACKENDS.build("knn", k=1, metric="euclidean", group_by=None)
    got = cross_fit_scores(be, x)
    want = [min(_euclid(x[i], x[j]) for j in range(25) if j != i) for i in range(25)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert not be.is_fitted  # the caller's back-end is left alone


def test_k_fold_scores_come_from_models_without_the_fold():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    be = BACKENDS.build("knn", k=2, metric="euclidean", group_by=None)
    got = cross_fit_scores(be, x, folds=4, seed=3)
    folds = fold_indices(20, 4, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20)) and len(folds) == 4
    for f in folds:
        keep = [j for j in range(20) if j not in f]
        for i in f:
            d = sorted(_euclid(x[i], x[j]) for j in keep)
            assert got[i] == pytest.approx((d[0] + d[1]) / 2, rel=1e-9)


def test_leave_one_out_per_section_and_its_errors():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 3))
    meta = BackendMeta(n=12, section=["00"] * 6 + ["01"] * 6)
    got = cross_fit_scores(BACKENDS.build("knn", k=1, metric="euclidean"), x, meta)
    for i in range(12):
        same = [j for j in range(12) if j != i and (j < 6) == (i < 6)]
        assert got[i] == pytest.approx(min(_euclid(x[i], x[j]) for j in same))
    lonely = BackendMeta(n=12, section=["00"] * 11 + ["01"])
    with pytest.raises(DataError, match=r"training row\(s\) \[11\]"):
        cross_fit_scores(BACKENDS.build("knn"), x, lonely)
    with pytest.raises(ConfigError):
        fold_indices(10, 1)


# ------------------------------------------------------------------------------------ score fusion
def test_z_and_rank_fusion_equal_their_definitions():
    rng = np.random.default_rng(0)
    normal = np.stack([rng.normal(10, 2, 30), rng.gamma(2.0, 50, 30)], axis=1)
    normal[3, 0] = normal[4, 0]  # a tie
    q = np.array([[normal[4, 0], 120.0], [30.0, 5000.0], [-5.0, 0.01], [11.0, 90.0]])
    z = ScoreFusion("z").fit(normal).fuse(q)
    r = ScoreFusion("rank", weights=[1.0, 3.0]).fit(normal).fuse(q)
    for qi, (zi, ri) in enumerate(zip(z, r)):
        zs, rs = [], []
        for m in range(2):
            col = sorted(normal[:, m])
            mean = sum(col) / 30
            sd = math.sqrt(sum((c - mean) ** 2 for c in col) / 29)
            s = q[qi, m]
            zs.append((s - mean) / sd)
            if s > col[-1]:
                rs.append(1 + (s - col[-1]) / sd)
            elif s < col[0]:
                rs.append((s - col[0]) / sd)
            else:
                rs.append((sum(c < s for c in col) + sum(c == s for c in col) / 2) / 30)
        assert zi == pytest.approx(sum(zs) / 2)
        assert ri == pytest.approx((rs[0] + 3 * rs[1]) / 4)
    assert r[1] > r[3]  # beyond every normal score the order is kept


def test_fusion_state_roundtrip_and_errors():
    normal = np.random.default_rng(0).normal(size=(10, 3))
    f = ScoreFusion("rank").fit(normal)
    g = ScoreFusion.from_state("rank", f.state())
    q = np.random.default_rng(1).normal(size=(4, 3))
    np.testing.assert_array_equal(f.fuse(q), g.fuse(q))
    with pytest.raises(DataError):
        f.fuse(q[:, :2])
    with pytest.raises(ConfigError):
        ScoreFusion("mean")
    with pytest.raises(DataError):
        ScoreFusion().fit(normal[:1])


# ----------------------------------------------------------------------------------------- ensemble
def test_ensemble_is_the_fusion_of_its_members_leave_one_out_normalised(tmp_path):
    x, meta, q = _two_domain_data(seed=5)
    members = [{"name": "knn_norm", "normalize": "local"}, {"name": "selective_mahalanobis"}]
    ens = BACKENDS.build("ensemble", members=members, fusion="rank", group_by=None).fit(x, meta)
    cols, normal = [], []
    for spec in members:
        spec = dict(spec)
        be = BACKENDS.build(spec.pop("name"), group_by=None, **spec)
        normal.append([BACKENDS.build(be.name, **be.params).fit(np.delete(x, i, 0), meta.subset(np.delete(np.arange(len(x)), i)))
                       .score(x[i:i + 1], meta.subset(np.array([i])))[0] for i in range(len(x))])
        cols.append(be.fit(x, meta).score(q))
    want = ScoreFusion("rank").fit(np.array(normal).T).fuse(np.array(cols).T)
    np.testing.assert_allclose(ens.score(q), want, rtol=1e-12)
    loaded = load_backend(ens.save(tmp_path / "e.npz"))
    np.testing.assert_array_equal(loaded.score(q), ens.score(q))


def test_ensemble_config_errors():
    with pytest.raises(ConfigError, match="registered"):
        BACKENDS.build("ensemble", members=[{"name": "nope"}])
    with pytest.raises(ConfigError, match="ensembles"):
        BACKENDS.build("ensemble", members=[{"name": "ensemble"}])
    with pytest.raises(ConfigError, match="group_by"):
        BACKENDS.build("ensemble", members=[{"name": "knn", "group_by": None}])
    with pytest.raises(ConfigError, match="weights"):
        BACKENDS.build("ensemble", members=[{"name": "knn"}], weights=[1.0, 2.0])
