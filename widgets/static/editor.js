// svtr-label review editor: the front end of svtr_label_widgets.editor.Editor (an anywidget).
//
// Keys, drags, nudges, zoom and pan happen here, at once; what changes the store goes to the
// kernel as one message ({cmd, seq, region, version, ...}) and comes back as traitlets. The key
// map is the `keymap` traitlet (svtr_label_widgets/keys.py): the one definition of the keys.
//
// Every command carries a sequence number; the kernel echoes the last one it handled as `ack`.
// While commands are in flight the browser keeps its own current line and outlines (it is ahead
// of the kernel); once the kernel caught up, its state is the truth.

const SVGNS = "http://www.w3.org/2000/svg";
const COMMIT_MS = 400; // nudges, turns and corner edits go to the store after this pause
const HANDLE_PX = 6; // corner dot radius on screen
const ZOOM_STEP = 1.25;
const MAX_ZOOM = 16;

// Commands that only change the view or the outline being edited: done here, no kernel trip.
const LOCAL = new Set([
  "next_line", "prev_line", "nudge", "vertex", "rotate", "add_vertex", "remove_vertex", "zoom_in", "zoom_out",
  "zoom_fit", "zoom_line", "focus_toggle", "escape", "draw_box", "draw_quad", "draw_rotated", "accept",
]);

const TOOLBAR = [
  ["◀ image", "prev_image"], ["image ▶", "next_image"], ["▲ line", "prev_line"], ["line ▼", "next_line"],
  ["accept", "accept"], ["###", "illegible"], ["delete", "delete"], ["re-read", "rerecognize"],
  ["re-read all", "rerecognize_all"], ["undo", "undo"], ["redo", "redo"], ["reviewed", "reviewed"], null,
  ["−", "zoom_out"], ["+", "zoom_in"], ["page", "zoom_fit"], ["line", "zoom_line"], null,
  ["draw box", "draw_box"], ["4-point box", "draw_quad"], ["rotated box", "draw_rotated"],
];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function centroid(pts) {
  let x = 0, y = 0;
  for (const p of pts) { x += p[0]; y += p[1]; }
  return [x / pts.length, y / pts.length];
}

function bbox(pts) {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), y0 = Math.min(...ys);
  return { x: x0, y: y0, w: Math.max(...xs) - x0, h: Math.max(...ys) - y0 };
}

function rotatedBox(a, b, height) {
  // The same rectangle as review.rotated_box: a->b along one long side, `height` across.
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  const nx = (-(b[1] - a[1]) / len) * height, ny = ((b[0] - a[0]) / len) * height;
  return [a, b, [b[0] + nx, b[1] + ny], [a[0] + nx, a[1] + ny]];
}

function signedHeight(a, b, p) {
  const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1;
  return ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) / len;
}

function nearestOnEdges(pts, p) {
  // The edge of a closed outline nearest to p, and the point on it: [edge index, point].
  let best = [0, pts[0], Infinity];
  for (let i = 0; i < pts.length; i++) {
    const a = pts[i], b = pts[(i + 1) % pts.length];
    const dx = b[0] - a[0], dy = b[1] - a[1];
    const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy || 1)));
    const q = [a[0] + t * dx, a[1] + t * dy];
    const d = Math.hypot(q[0] - p[0], q[1] - p[1]);
    if (d < best[2]) best = [i, q, d];
  }
  return best;
}

function afterPaint(fn) {
  requestAnimationFrame(() => setTimeout(fn, 0));
}

