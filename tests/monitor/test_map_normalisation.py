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
