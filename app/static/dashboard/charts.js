// Inline SVG charts and the map: no chart library, no tile server.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs))
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) if (c) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** About `n` round tick values covering [lo, hi]. */
export function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

const W = 640;
const H = 360;
const PAD = { left: 56, right: 16, top: 16, bottom: 44 };

function frame(title, xLabel, yLabel, xs, ys, { xFormat = compact, yFormat = compact, pad } = {}) {
  const P = pad ?? PAD;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  const [x0, x1] = xs;
  const [y0, y1] = ys;
  const px = (x) => P.left + ((x - x0) / (x1 - x0 || 1)) * (W - P.left - P.right);
  const py = (y) => H - P.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - P.top - P.bottom);
  const axes = svg("g", { class: "axes" });
  for (const t of ticks(y0, y1)) {
    axes.append(svg("line", { x1: P.left, x2: W - P.right, y1: py(t), y2: py(t), class: "grid" }));
    axes.append(svg("text", { x: P.left - 6, y: py(t) + 4, "text-anchor": "end" }, yFormat(t)));
  }
  const xTicks = ticks(x0, x1, 6);
  xTicks.forEach((t, i) => {
    // The last label ends at its tick, so it stays inside the frame.
    const anchor = i === xTicks.length - 1 && px(t) > W - P.right - 30 ? "end" : "middle";
    axes.append(svg("text", { x: px(t), y: H - P.bottom + 16, "text-anchor": anchor }, xFormat(t)));
  });
  axes.append(
    svg("text", { x: (P.left + W - P.right) / 2, y: H - 6, "text-anchor": "middle", class: "label" }, xLabel),
  );
  axes.append(
    svg(
      "text",
      {
        x: 12,
        y: (P.top + H - P.bottom) / 2,
        transform: `rotate(-90 12 ${(P.top + H - P.bottom) / 2})`,
        "text-anchor": "middle",
        class: "label",
      },
      yLabel,
    ),
  );
  root.append(axes);
  return { root, px, py };
}

function extent(values, pad = 0) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi - lo || Math.abs(hi) || 1;
  return [lo - span * pad, hi + span * pad];
}

/**
 * Assessment ratio against sale price, one dot per sale (trimmed outliers hollow), with
 * the median ratio as a line: where regressivity (PRD/PRB) shows at a glance.
 */
export function ratioScatter(points, median) {
  const kept = points.filter((p) => Number.isFinite(p.price) && Number.isFinite(p.ratio));
  const xs = extent(
    kept.map((p) => p.price),
    0.02,
  );
  const ys = extent(
    kept.map((p) => p.ratio),
    0.05,
  );
  const { root, px, py } = frame("Assessment ratio by sale price", "sale price", "ratio", xs, ys);
  let used = "";
  let trimmed = "";
  for (const p of kept) {
    const d = `M${px(p.price).toFixed(1)} ${py(p.ratio).toFixed(1)}h0`;
    if (p.trimmed) trimmed += d;
    else used += d;
  }
  root.append(svg("path", { d: used, class: "dots" }));
  root.append(svg("path", { d: trimmed, class: "dots trimmed" }));
  if (Number.isFinite(median)) {
    root.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: py(median), y2: py(median), class: "median" }),
    );
    root.append(
      svg(
        "text",
        { x: W - PAD.right - 4, y: py(median) - 6, "text-anchor": "end", class: "median-label" },
        `median ${median.toFixed(3)}`,
      ),
    );
  }
  return root;
}

