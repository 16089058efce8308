// One job, live: status, progress, parameters, controls, and its result once it has one.

import { el, progressBar, statusBadge, when } from "../dom.js";
import { renderResult } from "../results.js";
import { controls, isFinal, newer, notice, progressText, rowFields, variantOf } from "./common.js";

/** The parameters a job ran with, as `path value` pairs, leaving out what was not set. */
function settings(value, prefix = "", top = true) {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value.length ? [[prefix, value.join(", ")]] : [];
  if (typeof value !== "object") return [[prefix, String(value)]];
  const entries = Object.entries(value).filter(([, v]) => v !== null && v !== undefined);
  // A @oneOf branch's name says nothing the job's type does not: its fields are shown bare.
  const branch = top && entries.length === 1 && typeof entries[0][1] === "object";
  return entries.flatMap(([k, v]) => settings(v, branch ? "" : prefix ? `${prefix}.${k}` : k, false));
}

export function jobView(ctx, id) {
  const { api, schema } = ctx;
  const details = schema
    .jobTypes()
    .map((t) => `... on ${t.name} { ${schema.selection(t.name, 5)} }`)
    .join(" ");
  const fields = `${rowFields(schema)} ${details}`;
  const head = el("div", { class: "job-head" });
  const resultBox = el("div", { class: "result" });
  const { node: status, say } = notice();
  const node = el(
    "section",
    { class: "view job-view" },
    el("p", {}, el("a", { href: "#/jobs" }, "← All jobs")),
    head,
    status,
    resultBox,
  );
  let job = null;
  let shownResultOf = null;
  let live = null;

  function apply(next) {
    if (!next || !newer(job, next)) return;
    job = { ...job, ...next };
    renderHead();
    if (!isFinal(job.status) && !live) watch();
    if (job.result && shownResultOf !== job.version) {
      shownResultOf = job.version;
      resultBox.replaceChildren(renderResult(ctx, job));
    } else if (!job.result && job.status !== "COMPLETED") {
      resultBox.replaceChildren(
        job.error ? el("p", { class: "form-error" }, `${job.error.code}: ${job.error.message}`) : "",
      );
      shownResultOf = null;
    }
  }

  function renderHead() {
    const params = settings(job.parameters);
    head.replaceChildren(
      el(
        "div",
        { class: "view-head" },
        el("h1", {}, variantOf(schema, job)),
        statusBadge(job.status),
        controls(ctx, job, apply, say),
      ),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Job"),
        el("dd", { class: "id" }, job.id),
        el("dt", {}, "Kind"),
        el("dd", {}, job.kind),
        el("dt", {}, "County"),
        el("dd", {}, el("a", { href: `#/jobs?county=${encodeURIComponent(job.countyId)}` }, job.countyId)),
        el("dt", {}, "Created"),
        el("dd", {}, when(job.createdAt)),
        el("dt", {}, "Finished"),
        el("dd", {}, when(job.completedAt)),
        el("dt", {}, "Attempts"),
        el("dd", {}, String(job.attempts)),
        params.length
          ? [
              el("dt", {}, "Parameters"),
              el(
                "dd",
                { class: "params" },
                params.map(([k, v]) => el("span", {}, el("b", {}, k), ` ${v}`)),
              ),
            ]
          : null,
      ),
      el(
        "div",
        { class: "progress-block" },
        progressBar(job.progress, job.status),
        el("p", { class: "step" }, progressText(job) || job.message || ""),
      ),
    );
  }

  const query = `query Job($id: ID!) { job(id: $id) { ${fields} } }`;
  api
    .request(query, { id })
    .then((data) => {
      if (!data.job) {
        head.replaceChildren(
          el("h1", {}, "No such job"),
          el("p", {}, `There is no job ${id}, or it is not yours to see.`),
        );
        return;
      }
      apply(data.job);
    })
    .catch((exc) => say(`could not load the job: ${exc.message}`));

  function watch() {
    // jobUpdated sends the current state first, so a reconnection catches up by itself;
    // it completes after a final status (and is opened again by a retry).
    live = api.live(`subscription Watch($id: ID!) { jobUpdated(id: $id) { ${fields} } }`, {
      variables: () => ({ id }),
      endless: () => {
        if (!isFinal(job.status)) return true;
        live = null;
        return false;
      },
      next: (data) => apply(data.jobUpdated),
      error: (refusal) => say(refusal.message),
    });
  }

  return { node, title: "Job", dispose: () => live?.stop() };
}
