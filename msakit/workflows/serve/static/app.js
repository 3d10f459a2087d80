// msakit serve: the page. Plain JavaScript, no library and nothing fetched from another server.
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = ["uploading", "queued", "extracting", "predicting", "done"];
const MODALITY = { t: "text", a: "audio", v: "vision" };
const SCALE_NAMES = { mosi: "CMU-MOSI", mosei: "CMU-MOSEI", sims: "CH-SIMS" };
let model = null;
let lastRows = [];
let lastResult = null;
let objectUrls = [];
const drawn = [];  // [canvas, timeline] pairs, redrawn when the window's width changes

function token() { return sessionStorage.getItem("msakit-token") || ""; }
function headers() { return token() ? { Authorization: "Bearer " + token() } : {}; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function words(list) {
  return list.length <= 1 ? list.join("") : list.slice(0, -1).join(", ") + " and " + list[list.length - 1];
}

// A server's phrase as a sentence: capital first letter, a full stop at the end.
function sentence(text) { const s = String(text).trim(); return s ? s[0].toUpperCase() + s.slice(1).replace(/([^.!?])$/, "$1.") : s; }

function fmt(x, digits = 2) { return x === undefined || x === null || !Number.isFinite(Number(x)) ? "" : Number(x).toFixed(digits); }

// ---- the model, in plain words ----------------------------------------------------------------

function scale() { return (model && model.scale) || [-3, 3]; }

function modalitiesUsed(m) {
  if (Array.isArray(m.modalities_used)) return m.modalities_used;
  return (m.modalities || "").split("").map((c) => MODALITY[c]).filter(Boolean);
}

// The test-split quality: the server's `quality` object, or (older servers) read from `metrics`.
function quality(m) {
  if (m.quality !== undefined) return m.quality;
  const metrics = m.metrics || {};
  const name = ["Acc-2 (non-0)", "Acc-2"].find((k) => k in metrics);
  if (!name && !("MAE" in metrics)) return null;
  return { split: m.metrics_split || "test", acc2: name ? metrics[name] : null, acc2_name: name || "Acc-2", mae: metrics.MAE, corr: metrics.Corr };
}

function describeModel(m) {
  const [low, high] = m.scale || [-3, 3];
  const title = m.model_title || m.model;
  const description = m.description
    || `${title} reading ${words(modalitiesUsed(m))}; scores on the ${SCALE_NAMES[m.kind] || m.kind} scale, ${low} (negative) to ${high} (positive)`;
  const q = quality(m);
  let how;
  if (!q) how = "No test results were recorded for this model.";
  else {
    const acc = q.acc2 === null || q.acc2 === undefined ? null : (q.acc2 <= 1 ? 100 * q.acc2 : Number(q.acc2));
    const hasMae = q.mae !== null && q.mae !== undefined;
    const parts = [], names = [];
    if (acc !== null) { parts.push(`tells positive from negative right ${acc.toFixed(1)}% of the time`); names.push(`${q.acc2_name || "Acc-2"} ${acc.toFixed(1)}%`); }
    if (hasMae) { parts.push(`is off by ${fmt(q.mae)} on average`); names.push(`MAE ${fmt(q.mae)}`); }
    how = parts.length ? `On its ${q.split || "test"} split${q.samples ? ` (${q.samples} clips)` : ""} it ${words(parts)} (${names.join(", ")}).`
      : "No test results were recorded for this model.";
  }
  const lines = [el("p", { class: "what", text: sentence(description) }), el("p", { class: "how", text: how })];
  const extra = [];
  const asr = m.speech_recognition;
  if (asr && asr.name && modalitiesUsed(m).includes("text")) extra.push(`Speech is recognised by ${asr.name}${asr.version ? " " + asr.version : ""} on this server.`);
  if (m.limits) extra.push(`Up to ${m.limits.max_clips} clips and ${m.limits.max_mb} MB at a time.`);
  if (m.note) extra.push(sentence(m.note));
  if (extra.length) lines.push(el("p", { class: "extra", text: extra.join(" ") }));
  return lines;
}

async function loadModel() {
  const response = await fetch("/api/model", { headers: headers() });
  if (response.status === 401) {
    $("auth").hidden = false;
    $("model").textContent = token() ? "The server refused that token: check it and enter it again." : "This server asks for a token: enter it below.";
    $("token").focus();
    return;
  }
  if (!response.ok) { $("model").textContent = "The model description could not be read: " + (await errorText(response)); return; }
  model = await response.json();
  $("auth").hidden = true;
  $("model").replaceChildren(...describeModel(model));
  $("model").dataset.loaded = "true";
}

// ---- progress and errors ----------------------------------------------------------------------

function showStage(stage, detail) {
  const status = $("status");
  status.className = "status";
  const now = STAGES.indexOf(stage);
  status.replaceChildren(el("ol", { class: "stages", "aria-label": "progress" }, ...STAGES.map((s, i) =>
    el("li", { class: i < now ? "done" : i === now ? "now" : "", text: s, "aria-current": i === now ? "step" : null }))));
  if (detail) status.append(el("div", { class: "detail", text: detail }));
  status.dataset.stage = stage;
}

function showError(message) {
  const status = $("status");
  status.className = "status error";
  status.textContent = message;
  status.dataset.stage = "error";
}

// An error as a sentence: {code, message} (the API), {detail, code} (non-200 answers) or a string.
function errorMessage(error) {
  if (error === null || error === undefined) return "unknown error";
  if (typeof error === "string") return error;
  if (typeof error.message === "string") return error.message;
  if (typeof error.detail === "string") return error.detail;
  return JSON.stringify(error);
}

async function errorText(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ") : errorMessage(body.detail ?? body);
  } catch (_) { /* not JSON */ }
  const retry = response.headers.get("Retry-After");
  return `${detail} (HTTP ${response.status}${retry ? `; try again in ${retry} s` : ""})`;
}

