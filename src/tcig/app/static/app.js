// tcig app: the painter page. The canvas holds the layout at its own size: each class is painted in its exact
// colour, "don't care" is transparent. Brush, fill and eraser write pixels directly (no antialiasing), and the
// server snaps every painting to the class colours again, so no blended colour can ever become a class.
"use strict";

const $ = (id) => document.getElementById(id);
const SHOWN_KEYS = ["steps", "strength", "negative_prompt"]; // settings with their own field on the page
const MAX_UNDO = 30;
const POLL_MS = 400;

const state = {
  config: null,
  classes: [], // [{name, colour: "#rrggbb", rgb: [r, g, b]}]
  selected: 0,
  tool: "brush",
  undo: [], // snapshots {width, height, data, name, prompt, texts} before each change of the canvas
  areas: {},
  zoom: 1, // 1: the canvas fits the view
  photo: null, // {name, data}: the photo the layout was made from, to edit it
  name: "painting",
  job: null,
  item: null, // the result shown
  timer: null,
  client: sessionStorage.getItem("tcig-client") || randomId(),
};
sessionStorage.setItem("tcig-client", state.client);

const canvas = $("canvas");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
let pixels = null; // ImageData of the canvas

function randomId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- messages -------------------------------------------------------------------------------------------------

// One message box, shown next to the control that caused it (``near``: an element; default the Generate row).
function showMessage(text, kind = "error", near = null) {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
  if (text) (near || $("generate-row")).insertAdjacentElement("afterend", box);
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error("the app does not answer; is tcig app still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok) throw new Error((data && data.error) || `the app answered ${response.status}`);
  return data;
}

// --- classes --------------------------------------------------------------------------------------------------

function setClasses(classes) {
  const selectedName = state.classes[state.selected] && state.classes[state.selected].name;
  const texts = regionTexts();
  state.classes = classes.map((c) => ({ ...c, rgb: hexToRgb(c.colour) }));
  const list = $("classes");
  list.replaceChildren();
  state.classes.forEach((c, i) => {
    const item = document.createElement("li");
    item.dataset.name = c.name;
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.title = `Paint ${c.name}`;
    pick.innerHTML = `<span class="swatch" style="background:${c.colour}"></span><span class="name"></span><span class="area"></span>`;
    pick.querySelector(".name").textContent = c.name;
    pick.addEventListener("click", () => selectClass(i));
    const text = document.createElement("input");
    text.className = "region-text";
    text.placeholder = "region text (optional)";
    text.setAttribute("aria-label", `region text of ${c.name}`);
    text.value = texts[c.name] || "";
    text.hidden = true;
    item.append(pick, text);
    list.append(item);
  });
  const again = state.classes.findIndex((c) => c.name === selectedName);
  selectClass(again >= 0 ? again : 0);
  filterClasses();
  showAreas();
}

function selectClass(i) {
  state.selected = i;
  document.querySelectorAll("#classes li").forEach((li, j) => {
    li.classList.toggle("selected", j === i);
    li.querySelector(".region-text").hidden = !(j === i || li.querySelector(".region-text").value);
  });
  if (state.tool === "eraser") setTool("brush");
}

function filterClasses() {
  const needle = $("class-filter").value.trim().toLowerCase();
  document.querySelectorAll("#classes li").forEach((li) => {
    li.hidden = needle !== "" && !li.dataset.name.toLowerCase().includes(needle);
  });
}

function regionTexts() {
  const out = {};
  document.querySelectorAll("#classes li").forEach((li) => {
    const value = li.querySelector(".region-text").value.trim();
    if (value) out[li.dataset.name] = value;
  });
  return out;
}

function setRegionTexts(texts) {
  document.querySelectorAll("#classes li").forEach((li) => {
    const input = li.querySelector(".region-text");
    input.value = texts[li.dataset.name] || "";
    input.hidden = !input.value && !li.classList.contains("selected");
  });
}

function hexToRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

// --- the canvas -----------------------------------------------------------------------------------------------

function newCanvas(width, height) {
  canvas.width = width;
  canvas.height = height;
  pixels = ctx.createImageData(width, height);
  $("canvas-width").value = width;
  $("canvas-height").value = height;
  setZoom(1);
  redraw();
  analyzeSoon();
}

const VIEW_BOX = 512; // pixels the canvas takes on screen at zoom 1
const ZOOMS = [0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8];

function setZoom(zoom, anchor = null) {
  const view = $("viewport");
  const before = anchor && canvasPoint(anchor);
  state.zoom = Math.min(ZOOMS[ZOOMS.length - 1], Math.max(ZOOMS[0], zoom));
  const scale = (VIEW_BOX * state.zoom) / Math.max(canvas.width, canvas.height);
  const stage = $("stage");
  stage.style.width = `${Math.round(canvas.width * scale)}px`;
  stage.style.height = `${Math.round(canvas.height * scale)}px`;
  $("zoom-value").textContent = `${Math.round(state.zoom * 100)} %`;
  if (before) { // keep the pixel under the pointer where it was
    const after = canvasPoint(anchor);
    view.scrollLeft += ((before[0] - after[0]) * scale);
    view.scrollTop += ((before[1] - after[1]) * scale);
  }
}

function zoomStep(direction, anchor = null) {
  const i = ZOOMS.findIndex((z) => z >= state.zoom - 1e-9);
  setZoom(ZOOMS[Math.min(ZOOMS.length - 1, Math.max(0, i + direction))], anchor);
}

function redraw() {
  ctx.putImageData(pixels, 0, 0);
}

function pushUndo() {
  state.undo.push({
    width: canvas.width, height: canvas.height, data: new Uint8ClampedArray(pixels.data), name: state.name,
    prompt: $("prompt").value, texts: regionTexts(), // a loaded layout may replace these too
  });
  if (state.undo.length > MAX_UNDO) state.undo.shift();
}

function undo() {
  const last = state.undo.pop();
  if (!last) return;
  if (last.width !== canvas.width || last.height !== canvas.height) newCanvas(last.width, last.height);
  pixels.data.set(last.data);
  state.name = last.name;
  $("prompt").value = last.prompt;
  setRegionTexts(last.texts);
  redraw();
  analyzeSoon();
}

function currentColour() {
  if (state.tool === "eraser") return [0, 0, 0, 0];
  const c = state.classes[state.selected];
  return c ? [...c.rgb, 255] : null;
}

function stamp(cx, cy, colour) {
  const size = Number($("brush-size").value);
  const r = size / 2;
  const data = pixels.data;
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(canvas.width - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(canvas.height - 1, Math.ceil(cy + r));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (size > 1 && dx * dx + dy * dy > r * r) continue;
      data.set(colour, (y * canvas.width + x) * 4);
    }
  }
}

