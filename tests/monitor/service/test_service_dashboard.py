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
ALERTS_AT = (7, 20)


class _Dom(HTMLParser):
    """Collect every rendered element as (tag, attrs) and the text of <li> elements (the inert
    content of <template> is left out)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.li_text: list[str] = []
        self._in_li = False
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

    def handle_endtag(self, tag):
        if tag == "template":
            self._template -= 1
        if tag == "li":
            self._in_li = False

    def handle_data(self, data):
        if self._in_li:
            self.li_text[-1] += data

    def find(self, tag, cls=None):
        return [a for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split())]


def _chromium(tmp_path, url, *args):
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1200,1500", "--hide-scrollbars",
           "--virtual-time-budget=15000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    state = tmp_path_factory.mktemp("dash")
    app = create_app(ServiceConfig(bundles=[FakeBundle(["pump-1", "fan-2"])], token=TOKEN, state_dir=state))
    with ThreadServer(app) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            for i in range(30):
                loud = i in ALERTS_AT
                x = tone(amp=0.5 if loud else 0.05 + 0.02 * (i % 5), freq=3000.0 if loud else 440.0, seed=i)
                assert c.post("/v1/machines/pump-1/score",
                              files={"file": (f"c{i}.wav", wav_bytes(x, 16000))}).status_code == 200
            for i in range(5):
                c.post("/v1/machines/fan-2/score", files={"file": (f"f{i}.wav", wav_bytes(tone(amp=0.05, seed=i), 16000))})
            worst = {m: c.get(f"/v1/machines/{m}/worst").json()["id"] for m in ("pump-1", "fan-2")}
        yield server, worst


def test_dashboard_dom_has_timeline_threshold_alerts_and_heatmap(served, tmp_path):
    server, worst = served
    r = _chromium(tmp_path, f"{server.url}/dashboard#token={TOKEN}", "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = _Dom()
    dom.feed(r.stdout)
    assert dom.find("body")[0].get("data-state") == "ready", r.stdout[:3000]
    cards = {a["data-machine"]: a for a in dom.find("section", "machine")}
    assert set(cards) == {"pump-1", "fan-2"}
    canvases = dom.find("canvas", "timeline")
    by_points = sorted((int(a["data-points"]), float(a["data-threshold"]), int(a["data-alerts"]))
                       for a in canvases if "data-points" in a)
    assert by_points == [(5, 0.2, 0), (30, 0.2, len(ALERTS_AT))]
    alerts = [a for a in dom.find("li", "alert")]
    assert len(alerts) == len(ALERTS_AT)
    assert sum("c7.wav" in t or "c20.wav" in t for t in dom.li_text) == len(ALERTS_AT)
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
    assert len(line_groups) == 2  # one threshold line per machine card
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
