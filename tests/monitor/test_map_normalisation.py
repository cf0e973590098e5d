"""Explanation maps normalised by normal variation (monitor.explain.band_variation / variation_normalised_map)."""

from __future__ import annotations

import numpy as np
import pytest

from auscult.errors import ConfigError
from auscult.monitor.explain import band_variation, calibrated_map, variation_normalised_map


def test_band_variation_and_normalised_map_equal_their_definitions():
    rng = np.random.default_rng(0)
    maps = [rng.gamma(2.0, 1.0, size=(4, 50)) * np.arange(1, 5)[:, None] for _ in range(3)]
    loc, scale = band_variation(maps, q=0.9)
    for b in range(4):
        vals = sorted(np.concatenate([m[b] for m in maps]))
        n = len(vals)
        med = (vals[n // 2 - 1] + vals[n // 2]) / 2
        pos = 0.9 * (n - 1)  # linear interpolation between order statistics
        q90 = vals[int(pos)] + (pos - int(pos)) * (vals[int(pos) + 1] - vals[int(pos)])
        assert loc[b] == pytest.approx(med) and scale[b] == pytest.approx(q90 - med)
    tf = rng.gamma(2.0, 1.0, size=(4, 7))
    got = variation_normalised_map(tf, loc, scale)
    for b in range(4):
        for t in range(7):
            assert got[b, t] == pytest.approx(max(0.0, (tf[b, t] - loc[b]) / scale[b]))
    with pytest.raises(ConfigError):
        band_variation(maps, q=0.3)


def test_a_band_with_loud_normal_events_no_longer_outshines_a_steady_fault():
    """Band 0: usually quiet, 2 % of normal frames very loud (impacts). Band 1: steady. A fault raises
    band 1 moderately; a normal impact hits band 0. Scaled by the band mean the impact wins; scaled
    by the band's normal spread of high values the fault does."""
    rng = np.random.default_rng(1)
    normal = []
    for _ in range(20):
        m = np.abs(rng.normal(1.0, 0.1, size=(2, 100)))
        hits = rng.random(100) < 0.02
        m[0, hits] = rng.uniform(20, 40, hits.sum())
        normal.append(m)
    test = np.abs(rng.normal(1.0, 0.1, size=(2, 10)))
    test[0, 3] = 30.0   # a normal impact
    test[1, 6] = 2.5    # the fault: 2.5x the band's usual level
    mean_scaled = calibrated_map(test, np.concatenate(normal, axis=1).mean(axis=1))
    assert np.unravel_index(mean_scaled.argmax(), test.shape) == (0, 3)
    loc, scale = band_variation(normal, q=0.99)
    var_scaled = variation_normalised_map(test, loc, scale)
    assert np.unravel_index(var_scaled.argmax(), test.shape) == (1, 6)


def test_tail_reference_map_and_summary_peak_equal_their_definitions():
    from auscult.monitor.explain import smooth_frames, summary_peak, tail_map, tail_reference

    rng = np.random.default_rng(3)
    maps = [rng.gamma(2.0, 1.0, size=(6, 40)) for _ in range(3)]
    # smoothing: a centred moving average, shortened at the ends
    sm = smooth_frames(maps[0], 3)
    assert sm[2, 0] == pytest.approx(maps[0][2, :2].mean()) and sm[2, 5] == pytest.approx(maps[0][2, 4:7].mean())
    np.testing.assert_allclose(smooth_frames(maps[0], 1), maps[0])
    loc, scale = tail_reference(maps, smooth=3, neighbours=1)
    all_sm = np.concatenate([smooth_frames(m, 3) for m in maps], axis=1)
    peak = all_sm.max(axis=1) - np.median(all_sm, axis=1)
    np.testing.assert_allclose(loc, np.median(all_sm, axis=1))
    for b in range(6):
        assert scale[b] == pytest.approx(peak[max(0, b - 1): b + 2].max())
    tf = rng.gamma(2.0, 1.0, size=(6, 9))
    np.testing.assert_allclose(tail_map(tf, loc, scale, 3),
                               np.maximum((smooth_frames(tf, 3) - loc[:, None]) / scale[:, None], 0.0))
    # normal frames never go above 1 against their own reference
    assert max(tail_map(m, loc, scale, 3).max() for m in maps) <= 1.0 + 1e-12
    # summary: the curve's peak frame, the band brightest on average over +-2 frames around it
    t = np.zeros((4, 12))
    t[1, 5] = 10.0            # one bright cell in the peak frame...
    t[3, 3:8] = 3.0           # ...and a band bright all around it
    curve = np.zeros(12)
    curve[5] = 1.0
    assert summary_peak(t, curve) == (5, 3)
    assert summary_peak(t, curve, half=0) == (5, 1)  # one frame alone: its own brightest cell
    with pytest.raises(ConfigError):
        tail_reference([])


def test_a_normal_transient_in_a_neighbouring_band_no_longer_outshines_a_fault():
    """Normal clips: rare loud events, each in one of bands 0-4 at random. The test clip has an event
    in band 2, which no normal clip happened to hit, and a fault 3x the normal maximum in band 7.
    A per-band reference lets the event win; pooling the normal maximum over +-2 bands does not."""
    from auscult.monitor.explain import tail_map, tail_reference

    rng = np.random.default_rng(4)
    normal = []
    for i in range(10):
        m = np.abs(rng.normal(1.0, 0.1, size=(10, 100)))
        m[[0, 1, 3, 4][i % 4], rng.integers(0, 100)] = 40.0
        normal.append(m)
    test = np.abs(rng.normal(1.0, 0.1, size=(10, 20)))
    test[2, 5] = 40.0
    test[7, 12:15] = 1.0 + 3 * (max(m[7].max() for m in normal) - 1.0)
    own = tail_map(test, *tail_reference(normal, smooth=1, neighbours=0), smooth=1)
    pooled = tail_map(test, *tail_reference(normal, smooth=1, neighbours=2), smooth=1)
    assert np.unravel_index(own.argmax(), own.shape)[0] == 2
    assert np.unravel_index(pooled.argmax(), pooled.shape)[0] == 7