function line(from, to, colour) {
  const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1]) * 2));
  for (let i = 1; i <= steps; i++) {
    stamp(from[0] + ((to[0] - from[0]) * i) / steps, from[1] + ((to[1] - from[1]) * i) / steps, colour);
  }
}

function fill(x, y, colour) {
  const w = canvas.width, h = canvas.height, data = pixels.data;
  const start = (y * w + x) * 4;
  const target = data.slice(start, start + 4);
  const same = (i) => data[i] === target[0] && data[i + 1] === target[1] && data[i + 2] === target[2] && data[i + 3] === target[3];
  if (target.every((v, k) => v === colour[k])) return;
  const stack = [[x, y]];
  while (stack.length) {
    const [px, py] = stack.pop();
    let left = px;
    while (left > 0 && same((py * w + left - 1) * 4)) left--;
    let right = px;
    while (right < w - 1 && same((py * w + right + 1) * 4)) right++;
    for (let cx = left; cx <= right; cx++) data.set(colour, (py * w + cx) * 4);
    for (const ny of [py - 1, py + 1]) {
      if (ny < 0 || ny >= h) continue;
      for (let cx = left; cx <= right; cx++) {
        if (same((ny * w + cx) * 4)) stack.push([cx, ny]);
      }
    }
  }
}

function canvasPoint(event) {
  const rect = canvas.getBoundingClientRect();
  return [
    ((event.clientX - rect.left) / rect.width) * canvas.width,
    ((event.clientY - rect.top) / rect.height) * canvas.height,
  ];
}

let lastPoint = null;
let pan = null; // {x, y, left, top} while dragging the view
let spaceHeld = false;
const view = $("viewport");