// ---- scoring ----------------------------------------------------------------------------------

async function score(files) {
  if (!files.length) return;
  const form = new FormData();
  const given = $("transcript").value.trim();
  for (const file of files) {
    form.append("file", file, file.name || "recording.webm");
    if (files.length === 1 && given) form.append("transcript", given);
  }
  clearResults();
  showStage("uploading", `${files.length} clip${files.length > 1 ? "s" : ""}`);
  let response;
  try {
    response = await fetch("/api/predict?timeline=true&progress=true", { method: "POST", body: form, headers: headers() });
  } catch (error) { showError("The server cannot be reached: " + error); return; }
  if (!response.ok) {
    if (response.status === 401) $("auth").hidden = false;
    showError(await errorText(response));
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", extracted = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      const message = JSON.parse(line);
      if (message.error) { showError("Scoring failed: " + errorMessage(message.error)); return; }
      if (message.result) { showStage("done"); render(message.result, files); return; }
      const n = files.length;
      if (message.stage === "queued") showStage("queued", "waiting for a free worker");
      if (message.stage === "extracting") showStage("extracting", `speech and features of clip ${message.clip + 1} of ${n}`);
      if (message.stage === "extracted") { extracted += 1; showStage("extracting", `${extracted} of ${n} clip${n > 1 ? "s" : ""} extracted`); }
      if (message.stage === "predicting") showStage("predicting", "running the model");
    }
    if (done) { showError("The server closed the connection before the result."); return; }
  }
}

function clearResults() {
  objectUrls.forEach((url) => URL.revokeObjectURL(url));
  objectUrls = [];
  drawn.length = 0;
  lastRows = [];
  lastResult = null;
  $("results").replaceChildren();
  $("table-wrap").hidden = true;
}

