// The live job list: newest first, filtered, paged by cursor, kept current by `jobsUpdated`.
//
// The feed is opened before the first page is read, so no change falls between the two.
// When the websocket drops, the feed comes back with `after:` the latest change cursor it
// knows (the server replays what was missed); with none yet, or one the change log no
// longer reaches (CURSOR_EXPIRED), the page is read again instead. Either way no row stays
// RUNNING after the job ended while the page was cut off.

import { el, progressBar, statusBadge, table, when } from "../dom.js";
import { controls, later, newer, notice, progressText, rowFields, variantOf } from "./common.js";

const PAGE = 25;

export function jobsView(ctx, params) {
  const { api, schema } = ctx;
  const fields = rowFields(schema);
  const filters = {
    kind: params.get("kind") || "",
    status: params.get("status") || "",
    countyId: params.get("county") || "",
    text: params.get("q") || "",
  };
  const jobs = new Map();
  let order = [];
  let endCursor = null;
  let hasNext = false;
  let total = 0;
  let cursor = null;
  let listed = false;
  const early = [];
  const { node: status, say } = notice();

  const select = (name, labelText, values, all) => {
    const s = el(
      "select",
      { id: `filter-${name}`, name },
      el("option", { value: "" }, all),
      values.map((v) => el("option", { value: v }, v)),
    );
    s.value = filters[name];
    s.addEventListener("change", () => setFilter(name, s.value));
    return el("div", { class: "field" }, el("label", { for: s.id }, labelText), s);
  };
  const text = el("input", {
    id: "filter-text",
    type: "search",
    placeholder: "id, type, message…",
    value: filters.text,
    autocomplete: "off",
  });
  text.addEventListener("input", () => {
    filters.text = text.value;
    render();
  });
  const bar = el(
    "form",
    { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
    select("kind", "Kind", schema.enumValues("JobKind"), "all kinds"),
    select("status", "Status", schema.enumValues("JobStatus"), "any status"),
    select(
      "countyId",
      "County",
      ctx.counties.map((c) => c.countyId),
      "all counties",
    ),
    el("div", { class: "field grow" }, el("label", { for: text.id }, "Search"), text),
  );
  const body = el("tbody", {});
  const summary = el("p", { class: "summary", "aria-live": "polite" });
  const more = el("button", { type: "button", hidden: true }, "Load more");
  more.addEventListener("click", () => loadPage(true));
  const listTable = table(["Job", "County", "Status", "Progress", "Created", ""], [], { class: "jobs" });
  listTable.querySelector("table").replaceChild(body, listTable.querySelector("tbody"));
  const node = el(
    "section",
    { class: "view jobs-view" },
    el(
      "div",
      { class: "view-head" },
      el("h1", {}, "Jobs"),
      el("a", { href: "#/new", class: "button primary" }, "Start a job"),
    ),
    bar,
    status,
    summary,
    listTable,
    el("div", { class: "actions" }, more),
  );

  function setFilter(name, value) {
    filters[name] = value;
    const q = new URLSearchParams();
    if (filters.kind) q.set("kind", filters.kind);
    if (filters.status) q.set("status", filters.status);
    if (filters.countyId) q.set("county", filters.countyId);
    history.replaceState(null, "", `#/jobs${q.size ? `?${q}` : ""}`);
    restartFeed();
  }

  const matchesText = (job) => {
    const needle = filters.text.trim().toLowerCase();
    if (!needle) return true;
    const hay = [
      job.id,
      job.kind,
      job.countyId,
      job.status,
      variantOf(schema, job),
      job.message,
      job.error?.message,
    ]
      .join(" ")
      .toLowerCase();
    return hay.includes(needle);
  };
  const matches = (job) =>
    (!filters.kind || job.kind === filters.kind) &&
    (!filters.countyId || job.countyId === filters.countyId) &&
    (!filters.status || job.status === filters.status);

  function row(job) {
    const tr = el(
      "tr",
      { "data-job": job.id, "data-status": job.status },
      el(
        "td",
        { "data-label": "Job" },
        el("a", { href: `#/jobs/${job.id}` }, variantOf(schema, job)),
        el("small", { class: "id" }, `${job.kind} · ${job.id.slice(0, 8)}`),
      ),
      el("td", { "data-label": "County" }, job.countyId),
      el("td", { "data-label": "Status" }, statusBadge(job.status)),
      el(
        "td",
        { "data-label": "Progress", class: "progress-cell" },
        progressBar(job.progress, job.status),
        el(
          "small",
          { class: "step" },
          job.error ? `${job.error.code}: ${job.error.message}` : progressText(job),
        ),
      ),
      el("td", { "data-label": "Created" }, when(job.createdAt)),
      el("td", { class: "row-actions" }, controls(ctx, job, apply, say)),
    );
    return tr;
  }

  function render() {
    const focused = document.activeElement?.closest?.("tr[data-job]");
    const focusKey = focused && [focused.dataset.job, document.activeElement.dataset.action ?? "link"];
    const rows = order
      .map((id) => jobs.get(id))
      .filter((j) => j && matchesText(j))
      .map(row);
    body.replaceChildren(...rows);
    if (!rows.length)
      body.append(
        el("tr", {}, el("td", { colspan: 6, class: "empty" }, listed ? "No jobs match." : "Loading…")),
      );
    summary.textContent = listed
      ? `${order.length.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} jobs shown`
      : "";
    more.hidden = !hasNext;
    if (focusKey) {
      const tr = body.querySelector(`tr[data-job="${focusKey[0]}"]`);
      const target =
        focusKey[1] === "link" ? tr?.querySelector("a") : tr?.querySelector(`[data-action="${focusKey[1]}"]`);
      (target ?? tr?.querySelector("a"))?.focus();
    }
  }

  /** One job's new state, from the feed, a mutation, or a page. */
  function apply(job, { fromFeed = false } = {}) {
    const known = jobs.get(job.id);
    if (!newer(known, job)) return;
    if (!known) {
      if (!matches(job)) return;
      if (fromFeed) {
        order.unshift(job.id);
        total += 1;
      } else order.push(job.id);
    }
    jobs.set(job.id, { ...known, ...job });
    render();
  }

  async function loadPage(append) {
    const data = await api.request(
      `query Jobs($kind: JobKind, $status: JobStatus, $countyId: String, $first: Int = ${PAGE}, $after: String) {
        jobs(kind: $kind, status: $status, countyId: $countyId, first: $first, after: $after) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { ${fields} } } } }`,
      {
        kind: filters.kind || null,
        status: filters.status || null,
        countyId: filters.countyId || null,
        after: append ? endCursor : null,
      },
    );
    const page = data.jobs;
    if (!append) {
      jobs.clear();
      order = [];
    }
    for (const { node: job } of page.edges) {
      if (!jobs.has(job.id)) order.push(job.id);
      jobs.set(job.id, job);
    }
    total = page.totalCount;
    endCursor = page.pageInfo.endCursor;
    hasNext = page.pageInfo.hasNextPage;
    if (!append) {
      listed = true;
      for (const job of early.splice(0)) apply(job, { fromFeed: true });
    }
    render();
  }

  /** Where a resumed feed starts: the latest change seen in the feed or the page. */
  function resumeFrom() {
    let latest = cursor;
    for (const job of jobs.values()) latest = later(latest, job.changeCursor);
    return latest;
  }

  let feed = null;
  let feedAfter = null;
  const feedQuery = `subscription JobsFeed($kind: JobKind, $countyId: String, $after: String) {
    jobsUpdated(kind: $kind, countyId: $countyId, after: $after) { ${fields} } }`;

  function restartFeed() {
    feed?.stop();
    cursor = null;
    listed = false;
    early.length = 0;
    render();
    feedAfter = null;
    feed = api.live(feedQuery, {
      endless: true,
      variables: () => ({ kind: filters.kind || null, countyId: filters.countyId || null, after: feedAfter }),
      next: (data) => {
        const job = data.jobsUpdated;
        cursor = later(cursor, job.changeCursor);
        if (listed) apply(job, { fromFeed: true });
        else early.push(job);
      },
      // Before each reconnection: resume from a cursor where the server can, else re-read.
      restart: async () => {
        feedAfter = resumeFrom();
        if (!feedAfter) await loadPage(false);
      },
      error: (refusal) => {
        if (refusal.code === "CURSOR_EXPIRED") {
          // The change log no longer reaches back that far: read the page afresh.
          cursor = null;
          jobs.clear();
          return "retry";
        }
        say(refusal.message);
        return undefined;
      },
    });
    loadPage(false).catch((exc) => say(`could not list jobs: ${exc.message}`));
  }

  restartFeed();
  render();
  return {
    node,
    title: "Jobs",
    dispose: () => feed?.stop(),
  };
}
