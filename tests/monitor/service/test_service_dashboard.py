"""The dashboard in headless Chromium: the DOM it builds and a screenshot, checked for what matters.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skips with that reason otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import httpx
import numpy as np
import pytest
from service_testlib import FakeBundle, ThreadServer, TOKEN, tone, wav_bytes

from auscult.monitor.service import ServiceConfig, create_app

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)"),
    pytest.mark.xdist_group("chromium"),
]
THRESHOLD_RGB = (0xE4, 0x00, 0x2B)  # dashboard.js THRESHOLD_COLOUR
ALERT_RGB = (0xFF, 0x8C, 0x00)  # dashboard.js ALERT_COLOUR
ALERTS_AT = (7, 20)  # lone anomalous clips: no k-of-n alert (3 of 5)
BURST_AT = (30, 31, 32)  # three in a row: one alert episode
OUTLIER_AT = 34  # a clip scoring 58 (threshold 0.2): must not squash the scale
N_PUMP = 38
ANOMALOUS = ALERTS_AT + BURST_AT + (OUTLIER_AT,)


class _Dom(HTMLParser):
    """Collect every rendered element as (tag, attrs) and the text of <li> elements (the inert
    content of <template> is left out)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.li_text: list[str] = []
        self.stats_text: list[str] = []
        self._in_li = False
        self._in_stats = False
        self._template = 0

    def handle_starttag(self, tag, attrs):
        if tag == "template":
            self._template += 1
        if self._template:
            return
        self.elements.append((tag, dict(attrs)))
        self._in_li = tag == "li"
        if self._in_li:
            self.li_text.append("")
        self._in_stats = tag == "p" and "stats" in dict(attrs).get("class", "").split()
        if self._in_stats:
            self.stats_text.append("")

    def handle_endtag(self, tag):
        if tag == "template":
            self._template -= 1
        if tag == "li":
            self._in_li = False
        if tag == "p":
            self._in_stats = False

    def handle_data(self, data):
        if self._in_li:
            self.li_text[-1] += data
        if self._in_stats:
            self.stats_text[-1] += data

    def find(self, tag, cls=None):
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]


def _chromium(tmp_path, url, *args):
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1200,2600", "--hide-scrollbars",
           "--virtual-time-budget=15000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("dash")
    app = create_app(ServiceConfig(bundles=[FakeBundle(["pump-1", "fan-2", "gap-3"])], token=TOKEN, state_dir=state))
    with ThreadServer(app) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            for i in range(N_PUMP):
                loud = i in ALERTS_AT + BURST_AT
                x = tone(amp=0.5 if loud else 0.05 + 0.02 * (i % 5), freq=3000.0 if loud else 440.0, seed=i)
                data = wav_bytes(x, 16000)
                if i == OUTLIER_AT:  # RMS 58: a float WAV far outside [-1, 1] (what a broken gain looks like)
                    data = wav_bytes(np.where(np.arange(16000) % 2, 58.0, -58.0).astype(np.float32), 16000,
                                     subtype="FLOAT")
                assert c.post("/v1/machines/pump-1/score",
                              files={"file": (f"c{i}.wav", data)}).status_code == 200
            for i in range(5):
                c.post("/v1/machines/fan-2/score", files={"file": (f"f{i}.wav", wav_bytes(tone(amp=0.05, seed=i), 16000))})
            worst = {m: c.get(f"/v1/machines/{m}/worst").json()["id"] for m in ("pump-1", "fan-2")}
        # gap-3: ten clips a minute apart, an hour's pause, ten more; one input fault (a silent clip,
        # issue 15 item 2's status) scored 58 in the pause -- stored directly with the times we want
        t0 = 1_760_000_000.0
        times = [t0 + 60 * i for i in range(10)] + [t0 + 3600 + 60 * i for i in range(10)]
        for i, t in enumerate(times):
            app.state.store.add("gap-3", 0.05 + 0.01 * (i % 3), 0.2, False, 0.01, filename=f"g{i}.wav", time=t)
        app.state.store.add("gap-3", 58.0, 0.2, True, 0.01, filename="silent.wav", time=t0 + 1800,
                            extra={"status": "input_fault", "reason": "silent"})
        yield server, worst