// A failure in either shape: {index, video, error: {code, message}} or (older servers) {path, reason}.
function failureRow(f, i) {
  const error = f.error !== undefined ? f.error : f.reason;
  return { index: f.index ?? i, video: f.video ?? f.path, failed: true,
           error_code: (error && typeof error === "object" && error.code) || "", error: errorMessage(error) };
}

function render(result, files) {
  const rows = (result.predictions || []).map((r, i) => ({ ...r, index: r.index ?? i }));
  const failures = (result.failures || []).map((f, i) => failureRow(f, rows.length + i));
  lastRows = rows.concat(failures).sort((a, b) => a.index - b.index);
  lastResult = result;
  if (lastRows.length > 1) renderTable();
  const results = $("results");
  for (const row of lastRows) results.append(row.failed ? renderFailure(row, files[row.index]) : renderClip(row, result, files[row.index]));
}

function warningsOf(row) { return (row.warnings || []).map((w) => (typeof w === "string" ? { code: "", message: w } : w)); }

function scaleText() {
  const [low, high] = scale();
  const name = model && (SCALE_NAMES[model.kind] || model.kind);
  return `on ${name ? "the " + name + " scale" : "a scale"} from ${low} (negative) to ${high} (positive)`;
}

function renderClip(row, result, file) {
  const [low, high] = scale();
  const where = Math.min(100, Math.max(0, (100 * (row.score - low)) / (high - low)));
  const body = el("div", { class: "clip-body" });
  const card = el("article", { class: "card clip", "data-video": row.video, "aria-label": `result for ${row.video}` },
    el("h3", { text: row.video }), el("div", { class: "clip-grid" }, body, playback(file)));
  body.append(
    el("div", { class: "score-line" },
      el("span", { class: "score", text: fmt(row.score) }),
      el("span", { class: "class " + row.class, text: row.class }),
      el("span", { class: "scale-name", text: scaleText() })),
    el("div", { class: "scale", role: "img", "aria-label": `score ${fmt(row.score)} ${scaleText()}` }, el("div", { class: "mark", style: `left:${where}%` })),
    el("div", { class: "scale-labels", "aria-hidden": "true" },
      el("span", { text: `${low} negative` }), el("span", { text: "neutral" }), el("span", { text: `positive ${high}` })));
  const warnings = warningsOf(row);
  if (warnings.length) {
    body.append(el("ul", { class: "warnings", "aria-label": "warnings" },
      ...warnings.map((w) => el("li", { class: "warning", "data-code": w.code || "", text: w.message }))));
  }
  if (Array.isArray(row.used) && row.used.length) {
    body.append(el("p", { class: "used", text: `The score rests on ${words(row.used)}.` }));
  }
  if (row.unimodal && typeof row.unimodal === "object" && Object.keys(row.unimodal).length) {
    body.append(el("p", { class: "unimodal" },
      el("span", { class: "source", text: "the model's own unimodal heads (parts of this model, not separate scores): " }),
      Object.entries(row.unimodal).map(([m, v]) => `${m} ${fmt(v)}`).join(" · ")));
  }
  const asr = result.speech_recognition;
  const source = row.transcript_source || "";
  body.append(el("div", { class: "transcript" },
    el("div", { class: "source", text: `transcript (${source || "unknown source"}${source === "speech recognition" && asr ? ": " + asr.name + (asr.version ? " " + asr.version : "") : ""})` }),
    el("div", { class: "text", text: row.transcript || (source === "none" ? "(no transcript)" : "(no speech recognised)") })));
  if (row.timeline) card.append(renderTimeline(row.timeline, row.video));
  return card;
}

function renderFailure(row, file) {
  return el("article", { class: "card clip failed", "data-video": row.video, "aria-label": `${row.video}: not scored` },
    el("h3", { text: row.video }),
    el("div", { class: "clip-grid" },
      el("div", { class: "clip-body" },
        el("p", { class: "failure", "data-code": row.error_code || "" }, el("strong", { text: "Not scored: " }), row.error),
        row.error_code ? el("p", { class: "hint", text: `error code: ${row.error_code}` }) : null),
      playback(file, false)));
}

