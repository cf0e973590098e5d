// auscult dashboard: reads the service API with the token kept in this tab, draws one card per
// machine (score timeline with threshold line, latest alerts, explain heat map of the worst
// recent clip). Everything user-supplied is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "auscult-token";
const THRESHOLD_COLOUR = "#e4002b";
const SCORE_COLOUR = "#1f6feb";
const ALERT_COLOUR = "#ff8c00";
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

function drawTimeline(canvas, records) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const L = 56, R = 12, T = 12, B = 28;
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, W, H);
  canvas.dataset.points = String(records.length);
  if (!records.length) {
    ctx.fillStyle = "#5b6475";
    ctx.font = "13px sans-serif";
    ctx.fillText("no scores yet", L, H / 2);
    return;
  }
  const ys = records.flatMap(r => [r.score, r.threshold]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
  lo -= pad; hi += pad;
  const t0 = records[0].time, t1 = records[records.length - 1].time;
  const n = records.length;
  // x by order (evenly spaced) keeps bursts readable; the axis labels give the time span
  const x = i => L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
  const y = v => Math.round(T + (hi - v) * (H - T - B) / (hi - lo));
  // axes
  ctx.strokeStyle = "#c9ced6"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  ctx.fillStyle = "#5b6475"; ctx.font = "11px sans-serif";
  ctx.fillText(hi.toPrecision(3), 4, T + 8);
  ctx.fillText(lo.toPrecision(3), 4, H - B);
  ctx.fillText(fmtTime(t0), L, H - 8);
  const last = fmtTime(t1);
  ctx.fillText(last, W - R - ctx.measureText(last).width, H - 8);
  // threshold: a step line through each record's threshold (flat when the model did not change)
  ctx.strokeStyle = THRESHOLD_COLOUR; ctx.lineWidth = 2; ctx.setLineDash([8, 4]);
  ctx.beginPath();
  const xEnd = i => (i === n - 1 ? W - R : (x(i) + x(i + 1)) / 2);
  let xStart = L;
  records.forEach((r, i) => {
    const yy = y(r.threshold);
    if (i === 0) ctx.moveTo(xStart, yy); else ctx.lineTo(xStart, yy);
    ctx.lineTo(xEnd(i), yy);
    xStart = xEnd(i);
  });
  ctx.stroke();
  ctx.setLineDash([]);
  // score line and dots
  ctx.strokeStyle = "#9bb8e8"; ctx.lineWidth = 1;
  ctx.beginPath();
  records.forEach((r, i) => { if (i === 0) ctx.moveTo(x(i), y(r.score)); else ctx.lineTo(x(i), y(r.score)); });
  ctx.stroke();
  records.forEach((r, i) => {
    ctx.fillStyle = r.decision ? ALERT_COLOUR : SCORE_COLOUR;
    ctx.beginPath(); ctx.arc(x(i), y(r.score), r.decision ? 4 : 3, 0, 2 * Math.PI); ctx.fill();
  });
  canvas.dataset.threshold = String(records[n - 1].threshold);
  canvas.dataset.alerts = String(records.filter(r => r.decision).length);
}

function fillAlerts(ul, alerts) {
  ul.replaceChildren();
  if (!alerts.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no alerts";
    ul.appendChild(li);
    return;
  }
  for (const a of alerts) {
    const li = document.createElement("li");
    li.className = "alert";
    li.dataset.record = String(a.id);
    li.textContent = fmtTime(a.time) + " · score " + a.score.toPrecision(4) + " > " + a.threshold.toPrecision(4) +
      (a.filename ? " · " + a.filename : "");
    ul.appendChild(li);
  }
}

async function renderMachine(card, m) {
  const id = encodeURIComponent(m.id);
  card.dataset.machine = m.id;
  card.querySelector(".machine-id").textContent = m.id;
  card.querySelector(".stats").textContent = m.n_scored + " clips scored · " + m.n_alerts + " alerts · " +
    m.sample_rate + " Hz" + (m.last_time ? " · last " + fmtTime(m.last_time) : "");
  const [hist, alerts, worst] = await Promise.all([
    api("/v1/machines/" + id + "/history?limit=500").then(r => r.json()),
    api("/v1/machines/" + id + "/alerts?limit=5").then(r => r.json()),
    api("/v1/machines/" + id + "/worst").then(r => r.json()),
  ]);
  drawTimeline(card.querySelector(".timeline"), hist.records);
  fillAlerts(card.querySelector(".alerts"), alerts);
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
    const { machines } = await (await api("/v1/machines")).json();
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
      await renderMachine(card, m);
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
