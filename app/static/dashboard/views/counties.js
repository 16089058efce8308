// Counties and the data each holds: where a job's inputs start.

import { count, el, table } from "../dom.js";

export function countiesView(ctx) {
  const rows = ctx.counties.map((c) =>
    el(
      "tr",
      { "data-county": c.countyId },
      el("th", { scope: "row", "data-label": "County" }, c.countyId),
      el("td", { class: "num", "data-label": "Parcels" }, count(c.parcelCount)),
      el("td", { class: "num", "data-label": "Sales" }, count(c.saleCount)),
      el("td", { "data-label": "Sales from" }, c.firstSaleDate ?? "—"),
      el("td", { "data-label": "Sales to" }, c.lastSaleDate ?? "—"),
      el("td", { "data-label": "Tax years" }, c.taxYears.length ? c.taxYears.join(", ") : "—"),
      el(
        "td",
        { class: "row-actions" },
        el(
          "a",
          { href: `#/new?county=${encodeURIComponent(c.countyId)}`, class: "button primary" },
          "Start a job",
        ),
        " ",
        el("a", { href: `#/jobs?county=${encodeURIComponent(c.countyId)}`, class: "button" }, "Its jobs"),
      ),
    ),
  );
  const body = ctx.counties.length
    ? table(["County", "Parcels", "Sales", "Sales from", "Sales to", "Tax years", ""], rows, {
        class: "counties",
      })
    : el("p", {}, "No county has data yet. Load one with `terrafusion import` (or `terrafusion demo-data`).");
  return { node: el("section", { class: "view" }, el("h1", {}, "Counties"), body), title: "Counties" };
}