view.addEventListener("pointerdown", (event) => {
  if (event.button === 1 || (event.button === 0 && spaceHeld)) { // pan: middle button, or Space + drag
    event.preventDefault();
    pan = { x: event.clientX, y: event.clientY, left: view.scrollLeft, top: view.scrollTop };
    view.setPointerCapture(event.pointerId);
    return;
  }
  if (event.button !== 0) return;
  const colour = currentColour();
  if (!colour) return showMessage("pick a class to paint first", "error", $("classes"));
  const point = canvasPoint(event);
  if (state.tool === "fill") {
    const x = Math.floor(point[0]), y = Math.floor(point[1]);
    if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return; // a fill needs a pixel to start from
    pushUndo();
    fill(x, y, colour);
    redraw();
    analyzeSoon();
    return;
  }
  pushUndo();
  view.setPointerCapture(event.pointerId); // a stroke may begin outside the canvas and cross it
  stamp(point[0], point[1], colour);
  lastPoint = point;
  redraw();
});

function showBrush(event) {
  const cursor = $("brush-cursor");
  cursor.hidden = state.tool === "fill" || !event || pan !== null;
  if (cursor.hidden) return;
  const rect = canvas.getBoundingClientRect();
  const size = (Number($("brush-size").value) * rect.width) / canvas.width;
  cursor.style.width = cursor.style.height = `${size}px`;
  cursor.style.left = `${event.clientX - rect.left - size / 2}px`;
  cursor.style.top = `${event.clientY - rect.top - size / 2}px`;
}

function classAt(point) {
  const x = Math.floor(point[0]), y = Math.floor(point[1]);
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return null;
  const i = (y * canvas.width + x) * 4, d = pixels.data;
  if (d[i + 3] === 0) return { name: "don't care", x, y };
  const found = state.classes.find((c) => c.rgb[0] === d[i] && c.rgb[1] === d[i + 1] && c.rgb[2] === d[i + 2]);
  return { name: found ? found.name : "?", x, y };
}

view.addEventListener("pointerleave", () => { showBrush(null); $("pointer-info").textContent = ""; });

view.addEventListener("pointermove", (event) => {
  if (pan) {
    view.scrollLeft = pan.left - (event.clientX - pan.x);
    view.scrollTop = pan.top - (event.clientY - pan.y);
    return;
  }
  showBrush(event);
  const point = canvasPoint(event);
  const under = classAt(point);
  $("pointer-info").textContent = under ? `${under.name} (${under.x}, ${under.y})` : "";
  if (!lastPoint) return;
  line(lastPoint, point, currentColour());
  lastPoint = point;
  redraw();
});

for (const name of ["pointerup", "pointercancel"]) {
  view.addEventListener(name, () => {
    pan = null;
    if (!lastPoint) return;
    lastPoint = null;
    analyzeSoon();
  });
}

view.addEventListener("wheel", (event) => {
  if (!event.ctrlKey) return; // plain wheel scrolls the view
  event.preventDefault();
  zoomStep(event.deltaY < 0 ? 1 : -1, event);
}, { passive: false });

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
}

function painting() {
  return canvas.toDataURL("image/png");
}

// --- area readout and warnings --------------------------------------------------------------------------------

let analyzeTimer = null;
function analyzeSoon() {
  clearTimeout(analyzeTimer);
  analyzeTimer = setTimeout(analyze, 250);
}

async function analyze() {
  try {
    const report = await api("/api/analyze", { painting: painting(), region_texts: regionTexts(), settings: settings() });
    state.areas = Object.fromEntries(report.areas.map((a) => [a.class, a.share]));
    const list = $("warnings");
    list.replaceChildren(...report.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  } catch (err) {
    showMessage(err.message, "error", $("viewport"));
  }
  showAreas();
}

function showAreas() {
  document.querySelectorAll("#classes li").forEach((li) => {
    const share = state.areas[li.dataset.name];
    li.querySelector(".area").textContent = share ? `${(100 * share).toFixed(1)}%` : "";
  });
}

// --- loading layouts, examples and a photo to trace -----------------------------------------------------------

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error(`cannot read '${file.name}'`));
    reader.readAsDataURL(file);
  });
}

