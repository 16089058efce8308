// A finished job's result, drawn: ratio statistics with IAAO verdicts and the ratio-vs-price
// chart, trend lines, the export's map, the valuation's value and comparables, and every
// file as a link.

import { featureMap, ratioScatter, seriesColour, trendLines } from "./charts.js";
import { bytes, count, el, fmt, money, table } from "./dom.js";

/** How each statistic is shown (digits) and the name its IAAO check goes by. */
const STATS = [
  ["medianRatio", "Median ratio", 3, "median_ratio", "medianRatioCi"],
  ["cod", "COD", 2, "cod", "codCi"],
  ["prd", "PRD", 3, "prd", "prdCi"],
  ["prb", "PRB", 3, "prb", "prbCi"],
];

export function renderResult(ctx, job) {
  const r = job.result;
  const parts = [];
  if (r.ratioStudy) parts.push(ratioStudy(ctx, r));
  if (r.assessmentRoll) parts.push(assessmentRoll(r.assessmentRoll));
  if (r.trends) parts.push(marketAnalysis(ctx, r));
  if (r.file && "recordCount" in r) parts.push(gisExport(ctx, r));
  if ("estimatedValue" in r || "parcelsValued" in r) parts.push(valuation(r));
  const files = [...(r.files ?? []), ...(r.file ? [r.file] : [])];
  if (files.length) parts.push(fileList(ctx, files));
  return el("div", { class: "result-body" }, el("h2", {}, "Result"), parts);
}

function verdict(check, digits) {
  if (!check) return el("span", { class: "verdict none" }, "not judged");
  const range = `${fmt(check.lower, digits)} – ${fmt(check.upper, digits)}`;
  return check.passes
    ? el("span", { class: "verdict pass", "data-passes": "true" }, `meets IAAO (${range})`)
    : el("span", { class: "verdict fail", "data-passes": "false" }, `outside IAAO ${range}`);
}

function interval(ci, digits) {
  return ci ? `${fmt(ci.lower, digits)} – ${fmt(ci.upper, digits)} (${Math.round(ci.level * 100)}%)` : "—";
}

/** One sample's statistics as a table of value, confidence interval and verdict. */
function statisticsTable(stats, caption) {
  const checks = new Map((stats.standards ?? []).map((c) => [c.statistic, c]));
  const rows = STATS.map(([key, name, digits, std, ci]) =>
    el(
      "tr",
      { "data-stat": key },
      el("th", { scope: "row" }, name),
      el("td", { class: "num", "data-value": stats[key] ?? "" }, fmt(stats[key], digits)),
      el("td", {}, interval(stats[ci], digits)),
      el("td", { class: "iaao" }, verdict(checks.get(std), digits)),
    ),
  );
  const wrap = table(["Statistic", "Value", "Confidence interval", "IAAO"], rows, { class: "stats" });
  const overall = stats.meetsStandards;
  return el(
    "div",
    { class: "stat-block" },
    el("h3", {}, caption),
    el(
      "p",
      {},
      `${count(stats.countUsed)} of ${count(stats.count)} sales used after trimming. `,
      el(
        "strong",
        { class: overall ? "pass" : "fail" },
        overall === true
          ? "Meets IAAO standards."
          : overall === false
            ? "Does not meet IAAO standards."
            : "Not judged.",
      ),
    ),
    stats.note ? el("p", { class: "help" }, stats.note) : null,
    wrap,
  );
}

