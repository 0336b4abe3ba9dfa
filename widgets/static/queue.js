// svtr-label review queue: the front end of svtr_label_widgets.queue.ReviewQueue (an anywidget).
// Lines of every page as crops with their texts; Enter accepts (with the text typed) and moves to
// the next card, Alt+I marks illegible, PgDn / PgUp turn the queue's page. Search and replace
// shows its preview before anything is written.

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

function render({ model, el }) {
  const S = { seq: 0, sent: 0, dirty: new Map(), crops: new Map(), requested: new Set(), cards: new Map(), focusKey: null };
  const root = h("div", { class: "svtr-q", "data-lm-suppress-shortcuts": "true" });
  const sort = h("select", { class: "svtr-q-sort", "aria-label": "order" },
    h("option", { value: "score", text: "lowest confidence first" }),
    h("option", { value: "audit", text: "random audit sample" }),
    h("option", { value: "page", text: "page by page" }));
  const sampleN = h("input", { type: "number", min: "1", class: "svtr-q-n", title: "lines in the audit sample" });
  const seed = h("input", { type: "number", class: "svtr-q-seed", title: "seed of the audit sample" });
  const unchecked = h("input", { type: "checkbox", class: "svtr-q-unchecked" });
  const prev = h("button", { type: "button", class: "svtr-q-prev", text: "◀" });
  const next = h("button", { type: "button", class: "svtr-q-next", text: "▶" });
  const pager = h("span", { class: "svtr-q-pager" });
  const summary = h("span", { class: "svtr-q-summary" });
  const find = h("input", { type: "text", class: "svtr-q-find", placeholder: "find (in every page)" });
  const repl = h("input", { type: "text", class: "svtr-q-replace", placeholder: "replace with" });
  const regex = h("input", { type: "checkbox", class: "svtr-q-regex" });
  const caseS = h("input", { type: "checkbox", class: "svtr-q-case" });
  caseS.checked = true;
  const previewBtn = h("button", { type: "button", class: "svtr-q-preview-btn", text: "preview" });
  const applyBtn = h("button", { type: "button", class: "svtr-q-apply", text: "apply" });
  const cancelBtn = h("button", { type: "button", class: "svtr-q-cancel", text: "cancel" });
  const previewEl = h("div", { class: "svtr-q-preview" });
  const msg = h("div", { class: "svtr-q-msg", role: "status" });
  const grid = h("div", { class: "svtr-q-grid" });
  root.append(
    h("div", { class: "svtr-q-bar" }, sort, h("label", {}, "n ", sampleN), h("label", {}, "seed ", seed),
      h("label", {}, unchecked, " unchecked only"), prev, pager, next, summary),
    h("div", { class: "svtr-q-bar" }, find, repl, h("label", {}, regex, " regex"), h("label", {}, caseS, " match case"), previewBtn, applyBtn, cancelBtn),
    previewEl, msg, grid,
    h("div", { class: "svtr-q-help", text: "Enter: accept the line (with your text) and go to the next · Tab / Shift+Tab: next / previous · Alt+I: ### · PgDn / PgUp: next / previous page of the queue" }));
  el.appendChild(root);

  const send = (m) => { m.seq = ++S.seq; S.sent = m.seq; model.send(m); return m.seq; };
  const setTrait = (name, value) => { model.set(name, value); model.save_changes(); };
  sort.addEventListener("change", () => setTrait("sort", sort.value));
  sampleN.addEventListener("change", () => setTrait("sample_n", Math.max(1, +sampleN.value || 1)));
  seed.addEventListener("change", () => setTrait("seed", +seed.value || 0));
  unchecked.addEventListener("change", () => setTrait("only_unchecked", unchecked.checked));
  const turn = (step) => { commitAll(); setTrait("page", Math.max(0, Math.min(model.get("n_pages") - 1, model.get("page") + step))); };
  prev.addEventListener("click", () => turn(-1));
  next.addEventListener("click", () => turn(1));
  const doPreview = () => send({ cmd: "preview", find: find.value, replace: repl.value, regex: regex.checked, case: caseS.checked });
  previewBtn.addEventListener("click", doPreview);
  find.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); doPreview(); } });
  repl.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); doPreview(); } });
  applyBtn.addEventListener("click", () => send({ cmd: "apply" }));
  cancelBtn.addEventListener("click", () => send({ cmd: "cancel" }));

  function commit(key) {
    const d = S.dirty.get(key);
    if (!d) return;
    S.dirty.delete(key);
    send({ cmd: "text", key, text: d.text, version: d.base });
  }
  function commitAll() { for (const k of [...S.dirty.keys()]) commit(k); }
  function focusCard(key) {
    const c = S.cards.get(key);
    if (c) { c.ta.focus({ preventScroll: true }); c.el.scrollIntoView({ block: "nearest" }); }
  }

  function makeCard(it) {
    const ta = h("textarea", { class: "svtr-q-text", rows: "1", spellcheck: "false" });
    const img = h("img", { class: "svtr-q-crop", alt: "" });
    const meta = h("div", { class: "svtr-q-meta" });
    const card = { el: h("div", { class: "svtr-q-card", "data-key": it.key }, h("div", { class: "svtr-q-cropbox" }, img), meta, ta), ta, img, meta, key: null };
    const k = it.key;
    ta.addEventListener("input", () => {
      const d = S.dirty.get(k);
      S.dirty.set(k, { text: ta.value, base: d ? d.base : card.version });
      ta.style.height = "auto";
      ta.style.height = `${ta.scrollHeight + 2}px`;
    });
    ta.addEventListener("focus", () => { S.focusKey = k; });
    ta.addEventListener("blur", () => commit(k));
    ta.addEventListener("keydown", (e) => {
      if (e.isComposing || e.keyCode === 229) return;
      if (e.key === "Enter") {
        e.preventDefault();
        e.stopPropagation();
        const d = S.dirty.get(k);
        S.dirty.delete(k);
        send({ cmd: "accept", key: k, text: d ? d.text : null, version: d ? d.base : card.version });
        card.el.classList.add("checked");
        const keys = model.get("items").map((x) => x.key);
        const nxt = keys[keys.indexOf(k) + 1];
        if (nxt) focusCard(nxt);
      } else if (e.altKey && e.code === "KeyI") {
        e.preventDefault();
        e.stopPropagation();
        S.dirty.delete(k);
        send({ cmd: "illegible", key: k, version: card.version });
      } else if (e.key === "PageDown" || e.key === "PageUp") {
        e.preventDefault();
        e.stopPropagation();
        turn(e.key === "PageDown" ? 1 : -1);
      }
    });
    return card;
  }

  function paint() {
    const items = model.get("items");
    sort.value = model.get("sort");
    sampleN.value = model.get("sample_n");
    seed.value = model.get("seed");
    unchecked.checked = model.get("only_unchecked");
    sampleN.disabled = seed.disabled = model.get("sort") !== "audit";
    pager.textContent = ` page ${model.get("page") + 1}/${model.get("n_pages")} `;
    summary.textContent = model.get("summary");
    msg.textContent = model.get("message");
    msg.className = "svtr-q-msg " + model.get("message_kind");
    const pv = model.get("preview");
    applyBtn.disabled = cancelBtn.disabled = !pv.length;
    applyBtn.textContent = pv.length ? `apply ${pv.length}` : "apply";
    previewEl.replaceChildren(...(pv.length ? [h("table", {}, h("tr", {}, h("th", { text: "image" }), h("th", { text: "before" }), h("th", { text: "after" })),
      ...pv.map((c) => h("tr", {}, h("td", { text: `#${c.image_id} ${c.name}` }), h("td", { class: "before", text: c.before }), h("td", { class: "after", text: c.after }))))] : []));
    const want = [];
    const seen = new Set();
    for (const it of items) {
      let c = S.cards.get(it.key);
      if (!c) { c = makeCard(it); S.cards.set(it.key, c); }
      seen.add(it.key);
      want.push(c.el);
      c.version = it.version;
      c.el.classList.toggle("checked", it.state !== "unchecked");
      c.el.classList.toggle("low", it.low);
      c.el.classList.toggle("bad", it.issues.length > 0);
      const score = it.score === null ? "no score" : it.score.toFixed(2);
      const issues = it.issues.map((i) => `⚠ ${i[0].replace("_", " ")}`).join(" ");
      c.meta.textContent = `#${it.image_id} ${it.name} · ${score} · ${it.state}${issues ? " · " + issues : ""}`;
      c.meta.title = it.issues.map((i) => i[1]).join("\n");
      if (!S.dirty.has(it.key) && c.ta.value !== it.text) { c.ta.value = it.text; }
      const url = S.crops.get(it.crop);
      if (url && c.key !== it.crop) {
        c.img.src = url;
        c.key = it.crop;
        const hgt = it.crop_size[1];
        c.img.style.height = `${hgt < 32 ? 32 : Math.min(hgt, 48)}px`;
        c.img.classList.toggle("pixelated", hgt < 24);
      }
    }
    for (const [k, c] of S.cards) if (!seen.has(k)) { c.el.remove(); S.cards.delete(k); S.dirty.delete(k); }
    const kids = [...grid.children];
    if (kids.length !== want.length || kids.some((x, i) => x !== want[i])) grid.replaceChildren(...want);
    requestAnimationFrame(() => { for (const c of S.cards.values()) { c.ta.style.height = "auto"; c.ta.style.height = `${c.ta.scrollHeight + 2}px`; } });
    const missing = items.map((it) => it.crop).filter((k) => !S.crops.has(k) && !S.requested.has(k));
    if (missing.length) { missing.forEach((k) => S.requested.add(k)); model.send({ cmd: "crops", keys: missing }); }
  }
  model.on("msg:custom", (m, buffers) => {
    if (!m || m.type !== "crops") return;
    m.keys.forEach((k, i) => S.crops.set(k, URL.createObjectURL(new Blob([buffers[i]], { type: "image/png" }))));
    paint();
  });
  let scheduled = false;
  const schedule = () => { if (!scheduled) { scheduled = true; queueMicrotask(() => { scheduled = false; paint(); }); } };
  for (const t of ["items", "sort", "sample_n", "seed", "only_unchecked", "page", "n_pages", "summary", "message", "message_kind", "preview"]) {
    model.on(`change:${t}`, schedule);
  }
  const poll = setInterval(() => {
    if (!document.hidden && S.sent <= model.get("ack") && !S.dirty.size && model.get("poll_ms") > 0) model.send({ cmd: "poll" });
  }, Math.max(500, model.get("poll_ms") || 2000));
  paint();
  return () => { clearInterval(poll); for (const u of S.crops.values()) URL.revokeObjectURL(u); };
}

export default { render };
