// ChipCanvas front end (anywidget ESM, no imports, no CDN).
//
// Everything drawn comes from the model's synced state, so a view that connects late
// (Voilà renders after the kernel ran the notebook) or reconnects draws the right picture.
// Four stacked canvases, so a click never redraws or resends the image:
//   image   - the grayscale image (redrawn only on image / zoom / pan changes)
//   fill    - per-chip class fills, opaque; `fill_opacity` is applied as CSS opacity
//   overlay - grid, uncertainty hatch, support outlines
//   ui      - the chip under the mouse, the Python-chosen `cursor_chip`, suggested chips
// Chip indices changed between two versions of an array are found by diffing here, so only
// those chips are repainted; no custom "dirty" message exists that Voilà could lose.

const LAYERS = ["image", "fill", "overlay", "ui"];
const OUTLINE_PX = 3; // support outline width, CSS px
const HATCH_PX = 8; // hatch period, CSS px
const DAMAGE_LIMIT = 512; // above this many changed chips a full layer redraw is cheaper
const HOVER_MS = 50; // hover messages to Python at most every 50 ms
const VIEW_SYNC_MS = 120; // zoom/pan are written back to Python once a gesture pauses
const MAX_ZOOM = 64;

/** Copy a serialised array ({shape, dtype, buffer}) into an aligned typed array. */
function unpack(value, Ctor) {
  if (!value || !value.buffer) return { data: new Ctor(0), shape: [0] };
  const b = value.buffer;
  const bytes = b instanceof ArrayBuffer
    ? b.slice(0)
    : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return { data: new Ctor(bytes), shape: value.shape || [0] };
}

function rgba(a, i) {
  return `rgba(${a[4 * i]},${a[4 * i + 1]},${a[4 * i + 2]},${a[4 * i + 3] / 255})`;
}