async function showLayout(loaded) {
  setClasses(loaded.classes);
  const image = new Image();
  await new Promise((resolve, reject) => {
    image.onload = resolve;
    image.onerror = () => reject(new Error("the layout could not be shown"));
    image.src = loaded.painting;
  });
  pushUndo(); // what was painted comes back with Undo
  newCanvas(loaded.width, loaded.height);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(image, 0, 0);
  pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  setRegionTexts(loaded.region_texts || {});
  if (loaded.prompt) $("prompt").value = loaded.prompt;
  state.name = loaded.name || "painting";
  analyzeSoon();
}

async function loadLayout() {
  const files = Array.from($("layout-files").files);
  const near = $("load-layout");
  if (!files.length) return showMessage("choose a layout file first", "error", near);
  const limit = state.config.limits.upload_bytes;
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total * 4 / 3 > limit) {
    return showMessage(`the files are ${(total / 2 ** 20).toFixed(1)} MiB, over the ${(limit / 2 ** 20 * 3 / 4).toFixed(0)} MiB limit; load a smaller layout`, "error", near);
  }
  try {
    const payload = await Promise.all(files.map(async (f) => ({ name: f.name, data: await readBase64(f) })));
    const loaded = await api("/api/layout", { files: payload, vocabulary: $("vocabulary").value, palette: $("palette").value });
    await showLayout(loaded);
    showMessage(`loaded ${files.map((f) => f.name).join(" + ")} (Undo brings back what was painted)`, "info", near);
  } catch (err) {
    showMessage(err.message, "error", near);
  }
}

async function loadExample(name) {
  try {
    await showLayout(await api("/api/example", { name }));
    showMessage(`loaded example ${name} (Undo brings back what was painted)`, "info", $("examples"));
  } catch (err) {
    showMessage(err.message, "error", $("examples"));
  }
}

function traceFile() {
  const file = $("trace-file").files[0];
  if (!file) return;
  const near = $("trace-row");
  if (file.size > state.config.limits.upload_bytes) {
    removeTrace();
    return showMessage("the photo is too large to trace; pick a smaller one", "error", near);
  }
  const reader = new FileReader();
  reader.onload = () => showTrace(String(reader.result), file.name);
  reader.readAsDataURL(file);
}

function showTrace(url, name) {
  const trace = $("trace");
  trace.onerror = () => {
    removeTrace();
    showMessage(`'${name}' is not an image the browser can show; choose a PNG, JPEG or WebP photo`, "error", $("trace-row"));
  };
  trace.onload = () => {
    trace.hidden = false;
    $("trace-remove").hidden = false;
    if (Number($("paint-opacity").value) === 100) { $("paint-opacity").value = 60; paintOpacity(); }
  };
  trace.src = url;
}

function removeTrace() {
  const trace = $("trace");
  trace.hidden = true;
  trace.removeAttribute("src");
  $("trace-remove").hidden = true;
  $("trace-file").value = "";
  $("paint-opacity").value = 100;
  paintOpacity();
}

async function startFromPhoto() {
  const file = $("photo-file").files[0];
  if (!file) return;
  const near = $("photo-row");
  if (file.size * 4 / 3 > state.config.limits.upload_bytes) {
    return showMessage("the photo is too large; pick one under " + `${(state.config.limits.upload_bytes / 2 ** 20 * 3 / 4).toFixed(0)} MiB`, "error", near);
  }
  showMessage(`segmenting ${file.name}…`, "info", near);
  try {
    const photo = { name: file.name, data: await readBase64(file) };
    await showLayout(await api("/api/photo", { files: [photo] }));
    state.photo = photo;
    $("keep-photo").checked = true;
    $("keep-photo-label").hidden = false;
    showTrace(`data:${file.type || "image/png"};base64,${photo.data}`, file.name);
    showMessage(`segmented ${file.name}: repaint what should change; the rest of the photo is kept (Undo brings back what was painted)`, "info", near);
  } catch (err) {
    showMessage(err.message, "error", near);
  }
}

function paintOpacity() {
  canvas.style.opacity = String(Number($("paint-opacity").value) / 100);
}

// --- settings -------------------------------------------------------------------------------------------------