function ratioStudy(ctx, r) {
  const s = r.ratioStudy;
  const chart = el(
    "figure",
    { class: "chart-box" },
    el("figcaption", {}, "Ratio against sale price (hollow: trimmed outliers)"),
    el("p", { class: "help" }, "Loading the sales…"),
  );
  const salesFile = (r.files ?? []).find((f) => /csv/.test(f.contentType) && /sales/.test(f.name));
  if (salesFile) drawScatter(ctx, salesFile, s.overall.medianRatio, chart);
  else chart.lastChild.textContent = "No per-sale file to draw.";
  const groups = s.groups?.length
    ? table(
        ["Group", "Sales", "Median", "COD", "PRD", "PRB", "IAAO"],
        s.groups.map((g) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, g.group),
            el("td", { class: "num" }, count(g.countUsed)),
            el("td", { class: "num" }, fmt(g.medianRatio, 3)),
            el("td", { class: "num" }, fmt(g.cod, 2)),
            el("td", { class: "num" }, fmt(g.prd, 3)),
            el("td", { class: "num" }, fmt(g.prb, 3)),
            el(
              "td",
              {},
              g.meetsStandards === null ? "not judged" : g.meetsStandards ? "meets" : "does not meet",
            ),
          ),
        ),
        { class: "groups" },
      )
    : null;
  return el(
    "section",
    { class: "ratio-study" },
    el(
      "p",
      {},
      `Tax year ${s.taxYear}, sales ${s.saleDateFrom} to ${s.saleDateTo}, trim ${s.trim}${s.groupBy ? `, by ${s.groupBy}` : ""}.`,
    ),
    statisticsTable(s.overall, "Whole sample"),
    chart,
    groups ? el("div", {}, el("h3", {}, `By ${s.groupBy}`), groups) : null,
  );
}

const MAX_DOTS = 5000;

async function drawScatter(ctx, file, median, figure) {
  try {
    const text = await (await ctx.api.fetchFile(file.url)).text();
    const lines = text.trim().split(/\r?\n/);
    const header = lines[0].split(",");
    const col = (name) => header.indexOf(name);
    const [price, ratio, trimmed] = [col("sale_price"), col("ratio"), col("trimmed")];
    const step = Math.max(1, Math.ceil((lines.length - 1) / MAX_DOTS));
    const points = [];
    for (let i = 1; i < lines.length; i += step) {
      const cells = lines[i].split(",");
      points.push({
        price: Number(cells[price]),
        ratio: Number(cells[ratio]),
        trimmed: cells[trimmed] === "True" || cells[trimmed] === "true",
      });
    }
    const note =
      step > 1 ? `every ${step}th of ${count(lines.length - 1)} sales` : `${count(points.length)} sales`;
    figure.replaceChildren(figure.firstChild, ratioScatter(points, median), el("p", { class: "help" }, note));
  } catch (exc) {
    figure.lastChild.textContent = `could not read the sales file: ${exc.message}`;
  }
}

function assessmentRoll(roll) {
  const groupTable = (rows, name) =>
    table(
      [name, "Parcels", "Land", "Improvements", "Assessed", "Median assessed"],
      rows.map((g) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, g.group),
          el("td", { class: "num" }, count(g.parcelCount)),
          el("td", { class: "num" }, money(g.totalLandValue)),
          el("td", { class: "num" }, money(g.totalImprovementValue)),
          el("td", { class: "num" }, money(g.totalAssessedValue)),
          el("td", { class: "num" }, money(g.medianAssessedValue)),
        ),
      ),
    );
  return el(
    "section",
    { class: "assessment-roll" },
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Tax year"),
      el("dd", {}, String(roll.taxYear)),
      el("dt", {}, "Parcels"),
      el("dd", {}, `${count(roll.assessedParcelCount)} assessed of ${count(roll.parcelCount)}`),
      el("dt", {}, "Total assessed"),
      el("dd", {}, money(roll.totalAssessedValue)),
    ),
    roll.byPropertyClass?.length
      ? [el("h3", {}, "By property class"), groupTable(roll.byPropertyClass, "Class")]
      : null,
    roll.byNeighborhood?.length
      ? [el("h3", {}, "By neighborhood"), groupTable(roll.byNeighborhood, "Neighborhood")]
      : null,
  );
}

