// auscult dashboard: reads the service API with the token kept in this tab, draws one card per
// machine (score timeline by time with the threshold line, k-of-n alert periods, input faults and
// clipped outliers marked; the latest anomalous clips; explain heat map of the worst recent clip).
// Alerts are counted by the service with the k-of-n rule of `auscult watch`, not here.
// Everything user-supplied is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "auscult-token";
const THRESHOLD_COLOUR = "#e4002b";
const SCORE_COLOUR = "#1f6feb";
const ALERT_COLOUR = "#ff8c00";
const ALERT_BAND = "rgba(255, 140, 0, 0.13)";
const FAULT_COLOUR = "#6e7781";
const REFRESH_MS = 15000;

function takeTokenFromHash() {
  const m = /(?:^#|&)token=([^&]+)/.exec(window.location.hash || "");
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

class AuthError extends Error {}

async function api(path) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401) throw new AuthError("token refused");
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(path + ": " + r.status + " " + detail);
  }
  return r;
}

function fmtTime(t) { return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"); }

function quantile(values, q) {
  const v = [...values].sort((a, b) => a - b);
  const pos = (v.length - 1) * q, i = Math.floor(pos);
  return i + 1 < v.length ? v[i] + (v[i + 1] - v[i]) * (pos - i) : v[i];
}

// The y range: everything up to a bit beyond the bulk of the scores and the threshold. A score far
// above that (an outlier: a broken gain, a knock on the microphone) is drawn clipped at the top edge
// with its value, so it cannot squash every other point and the threshold onto the axis.
function scoreScale(scores, thresholds) {
  const all = scores.length ? scores : thresholds;
  let lo = Math.min(...all, ...thresholds);
  const top = Math.max(scores.length ? quantile(scores, 0.9) : -Infinity, ...thresholds);
  const span = (top - lo) || Math.abs(top) * 0.1 || 1;
  const limit = top + 2 * span;  // points above this are clipped
  let hi = Math.max(top, ...all.filter(v => v <= limit));
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
  return { lo: lo - pad, hi: hi + pad, limit };
}

function drawTimeline(canvas, records, alertEpisodes) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const L = 56, R = 12, T = 12, B = 28;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, W, H);
  const recs = [...records].sort((a, b) => a.time - b.time || a.id - b.id);
  const scored = recs.filter(r => r.status !== "input_fault");
  const faults = recs.filter(r => r.status === "input_fault");
  Object.assign(canvas.dataset, {
    points: String(recs.length), faults: String(faults.length), alerts: String(alertEpisodes || 0),
    anomalous: String(scored.filter(r => r.decision).length), clipped: "0",
  });
  if (!recs.length) {
    ctx.fillStyle = "#5b6475";
    ctx.font = "13px sans-serif";
    ctx.fillText("no scores yet", L, H / 2);
    return;
  }
  // x by time: a pause in the data shows as a pause on the chart
  const t0 = recs[0].time, t1 = recs[recs.length - 1].time;
  const x = t => L + (t1 === t0 ? (W - L - R) / 2 : (t - t0) * (W - L - R) / (t1 - t0));
  const { lo, hi, limit } = scoreScale(scored.map(r => r.score), recs.map(r => r.threshold));
  const y = v => T + (hi - Math.min(v, hi)) * (H - T - B) / (hi - lo);
  // alert periods (the k-of-n rule, computed by the service): a light band behind the points
  ctx.fillStyle = ALERT_BAND;
  scored.forEach((r, i) => {
    if (!r.alert) return;
    const xa = x(r.time), xb = i + 1 < scored.length ? x(scored[i + 1].time) : W - R;
    ctx.fillRect(xa, T, Math.max(2, xb - xa), H - T - B);
  });
  // axes
  ctx.strokeStyle = "#c9ced6"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  ctx.fillStyle = "#5b6475"; ctx.font = "11px sans-serif";
  ctx.fillText(hi.toPrecision(3), 4, T + 8);
  ctx.fillText(lo.toPrecision(3), 4, H - B);
  ctx.fillText(fmtTime(t0), L, H - 8);
  const last = fmtTime(t1);
  ctx.fillText(last, W - R - ctx.measureText(last).width, H - 8);
  // threshold: a step line, each record's threshold from its time on (flat when the model did not change)
  ctx.strokeStyle = THRESHOLD_COLOUR; ctx.lineWidth = 2; ctx.setLineDash([8, 4]);
  ctx.beginPath();
  ctx.moveTo(L, y(recs[0].threshold));
  recs.forEach((r, i) => {
    if (i) { ctx.lineTo(x(r.time), y(recs[i - 1].threshold)); ctx.lineTo(x(r.time), y(r.threshold)); }
  });
  ctx.lineTo(W - R, y(recs[recs.length - 1].threshold));
  ctx.stroke();
  ctx.setLineDash([]);
  // score line and dots; clipped points as triangles at the top edge with their value
  ctx.strokeStyle = "#9bb8e8"; ctx.lineWidth = 1;
  ctx.beginPath();
  scored.forEach((r, i) => { if (i === 0) ctx.moveTo(x(r.time), y(r.score)); else ctx.lineTo(x(r.time), y(r.score)); });
  ctx.stroke();
  let clipped = 0;
  scored.forEach(r => {
    const colour = r.decision ? ALERT_COLOUR : SCORE_COLOUR;
    ctx.fillStyle = colour;
    if (r.score > limit) {
      clipped += 1;
      const xx = x(r.time);
      ctx.beginPath(); ctx.moveTo(xx, T - 2); ctx.lineTo(xx - 6, T + 9); ctx.lineTo(xx + 6, T + 9); ctx.closePath(); ctx.fill();
      ctx.fillStyle = "#1d2330"; ctx.font = "10px sans-serif";
      const label = r.score.toPrecision(3);
      ctx.fillText(label, Math.min(xx + 8, W - R - ctx.measureText(label).width), T + 9);
      return;
    }
    ctx.beginPath(); ctx.arc(x(r.time), y(r.score), r.decision ? 4 : 3, 0, 2 * Math.PI); ctx.fill();
  });
  // input faults: not a score, so not on the score scale: a grey cross on the time axis
  ctx.strokeStyle = FAULT_COLOUR; ctx.lineWidth = 2;
  faults.forEach(r => {
    const xx = x(r.time), yy = H - B - 7;
    ctx.beginPath(); ctx.moveTo(xx - 5, yy - 5); ctx.lineTo(xx + 5, yy + 5); ctx.moveTo(xx + 5, yy - 5); ctx.lineTo(xx - 5, yy + 5);
    ctx.stroke();
  });
  if (clipped) {
    ctx.fillStyle = "#5b6475"; ctx.font = "11px sans-serif";
    ctx.fillText("▲ = above the scale (value shown)", L + 6, T + 22);
  }
  Object.assign(canvas.dataset, {
    threshold: String(recs[recs.length - 1].threshold),
    thresholdY: y(recs[recs.length - 1].threshold).toFixed(1),
    plotTop: String(T), plotBottom: String(H - B), clipped: String(clipped),
    xs: scored.map(r => x(r.time).toFixed(1)).join(","),
  });
}