function render({ model, el }) {
  const timings = (window.svtrEditorTimings = window.svtrEditorTimings || []);
  const S = {
    regions: [], byId: new Map(), current: "", vertex: -1, mode: "",
    seq: 0, sent: 0,
    dirty: new Map(), // region id -> {text, base}: typed and not yet written
    geom: new Map(), // region id -> {points, base, seq, timer}: outline edited here, not yet in the kernel's regions
    serverText: new Map(),
    zoom: 1, zoomLine: false, fit: 1,
    crops: new Map(), requested: new Set(),
    drag: null, draw: null, localMsg: null, pendingTimings: [],
    imageId: null, imageUrl: null, rows: new Map(), opened: false,
  };

  // -- the DOM ---------------------------------------------------------------------------------
  const root = h("div", { class: "svtr-ed", tabindex: "-1", "data-lm-suppress-shortcuts": "true" });
  const statusEl = h("div", { class: "svtr-status" });
  const msgEl = h("div", { class: "svtr-msg", role: "status", "aria-live": "polite" });
  const busyEl = h("span", { class: "svtr-busy" });
  const toolbar = h("div", { class: "svtr-toolbar" });
  const viewport = h("div", { class: "svtr-viewport", tabindex: "0", "aria-label": "page picture" });
  const stage = h("div", { class: "svtr-stage" });
  const img = h("img", { class: "svtr-page", alt: "", draggable: "false" });
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("class", "svtr-overlay");
  svg.setAttribute("preserveAspectRatio", "none");
  stage.append(img, svg);
  viewport.append(stage);
  const lines = h("div", { class: "svtr-lines" });
  const help = h("details", { class: "svtr-help" }, h("summary", { text: "keys and mouse" }));
  root.append(h("div", { class: "svtr-head" }, statusEl, busyEl), msgEl, toolbar, h("div", { class: "svtr-main" }, viewport, lines), help);
  el.appendChild(root);

  // -- the key map (from Python) ---------------------------------------------------------------
  let keys = new Map();
  let labels = {};
  function buildKeys() {
    keys = new Map();
    labels = {};
    const add = (combo, k) => { if (!keys.has(combo)) keys.set(combo, []); keys.get(combo).push(k); };
    for (const k of model.get("keymap")) {
      for (const c of k.keys) { add(c, k); if (k.shift) add("Shift+" + c, k); }
      if (!labels[k.cmd]) labels[k.cmd] = k.label;
    }
    const rows = model.get("keymap").map((k) => [k.label, k.help, { anywhere: "", text: "in a text", picture: "on the picture" }[k.where]]);
    for (const g of model.get("gestures")) rows.push([g[0], g[1], "mouse"]);
    help.replaceChildren(h("summary", { text: "keys and mouse" }),
      h("table", {}, ...rows.map((r) => h("tr", {}, h("td", {}, h("kbd", { text: r[0] })), h("td", { text: r[1] }), h("td", { class: "svtr-where", text: r[2] })))));
    toolbar.replaceChildren();
    for (const b of TOOLBAR) {
      if (!b) { toolbar.append(h("span", { class: "svtr-sep" })); continue; }
      const btn = h("button", { type: "button", class: "svtr-btn", "data-cmd": b[1], title: labels[b[1]] || "", text: b[0] });
      btn.addEventListener("mousedown", (e) => e.preventDefault()); // keep the keyboard where it is
      btn.addEventListener("click", (e) => run(b[1], e, performance.now()));
      toolbar.append(btn);
    }
  }
  function scopeOf(target) {
    if (target.closest && target.closest(".svtr-line textarea")) return "text";
    if (target.closest && target.closest(".svtr-viewport")) return "picture";
    return "other";
  }
  function lookup(e) {
    const ctrl = e.ctrlKey || e.metaKey ? "Ctrl+" : "", alt = e.altKey ? "Alt+" : "", sh = e.shiftKey ? "Shift+" : "";
    const cands = [ctrl + alt + sh + e.code, ctrl + alt + sh + e.key];
    if (e.shiftKey && e.key.length === 1 && !/[a-z]/i.test(e.key)) cands.push(ctrl + alt + e.key); // "+" is Shift+= here
    const scope = scopeOf(e.target);
    for (const c of cands) for (const k of keys.get(c) || []) if (k.where === "anywhere" || k.where === scope) return k;
    return null;
  }

  // -- state helpers ---------------------------------------------------------------------------
  const cur = () => S.byId.get(S.current) || null;
  const pts = (r) => (S.geom.has(r.id) ? S.geom.get(r.id).points : r.points);
  const page = () => model.get("page") || { width: 1, height: 1 };
  const pending = () => S.sent > model.get("ack");

  function send(msg) {
    msg.seq = ++S.seq;
    S.sent = msg.seq;
    model.send(msg);
    return msg.seq;
  }
  function say(text) {
    S.localMsg = text;
    paintStatus();
  }
  function versionOf(rid) {
    const r = S.byId.get(rid);
    return r ? r.version : 0;
  }

  // -- text ------------------------------------------------------------------------------------
  function commitText(rid) {
    const d = S.dirty.get(rid);
    if (!d) return;
    S.dirty.delete(rid);
    send({ cmd: "text", region: rid, text: d.text, version: d.base });
  }
  function commitAllText() {
    for (const rid of [...S.dirty.keys()]) commitText(rid);
  }

  // -- outlines --------------------------------------------------------------------------------
  function editPoints(rid, points, now = false) {
    const r = S.byId.get(rid);
    if (!r) return;
    const W = page().width, H = page().height;
    points = points.map((p) => [Math.min(Math.max(p[0], 0), W), Math.min(Math.max(p[1], 0), H)]);
    const g = S.geom.get(rid);
    const base = g ? g.base : r.version;
    if (g && g.timer) clearTimeout(g.timer);
    const entry = { points, base, seq: 0, timer: null };
    S.geom.set(rid, entry);
    if (now) commitGeom(rid);
    else entry.timer = setTimeout(() => commitGeom(rid), COMMIT_MS);
    paintOverlay();
  }
  function commitGeom(rid) {
    const g = S.geom.get(rid);
    if (!g || g.seq) return;
    if (g.timer) clearTimeout(g.timer);
    g.timer = null;
    g.seq = send({ cmd: "points", region: rid, points: g.points, version: g.base, vertex: S.vertex >= 0 ? S.vertex : null });
  }
  function flushGeom() {
    for (const rid of [...S.geom.keys()]) commitGeom(rid);
  }

  // -- commands --------------------------------------------------------------------------------
  function remote(cmd, extra = {}) {
    flushGeom();
    const r = cur();
    const msg = { cmd, ...extra };
    if (r && !("region" in msg)) {
      msg.region = r.id;
      msg.version = versionOf(r.id);
      const d = S.dirty.get(r.id);
      if (d) { msg.text = d.text; msg.version = d.base; S.dirty.delete(r.id); }
    }
    commitAllText(); // other lines typed in and left without leaving them (rare): written first
    return send(msg);
  }

  function setCurrent(rid, { focus = true, tell = true } = {}) {
    if (!S.byId.has(rid)) return;
    if (rid !== S.current) {
      flushGeom();
      if (S.current) commitText(S.current);
      S.current = rid;
      setVertex(-1);
      if (tell) send({ cmd: "select", region: rid });
    }
    paintOverlay();
    paintRows();
    scrollToCurrent();
    if (focus) focusText();
  }

  function moveLine(step) {
    if (!S.regions.length) return say("no lines on this image: draw one (Alt+N, or Shift+drag on the picture)");
    const ids = S.regions.map((r) => r.id);
    const i = ids.indexOf(S.current);
    const next = ids[((i < 0 ? 0 : i + step) + ids.length) % ids.length];
    const inPicture = scopeOf(document.activeElement || root) === "picture";
    setCurrent(next, { focus: !inPicture });
  }

  function accept() {
    const r = cur();
    if (!r) return remote("accept");
    const d = S.dirty.get(r.id);
    const seq = remote("accept");
    // Shown at once: the line checked, the next unchecked one open. The kernel confirms it.
    r.checked = true;
    r.state = d && d.text.trim() !== r.text ? "corrected" : r.state === "corrected" ? "corrected" : "accepted";
    if (d) r.text = d.text.trim();
    const ids = S.regions.map((x) => x.id);
    const i = ids.indexOf(r.id);
    for (let k = 1; k <= ids.length; k++) {
      const x = S.byId.get(ids[(i + k) % ids.length]);
      if (!x.checked) { S.current = x.id; setVertex(-1, false); break; }
    }
    paintOverlay();
    paintRows();
    scrollToCurrent();
    focusText();
    return seq;
  }

  function setVertex(v, save = true) {
    S.vertex = v;
    if (save && model.get("vertex") !== v) { model.set("vertex", v); model.save_changes(); }
  }
  function setMode(m) {
    S.mode = S.mode === m ? "" : m;
    S.draw = null;
    model.set("mode", S.mode);
    model.save_changes();
    viewport.classList.toggle("svtr-drawing", !!S.mode);
    say({ box: "drag a box on the picture (Esc stops)", quad: "click the box's four corners (Esc stops)",
      rotated: "click where the line starts, where it ends, then its height (Esc stops)" }[S.mode] || "stopped drawing");
    paintOverlay();
    paintToolbar();
  }

  function nudge(e) {
    const r = cur();
    if (!r) return say("no line to move");
    const step = e.shiftKey ? 10 : 1;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (!d) return;
    const p = pts(r).map((q, i) => (S.vertex < 0 || S.vertex === i ? [q[0] + d[0], q[1] + d[1]] : q));
    editPoints(r.id, p);
  }
  function rotate(e) {
    const r = cur();
    if (!r) return say("no line to turn");
    const sign = e.key === "[" || e.key === "{" || e.code === "BracketLeft" ? -1 : 1;
    const a = ((sign * (e.shiftKey ? 5 : 1)) * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a);
    const p = pts(r), [cx, cy] = centroid(p);
    editPoints(r.id, p.map(([x, y]) => [cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c]));
  }
  function addVertex(at) {
    const r = cur();
    if (!r) return say("no line");
    const p = pts(r).slice();
    let i, q;
    if (at) { [i, q] = nearestOnEdges(p, at); }
    else { i = S.vertex >= 0 ? S.vertex : p.length - 1; const b = p[(i + 1) % p.length]; q = [(p[i][0] + b[0]) / 2, (p[i][1] + b[1]) / 2]; }
    p.splice(i + 1, 0, q);
    setVertex(i + 1);
    editPoints(r.id, p, !!at);
  }
  function removeVertex(v) {
    const r = cur();
    if (!r) return say("no line");
    const i = v === undefined ? S.vertex : v;
    if (i < 0) return say("select a corner first (1–9 on the picture, or click its dot)");
    const p = pts(r);
    if (p.length <= 3) return say("a box keeps at least 3 corners: delete the line instead (Alt+D)");
    setVertex(-1);
    editPoints(r.id, p.filter((_, k) => k !== i), v !== undefined);
  }

  function focusText() {
    const row = S.rows.get(S.current);
    if (row) row.ta.focus({ preventScroll: true });
    else viewport.focus({ preventScroll: true }); // an image with no lines keeps the keyboard
  }

  function run(cmd, e, t0) {
    S.localMsg = null;
    const started = t0 === undefined ? performance.now() : t0;
    let seq = null;
    switch (cmd) {
      case "next_line": moveLine(1); break;
      case "prev_line": moveLine(-1); break;
      case "accept": seq = accept(); break;
      case "nudge": nudge(e); break;
      case "vertex": { const r = cur(); const v = +e.key - 1; if (r && v < pts(r).length) { setVertex(v); paintOverlay(); } else say(`this line has ${r ? pts(r).length : 0} corners`); break; }
      case "rotate": rotate(e); break;
      case "add_vertex": addVertex(); break;
      case "remove_vertex": removeVertex(); break;
      case "zoom_in": zoomBy(ZOOM_STEP); break;
      case "zoom_out": zoomBy(1 / ZOOM_STEP); break;
      case "zoom_fit": setZoom(0); break;
      case "zoom_line": zoomLine(); break;
      case "focus_toggle": if (scopeOf(document.activeElement || root) === "picture") focusText(); else viewport.focus({ preventScroll: true }); break;
      case "escape":
        if (S.mode || S.draw) setMode(S.mode);
        else if (S.vertex >= 0) { setVertex(-1); paintOverlay(); }
        else if (scopeOf(document.activeElement || root) === "picture") focusText();
        break;
      case "draw_box": setMode("box"); break;
      case "draw_quad": setMode("quad"); break;
      case "draw_rotated": setMode("rotated"); break;
      default: seq = remote(cmd);
    }
    paintStatus();
    const entry = { cmd, t0: started, seq, local: null, kernel: null };
    timings.push(entry);
    if (timings.length > 500) timings.shift();
    afterPaint(() => { entry.local = performance.now() - started; });
    if (seq) S.pendingTimings.push(entry);
  }

  root.addEventListener("keydown", (e) => {
    if (e.isComposing || e.keyCode === 229) return; // an input method (Chinese, Japanese) is composing: its keys
    const k = lookup(e);
    if (!k) {
      if (e.key === "Enter" && scopeOf(e.target) === "text") e.preventDefault(); // a label is one line
      return;
    }
    if (k.cmd === "next_line" && e.key === "Tab" && !S.regions.length) return; // let Tab leave an empty editor
    e.preventDefault();
    e.stopPropagation();
    run(k.cmd, e, e.timeStamp || performance.now());
  });

  // -- zoom and pan ----------------------------------------------------------------------------
  function computeFit() {
    const W = page().width, H = page().height;
    const vw = viewport.clientWidth - 4, vh = viewport.clientHeight - 4;
    S.fit = Math.max(0.01, Math.min(vw / W, vh / H)) || 1;
  }
  function applyZoom() {
    computeFit();
    const z0 = model.get("zoom");
    S.zoom = z0 > 0 ? z0 : S.fit;
    const W = page().width, H = page().height;
    stage.style.width = `${W * S.zoom}px`;
    stage.style.height = `${H * S.zoom}px`;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    paintOverlay();
  }
  let saveTimer = null;
  function setZoom(z, anchor) {
    computeFit();
    const before = S.zoom;
    const target = z <= 0 ? S.fit : Math.min(MAX_ZOOM, Math.max(S.fit * 0.5, z));
    // The page point under the anchor (the pointer, else the viewport's centre) stays under it.
    const vr = viewport.getBoundingClientRect();
    const ax = anchor ? anchor[0] : vr.left + viewport.clientWidth / 2;
    const ay = anchor ? anchor[1] : vr.top + viewport.clientHeight / 2;
    const r0 = stage.getBoundingClientRect();
    const px = (ax - r0.left) / before, py = (ay - r0.top) / before;
    S.zoomLine = false;
    model.set("zoom", z <= 0 ? 0 : target);
    applyZoom();
    const r1 = stage.getBoundingClientRect();
    viewport.scrollLeft += r1.left + px * S.zoom - ax;
    viewport.scrollTop += r1.top + py * S.zoom - ay;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => model.save_changes(), 300);
    paintToolbar();
  }
  function zoomBy(f) {
    setZoom(S.zoom * f);
  }
  function zoomLine() {
    const r = cur();
    if (S.zoomLine || !r) { setZoom(0); return; }
    const b = bbox(pts(r));
    const z = Math.min(MAX_ZOOM, (0.7 * viewport.clientWidth) / Math.max(b.w, 8), (0.3 * viewport.clientHeight) / Math.max(b.h, 4));
    setZoom(Math.max(z, S.fit));
    S.zoomLine = true;
    centerOn(b);
    paintToolbar();
  }
  function centerOn(b) {
    const vr = viewport.getBoundingClientRect(), r = stage.getBoundingClientRect();
    viewport.scrollLeft += r.left + (b.x + b.w / 2) * S.zoom - (vr.left + viewport.clientWidth / 2);
    viewport.scrollTop += r.top + (b.y + b.h / 2) * S.zoom - (vr.top + viewport.clientHeight / 2);
  }
  function scrollToCurrent() {
    const r = cur();
    if (r) {
      const b = bbox(pts(r)), z = S.zoom, m = 24;
      const left = viewport.scrollLeft, top = viewport.scrollTop, vw = viewport.clientWidth, vh = viewport.clientHeight;
      const inside = b.x * z >= left + 0 && (b.x + b.w) * z <= left + vw && b.y * z >= top && (b.y + b.h) * z <= top + vh;
      if (S.zoomLine) centerOn(b);
      else if (!inside) {
        if (b.w * z > vw - 2 * m) viewport.scrollLeft = b.x * z - m;
        else viewport.scrollLeft = (b.x + b.w / 2) * z - vw / 2;
        viewport.scrollTop = (b.y + b.h / 2) * z - vh / 2;
      }
      const row = S.rows.get(r.id);
      if (row) {
        const lr = lines.getBoundingClientRect(), rr = row.el.getBoundingClientRect();
        if (rr.top < lr.top || rr.bottom > lr.bottom) lines.scrollTop += rr.top - lr.top - (lr.height - rr.height) / 2;
      }
    }
  }
  viewport.addEventListener("wheel", (e) => {
    if (!(e.ctrlKey || e.metaKey)) return; // plain wheel: the viewport scrolls (pans)
    e.preventDefault();
    setZoom(S.zoom * Math.pow(ZOOM_STEP, -Math.sign(e.deltaY)), [e.clientX, e.clientY]);
  }, { passive: false });
  const resize = new ResizeObserver(() => applyZoom());
  resize.observe(viewport);

  // -- the overlay -----------------------------------------------------------------------------
  function paintOverlay() {
    const z = S.zoom || 1;
    const parts = [];
    let current = null;
    for (const r of S.regions) {
      if (r.id === S.current) { current = r; continue; }
      const cls = ["svtr-quad", "s-" + r.state, r.low ? "low" : "", r.illegible ? "ill" : "", r.issues.length ? "bad" : ""].join(" ");
      parts.push(`<polygon class="${cls}" data-rid="${esc(r.id)}" points="${pts(r).map((p) => p.join(",")).join(" ")}"/>`);
    }
    if (current) {
      const p = pts(current), b = bbox(p);
      const m = 8 / z; // a halo around the current box: found at a glance even when tiny
      parts.push(`<rect class="svtr-halo" x="${b.x - m}" y="${b.y - m}" width="${b.w + 2 * m}" height="${b.h + 2 * m}"/>`);
      parts.push(`<polygon class="svtr-quad cur s-${current.state}" data-rid="${esc(current.id)}" points="${p.map((q) => q.join(",")).join(" ")}"/>`);
      // Hollow dots, smaller on a small box: the box stays visible under its corners.
      const side = Math.min(b.w, b.h) * z;
      const rad = Math.max(2.5, Math.min(HANDLE_PX, side / 3)) / z;
      p.forEach((q, i) => parts.push(`<circle class="svtr-vertex${i === S.vertex ? " sel" : ""}" data-v="${i}" cx="${q[0]}" cy="${q[1]}" r="${rad}"/>`));
      if (S.vertex >= 0 && S.vertex < p.length) {
        parts.push(`<text class="svtr-vlabel" x="${p[S.vertex][0] + 2 * rad}" y="${p[S.vertex][1] - 2 * rad}" font-size="${12 / z}">${S.vertex + 1}</text>`);
      }
    }
    if (S.draw) parts.push(drawPreview());
    if (S.ghost) parts.push(`<polygon class="svtr-drawn" points="${S.ghost.map((q) => q.join(",")).join(" ")}"/>`);
    svg.innerHTML = parts.join("");
  }
  function drawPreview() {
    const d = S.draw;
    let p = d.points.slice();
    if (d.kind === "box" && d.at) { const a = d.points[0], b = d.at; p = [a, [b[0], a[1]], b, [a[0], b[1]]]; }
    else if (d.kind === "rotated" && d.points.length === 2 && d.at) p = rotatedBox(d.points[0], d.points[1], signedHeight(d.points[0], d.points[1], d.at));
    else if (d.at) p.push(d.at);
    return `<polygon class="svtr-drawn" points="${p.map((q) => q.join(",")).join(" ")}"/>`;
  }

  function pagePoint(e) {
    const r = stage.getBoundingClientRect();
    return [Math.round(((e.clientX - r.left) / S.zoom) * 10) / 10, Math.round(((e.clientY - r.top) / S.zoom) * 10) / 10];
  }

  svg.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    viewport.focus({ preventScroll: true });
    S.localMsg = null;
    const t = e.target, p = pagePoint(e);
    const r = cur();
    if (S.mode === "quad" || S.mode === "rotated") {
      S.draw = S.draw || { kind: S.mode, points: [] };
      if (S.mode === "rotated" && S.draw.points.length === 2) {
        finishDraw(rotatedBox(S.draw.points[0], S.draw.points[1], signedHeight(S.draw.points[0], S.draw.points[1], p)));
      } else {
        S.draw.points.push(p);
        if (S.mode === "quad" && S.draw.points.length === 4) finishDraw(S.draw.points);
      }
      paintOverlay();
      return;
    }
    if (S.mode === "box" || e.shiftKey) {
      S.draw = { kind: "box", points: [p], at: p };
      S.drag = { kind: "draw" };
      return;
    }
    if (t.classList.contains("svtr-vertex") && r) {
      const v = +t.getAttribute("data-v");
      if (e.altKey) { removeVertex(v); return; }
      setVertex(v);
      S.drag = { kind: "vertex", v, rid: r.id, moved: false };
      paintOverlay();
      return;
    }
    if (t.classList.contains("svtr-quad")) {
      const rid = t.getAttribute("data-rid");
      if (rid === S.current && r) { S.drag = { kind: "move", rid, from: p, start: pts(r), moved: false }; return; }
      setCurrent(rid, { focus: false });
      return;
    }
    S.drag = { kind: "pan", x: e.clientX, y: e.clientY, left: viewport.scrollLeft, top: viewport.scrollTop };
    viewport.classList.add("svtr-panning");
  });
  function onMove(e) {
    const d = S.drag;
    if (!d && S.draw && (S.mode === "quad" || S.mode === "rotated")) { S.draw.at = pagePoint(e); paintOverlay(); return; }
    if (!d) return;
    if (d.kind === "pan") {
      viewport.scrollLeft = d.left - (e.clientX - d.x);
      viewport.scrollTop = d.top - (e.clientY - d.y);
      return;
    }
    const p = pagePoint(e);
    if (d.kind === "draw") { S.draw.at = p; paintOverlay(); return; }
    const r = S.byId.get(d.rid);
    if (!r) return;
    if (d.kind === "vertex") {
      const q = pts(r).slice();
      q[d.v] = p;
      S.geom.set(r.id, { points: q, base: (S.geom.get(r.id) || {}).base ?? r.version, seq: 0, timer: null, dragging: true });
      d.moved = true;
    } else if (d.kind === "move") {
      const dx = p[0] - d.from[0], dy = p[1] - d.from[1];
      if (!d.moved && Math.hypot(dx, dy) * S.zoom < 3) return;
      S.geom.set(r.id, { points: d.start.map((q) => [q[0] + dx, q[1] + dy]), base: (S.geom.get(r.id) || {}).base ?? r.version, seq: 0, timer: null });
      d.moved = true;
    }
    paintOverlay();
  }
  function onUp(e) {
    const d = S.drag;
    if (!d) return;
    S.drag = null;
    viewport.classList.remove("svtr-panning");
    const t0 = performance.now();
    if (d.kind === "draw") {
      const a = S.draw.points[0], b = pagePoint(e);
      if (Math.abs(a[0] - b[0]) * S.zoom > 3 && Math.abs(a[1] - b[1]) * S.zoom > 3) {
        const x0 = Math.min(a[0], b[0]), x1 = Math.max(a[0], b[0]), y0 = Math.min(a[1], b[1]), y1 = Math.max(a[1], b[1]);
        finishDraw([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]);
      } else { S.draw = null; }
      paintOverlay();
      return;
    }
    if ((d.kind === "vertex" || d.kind === "move") && d.moved) {
      editPoints(d.rid, S.geom.get(d.rid).points, true);
      timings.push({ cmd: d.kind === "vertex" ? "drag_corner" : "drag_box", t0, seq: S.sent, local: 0, kernel: null });
    }
  }
  window.addEventListener("pointermove", onMove);
  window.addEventListener("pointerup", onUp);
  svg.addEventListener("dblclick", (e) => {
    const t = e.target;
    if (t.classList.contains("svtr-quad") && t.getAttribute("data-rid") === S.current) addVertex(pagePoint(e));
  });
  function finishDraw(points) {
    S.draw = null;
    if (S.mode) { S.mode = ""; model.set("mode", ""); model.save_changes(); viewport.classList.remove("svtr-drawing"); }
    flushGeom();
    commitAllText();
    const seq = send({ cmd: "add", points });
    S.ghost = points; // shown until the kernel's lines arrive
    S.pendingTimings.push({ cmd: "add", t0: performance.now(), seq, local: 0, kernel: null });
    paintToolbar();
  }

  // -- the lines -------------------------------------------------------------------------------
  function makeRow(r) {
    const ta = h("textarea", { class: "svtr-text", rows: "1", spellcheck: "false", "aria-label": "text of the line" });
    const crop = h("img", { class: "svtr-crop-img", alt: "", draggable: "false" });
    const meta = h("div", { class: "svtr-meta" });
    const elr = h("div", { class: "svtr-line", "data-rid": r.id }, h("div", { class: "svtr-crop" }, crop), meta, ta);
    const row = { el: elr, ta, crop, meta, key: null };
    ta.addEventListener("input", () => {
      const rr = S.byId.get(r.id);
      const d = S.dirty.get(r.id);
      S.dirty.set(r.id, { text: ta.value, base: d ? d.base : rr ? rr.version : 0 });
      fit(ta);
    });
    ta.addEventListener("focus", () => { if (S.current !== r.id) setCurrent(r.id, { focus: false }); });
    ta.addEventListener("blur", () => { if (S.dirty.has(r.id)) commitText(r.id); });
    crop.addEventListener("click", () => setCurrent(r.id));
    return row;
  }
  function fit(ta) {
    ta.style.height = "auto";
    ta.style.height = `${ta.scrollHeight + 2}px`;
  }
  function paintRows() {
    const want = [];
    const seen = new Set();
    for (const r of S.regions) {
      let row = S.rows.get(r.id);
      if (!row) { row = makeRow(r); S.rows.set(r.id, row); }
      seen.add(r.id);
      want.push(row.el);
      updateRow(row, r);
    }
    for (const [rid, row] of S.rows) if (!seen.has(rid)) { row.el.remove(); S.rows.delete(rid); S.dirty.delete(rid); }
    const kids = [...lines.children].filter((c) => c.classList.contains("svtr-line"));
    if (kids.length !== want.length || kids.some((c, i) => c !== want[i])) lines.replaceChildren(...want);
    if (!S.regions.length) lines.replaceChildren(h("div", { class: "svtr-empty", text: "no lines on this image: draw one (Alt+N, or Shift+drag on the picture); PgDn / PgUp change image" }));
    requestCrops();
  }
  const STATE_LABEL = { accepted: "✓ accepted", corrected: "✎ corrected", moved: "↔ box moved: text not re-read", drawn: "✚ drawn: text unchecked", unchecked: "unchecked" };
  function updateRow(row, r) {
    const c = row.el.classList;
    c.toggle("cur", r.id === S.current);
    c.toggle("low", r.low);
    c.toggle("checked", r.checked);
    c.toggle("bad", r.issues.length > 0);
    row.el.setAttribute("data-state", r.state);
    const score = r.score === null || r.score === undefined ? "no score" : `score ${r.score.toFixed(2)}`;
    const issues = r.issues.map((i) => `<span class="svtr-issue" title="${esc(i[1])}">⚠ ${esc(i[0].replace("_", " "))}</span>`).join(" ");
    const n = S.regions.indexOf(r) + 1;
    const html = `<span class="svtr-n">${n}/${S.regions.length}</span> <span class="svtr-state">${STATE_LABEL[r.state] || r.state}</span> · ${score}${r.low ? ' <span class="svtr-lowmark">low</span>' : ""} · crop ${r.crop_size[0]}×${r.crop_size[1]} ${issues}`;
    if (row.metaHtml !== html) { row.meta.innerHTML = html; row.metaHtml = html; }
    const before = S.serverText.get(r.id);
    const d = S.dirty.get(r.id);
    if (!d) {
      if (row.ta.value !== r.text) { row.ta.value = r.text; fit(row.ta); }
    } else if (before !== undefined && before !== r.text) {
      c.add("conflict"); // someone changed the text while it was being typed here: Enter will say so
    }
    if (!d) c.remove("conflict");
    S.serverText.set(r.id, r.text);
    if (!row.fitted) { row.fitted = true; afterPaint(() => fit(row.ta)); }
    const url = S.crops.get(r.crop);
    if (url && row.key !== r.crop) {
      row.crop.src = url;
      row.key = r.crop;
      const hgt = r.crop_size[1];
      const shown = hgt < 32 ? 32 : Math.min(hgt, 48);
      row.crop.style.height = `${shown}px`;
      row.crop.classList.toggle("pixelated", hgt < 24);
    }
  }
  function requestCrops() {
    const missing = S.regions.map((r) => r.crop).filter((k) => !S.crops.has(k) && !S.requested.has(k));
    if (missing.length) {
      missing.forEach((k) => S.requested.add(k));
      model.send({ cmd: "crops", keys: missing });
    }
  }
  model.on("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "crops") return;
    msg.keys.forEach((k, i) => {
      if (S.crops.has(k)) URL.revokeObjectURL(S.crops.get(k));
      S.crops.set(k, URL.createObjectURL(new Blob([buffers[i]], { type: "image/png" })));
    });
    for (const r of S.regions) { const row = S.rows.get(r.id); if (row) updateRow(row, r); }
  });

  // -- status ----------------------------------------------------------------------------------
  function paintStatus() {
    const st = model.get("status") || {};
    statusEl.textContent = st.text || "";
    statusEl.title = `reviewer: ${st.who || ""}`;
    const text = S.localMsg !== null ? S.localMsg : model.get("message");
    msgEl.textContent = text || "";
    msgEl.className = "svtr-msg " + (S.localMsg !== null ? "info" : model.get("message_kind"));
    busyEl.textContent = model.get("busy") || "";
  }
  function paintToolbar() {
    for (const b of toolbar.querySelectorAll("button")) {
      const cmd = b.getAttribute("data-cmd");
      b.classList.toggle("on", (cmd === "draw_box" && S.mode === "box") || (cmd === "draw_quad" && S.mode === "quad") ||
        (cmd === "draw_rotated" && S.mode === "rotated") || (cmd === "zoom_line" && S.zoomLine));
    }
  }

  // -- the kernel's state ----------------------------------------------------------------------
  function showImage() {
    const p = page();
    if (p.image_id === S.imageId) return false;
    S.imageId = p.image_id;
    if (S.imageUrl) URL.revokeObjectURL(S.imageUrl);
    const data = model.get("image");
    S.imageUrl = URL.createObjectURL(new Blob([data], { type: model.get("image_type") }));
    img.src = S.imageUrl;
    for (const [k, url] of S.crops) if (!k.startsWith(`${p.image_id}:`)) { URL.revokeObjectURL(url); S.crops.delete(k); S.requested.delete(k); }
    for (const row of S.rows.values()) row.el.remove();
    S.rows.clear();
    S.dirty.clear();
    S.geom.clear();
    S.serverText.clear();
    S.draw = null;
    return true;
  }
  function sync() {
    const wasFocused = root.contains(document.activeElement);
    const focusScope = scopeOf(document.activeElement || root);
    const newImage = showImage();
    const ack = model.get("ack");
    S.regions = model.get("regions").map((r) => ({ ...r }));
    S.byId = new Map(S.regions.map((r) => [r.id, r]));
    for (const [rid, g] of S.geom) {
      if (!S.byId.has(rid) || (g.seq && g.seq <= ack)) S.geom.delete(rid);
    }
    S.ghost = null;
    const behind = pending();
    if (!behind || !S.byId.has(S.current)) {
      S.current = model.get("current");
      S.vertex = model.get("vertex");
      S.mode = model.get("mode");
      viewport.classList.toggle("svtr-drawing", !!S.mode);
    }
    if (newImage) applyZoom();
    paintRows();
    paintOverlay();
    paintStatus();
    paintToolbar();
    const lost = wasFocused && !root.contains(document.activeElement);
    if (!S.opened || newImage || lost) {
      S.opened = true;
      if (newImage) { viewport.scrollTop = 0; viewport.scrollLeft = 0; }
      scrollToCurrent();
      if (focusScope === "picture" && !newImage && S.regions.length) viewport.focus({ preventScroll: true });
      else focusText(); // a new image: its first open line (or the picture when it has none)
    } else if (!behind) {
      const active = document.activeElement;
      const row = active && active.closest ? active.closest(".svtr-line") : null;
      if (row && row.getAttribute("data-rid") !== S.current) focusText();
    }
    for (const t of S.pendingTimings.splice(0)) {
      if (t.seq <= ack) afterPaint(() => { t.kernel = performance.now() - t.t0; });
      else S.pendingTimings.push(t);
    }
  }
  let scheduled = false;
  function scheduleSync() {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => { scheduled = false; sync(); });
  }
  const traits = ["regions", "current", "ack", "page", "image", "status", "message", "message_kind", "mode"];
  for (const t of traits) model.on(`change:${t}`, scheduleSync);
  model.on("change:busy", paintStatus);
  model.on("change:keymap", buildKeys);
  model.on("change:height", () => { viewport.style.height = lines.style.height = `${model.get("height")}px`; applyZoom(); });

  const poll = setInterval(() => {
    if (!document.hidden && !pending() && !S.drag && model.get("poll_ms") > 0) model.send({ cmd: "poll" });
  }, Math.max(500, model.get("poll_ms") || 2000));

  // Focus on open: the keyboard goes to the current line (the picture on an image with no lines).
  // JupyterLab moves focus to the next cell as it runs the notebook, so the editor claims it again
  // for a moment, unless the person has done anything meanwhile or is typing elsewhere.
  let acted = false;
  const markActed = (e) => { if (e.isTrusted !== false) acted = true; };
  document.addEventListener("pointerdown", markActed, true);
  document.addEventListener("keydown", markActed, true);
  let claimUntil = null; // from the moment the view is on the page (anywidget renders it detached)
  function claimFocus() {
    if (claimUntil === null && root.isConnected && root.offsetParent !== null) claimUntil = performance.now() + 2500;
    if (claimUntil === null && !acted) { setTimeout(claimFocus, 100); return; }
    if (acted || performance.now() > claimUntil || !root.isConnected) {
      document.removeEventListener("pointerdown", markActed, true);
      document.removeEventListener("keydown", markActed, true);
      return;
    }
    const a = document.activeElement;
    const typingElsewhere = a && !root.contains(a) && (a.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName));
    if (!root.contains(a) && !typingElsewhere && root.offsetParent !== null) focusText();
    setTimeout(claimFocus, 100);
  }

  buildKeys();
  viewport.style.height = lines.style.height = `${model.get("height")}px`;
  img.addEventListener("load", () => applyZoom());
  sync();
  setTimeout(claimFocus, 0);
  // Tests, the benchmark and debugging read the editor's state through this (read-only).
  root.svtrState = S;
  root.svtrDebug = () => {
    const a = document.activeElement;
    const line = a && a.closest ? a.closest(".svtr-line") : null;
    const rect = stage.getBoundingClientRect();
    return {
      current: S.current, vertex: S.vertex, mode: S.mode, zoom: S.zoom, fit: S.fit, zoomLine: S.zoomLine,
      scroll: [viewport.scrollLeft, viewport.scrollTop], view: [viewport.clientWidth, viewport.clientHeight],
      stage: [rect.left, rect.top], focus: line ? `text:${line.getAttribute("data-rid")}` : a === viewport ? "picture" : a === root ? "editor" : (a && a.tagName) || "",
      ids: S.regions.map((r) => r.id), points: Object.fromEntries(S.regions.map((r) => [r.id, pts(r)])),
      states: Object.fromEntries(S.regions.map((r) => [r.id, r.state])), message: msgEl.textContent,
      status: statusEl.textContent, sent: S.sent, ack: model.get("ack"), imageId: S.imageId, pendingGeometry: S.geom.size,
    };
  };

  return () => {
    clearInterval(poll);
    acted = true;
    resize.disconnect();
    window.removeEventListener("pointermove", onMove);
    window.removeEventListener("pointerup", onUp);
    for (const t of traits) model.off(`change:${t}`, scheduleSync);
    if (S.imageUrl) URL.revokeObjectURL(S.imageUrl);
    for (const url of S.crops.values()) URL.revokeObjectURL(url);
  };
}

export default { render };