function settingInput(option) {
  let input;
  if (option.choices) {
    input = document.createElement("select");
    for (const choice of option.choices) input.append(new Option(choice, choice));
  } else {
    input = document.createElement("input");
    input.type = option.kind === "str" ? "text" : "number";
    if (option.kind === "float") input.step = "any";
    if (option.low !== null) input.min = option.low;
    if (option.high !== null) input.max = option.high;
  }
  input.dataset.key = option.key;
  input.dataset.kind = option.kind;
  if (option.default !== null) input.value = option.default;
  return input;
}

function buildSettings(options) {
  const box = $("more-settings");
  box.replaceChildren();
  for (const option of options) {
    if (SHOWN_KEYS.includes(option.key)) continue;
    const label = document.createElement("label");
    label.title = option.help;
    label.append(`${option.key.replaceAll("_", " ")} (${option.group})`, settingInput(option));
    box.append(label);
  }
  const byKey = Object.fromEntries(options.map((o) => [o.key, o]));
  $("steps").value = byKey.steps.default;
  $("strength").value = byKey.strength.default;
  $("negative-prompt").value = byKey.negative_prompt.default || "";
  $("steps").dataset.key = "steps"; $("steps").dataset.kind = "int";
  $("strength").dataset.key = "strength"; $("strength").dataset.kind = "float";
  $("negative-prompt").dataset.key = "negative_prompt"; $("negative-prompt").dataset.kind = "str";
  // a strength the user types replaces the model set's noise level (which would otherwise win)
  for (const [strength, level] of [["strength", "noise_level"], ["cycle_strength", "cycle_noise_level"]]) {
    const from = document.querySelector(`[data-key="${strength}"]`);
    const to = document.querySelector(`[data-key="${level}"]`);
    if (from && to) from.addEventListener("input", () => { to.value = ""; });
  }
}

function settings() {
  const out = {};
  for (const input of document.querySelectorAll("[data-key]")) {
    const raw = input.value.trim();
    if (raw === "") continue; // unset: the model set's tuned value
    const kind = input.dataset.kind;
    out[input.dataset.key] = kind === "int" ? (Number.isInteger(Number(raw)) ? Number(raw) : raw)
      : kind === "float" ? (Number.isFinite(Number(raw)) ? Number(raw) : raw) : raw;
  }
  return out;
}

// --- generating -----------------------------------------------------------------------------------------------

const STAGE_TEXT = {
  starting: "starting: reading the layout, preparing the start images",
  init: "drawing the start images",
  stage1: "stage 1: optimizing the layout",
  stage2: "stage 2: refining",
  cycle: "polishing the layout",
  polish: "polishing the layout",
  saving: "saving the files",
};

async function generate() {
  const prompt = $("prompt").value.trim();
  if (!prompt) return showMessage("type a prompt that describes the image", "error", $("prompt"));
  const seed = $("seed").value.trim();
  if (!/^\d+$/.test(seed)) return showMessage("the seed must be a whole number >= 0", "error", $("seed").closest(".row"));
  const count = Number($("num-images").value), most = state.config.limits.images;
  if (!(Number.isInteger(count) && count >= 1 && count <= most)) {
    return showMessage(`images per run: 1 to ${most}`, "error", $("num-images").closest(".row"));
  }
  showMessage("");
  try {
    const status = await api("/api/generate", {
      client: state.client, painting: painting(), region_texts: regionTexts(), prompt, seed: Number(seed),
      refine: $("refine").checked, settings: settings(), name: state.name, num_images: count,
      init_image: state.photo && $("keep-photo").checked ? state.photo : undefined,
    });
    state.job = status.id;
    state.item = null;
    $("preview").removeAttribute("src");
    $("final").removeAttribute("src");
    $("downloads").replaceChildren();
    $("choices").replaceChildren();
    $("cancel").disabled = false;
    showStatus(status);
    poll();
  } catch (err) {
    showMessage(err.message);
  }
}

let previewVersion = 0;
function poll() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    if (!state.job) return;
    try {
      const status = await api(`/api/jobs/${state.job}`);
      showStatus(status);
      if (["queued", "running"].includes(status.state)) poll();
    } catch (err) {
      showMessage(err.message);
      $("cancel").disabled = true;
    }
  }, POLL_MS);
}

const BARS = ["init", "stage1", "stage2", "polish"];