function makeHatch(dpr) {
  const s = Math.max(4, Math.round(HATCH_PX * dpr));
  const c = document.createElement("canvas");
  c.width = c.height = s;
  const g = c.getContext("2d");
  g.lineWidth = 1.5 * dpr;
  // Black and white diagonals: one of the two contrasts with any class colour.
  for (const [off, colour] of [[0, "rgba(0,0,0,0.9)"], [s / 2, "rgba(255,255,255,0.9)"]]) {
    g.strokeStyle = colour;
    g.beginPath();
    for (const d of [-s, 0, s]) {
      g.moveTo(d + off, s);
      g.lineTo(d + off + s, 0);
    }
    g.stroke();
  }
  return c;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "scc-root";
  root.tabIndex = 0; // focusable, so key presses reach us
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: digits are ours
  const cv = {};
  const gc = {};
  for (const name of LAYERS) {
    const c = document.createElement("canvas");
    c.className = `scc-layer scc-${name}`;
    root.appendChild(c);
    cv[name] = c;
    gc[name] = c.getContext("2d");
  }
  el.classList.add("stem-chip-canvas");
  el.appendChild(root);

  const st = {
    src: null, imgW: 0, imgH: 0, // image as an offscreen canvas at full resolution
    seg: null, // pixel-resolution segmentation as an offscreen canvas (drawn instead of chip fills)
    boxes: new Int32Array(0), cells: new Int32Array(0), n: 0,
    fill: new Uint8Array(0), outline: new Uint8Array(0), uncertain: new Uint8Array(0),
    suggested: new Uint8Array(0),
    vw: 1, vh: 1, dpr: 1, zoom: 1, panX: 0, panY: 0,
    hover: -1, drag: null, hatch: null,
  };

  // ---- geometry: the one place where mouse positions become image coordinates -------
  function toImage(ev) {
    const r = cv.ui.getBoundingClientRect();
    const cssX = (ev.clientX - r.left) * (st.vw / (r.width || st.vw));
    const cssY = (ev.clientY - r.top) * (st.vh / (r.height || st.vh));
    return { x: st.panX + cssX / st.zoom, y: st.panY + cssY / st.zoom, cssX, cssY };
  }

  /** Device-pixel rectangle [x0, y0, x1, y1] of row i of a (N, 4) y0,x0,y1,x1 array. */
  function devRect(a, i) {
    const s = st.zoom * st.dpr;
    return [
      Math.round((a[4 * i + 1] - st.panX) * s), Math.round((a[4 * i] - st.panY) * s),
      Math.round((a[4 * i + 3] - st.panX) * s), Math.round((a[4 * i + 2] - st.panY) * s),
    ];
  }

  function visible(r) {
    return r[2] > 0 && r[3] > 0 && r[0] < cv.ui.width && r[1] < cv.ui.height;
  }

  function chipAt(p) {
    const c = st.cells;
    for (let i = 0; i < st.n; i++) {
      if (p.y >= c[4 * i] && p.x >= c[4 * i + 1] && p.y < c[4 * i + 2] && p.x < c[4 * i + 3]) return i;
    }
    return -1;
  }

  // ---- drawing -----------------------------------------------------------------------
  function drawImage() {
    const c = cv.image, g = gc.image;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, c.width, c.height);
    if (!st.src) return;
    const s = st.zoom * st.dpr;
    g.imageSmoothingEnabled = s < 1; // magnified pixels stay square and honest
    g.setTransform(s, 0, 0, s, -st.panX * s, -st.panY * s);
    g.drawImage(st.src, 0, 0);
  }

  function drawFill(damage) {
    const c = cv.fill, g = gc.fill, f = st.fill;
    g.setTransform(1, 0, 0, 1, 0, 0);
    if (st.seg && model.get("show_pixels")) {
      // The pixel map replaces the chip fills: the whole layer, stretched over the image.
      g.clearRect(0, 0, c.width, c.height);
      const s = st.zoom * st.dpr;
      g.imageSmoothingEnabled = false;
      g.setTransform(s, 0, 0, s, -st.panX * s, -st.panY * s);
      g.drawImage(st.seg, 0, 0, st.imgW || st.seg.width, st.imgH || st.seg.height);
      return;
    }
    if (!damage) g.clearRect(0, 0, c.width, c.height);
    const n = Math.min(st.n, f.length >> 2);
    const list = damage || Array.from({ length: n }, (_, i) => i);
    for (const i of list) {
      if (i >= n) continue;
      const r = devRect(st.cells, i);
      if (!visible(r)) continue;
      // Cells tile the image and share rounded edges, so clear+fill of one cell is exact.
      if (damage) g.clearRect(r[0], r[1], r[2] - r[0], r[3] - r[1]);
      if (f[4 * i + 3] === 0) continue;
      g.fillStyle = rgba(f, i);
      g.fillRect(r[0], r[1], r[2] - r[0], r[3] - r[1]);
    }
  }

  function chipExtent(i, pad) {
    const b = devRect(st.boxes, i), c = devRect(st.cells, i);
    return [Math.min(b[0], c[0]) - pad, Math.min(b[1], c[1]) - pad,
            Math.max(b[2], c[2]) + pad, Math.max(b[3], c[3]) + pad];
  }

  function drawOverlay(damage) {
    const c = cv.overlay, g = gc.overlay, dpr = st.dpr;
    const pad = Math.ceil(OUTLINE_PX * dpr) + 2;
    g.setTransform(1, 0, 0, 1, 0, 0);
    let rects = null;
    if (damage) {
      // Repaint, inside the damaged rectangles only, every chip touching them, in the
      // same order as a full redraw: the result equals a full redraw there.
      rects = damage.filter((i) => i < st.n).map((i) => chipExtent(i, pad));
      g.save();
      g.beginPath();
      for (const r of rects) g.rect(r[0], r[1], r[2] - r[0], r[3] - r[1]);
      g.clip();
    }
    g.clearRect(0, 0, c.width, c.height);
    const todo = [];
    for (let i = 0; i < st.n; i++) {
      const e = chipExtent(i, pad);
      if (!visible(e)) continue;
      if (rects && !rects.some((r) => e[0] < r[2] && r[0] < e[2] && e[1] < r[3] && r[1] < e[3])) continue;
      todo.push(i);
    }
    if (model.get("show_grid")) {
      g.beginPath();
      for (const i of todo) {
        const r = devRect(st.cells, i);
        g.rect(r[0] + 0.5, r[1] + 0.5, r[2] - r[0], r[3] - r[1]);
      }
      g.lineWidth = 1;
      g.strokeStyle = model.get("grid_color");
      g.stroke();
    }
    const u = st.uncertain;
    if (model.get("show_uncertain") && u.length) {
      g.beginPath();
      for (const i of todo) {
        if (!u[i]) continue;
        const r = devRect(st.cells, i);
        g.rect(r[0], r[1], r[2] - r[0], r[3] - r[1]);
      }
      g.fillStyle = g.createPattern(st.hatch, "repeat");
      g.globalAlpha = model.get("uncertain_opacity");
      g.fill();
      g.globalAlpha = 1;
    }
    const o = st.outline;
    if (model.get("show_outline") && o.length) {
      const lw = OUTLINE_PX * dpr;
      g.globalAlpha = model.get("outline_opacity");
      for (const i of todo) {
        if (4 * i + 3 >= o.length || o[4 * i + 3] === 0) continue;
        const r = devRect(st.boxes, i);
        const w = r[2] - r[0], h = r[3] - r[1];
        if (w <= 2 * lw || h <= 2 * lw) continue;
        g.lineWidth = lw; // inset, so the outline stays inside the chip it marks
        g.strokeStyle = rgba(o, i);
        g.strokeRect(r[0] + lw / 2, r[1] + lw / 2, w - lw, h - lw);
        g.lineWidth = Math.max(1, dpr); // thin dark rim: the outline reads on a same-colour fill
        g.strokeStyle = "rgba(0,0,0,0.8)";
        g.strokeRect(r[0] + lw + 0.5, r[1] + lw + 0.5, w - 2 * lw - 1, h - 2 * lw - 1);
      }
      g.globalAlpha = 1;
    }
    if (damage) g.restore();
  }

  function strokeBoth(g, r, dash) {
    const dpr = st.dpr;
    g.lineWidth = 2 * dpr;
    g.setLineDash([]);
    g.strokeStyle = "rgba(0,0,0,0.9)";
    g.strokeRect(r[0] + dpr, r[1] + dpr, r[2] - r[0] - 2 * dpr, r[3] - r[1] - 2 * dpr);
    g.setLineDash(dash ? [4 * dpr, 4 * dpr] : []);
    g.strokeStyle = "rgba(255,255,255,0.95)";
    g.strokeRect(r[0] + dpr, r[1] + dpr, r[2] - r[0] - 2 * dpr, r[3] - r[1] - 2 * dpr);
    g.setLineDash([]);
  }

  /** Largest 1, 2 or 5 × 10^n not above t (the rule of stem_fsl_widgets.scalebar). */
  function niceLength(t) {
    const e = Math.pow(10, Math.floor(Math.log10(t)));
    for (const m of [5, 2, 1]) if (m * e <= t * (1 + 1e-9)) return m * e;
    return e;
  }

  function drawScaleBar(g) {
    const size = model.get("pixel_size"), unit = model.get("pixel_unit");
    if (!(size > 0) || !unit || unit === "px") return;
    const dpr = st.dpr, physical = niceLength(0.2 * (st.vw / st.zoom) * size);
    const len = (physical / size) * st.zoom * dpr, thick = 4 * dpr;
    const x0 = 10 * dpr, y1 = cv.ui.height - 10 * dpr;
    g.fillStyle = "rgba(0,0,0,0.85)";
    g.fillRect(x0 - dpr, y1 - thick - dpr, len + 2 * dpr, thick + 2 * dpr);
    g.fillStyle = "#ffffff";
    g.fillRect(x0, y1 - thick, len, thick);
    g.font = `${12 * dpr}px sans-serif`;
    g.lineWidth = 3 * dpr;
    g.strokeStyle = "rgba(0,0,0,0.85)";
    const label = `${+physical.toPrecision(6)} ${unit}`;
    g.strokeText(label, x0, y1 - thick - 4 * dpr);
    g.fillText(label, x0, y1 - thick - 4 * dpr);
  }

  function drawUI() {
    const c = cv.ui, g = gc.ui;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, c.width, c.height);
    const cur = model.get("cursor_chip");
    if (cur >= 0 && cur < st.n) strokeBoth(g, devRect(st.boxes, cur), true);
    // Suggestions: dashed black-and-white boxes with no fill, unlike a support's solid outline.
    if (model.get("show_outline")) {
      const sg = st.suggested;
      for (let i = 0; i < Math.min(st.n, sg.length); i++) {
        if (sg[i] && i !== cur) strokeBoth(g, devRect(st.boxes, i), true);
      }
    }
    if (st.hover >= 0 && st.hover < st.n) strokeBoth(g, devRect(st.cells, st.hover), false);
    drawScaleBar(g);
  }

  // ---- scheduling: coalesce all redraws into one animation frame ---------------------
  const pending = { image: false, fill: false, overlay: false, ui: false,
                    fillDamage: new Set(), overlayDamage: new Set() };
  let raf = 0;
  function request(layer, indices) {
    if (indices) {
      const set = pending[`${layer}Damage`];
      for (const i of indices) set.add(i);
      if (set.size > DAMAGE_LIMIT) pending[layer] = true;
    } else {
      pending[layer] = true;
    }
    if (!raf) raf = requestAnimationFrame(flush);
  }
  function requestAll() { for (const l of LAYERS) request(l); }
  function flush() {
    raf = 0;
    const t0 = performance.now();
    if (pending.image) drawImage();
    for (const l of ["fill", "overlay"]) {
      const damage = pending[`${l}Damage`];
      if (pending[l]) (l === "fill" ? drawFill : drawOverlay)(null);
      else if (damage.size) (l === "fill" ? drawFill : drawOverlay)([...damage].sort((a, b) => a - b));
      pending[l] = false;
      damage.clear();
    }
    if (pending.ui) drawUI();
    pending.image = pending.ui = false;
    root.dataset.zoom = String(st.zoom); // for tests and debugging
    root.dataset.panX = String(st.panX);
    root.dataset.panY = String(st.panY);
    root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
    root.dataset.flushMs = (performance.now() - t0).toFixed(2);
  }

  // ---- state from the model ----------------------------------------------------------
  function loadSize() {
    st.vw = Math.max(1, model.get("view_width"));
    st.vh = Math.max(1, model.get("view_height"));
    st.dpr = window.devicePixelRatio || 1;
    root.style.width = `${st.vw}px`;
    root.style.height = `${st.vh}px`;
    for (const c of Object.values(cv)) {
      c.width = Math.round(st.vw * st.dpr);
      c.height = Math.round(st.vh * st.dpr);
      c.style.width = `${st.vw}px`;
      c.style.height = `${st.vh}px`;
    }
    st.hatch = makeHatch(st.dpr);
    requestAll();
  }
  function loadView() {
    st.zoom = model.get("zoom") || 1;
    const pan = model.get("pan") || [0, 0];
    st.panX = pan[0];
    st.panY = pan[1];
    requestAll();
  }
  function loadImage() {
    const { data, shape } = unpack(model.get("image"), Uint8Array);
    const [h, w] = shape.length === 2 ? shape : [0, 0];
    st.src = null;
    if (h > 0 && w > 0 && data.length === h * w) {
      const src = document.createElement("canvas");
      src.width = w;
      src.height = h;
      const g = src.getContext("2d");
      const im = g.createImageData(w, h);
      const px = im.data;
      for (let i = 0, j = 0; i < data.length; i++, j += 4) {
        px[j] = px[j + 1] = px[j + 2] = data[i];
        px[j + 3] = 255;
      }
      g.putImageData(im, 0, 0);
      st.src = src;
    }
    st.imgW = w;
    st.imgH = h;
    request("image");
  }
  function loadSeg() {
    const { data, shape } = unpack(model.get("seg_image"), Uint8ClampedArray);
    const [h, w] = shape.length === 3 ? shape : [0, 0];
    st.seg = null;
    if (h > 0 && w > 0 && data.length === h * w * 4) {
      const seg = document.createElement("canvas");
      seg.width = w;
      seg.height = h;
      seg.getContext("2d").putImageData(new ImageData(data, w, h), 0, 0);
      st.seg = seg;
    }
    request("fill");
  }
  function loadGeometry() {
    st.boxes = unpack(model.get("boxes"), Int32Array).data;
    st.cells = unpack(model.get("cells"), Int32Array).data;
    st.n = Math.min(st.boxes.length, st.cells.length) >> 2;
    st.hover = -1;
    request("fill");
    request("overlay");
    request("ui");
  }
  function changedRows(prev, next, width) {
    if (prev.length !== next.length) return null;
    const out = [];
    for (let i = 0; i < next.length; i += width) {
      for (let k = 0; k < width; k++) {
        if (prev[i + k] !== next[i + k]) { out.push(i / width); break; }
      }
    }
    return out;
  }
  function loadRows(name, trait, width, layer) {
    const next = unpack(model.get(trait), Uint8Array).data;
    const diff = changedRows(st[name], next, width);
    st[name] = next;
    if (diff === null || diff.length > DAMAGE_LIMIT) request(layer);
    else if (diff.length) request(layer, diff);
  }
  function loadFillStyle() {
    cv.fill.style.opacity = String(model.get("fill_opacity"));
    cv.fill.style.display = model.get("show_fill") ? "" : "none";
  }

  // ---- events to Python ----------------------------------------------------------------
  const mods = (ev) => ({ shift: ev.shiftKey, ctrl: ev.ctrlKey || ev.metaKey });
  function send(event, p, ev, extra) {
    model.send({ event, x: p.x, y: p.y, ...mods(ev), ...(extra || {}) });
  }
  let hoverTimer = 0;
  let hoverMsg = null;
  let viewTimer = 0;

  function syncView() {
    clearTimeout(viewTimer);
    viewTimer = 0;
    // Read before setting: the change:zoom listener reloads st from the model's older pan.
    const zoom = st.zoom, pan = [st.panX, st.panY];
    model.set("zoom", zoom);
    model.set("pan", pan);
    model.save_changes();
  }
  function viewChanged() {
    requestAll();
    clearTimeout(viewTimer);
    viewTimer = setTimeout(syncView, VIEW_SYNC_MS);
  }
  function clampPan() {
    // Zoomed in: no blank margin; zoomed out: the whole image stays in view.
    const spanX = st.imgW - st.vw / st.zoom, spanY = st.imgH - st.vh / st.zoom;
    st.panX = Math.min(Math.max(st.panX, Math.min(0, spanX)), Math.max(0, spanX));
    st.panY = Math.min(Math.max(st.panY, Math.min(0, spanY)), Math.max(0, spanY));
  }
  function fitZoom() {
    return st.imgW && st.imgH ? Math.min(st.vw / st.imgW, st.vh / st.imgH) : 1;
  }
  function fitView() {
    st.zoom = fitZoom();
    st.panX = (st.imgW - st.vw / st.zoom) / 2;
    st.panY = (st.imgH - st.vh / st.zoom) / 2;
    viewChanged();
  }

  function onPointerDown(ev) {
    root.focus({ preventScroll: true });
    clearTimeout(hoverTimer);
    hoverTimer = 0;
    const pan = ev.button === 1 || (ev.button === 0 && model.get("mode") === "pan");
    if (pan) {
      st.drag = { kind: "pan", x: ev.clientX, y: ev.clientY, panX: st.panX, panY: st.panY };
    } else if (ev.button === 0 || ev.button === 2) {
      const p = toImage(ev);
      st.drag = { kind: "paint", button: ev.button, chip: chipAt(p) };
      send("mouse_down", p, ev, { button: ev.button });
    } else {
      return;
    }
    root.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  }
  function onPointerMove(ev) {
    const d = st.drag;
    if (d && d.kind === "pan") {
      st.panX = d.panX - (ev.clientX - d.x) / st.zoom;
      st.panY = d.panY - (ev.clientY - d.y) / st.zoom;
      clampPan();
      viewChanged();
      return;
    }
    const p = toImage(ev);
    const chip = chipAt(p);
    if (chip !== st.hover) {
      st.hover = chip;
      request("ui");
    }
    if (d) {
      // Drag painting: one message per chip entered keeps the kernel's queue short.
      if (chip !== d.chip || st.n === 0) {
        d.chip = chip;
        send("mouse_move", p, ev);
      }
      return;
    }
    hoverMsg = { x: p.x, y: p.y, ...mods(ev) };
    if (!hoverTimer) {
      hoverTimer = setTimeout(() => {
        hoverTimer = 0;
        if (hoverMsg) model.send({ event: "mouse_move", ...hoverMsg });
      }, HOVER_MS);
    }
  }
  function onPointerUp(ev) {
    const d = st.drag;
    if (!d) return;
    st.drag = null;
    if (root.hasPointerCapture(ev.pointerId)) root.releasePointerCapture(ev.pointerId);
    if (d.kind === "paint") send("mouse_up", toImage(ev), ev, { button: d.button });
    else syncView();
  }
  function onPointerLeave() {
    if (st.drag) return;
    hoverMsg = null;
    if (st.hover !== -1) {
      st.hover = -1;
      request("ui");
    }
  }
  function onWheel(ev) {
    ev.preventDefault(); // the page must not scroll while zooming
    const p = toImage(ev);
    const k = ev.deltaMode === 1 ? 0.05 : ev.deltaMode === 2 ? 1 : 0.0015;
    const zoom = Math.min(MAX_ZOOM, Math.max(fitZoom() / 2, st.zoom * Math.exp(-ev.deltaY * k)));
    st.zoom = zoom;
    st.panX = p.x - p.cssX / zoom; // the image point under the mouse stays put
    st.panY = p.y - p.cssY / zoom;
    clampPan();
    viewChanged();
  }
  function onKeyDown(ev) {
    if (["Shift", "Control", "Alt", "Meta", "Tab"].includes(ev.key)) return;
    ev.stopPropagation(); // keep notebook shortcuts (e.g. "1" = heading) away
    if (ev.key === "Home") {
      fitView();
      ev.preventDefault();
      return;
    }
    let key = ev.key;
    const digit = /^(?:Digit|Numpad)(\d)$/.exec(ev.code || "");
    if (digit) key = digit[1]; // shift+1 is "!" on a US layout; we want "1"
    else if (key.length === 1) key = key.toLowerCase();
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (!ctrl || key === "z" || key === "y") ev.preventDefault();
    model.send({ event: "key", key, ctrl, shift: ev.shiftKey });
  }
  const stop = (ev) => ev.preventDefault();
  const stopMiddle = (ev) => { if (ev.button === 1) ev.preventDefault(); }; // no autoscroll/paste

  const domListeners = [
    ["pointerdown", onPointerDown], ["pointermove", onPointerMove], ["pointerup", onPointerUp],
    ["pointercancel", onPointerUp], ["pointerleave", onPointerLeave], ["wheel", onWheel],
    ["keydown", onKeyDown], ["contextmenu", stop], ["mousedown", stopMiddle], ["auxclick", stopMiddle],
  ];
  for (const [name, fn] of domListeners) root.addEventListener(name, fn, { passive: false });

  const modelListeners = [
    ["change:image", loadImage],
    ["change:boxes change:cells", loadGeometry],
    ["change:fill_rgba", () => loadRows("fill", "fill_rgba", 4, "fill")],
    ["change:outline_rgba", () => loadRows("outline", "outline_rgba", 4, "overlay")],
    ["change:uncertain", () => loadRows("uncertain", "uncertain", 1, "overlay")],
    ["change:suggested", () => { st.suggested = unpack(model.get("suggested"), Uint8Array).data; request("ui"); }],
    ["change:show_grid change:show_outline change:show_uncertain change:grid_color " +
      "change:uncertain_opacity change:outline_opacity",
      () => { request("overlay"); request("ui"); }],
    ["change:show_fill change:fill_opacity", loadFillStyle],
    ["change:seg_image", loadSeg],
    ["change:show_pixels", () => request("fill")],
    ["change:zoom change:pan", loadView],
    ["change:view_width change:view_height", loadSize],
    ["change:cursor_chip change:pixel_size change:pixel_unit", () => request("ui")],
  ];
  for (const [names, fn] of modelListeners) for (const n of names.split(" ")) model.on(n, fn);

  loadSize();
  loadView();
  loadImage();
  loadSeg();
  loadGeometry();
  st.fill = unpack(model.get("fill_rgba"), Uint8Array).data;
  st.outline = unpack(model.get("outline_rgba"), Uint8Array).data;
  st.uncertain = unpack(model.get("uncertain"), Uint8Array).data;
  st.suggested = unpack(model.get("suggested"), Uint8Array).data;
  loadFillStyle();
  requestAll();

  return () => {
    for (const [names, fn] of modelListeners) for (const n of names.split(" ")) model.off(n, fn);
    for (const [name, fn] of domListeners) root.removeEventListener(name, fn);
    if (raf) cancelAnimationFrame(raf);
    clearTimeout(hoverTimer);
    clearTimeout(viewTimer);
  };
}

export default { render };
