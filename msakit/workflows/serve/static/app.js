// msakit serve: the page. Plain JavaScript, no library and nothing fetched from another server.
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = ["uploading", "queued", "extracting", "predicting", "done"];
let model = null;
let lastRows = [];

function token() { return sessionStorage.getItem("msakit-token") || ""; }
function headers() { return token() ? { Authorization: "Bearer " + token() } : {}; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function loadModel() {
  const response = await fetch("/api/model", { headers: headers() });
  if (response.status === 401) { $("auth").hidden = false; $("model").textContent = "this server asks for a token"; return; }
  model = await response.json();
  $("auth").hidden = true;
  const metrics = model.metrics ? Object.entries(model.metrics).filter(([k]) => ["MAE", "Corr", "Acc-2", "Acc-7"].includes(k))
    .map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ") : "none recorded";
  $("model").textContent = `${model.model} on ${model.modalities.split("").join("+")} (${model.kind}, scale ${model.scale[0]} to ${model.scale[1]}); `
    + `${model.metrics_split || "test"} metrics: ${metrics}.` + (model.note ? " " + model.note + "." : "");
}

function showStage(stage, detail) {
  const status = $("status");
  status.className = "status";
  status.replaceChildren(el("div", { class: "stages" }, ...STAGES.map((s) => {
    const i = STAGES.indexOf(s), now = STAGES.indexOf(stage);
    return el("span", { class: i < now ? "done" : i === now ? "now" : "", text: s });
  })));
  if (detail) status.append(el("div", { text: detail }));
  status.dataset.stage = stage;
}

function showError(message) {
  const status = $("status");
  status.className = "status error";
  status.textContent = message;
  status.dataset.stage = "error";
}

async function score(files) {
  if (!files.length) return;
  const form = new FormData();
  const given = $("transcript").value.trim();
  for (const file of files) {
    form.append("file", file, file.name || "recording.webm");
    if (files.length === 1 && given) form.append("transcript", given);
  }
  $("results").replaceChildren();
  $("table-wrap").hidden = true;
  showStage("uploading", `${files.length} clip(s)`);
  let response;
  try {
    response = await fetch("/api/predict?timeline=true&progress=true", { method: "POST", body: form, headers: headers() });
  } catch (error) { showError("the server cannot be reached: " + error); return; }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    if (response.status === 401) $("auth").hidden = false;
    showError(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
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
      if (message.error) { showError(message.error); return; }
      if (message.result) { showStage("done"); render(message.result); return; }
      if (message.stage === "queued") showStage("queued", "waiting for a free worker");
      if (message.stage === "extracting") showStage("extracting", `speech and features of clip ${message.clip + 1} of ${files.length}`);
      if (message.stage === "extracted") { extracted += 1; showStage("extracting", `${extracted} of ${files.length} clip(s) extracted`); }
      if (message.stage === "predicting") showStage("predicting", "running the model");
    }
    if (done) { showError("the server closed the connection before the result"); return; }
  }
}

function fmt(x) { return x === undefined || x === null ? "" : Number(x).toFixed(3); }

function render(result) {
  const rows = result.predictions, failures = result.failures;
  lastRows = rows.map((r) => ({ ...r })).concat(failures.map((f) => ({ video: f.path, error: f.reason })));
  const results = $("results");
  if (lastRows.length > 1) renderTable(rows);
  for (const row of rows) results.append(renderClip(row, result));
  for (const failure of failures) {
    results.append(el("div", { class: "card clip" }, el("h3", { text: failure.path }),
      el("div", { class: "failure", text: "could not be used: " + failure.reason })));
  }
}

function unimodal(row) {
  return ["t", "a", "v"].filter((m) => ("score_" + m) in row).map((m) => `${{ t: "text", a: "audio", v: "vision" }[m]} ${fmt(row["score_" + m])}`);
}

function renderClip(row, result) {
  const [low, high] = (model && model.scale) || [-3, 3];
  const where = Math.min(100, Math.max(0, (100 * (row.score - low)) / (high - low)));
  const card = el("div", { class: "card clip", "data-video": row.video },
    el("h3", { text: row.video }),
    el("div", { class: "score-line" },
      el("span", { class: "score", text: fmt(row.score) }),
      el("span", { class: "class " + row.class, text: row.class }),
      el("span", { class: "unimodal", text: unimodal(row).join(" · ") })),
    el("div", { class: "scale" }, el("div", { class: "mark", style: `left:${where}%` })),
    el("div", { class: "scale-labels" }, el("span", { text: `${low} negative` }), el("span", { text: "neutral" }), el("span", { text: `positive ${high}` })),
    el("div", { class: "transcript" }, el("div", { class: "source", text: `transcript (${row.transcript_source}${
      row.transcript_source === "speech recognition" && result.speech_recognition ? ": " + result.speech_recognition.name + " " + result.speech_recognition.version : ""})` }),
      el("div", { class: "text", text: row.transcript || "(no speech recognised)" })));
  if (row.timeline) {
    const canvas = el("canvas", { class: "timeline" });
    card.append(el("div", { class: "source", text: "timeline" + (row.timeline.note ? " (" + row.timeline.note + ")" : "") }), canvas);
    requestAnimationFrame(() => drawTimeline(canvas, row.timeline));
  }
  return card;
}