function marketAnalysis(ctx, r) {
  const parts = [];
  if (r.warnings?.length) {
    parts.push(el("ul", { class: "warnings" }, r.warnings.map((w) => el("li", {}, w))));
  }
  if (r.annualTrendPercent !== null && r.annualTrendPercent !== undefined) {
    parts.push(
      el(
        "p",
        { class: "headline" },
        `Prices change ${fmt(r.annualTrendPercent, 2)}% a year`,
        r.annualTrendCi ? ` (${interval(r.annualTrendCi, 2)})` : "",
        ".",
      ),
    );
  }
  if (r.trends.length) {
    const key = r.trends.some((p) => p.medianPrice !== null) ? "medianPrice" : "averagePrice";
    parts.push(
      el(
        "figure",
        { class: "chart-box" },
        el("figcaption", {}, "Median sale price per period and group"),
        trendLines(r.trends, key, "median price"),
      ),
    );
  }
  if (r.yearOverYear?.length) {
    parts.push(
      table(
        ["Year", "Median price", "Change"],
        r.yearOverYear.map((y) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, String(y.year)),
            el("td", { class: "num" }, money(y.medianPrice)),
            el("td", { class: "num" }, y.changePercent === null ? "—" : `${fmt(y.changePercent, 1)}%`),
          ),
        ),
      ),
    );
  }
  const t = r.timeAdjustment;
  if (t) {
    parts.push(el("h3", {}, `Time adjustment to ${t.valuationDate} (${t.method})`));
    parts.push(
      el(
        "p",
        {},
        `Median sale price ${money(t.medianSalePrice)}; adjusted ${money(t.adjustedMedianSalePrice)} (${count(t.salesCount)} sales).`,
      ),
    );
    const index = t.factors.map((f) => ({ period: f.month, group: "price index", value: f.index }));
    parts.push(
      el(
        "figure",
        { class: "chart-box" },
        el("figcaption", {}, "Monthly price index"),
        trendLines(index, "value", "price index"),
      ),
    );
    const rows = t.factors.map((f) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, f.month),
        el("td", { class: "num" }, money(f.index)),
        el("td", { class: "num" }, fmt(f.factor, 3)),
        el("td", { class: "num" }, count(f.salesVolume)),
      ),
    );
    parts.push(
      el(
        "details",
        {},
        el("summary", {}, `Factors of all ${t.factors.length} months`),
        table(["Month", "Index", "Factor", "Sales"], rows),
      ),
    );
  }
  if (r.marketAreas) parts.push(marketAreas(ctx, r.marketAreas, r.files));
  return el("section", { class: "market" }, parts);
}

function marketAreas(ctx, m, files) {
  const rows = m.areas.map((a, i) =>
    el(
      "tr",
      { "data-area": a.id },
      el("th", { scope: "row" }, el("span", { class: "swatch", style: `background: ${seriesColour(i)}` }), a.name),
      el("td", {}, a.neighborhoods.join(", ")),
      el("td", { class: "num" }, count(a.saleCount)),
      el("td", { class: "num" }, money(a.medianPricePerSqft)),
      el("td", { class: "num" }, a.annualTrendPercent === null ? "—" : `${fmt(a.annualTrendPercent, 1)}%`),
    ),
  );
  const parts = [
    el("h3", {}, `${count(m.areaCount)} market areas, prices adjusted to ${m.valuationDate}`),
    table(["Area", "Neighborhoods", "Sales", "Median $/sq ft", "Trend a year"], rows),
  ];
  const layer = files.find((f) => f.contentType === "application/geo+json");
  if (layer) {
    const figure = el("figure", { class: "map-box" }, el("figcaption", {}, "Market areas"));
    figure.append(el("p", { class: "help" }, "Drawing the areas…"));
    ctx.api
      .fetchFile(layer.url)
      .then((response) => response.json())
      .then((collection) => figure.replaceChild(featureMap(collection, { colourEach: true }), figure.lastChild))
      .catch((exc) => (figure.lastChild.textContent = `could not draw the areas: ${exc.message}`));
    parts.push(figure);
  }
  return el("section", { class: "market-areas" }, parts);
}

