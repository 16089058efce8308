// One job, live: status, progress, parameters, controls, and its result once it has one.

import { el, progressBar, statusBadge, when } from "../dom.js";
import { renderResult } from "../results.js";
import { controls, isFinal, newer, notice, progressText, rowFields, variantOf } from "./common.js";

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
  const node = el("section", { class: "view job-view" }, el("p", {}, el("a", { href: "#/jobs" }, "← All jobs")), head, status, resultBox);
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
      resultBox.replaceChildren(job.error ? el("p", { class: "form-error" }, `${job.error.code}: ${job.error.message}`) : "");
      shownResultOf = null;
    }
  }

  function renderHead() {
    const params = job.parameters && typeof job.parameters === "object" ? Object.entries(job.parameters) : [];
    head.replaceChildren(
      el("div", { class: "view-head" }, el("h1", {}, variantOf(schema, job)), statusBadge(job.status), controls(ctx, job, apply, say)),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Job"), el("dd", { class: "id" }, job.id),
        el("dt", {}, "Kind"), el("dd", {}, job.kind),
        el("dt", {}, "County"), el("dd", {}, el("a", { href: `#/jobs?county=${encodeURIComponent(job.countyId)}` }, job.countyId)),
        el("dt", {}, "Created"), el("dd", {}, when(job.createdAt)),
        el("dt", {}, "Finished"), el("dd", {}, when(job.completedAt)),
        el("dt", {}, "Attempts"), el("dd", {}, String(job.attempts)),
        params.length ? [el("dt", {}, "Parameters"), el("dd", {}, el("code", {}, JSON.stringify(job.parameters)))] : null,
      ),
      el("div", { class: "progress-block" }, progressBar(job.progress, job.status), el("p", { class: "step" }, progressText(job) || job.message || "")),
    );
  }

  const query = `query Job($id: ID!) { job(id: $id) { ${fields} } }`;
  api
    .request(query, { id })
    .then((data) => {
      if (!data.job) {
        head.replaceChildren(el("h1", {}, "No such job"), el("p", {}, `There is no job ${id}, or it is not yours to see.`));
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