// The user's own file, played here (never uploaded again); nothing when the browser cannot play it.
function playback(file, noteIfUnplayable = true) {
  if (!file) return null;
  const unplayable = () => (noteIfUnplayable ? el("p", { class: "hint player-note", text: "(no preview: this browser cannot play this format)" }) : el("span"));
  const audio = (file.type || "").startsWith("audio/") || /\.(wav|flac|mp3|ogg|m4a)$/i.test(file.name || "");
  const player = el(audio ? "audio" : "video", { controls: "", preload: "metadata", class: "player", "aria-label": `play ${file.name || "the clip"}` });
  if (file.type && !player.canPlayType(file.type)) return unplayable();
  const url = URL.createObjectURL(file);
  objectUrls.push(url);
  player.src = url;
  player.addEventListener("error", () => player.replaceWith(unplayable()));
  return player;
}

// ---- the timeline -----------------------------------------------------------------------------

// A series in either shape: {label, unit, rate_hz, values} or (older servers) keyed "audio level (dBFS)".
function seriesList(timeline) {
  return Object.entries(timeline.series || {}).map(([key, s]) => {
    const named = /^(.*?)\s*\(([^)]*)\)$/.exec(key);
    const label = s.label || (named ? named[1] : key.replace(/_/g, " "));
    const unit = s.unit || (named ? named[2] : ["face present", "voiced"].includes(key) ? "fraction of frames" : "");
    const finite = (s.values || []).filter((v) => v !== null && Number.isFinite(v));
    const stats = finite.length ? { min: Math.min(...finite), max: Math.max(...finite), mean: finite.reduce((a, b) => a + b, 0) / finite.length } : null;
    return { key, label, unit, rate: s.rate_hz || 1, values: s.values || [], stats, band: /fraction/.test(unit) };
  });
}

const COLOURS = ["#34495e", "#c0392b", "#1e8449", "#d35400", "#8e44ad", "#2471a3", "#16a085", "#7d6608"];