// The phase a status is in and how far through it: the polish phase (each cycle's stage-1 steps, then its
// refinement) is one bar, so its counter never starts again mid-phase.
function phase(status) {
  const fraction = status.steps ? status.step / status.steps : 0;
  if (status.stage === "starting") return { bar: "init", fraction: null };
  if (status.stage === "cycle" || (status.stage === "stage2" && status.cycle > 0)) {
    const cycles = Math.max(1, status.cycles || 1);
    const within = status.stage === "cycle" ? fraction / 2 : 0.5 + fraction / 2;
    return { bar: "polish", fraction: (status.cycle - 1 + within) / cycles };
  }
  return { bar: status.stage, fraction };
}

function setBars(current, fraction) {
  const at = current === "done" ? BARS.length : BARS.indexOf(current);
  BARS.forEach((name, i) => {
    const bar = $(`progress-${name}`);
    if (i === at && fraction === null) bar.removeAttribute("value"); // busy, no count yet
    else bar.value = i < at ? 1 : i === at ? fraction : 0;
  });
}

function showStatus(status) {
  let text = "";
  if (status.state === "queued") {
    text = status.position > 1 ? `waiting: ${status.position - 1} run(s) ahead` : "waiting for the current run";
    setBars("init", null);
  } else if (status.state === "running") {
    const now = phase(status);
    text = STAGE_TEXT[now.bar === "polish" ? "polish" : status.stage] || status.stage || "running";
    if (now.bar === "polish") text += ` — ${Math.round(100 * now.fraction)} %`;
    else if (status.steps) text += ` — step ${status.step} of ${status.steps}`;
    if (BARS.includes(now.bar)) setBars(now.bar, now.fraction);
  } else if (status.state === "done") {
    text = `done in ${status.result.timings.total_s.toFixed(1)} s: ${status.result.name}`;
    setBars("done", 1);
  } else if (status.state === "cancelled") {
    text = "cancelled";
    BARS.forEach((name) => { const bar = $(`progress-${name}`); if (!bar.hasAttribute("value")) bar.value = 0; });
  } else if (status.state === "failed") {
    text = "failed";
    showMessage(status.error);
  }
  $("status").textContent = text;
  if (status.preview_version && status.preview_version !== previewVersion) {
    previewVersion = status.preview_version;
    $("preview").src = `/api/jobs/${status.id}/preview.png?v=${previewVersion}`;
  }
  const finished = ["done", "failed", "cancelled"].includes(status.state);
  $("cancel").disabled = finished;
  if (status.state === "done") showResult(status.result);
}

function downloadLinks(item) {
  const labels = { image: "image", sheet: "contact sheet", layout: "layout (label ids)", layout_classes: "layout classes", sidecar: "settings (JSON)", stage1: "stage-1 image" };
  return Object.entries(labels).map(([key, label]) => {
    const link = document.createElement("a");
    link.href = item.files[key];
    link.download = item.files[key].split("/").pop();
    link.textContent = label;
    link.dataset.file = key;
    return link;
  });
}

function showResult(result) {
  const items = result.items;
  showItem(items[0]);
  $("choices").replaceChildren(...(items.length > 1 ? items.map((item) => {
    const button = document.createElement("button");
    button.type = "button";
    button.title = `Show ${item.name}`;
    button.append(Object.assign(document.createElement("img"), { src: item.files.image, alt: item.name }), item.name);
    button.addEventListener("click", () => showItem(item));
    return button;
  }) : []));
  const known = document.querySelector(`#history [data-name="${CSS.escape(items[0].name)}"]`);
  if (!known) $("history").prepend(...items.map(historyCard));
}

function showItem(item) {
  state.item = item;
  $("final").src = $("outline-toggle").checked ? item.outlined : item.files.image;
  $("final").alt = `${item.name}${$("outline-toggle").checked ? ", layout outlined" : ""}`;
  $("downloads").replaceChildren(...downloadLinks(item));
}

function historyCard(item) {
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.name = item.name;
  const image = Object.assign(document.createElement("img"), { src: item.files.image, alt: item.prompt });
  const caption = document.createElement("div");
  caption.textContent = `${item.prompt} (seed ${item.seed})`;
  const links = document.createElement("div");
  links.className = "links";
  links.append(...downloadLinks(item));
  card.append(image, caption, links);
  return card;
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  try {
    showStatus(await api(`/api/jobs/${state.job}/cancel`, {}));
  } catch (err) {
    showMessage(err.message);
  }
}