const PALETTE = ["#1f6feb", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599", "#5c940d", "#c2255c"];

/** One line per group over the periods (x: period order, labelled sparsely). */
export function trendLines(points, valueKey, yLabel) {
  const periods = [...new Set(points.map((p) => p.period))].sort();
  const index = new Map(periods.map((p, i) => [p, i]));
  const groups = new Map();
  for (const p of points) {
    if (p[valueKey] === null || p[valueKey] === undefined) continue;
    const g = p.group ?? "all sales";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(p);
  }
  const values = [...groups.values()].flat().map((p) => p[valueKey]);
  const shown = [...groups.entries()].slice(0, PALETTE.length);
  // The legend gets a band of its own above the plot: four names to a row.
  const legendRows = Math.ceil(shown.length / 4);
  const { root, px, py } = frame(
    `${yLabel} by period`,
    "period",
    yLabel,
    [0, Math.max(1, periods.length - 1)],
    extent(values.length ? values : [0, 1], 0.05),
    { xFormat: (i) => periods[Math.round(i)] ?? "", pad: { ...PAD, top: 16 + legendRows * 18 } },
  );
  const legend = svg("g", { class: "legend" });
  shown.forEach(([group, rows], gi) => {
    rows.sort((a, b) => index.get(a.period) - index.get(b.period));
    const d = rows
      .map((r, i) => `${i ? "L" : "M"}${px(index.get(r.period)).toFixed(1)} ${py(r[valueKey]).toFixed(1)}`)
      .join("");
    root.append(svg("path", { d, class: "line", stroke: seriesColour(gi), "data-group": group }));
    const x = PAD.left + (gi % 4) * 146;
    const y = 8 + Math.floor(gi / 4) * 18;
    legend.append(svg("rect", { x, y, width: 10, height: 10, fill: seriesColour(gi) }));
    legend.append(svg("text", { x: x + 14, y: y + 9 }, group));
  });
  root.append(legend);
  return root;
}

const EARTH_M = 6371008.8;

/** A round length (1, 2 or 5 × 10^n metres) close to `target` metres. */
export function niceLength(target) {
  const mag = 10 ** Math.floor(Math.log10(target));
  return [5, 2, 1].map((m) => m * mag).find((v) => v <= target) ?? mag;
}

/** The colour of the i-th series or feature, as lines, map areas and their legends show it. */
export function seriesColour(i) {
  return PALETTE[i % PALETTE.length];
}

/**
 * A GeoJSON FeatureCollection's polygons and points, projected equirectangularly around
 * its centre latitude (true enough at county scale), with a scale bar. With `colourEach`,
 * every feature's polygons are one path of its own colour (`seriesColour`), e.g. market areas.
 */
export function featureMap(collection, { colourEach = false } = {}) {
  const features = collection.features ?? [];
  const ringsOf = features.map(() => []);
  const points = [];
  features.forEach((f, i) => {
    const walk = (g) => {
      if (!g) return;
      if (g.type === "Polygon") ringsOf[i].push(...g.coordinates);
      else if (g.type === "MultiPolygon") for (const p of g.coordinates) ringsOf[i].push(...p);
      else if (g.type === "Point") points.push(g.coordinates);
      else if (g.type === "MultiPoint") points.push(...g.coordinates);
      else if (g.type === "GeometryCollection") g.geometries.forEach(walk);
    };
    walk(f.geometry);
  });
  const rings = ringsOf.flat();
  const all = rings.flat().concat(points);
  const width = 640;
  const height = 440;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "map",
    role: "img",
    "aria-label": `map of ${features.length} features`,
  });
  root.append(svg("title", {}, `${features.length} features`));
  if (!all.length) return root;
  const [lon0, lon1] = extent(all.map((c) => c[0]));
  const [lat0, lat1] = extent(all.map((c) => c[1]));
  const k = Math.cos((((lat0 + lat1) / 2) * Math.PI) / 180);
  const margin = 20;
  const spanX = (lon1 - lon0) * k || 1e-6;
  const spanY = lat1 - lat0 || 1e-6;
  const scale = Math.min((width - 2 * margin) / spanX, (height - 2 * margin - 30) / spanY);
  const ox = (width - spanX * scale) / 2;
  const oy = (height - 30 - spanY * scale) / 2;
  const px = (lon) => ox + (lon - lon0) * k * scale;
  const py = (lat) => oy + (lat1 - lat) * scale;
  const path = (rs) =>
    rs.map((r) => `M${r.map((c) => `${px(c[0]).toFixed(1)} ${py(c[1]).toFixed(1)}`).join("L")}Z`).join("");
  if (colourEach) {
    ringsOf.forEach((rs, i) =>
      root.append(
        svg("path", {
          d: path(rs),
          class: "area",
          fill: seriesColour(i),
          "fill-rule": "evenodd",
          "data-feature": features[i].properties?.id ?? i,
        }),
      ),
    );
  } else {
    root.append(svg("path", { d: path(rings), class: "parcels", "fill-rule": "evenodd" }));
  }
  if (points.length) {
    const dots = points.map((c) => `M${px(c[0]).toFixed(1)} ${py(c[1]).toFixed(1)}h0`).join("");
    root.append(svg("path", { d: dots, class: "points" }));
  }
  // metres per SVG unit: one degree of latitude is EARTH_M·π/180 metres.
  const metresPerUnit = (EARTH_M * Math.PI) / 180 / scale;
  const length = niceLength(metresPerUnit * width * 0.25);
  const barUnits = length / metresPerUnit;
  const y = height - 14;
  const text = length >= 1000 ? `${length / 1000} km` : `${length} m`;
  root.append(
    svg(
      "g",
      { class: "scale-bar", "data-metres": length },
      svg("rect", { x: margin, y: y - 6, width: barUnits, height: 6 }),
      svg("text", { x: margin + barUnits + 6, y }, text),
    ),
  );
  return root;
}