def test_dashboard_dom_has_timeline_threshold_alerts_and_heatmap(served, tmp_path):
    server, worst = served
    r = _chromium(tmp_path, f"{server.url}/dashboard#token={TOKEN}", "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = _Dom()
    dom.feed(r.stdout)
    assert dom.find("body")[0].get("data-state") == "ready", r.stdout[:3000]
    cards = {a["data-machine"]: a for a in dom.find("section", "machine")}
    assert set(cards) == {"pump-1", "fan-2", "gap-3"}
    canvases = {a["data-machine"]: a for a in dom.find("canvas", "timeline")}
    got = {m: (int(a["data-points"]), float(a["data-threshold"]), int(a["data-anomalous"]), int(a["data-alerts"]),
               int(a["data-faults"])) for m, a in canvases.items()}
    # alerts: the k-of-n rule of `auscult watch` (3 of 5): the lone anomalous clips make none, the burst one;
    # the input fault is neither a score on the scale nor an anomalous clip
    assert got == {"fan-2": (5, 0.2, 0, 0, 0), "pump-1": (N_PUMP, 0.2, len(ANOMALOUS), 1, 0),
                   "gap-3": (21, 0.2, 0, 0, 1)}
    stats = dict(zip([a["data-machine"] for a in dom.find("section", "machine")], dom.stats_text))
    assert f"{N_PUMP} clips scored · {len(ANOMALOUS)} anomalous · 1 alert (k-of-n: 3 of the last 5)" in \
        stats["pump-1"], stats
    assert "1 input fault" in stats["gap-3"] and "0 alerts" in stats["gap-3"], stats
    # the newest 5 anomalous clips, newest first (the input fault of gap-3 is not one of them)
    assert len(dom.find("li", "anomalous")) == 5
    listed = [t.rsplit("·", 1)[-1].strip() for t in dom.li_text if ".wav" in t]
    assert listed == [f"c{i}.wav" for i in sorted(ANOMALOUS, reverse=True)[:5]], listed
    imgs = [a for a in dom.find("img", "heatmap") if "data-record" in a]
    assert sorted(int(a["data-record"]) for a in imgs) == sorted(worst.values())
    assert all(a["src"].startswith("blob:") for a in imgs)
    assert all("hidden" not in a for a in imgs)


def test_dashboard_screenshot_shows_threshold_line_alerts_and_heatmap(served, tmp_path):
    server, _ = served
    shot = tmp_path / "dashboard.png"
    r = _chromium(tmp_path, f"{server.url}/dashboard#token={TOKEN}", f"--screenshot={shot}")
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from matplotlib.image import imread

    img = (imread(shot)[..., :3] * 255).round().astype(int)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img.std() > 20  # not a blank page

    def mask(rgb, tol=6):
        return (np.abs(img - np.array(rgb)) <= tol).all(axis=-1)

    thr = mask(THRESHOLD_RGB)
    rows = np.flatnonzero(thr.sum(axis=1) >= 150)  # dashed 2-px lines spanning ~580 px
    assert rows.size >= 2, f"no threshold line found ({thr.sum()} pixels of its colour)"
    line_groups = np.split(rows, np.flatnonzero(np.diff(rows) > 3) + 1)
    assert len(line_groups) == 3  # one threshold line per machine card
    assert mask(ALERT_RGB).sum() >= 20 * len(ALERTS_AT)  # the alert dots
    # the heat maps: matplotlib 'magma' pixels (dark purples/blacks dominate a log-power map)
    dark = (img.sum(axis=-1) < 60).sum()
    assert dark > 50_000


def test_dashboard_without_token_asks_for_it(served, tmp_path):
    server, _ = served
    r = _chromium(tmp_path, f"{server.url}/dashboard", "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = _Dom()
    dom.feed(r.stdout)
    assert dom.find("body")[0].get("data-state") == "login"
    assert "hidden" not in dom.find("form")[0]
    assert not dom.find("section", "machine")


def test_timeline_places_points_by_time_and_keeps_the_threshold_visible(served, tmp_path):
    """The threshold line stays inside the plot, well clear of its edges, with an outlier of 58 (290x the
    threshold) on the chart; the outlier is drawn clipped and counted; points sit at their times."""
    server, _ = served
    r = _chromium(tmp_path, f"{server.url}/dashboard#token={TOKEN}", "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = _Dom()
    dom.feed(r.stdout)
    canvases = {a["data-machine"]: a for a in dom.find("canvas", "timeline")}
    for m, a in canvases.items():
        top, bottom, thr_y = float(a["data-plot-top"]), float(a["data-plot-bottom"]), float(a["data-threshold-y"])
        assert top < thr_y < bottom, (m, top, thr_y, bottom)
    pump = canvases["pump-1"]
    top, bottom, thr_y = float(pump["data-plot-top"]), float(pump["data-plot-bottom"]), float(pump["data-threshold-y"])
    height_above_axis = (bottom - thr_y) / (bottom - top)
    assert 0.15 <= height_above_axis <= 0.9, height_above_axis  # not squashed onto the axis by the outlier
    assert int(pump["data-clipped"]) == 1
    # the input fault (score 58) is a marker of its own: it neither stretches nor is clipped on the scale
    gap = canvases["gap-3"]
    assert int(gap["data-clipped"]) == 0 and int(gap["data-faults"]) == 1
    xs = [float(v) for v in gap["data-xs"].split(",")]  # scored points, oldest first
    assert len(xs) == 20 and xs == sorted(xs)
    steps = np.diff(xs)
    # ten clips a minute apart, an hour's pause, ten more: the pause is ~51 minute-steps wide, not one
    assert steps[9] > 30 * np.median(np.delete(steps, 9)), steps
