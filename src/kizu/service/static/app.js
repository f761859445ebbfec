// kizu operator page: drop images, see verdicts, review them. Plain JS, no build step, no network
// beyond this server. Requests go to the same origin, so a browser login (token as password) covers them.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const tally = { total: 0, good: 0, bad: 0, reviewed: 0 };
const PARALLEL = 4;  // uploads in flight at once; the server batches them
let queue = [], running = 0, seq = 0;

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

async function loadModel() {
  try {
    const [m, s] = await Promise.all([api("/v1/model"), api("/v1/service")]);
    const size = m.input_size ? `${m.input_size.width}×${m.input_size.height} px` : "any size (resized)";
    $("#model").textContent = `model ${m.model_id} · ${m.detector} · ${size} · false-alarm target ${pct(m.calibration.alpha)}`;
    $("#statement").textContent = m.calibration.statement;
    if (s.audit_rate > 0) {
      $("#audit-pct").textContent = pct(s.audit_rate);
      $("#audit-note").hidden = false;
    }
  } catch (err) {
    $("#model").textContent = `model not available: ${err.message}`;
  }
}

function pct(x) { return `${+(100 * x).toFixed(2)} %`; }

function addFiles(files) {
  for (const f of files) queue.push(f);
  pump();
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const file = queue.shift();
    running++;
    inspect(file).finally(() => { running--; pump(); });
  }
}

async function inspect(file) {
  const card = newCard(file);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const r = await api("/v1/inspect", { method: "POST", body: form });
    showResult(card, r);
  } catch (err) {
    showError(card, err.message);
  }
}

function newCard(file) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  card.id = `c${++seq}`;
  card.classList.add("pending");
  $(".badge", card).textContent = "…";
  $(".name", card).textContent = file.name;
  $(".original", card).src = URL.createObjectURL(file);
  $("#results").prepend(card);
  return card;
}

function showResult(card, r) {
  const bad = r.defective;
  card.classList.remove("pending");
  card.classList.add(bad ? "bad" : "good");
  card.dataset.id = r.id;
  $(".badge", card).textContent = bad ? "DEFECTIVE" : "GOOD";
  $(".words", card).textContent = r.p_value_words;
  $(".numbers", card).textContent =
    `p = ${fmt(r.p_value)} (defective when p ≤ ${r.alpha}) · score ${fmt(r.score)} · ` +
    `threshold ${fmt(r.threshold)} · ${r.regions.length} region${r.regions.length === 1 ? "" : "s"} · ${r.time_ms} ms`;
  drawBoxes($(".original", card).parentElement, r);
  const ov = $(".overlay", card);
  ov.src = r.overlay_url;
  ov.addEventListener("load", () => card.classList.add("overlay-loaded"), { once: true });
  reviewControls(card, r);
  count(bad ? "bad" : "good");
  addThumb(card, bad ? "bad" : "good");
}

function showError(card, message) {
  card.classList.remove("pending");
  card.classList.add("err");
  $(".badge", card).textContent = "REJECTED";
  $(".words", card).innerHTML = "";
  const e = document.createElement("span");
  e.className = "error";
  e.textContent = message;
  $(".words", card).append(e);
  $(".pair figure:last-child", card).remove();
  addThumb(card, "err");
}

function drawBoxes(frame, r) {
  for (const g of r.regions) {
    const b = document.createElement("div");
    b.className = "box";
    b.style.left = `${100 * g.x / r.width}%`;
    b.style.top = `${100 * g.y / r.height}%`;
    b.style.width = `${100 * g.width / r.width}%`;
    b.style.height = `${100 * g.height / r.height}%`;
    frame.append(b);
  }
}

function reviewControls(card, r) {
  const box = $(".review", card);
  box.innerHTML = "";
  if (r.audit) {
    box.classList.add("audit");
    box.append(text("Audit sample (picked at random): is this part good?"),
      button("Good", "good", () => review(card, r, "good")),
      button("Defective", "bad", () => review(card, r, "defective")));
  } else {
    const other = r.defective ? "good" : "defective";
    box.append(text("Verdict wrong?"),
      button(`Mark as ${other}`, r.defective ? "good" : "bad", () => review(card, r, other)));
  }
}

async function review(card, r, label) {
  const box = $(".review", card);
  try {
    const res = await api(`/v1/inspections/${r.id}/review`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ label }) });
    if (!card.dataset.reviewed) { card.dataset.reviewed = "1"; count("reviewed"); }
    box.classList.remove("audit");
    box.innerHTML = "";
    const note = res.audit ? " (audit sample)" : "";
    box.append(text(`Saved as ${label}${note}: ${res.saved.join(", ")}`, "saved"),
      button("Undo: label as " + (label === "good" ? "defective" : "good"), "",
        () => review(card, r, label === "good" ? "defective" : "good")));
  } catch (err) {
    box.append(text(`Review not saved: ${err.message}`, "error"));
  }
}

function text(t, cls) { const s = document.createElement("span"); s.textContent = t; if (cls) s.className = cls; return s; }

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  return b;
}

function count(key) {
  if (key !== "reviewed") tally.total++;
  tally[key]++;
  $("#n-total").textContent = tally.total;
  $("#n-good").textContent = tally.good;
  $("#n-bad").textContent = tally.bad;
  $("#n-reviewed").textContent = tally.reviewed;
}

function addThumb(card, cls) {
  const a = document.createElement("a");
  a.href = `#${card.id}`;
  a.className = cls;
  a.title = $(".name", card).textContent;
  const img = document.createElement("img");
  img.src = $(".original", card).src;
  img.alt = "";
  a.append(img);
  $("#strip").prepend(a);
}

function fmt(x) { return x === null || x === undefined ? "n/a" : Number(x).toPrecision(3); }

function setupDrop() {
  const drop = $("#drop");
  ["dragenter", "dragover"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", e => addFiles(e.dataTransfer.files));
  $("#pick").addEventListener("change", e => { addFiles(e.target.files); e.target.value = ""; });
  // dropping anywhere else must not navigate away from the page
  window.addEventListener("dragover", e => e.preventDefault());
  window.addEventListener("drop", e => e.preventDefault());
}

setupDrop();
loadModel();