const COLOURS = { "face present": "#1e8449", "mouth open": "#d35400", smile: "#8e44ad", "brow raise": "#2471a3", "eye open": "#16a085",
  "audio level (dBFS)": "#34495e", voiced: "#c0392b" };
const BANDS = new Set(["face present", "voiced"]);

function drawTimeline(canvas, timeline) {
  const names = Object.keys(timeline.series);
  const width = Math.max(600, canvas.clientWidth || 900), rowHeight = 34, left = 150, top = 8, axis = 22;
  const scale = window.devicePixelRatio || 1;
  const height = top + names.length * rowHeight + axis;
  canvas.width = width * scale; canvas.height = height * scale; canvas.style.height = height + "px";
  const g = canvas.getContext("2d");
  g.scale(scale, scale);
  g.font = "12px system-ui, sans-serif";
  const duration = Math.max(timeline.duration_s || 0, 0.1), plot = width - left - 10;
  const x = (t) => left + (plot * Math.min(t, duration)) / duration;
  names.forEach((name, i) => {
    const series = timeline.series[name], values = series.values, y0 = top + i * rowHeight, h = rowHeight - 8;
    g.fillStyle = "#57606a"; g.textBaseline = "middle"; g.fillText(name, 4, y0 + h / 2);
    g.fillStyle = "#f6f8fa"; g.fillRect(left, y0, plot, h);
    const finite = values.filter((v) => v !== null && Number.isFinite(v));
    if (!finite.length) return;
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (BANDS.has(name)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { hi = lo + 1; }
    const dt = 1 / series.rate_hz;
    g.fillStyle = g.strokeStyle = COLOURS[name] || "#0969da";
    if (BANDS.has(name)) {
      values.forEach((v, k) => { if (v) { g.globalAlpha = Math.min(1, v); g.fillRect(x(k * dt), y0 + 2, Math.max(1, x((k + 1) * dt) - x(k * dt) + 0.6), h - 4); } });
      g.globalAlpha = 1;
    } else {
      g.beginPath();
      let started = false;
      values.forEach((v, k) => {
        if (v === null) { started = false; return; }
        const px = x((k + 0.5) * dt), py = y0 + h - 2 - ((h - 4) * (v - lo)) / (hi - lo);
        if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      });
      g.lineWidth = 1.5; g.stroke();
    }
  });
  const yAxis = top + names.length * rowHeight;
  g.fillStyle = "#57606a"; g.textBaseline = "top";
  const step = duration > 20 ? 5 : duration > 6 ? 1 : 0.5;
  for (let t = 0; t <= duration + 1e-9; t += step) { g.fillRect(x(t), yAxis - 4, 1, 4); g.fillText(`${t.toFixed(step < 1 ? 1 : 0)} s`, x(t) - 8, yAxis + 2); }
  canvas.dataset.drawn = String(names.length);
}

const COLUMNS = ["video", "score", "class", "score_t", "score_a", "score_v", "transcript", "transcript_source", "error"];

function renderTable(rows) {
  const columns = COLUMNS.filter((c) => lastRows.some((r) => r[c] !== undefined));
  $("table").tHead.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { text: c }))));
  $("table").tBodies[0].replaceChildren(...lastRows.map((r) => el("tr", {}, ...columns.map((c) => el("td", {
    text: typeof r[c] === "number" ? fmt(r[c]) : r[c] === undefined ? "" : String(r[c]) })))));
  $("table-wrap").hidden = false;
}

function downloadCsv() {
  const columns = COLUMNS.filter((c) => lastRows.some((r) => r[c] !== undefined));
  const quote = (v) => { const s = v === undefined || v === null ? "" : String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  const text = [columns.join(",")].concat(lastRows.map((r) => columns.map((c) => quote(r[c])).join(","))).join("\n") + "\n";
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: "msakit-predictions.csv" });
  document.body.append(link); link.click(); link.remove();
}

let recorder = null;

async function startRecording() {
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true }); }
  catch (error) { showError("no camera or microphone: " + error.message); return; }
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
  $("record").hidden = true; $("stop").hidden = false;
  showStage("uploading", "recording: press Stop and score when done (at most 30 s)");
  setTimeout(() => { if (recorder && recorder.state === "recording") recorder.stop(); }, 30000);
}

function setup() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); score([...e.dataTransfer.files]); });
  $("files").addEventListener("change", (e) => { score([...e.target.files]); e.target.value = ""; });
  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", () => recorder && recorder.stop());
  $("csv").addEventListener("click", downloadCsv);
  $("token-save").addEventListener("click", () => { sessionStorage.setItem("msakit-token", $("token").value.trim()); loadModel(); });
  if (!navigator.mediaDevices || !window.MediaRecorder) $("record").disabled = true;
  loadModel().catch((error) => showError("the model description could not be read: " + error));
}

setup();