function gisExport(ctx, r) {
  const figure = el(
    "figure",
    { class: "map-box" },
    el("figcaption", {}, `${count(r.recordCount)} features (${r.crs})`),
  );
  const isGeoJson = /geo\+json|json/.test(r.file.contentType) || /\.(geo)?json$/.test(r.file.name);
  if (isGeoJson) {
    figure.append(el("p", { class: "help" }, "Drawing the export…"));
    ctx.api
      .fetchFile(r.file.url)
      .then((response) => response.json())
      .then((collection) => figure.replaceChild(featureMap(collection), figure.lastChild))
      .catch((exc) => (figure.lastChild.textContent = `could not draw the export: ${exc.message}`));
  } else {
    figure.append(
      el("p", { class: "help" }, "The map is drawn from GeoJSON exports; this one is a download."),
    );
  }
  return el(
    "section",
    { class: "gis" },
    r.bbox ? el("p", {}, `Bounding box: ${r.bbox.map((v) => v.toFixed(5)).join(", ")}`) : null,
    figure,
  );
}

function valuation(r) {
  const parts = [el("p", {}, `Method: ${r.method}${r.valuationDate ? `, as of ${r.valuationDate}` : ""}.`)];
  if (r.estimatedValue !== null && r.estimatedValue !== undefined) {
    parts.push(
      el(
        "p",
        { class: "headline" },
        el("span", { "data-value": r.estimatedValue }, money(r.estimatedValue)),
        r.interval
          ? ` (${Math.round(r.interval.level * 100)}% interval ${money(r.interval.lower)} – ${money(r.interval.upper)})`
          : "",
      ),
    );
  }
  if (r.parcelsValued !== null && r.parcelsValued !== undefined)
    parts.push(el("p", {}, `${count(r.parcelsValued)} parcels valued.`));
  if (r.comparables?.length) {
    parts.push(el("h3", {}, "Comparables"));
    parts.push(
      table(
        ["Parcel", "Sale date", "Sale price", "Adjusted", "Distance"],
        r.comparables.map((c) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, c.parcelId),
            el("td", {}, c.saleDate),
            el("td", { class: "num" }, money(c.salePrice)),
            el("td", { class: "num" }, money(c.adjustedPrice)),
            el("td", { class: "num" }, fmt(c.distance, 3)),
          ),
        ),
      ),
    );
  }
  if (r.holdout) parts.push(statisticsTable(r.holdout, "Hold-out sales: how well the model's values match"));
  return el("section", { class: "valuation" }, parts);
}

/**
 * Files as links. A signed URL (it carries its signature in the query) is followed as it
 * is; a plain one is fetched with the token in the header, since the token never goes in
 * a URL, and handed to the browser as a blob.
 */
function fileList(ctx, files) {
  const items = files.map((f) => {
    const signed = new URL(f.url, location.href).search.length > 1;
    const opens = /html|pdf|svg|json|text\/plain/.test(f.contentType);
    const a = el(
      "a",
      {
        href: f.url,
        download: opens ? null : f.name,
        target: opens ? "_blank" : null,
        rel: "noopener",
        class: "file",
      },
      f.name,
    );
    if (!signed) {
      a.addEventListener("click", async (event) => {
        event.preventDefault();
        const tab = opens ? window.open("", "_blank") : null;
        try {
          const blob = await (await ctx.api.fetchFile(f.url)).blob();
          const href = URL.createObjectURL(new Blob([blob], { type: f.contentType }));
          if (tab) tab.location.href = href;
          else el("a", { href, download: f.name }).click();
          setTimeout(() => URL.revokeObjectURL(href), 60000);
        } catch (exc) {
          tab?.close();
          a.after(el("span", { class: "field-error" }, ` ${exc.message}`));
        }
      });
    }
    return el(
      "li",
      {},
      a,
      el(
        "small",
        {},
        ` ${f.contentType}, ${bytes(f.sizeBytes)}${f.rowCount !== null && f.rowCount !== undefined ? `, ${count(f.rowCount)} rows` : ""}`,
      ),
    );
  });
  return el("section", { class: "files" }, el("h3", {}, "Files"), el("ul", {}, items));
}