// --- start ----------------------------------------------------------------------------------------------------

async function start() {
  try {
    state.config = await api("/api/config");
  } catch (err) {
    return showMessage(err.message);
  }
  const config = state.config;
  $("model-set").textContent = `models: ${config.model_set}`;
  $("add-class").hidden = !config.open_vocabulary;
  if (!config.refiner) { $("refine").checked = false; $("refine").disabled = true; }
  for (const v of config.vocabularies) $("vocabulary").append(new Option(v, v));
  for (const p of config.palettes) $("palette").append(new Option(p, p));
  buildSettings(config.settings);
  setClasses(config.classes);
  for (const example of config.examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.dataset.name = example.name;
    button.title = `Load ${example.name}`;
    const image = Object.assign(document.createElement("img"), { src: example.thumbnail, alt: "" });
    button.append(image, example.name.replace(/\.json$/, "").split("/").pop());
    button.addEventListener("click", () => loadExample(example.name));
    $("examples").append(button);
  }
  if (!config.examples.length) $("examples").textContent = "no examples folder";
  for (const result of config.history) $("history").append(historyCard(result));
  newCanvas(config.canvas.width, config.canvas.height);
}

document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
$("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", () => { pushUndo(); pixels.data.fill(0); redraw(); analyzeSoon(); });
$("new-canvas").addEventListener("click", () => {
  const w = Number($("canvas-width").value), h = Number($("canvas-height").value), max = state.config.canvas.max_side;
  const near = $("new-canvas").closest(".row");
  if (!(w >= 8 && h >= 8 && w <= max && h <= max && w % 8 === 0 && h % 8 === 0)) {
    return showMessage(`width and height must be multiples of 8 from 8 to ${max}`, "error", near);
  }
  pushUndo();
  state.name = "painting";
  newCanvas(w, h);
  showMessage("a new canvas; Undo (Ctrl+Z) brings back what was painted", "info", near);
});
$("zoom-in").addEventListener("click", () => zoomStep(1));
$("zoom-out").addEventListener("click", () => zoomStep(-1));
$("zoom-fit").addEventListener("click", () => setZoom(1));
$("photo-file").addEventListener("change", startFromPhoto);
$("outline-toggle").addEventListener("change", () => { if (state.item) showItem(state.item); });
$("class-filter").addEventListener("input", filterClasses);
$("add-class-button").addEventListener("click", async () => {
  try {
    const answer = await api("/api/classes", { name: $("new-class").value });
    setClasses(answer.classes);
    $("new-class").value = "";
  } catch (err) {
    showMessage(err.message, "error", $("add-class"));
  }
});
$("load-layout").addEventListener("click", loadLayout);
$("trace-file").addEventListener("change", traceFile);
$("trace-remove").addEventListener("click", removeTrace);
$("paint-opacity").addEventListener("input", paintOpacity);
$("random-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2 ** 31); });
$("generate").addEventListener("click", generate);
$("cancel").addEventListener("click", cancel);
function setBrushSize(size) {
  const slider = $("brush-size");
  slider.value = Math.min(Number(slider.max), Math.max(Number(slider.min), size));
  $("brush-size-value").textContent = slider.value;
}

document.addEventListener("keydown", (event) => {
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key === "Enter") { event.preventDefault(); generate(); return; } // from the prompt too
  if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
  if (ctrl && event.key === "z") { event.preventDefault(); undo(); return; }
  if (ctrl || event.altKey) return;
  if (event.key === " ") { event.preventDefault(); spaceHeld = true; view.classList.add("panning"); return; }
  const size = Number($("brush-size").value);
  const keys = {
    b: () => setTool("brush"), f: () => setTool("fill"), e: () => setTool("eraser"),
    "[": () => setBrushSize(size - Math.max(1, Math.round(size / 8))),
    "]": () => setBrushSize(size + Math.max(1, Math.round(size / 8))),
    "+": () => zoomStep(1), "=": () => zoomStep(1), "-": () => zoomStep(-1), 0: () => setZoom(1),
  };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
});
document.addEventListener("keyup", (event) => {
  if (event.key === " ") { spaceHeld = false; view.classList.remove("panning"); }
});
start();
