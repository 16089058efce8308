// Small DOM and formatting helpers shared by the views.

/** `el("a", {href}, "text", child, [more])`: an element; false/null children are skipped. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    // CSSOM, not a style attribute: the page's Content-Security-Policy forbids inline styles.
    else if (key === "style") node.style.cssText = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
    if (key === "checked" || key === "value") node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  return value.toFixed(digits);
}

export function money(value) {
  if (value === null || value === undefined) return "—";
  return value.toLocaleString("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
}

export function count(value) {
  if (value === null || value === undefined) return "—";
  return value.toLocaleString("en-US");
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" });
}

/** A progress bar a screen reader can read. */
export function progressBar(progress, status) {
  const percent = Math.max(0, Math.min(100, progress?.percent ?? 0));
  const rounded = Math.round(percent);
  return el(
    "div",
    {
      class: `bar status-${status?.toLowerCase()}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": rounded,
      "aria-label": "progress",
    },
    el("span", { style: `width:${percent}%` }),
    el("b", {}, `${rounded}%`),
  );
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${status.toLowerCase()}` }, status);
}

export function table(headers, rows, attrs = {}) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      attrs,
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          headers.map((h) => el("th", { scope: "col" }, h)),
        ),
      ),
      el("tbody", {}, rows),
    ),
  );
}