function renderTimeline(timeline, name) {
  const series = seriesList(timeline);
  const wrap = el("div", { class: "timeline-wrap" },
    el("h4", { class: "source", text: "timeline" + (series.length ? ` (${fmt(timeline.duration_s, 1)} s)` : "") }));
  if (!series.length) {
    wrap.append(el("p", { class: "timeline-note", text: sentence(timeline.note || "no timeline: this model reads the text alone, so there is nothing to draw") }));
    return wrap;
  }
  if (timeline.note) wrap.append(el("p", { class: "timeline-note", text: sentence(timeline.note) }));
  const canvas = el("canvas", { class: "timeline", role: "img",
    "aria-label": `timeline of ${name} over ${fmt(timeline.duration_s, 1)} seconds: ${series.map((s) => s.label).join(", ")}; the table below gives each one's range` });
  const table = el("table", { class: "timeline-table" },
    el("thead", {}, el("tr", {}, ...["measure", "unit", "min", "mean", "max"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...series.map((s) => el("tr", {}, el("th", { scope: "row", text: s.label }), el("td", { text: s.unit }),
      ...(s.stats ? [s.stats.min, s.stats.mean, s.stats.max].map((v) => el("td", { text: fmt(v) })) : [el("td", { colspan: "3", text: "no values" })])))));
  wrap.append(canvas, el("details", { class: "timeline-text" }, el("summary", { text: "timeline as a table" }), el("div", { class: "table-scroll" }, table)));
  drawn.push([canvas, series, timeline.duration_s]);
  requestAnimationFrame(() => drawTimeline(canvas, series, timeline.duration_s));
  return wrap;
}

function tickStep(duration, room) {
  for (const step of [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300]) if (duration / step <= room) return step;
  return 600;
}

function drawTimeline(canvas, series, durationS) {
  const width = Math.max(200, Math.floor(canvas.parentElement.clientWidth || canvas.clientWidth || 600));
  const narrow = width < 520;
  const ratio = window.devicePixelRatio || 1;
  const rowHeight = 40, top = 4, axis = 20, height = top + series.length * rowHeight + axis;
  canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  // The label column as wide as its longest label or unit, within a share of the width.
  g.font = "600 12px system-ui, sans-serif";
  let widest = Math.max(...series.map((s) => g.measureText(s.label).width));
  g.font = "11px system-ui, sans-serif";
  widest = Math.max(widest, ...series.map((s) => g.measureText(s.unit).width));
  const labelWidth = Math.round(Math.min(Math.max(widest + 10, 80), narrow ? 106 : Math.min(240, 0.3 * width)));
  const valueWidth = narrow ? 36 : 48, left = labelWidth + valueWidth, plot = width - left - 8;
  g.clearRect(0, 0, width, height);
  const duration = Math.max(durationS || 0, 0.1);
  const x = (t) => left + (plot * Math.min(Math.max(t, 0), duration)) / duration;
  const fitted = (text, room) => { let s = text; while (s.length > 3 && g.measureText(s).width > room) s = s.slice(0, -2) + "…"; return s; };
  const number = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  series.forEach((s, i) => {
    const y0 = top + i * rowHeight, h = rowHeight - 8;
    g.textBaseline = "top"; g.textAlign = "left";
    g.font = "600 12px system-ui, sans-serif"; g.fillStyle = "#1b1f24"; g.fillText(fitted(s.label, labelWidth - 6), 2, y0 + 2);
    g.font = "11px system-ui, sans-serif"; g.fillStyle = "#57606a"; g.fillText(fitted(s.unit, labelWidth - 6), 2, y0 + 17);
    g.fillStyle = "#f3f4f6"; g.fillRect(left, y0, plot, h);
    if (!s.stats) { g.fillStyle = "#57606a"; g.fillText("no values", left + 6, y0 + 10); return; }
    let lo = s.band ? 0 : s.stats.min, hi = s.band ? 1 : s.stats.max;
    if (hi - lo < 1e-9) hi = lo + 1;
    // The row's range, on its axis: max at the top, min at the bottom.
    g.textAlign = "right"; g.fillStyle = "#57606a"; g.font = "10px system-ui, sans-serif";
    g.textBaseline = "top"; g.fillText(number(hi), left - 4, y0);
    g.textBaseline = "bottom"; g.fillText(number(lo), left - 4, y0 + h);
    g.fillStyle = "#d0d7de"; g.fillRect(left - 2, y0, 1, h);
    const dt = 1 / s.rate;
    g.fillStyle = g.strokeStyle = COLOURS[i % COLOURS.length];
    if (s.band) {
      s.values.forEach((v, k) => {
        if (!v) return;
        g.globalAlpha = Math.min(1, Math.max(0.15, v));
        g.fillRect(x(k * dt), y0 + 3, Math.max(1, x((k + 1) * dt) - x(k * dt) + 0.6), h - 6);
      });
      g.globalAlpha = 1;
    } else {
      g.beginPath();
      let started = false;
      s.values.forEach((v, k) => {
        if (v === null || !Number.isFinite(v)) { started = false; return; }
        const px = x((k + 0.5) * dt), py = y0 + h - 2 - ((h - 4) * (v - lo)) / (hi - lo);
        if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      });
      g.lineWidth = 1.5; g.stroke();
    }
  });
  const yAxis = top + series.length * rowHeight - 6;
  g.fillStyle = "#57606a"; g.font = "11px system-ui, sans-serif"; g.textBaseline = "top";
  g.textAlign = "left"; g.fillText("time (s)", 2, yAxis + 4);
  const step = tickStep(duration, Math.max(2, Math.floor(plot / (narrow ? 44 : 60))));
  g.textAlign = "center";
  for (let k = 0; k * step <= duration + 1e-9; k += 1) {
    const t = k * step, px = x(t);
    g.fillRect(px, yAxis, 1, 4);
    g.fillText(t.toFixed(step < 1 ? 1 : 0), Math.min(Math.max(px, left + 6), width - 10), yAxis + 5);
  }
  canvas.dataset.drawn = String(series.length);
  canvas.dataset.width = String(width);
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => drawn.forEach(([canvas, series, duration]) => drawTimeline(canvas, series, duration)), 120);
});