function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

function fillAnomalous(ul, records) {
  ul.replaceChildren();
  if (!records.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no anomalous clips";
    ul.appendChild(li);
    return;
  }
  for (const a of records) {
    const li = document.createElement("li");
    li.className = "anomalous" + (a.alert ? " during-alert" : "");
    li.dataset.record = String(a.id);
    if (a.alert) li.title = "the k-of-n alert was on after this clip";
    li.textContent = fmtTime(a.time) + " · score " + a.score.toPrecision(4) + " > " + a.threshold.toPrecision(4) +
      (a.filename ? " · " + a.filename : "");
    ul.appendChild(li);
  }
}

async function renderMachine(card, m, rule) {
  const id = encodeURIComponent(m.id);
  card.dataset.machine = m.id;
  card.querySelector(".machine-id").textContent = m.id;
  card.querySelector(".stats").textContent = m.n_scored + " clips scored · " + m.n_anomalous + " anomalous · " +
    plural(m.n_alerts, "alert") + " (k-of-n: " + rule.k + " of the last " + rule.n + ")" +
    (m.alert ? " · ALERT ON" : "") + (m.n_input_faults ? " · " + plural(m.n_input_faults, "input fault") : "") +
    " · " + m.sample_rate + " Hz" + (m.last_time ? " · last " + fmtTime(m.last_time) : "");
  card.classList.toggle("alerting", Boolean(m.alert));
  const [hist, anomalous, worst] = await Promise.all([
    api("/v1/machines/" + id + "/history?limit=500").then(r => r.json()),
    api("/v1/machines/" + id + "/alerts?limit=5").then(r => r.json()),
    api("/v1/machines/" + id + "/worst").then(r => r.json()),
  ]);
  const canvas = card.querySelector(".timeline");
  canvas.dataset.machine = m.id;
  drawTimeline(canvas, hist.records, hist.alert_episodes);
  fillAnomalous(card.querySelector(".alerts"), anomalous);
  const img = card.querySelector(".heatmap");
  const cap = card.querySelector(".heatmap-caption");
  if (worst) {
    const blob = await (await api("/v1/machines/" + id + "/explain.png?record=" + worst.id)).blob();
    await new Promise((resolve) => {
      img.onload = resolve; img.onerror = resolve;
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
    });
    img.hidden = false;
    img.dataset.record = String(worst.id);
    cap.textContent = "Worst recent clip (record " + worst.id + ", score " + worst.score.toPrecision(4) +
      (worst.filename ? ", " + worst.filename : "") + "): where in time and frequency it sounds wrong";
  } else {
    img.hidden = true;
    cap.textContent = "No stored clip to explain yet";
  }
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const { machines, alert_rule } = await (await api("/v1/machines")).json();
    const main = document.getElementById("machines");
    const tpl = document.getElementById("machine-template");
    document.getElementById("login").hidden = true;
    for (const m of machines) {
      let card = main.querySelector('section.machine[data-machine="' + CSS.escape(m.id) + '"]');
      if (!card) {
        card = tpl.content.firstElementChild.cloneNode(true);
        card.dataset.machine = m.id;
        main.appendChild(card);
      }
      await renderMachine(card, m, alert_rule);
    }
    status.textContent = machines.length + " machine(s) · updated " + new Date().toLocaleTimeString();
    document.body.dataset.state = "ready";
  } catch (e) {
    if (e instanceof AuthError) {
      document.getElementById("login").hidden = false;
      status.textContent = token() ? "token refused" : "token needed";
      document.body.dataset.state = "login";
    } else {
      status.textContent = "error: " + e.message;
      status.classList.add("error");
      document.body.dataset.state = "error";
    }
  }
}

function main() {
  takeTokenFromHash();
  document.getElementById("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    refresh();
  });
  refresh();
  setInterval(() => { if (document.body.dataset.state === "ready") refresh(); }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", main);