// ---- the table and its CSV --------------------------------------------------------------------

function csvRow(r) {
  const out = { video: r.video, score: r.failed ? "" : fmt(r.score, 4), class: r.class || "" };
  for (const [m, v] of Object.entries(r.unimodal || {})) out["unimodal_" + m] = fmt(v, 4);
  Object.assign(out, { transcript: r.transcript ?? "", transcript_source: r.transcript_source ?? "", used: (r.used || []).join("+"),
                       warnings: warningsOf(r).map((w) => w.message).join("; "), error_code: r.error_code || "", error: r.failed ? r.error : "" });
  return out;
}

function renderTable() {
  const columns = ["video", "score", "class", "notes"];
  $("table").tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c }))));
  $("table").tBodies[0].replaceChildren(...lastRows.map((r) => el("tr", { class: r.failed ? "failed" : "" },
    el("td", { text: r.video }), el("td", { text: r.failed ? "" : fmt(r.score) }), el("td", { text: r.failed ? "not scored" : r.class }),
    el("td", { text: r.failed ? r.error : warningsOf(r).map((w) => w.message).join("; ") }))));
  $("table-wrap").hidden = false;
}

function csvText(rows) {
  const table = rows.map(csvRow);
  const columns = [];
  for (const row of table) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const quote = (v) => { const s = v === undefined || v === null ? "" : String(v); return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  return [columns.join(",")].concat(table.map((r) => columns.map((c) => quote(r[c])).join(","))).join("\n") + "\n";
}

function downloadCsv() {
  const url = URL.createObjectURL(new Blob([csvText(lastRows)], { type: "text/csv" }));
  const link = el("a", { href: url, download: "msakit-predictions.csv" });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- recording --------------------------------------------------------------------------------

let recorder = null;

async function startRecording() {
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true }); }
  catch (error) { showError("No camera or microphone: " + error.message); return; }
  const preview = $("preview");
  preview.srcObject = stream; preview.hidden = false; preview.play();
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    preview.hidden = true; $("stop").hidden = true; $("record").hidden = false;
    score([new File(chunks, "recording.webm", { type: recorder.mimeType || "video/webm" })]);
  };
  recorder.start();
  $("record").hidden = true; $("stop").hidden = false; $("stop").focus();
  showStage("uploading", "recording: press Stop and score when done (at most 30 s)");
  setTimeout(() => { if (recorder && recorder.state === "recording") recorder.stop(); }, 30000);
}

// ---- wiring -----------------------------------------------------------------------------------

function setup() {
  const drop = $("drop"), files = $("files");
  // The drop zone is a button: Tab reaches it, Enter/Space (or a click) opens the file picker.
  drop.addEventListener("click", () => files.click());
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); score([...e.dataTransfer.files]); });
  files.addEventListener("change", (e) => { const chosen = [...e.target.files]; e.target.value = ""; score(chosen); });
  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", () => recorder && recorder.stop());
  $("csv").addEventListener("click", downloadCsv);
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("msakit-token", $("token").value.trim());
    loadModel().catch((error) => showError("The model description could not be read: " + error));
  });
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    $("record").disabled = true;
    $("record").title = "this browser cannot record here (recording needs https or localhost)";
  }
  loadModel().catch((error) => showError("The model description could not be read: " + error));
}

// For the browser test (and a curious console): the last result as received, its rows, the CSV.
window.msakitPage = { csvText, get lastResult() { return lastResult; }, get lastRows() { return lastRows; } };
setup();
