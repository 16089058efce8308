// What the job views share: the fields asked for, a job's one-line description, controls.

import { GraphQLErrors } from "../api.js";
import { el } from "../dom.js";

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
export const isFinal = (status) => FINAL.has(status);

/** The Job fields a row needs, with each type's variant (reportType, …) by fragment. */
export function rowFields(schema) {
  const own = [
    "id",
    "kind",
    "countyId",
    "status",
    "message",
    "attempts",
    "priority",
    "version",
    "changeCursor",
    "createdAt",
    "updatedAt",
    "startedAt",
    "completedAt",
  ];
  const fragments = schema.jobTypes().map((t) => {
    const names = schema.variantFields(t.name).map((f) => f.name);
    return names.length ? `... on ${t.name} { ${names.join(" ")} }` : "";
  });
  return `${own.join(" ")} progress { percent step processed total } error { code message } ${fragments.join(" ")}`;
}

/** What a person calls the job: its type (SALES_RATIO_STUDY, GEOJSON, …). */
export function variantOf(schema, job) {
  const type = schema.jobTypes().find((t) => schema.variantFields(t.name).some((f) => f.name in job));
  const values = type
    ? schema
        .variantFields(type.name)
        .map((f) => job[f.name])
        .filter(Boolean)
    : [];
  return values.join(" · ") || job.kind;
}

/** Keep the newer of two states of one job (a late or replayed event never goes back). */
export function newer(known, incoming) {
  return !known || incoming.version >= known.version;
}

/** The later of two change cursors: the contract orders them as plain strings. */
export function later(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  return b > a ? b : a;
}

export function progressText(job) {
  const p = job.progress;
  if (!p) return job.message ?? "";
  const counts = p.total
    ? `${(p.processed ?? 0).toLocaleString("en-US")} / ${p.total.toLocaleString("en-US")}`
    : "";
  return [p.step, counts].filter(Boolean).join(" — ");
}

/** Cancel / Retry, where the job's status allows; `apply` receives the new state. */
export function controls(ctx, job, apply, notify) {
  const act = async (mutation, button) => {
    button.disabled = true;
    try {
      const data = await ctx.api.request(
        `mutation Control($id: ID!) { ${mutation}(id: $id) { ${rowFields(ctx.schema)} } }`,
        { id: job.id },
      );
      apply(data[mutation]);
    } catch (exc) {
      notify(exc instanceof GraphQLErrors ? exc.message : `could not reach the server: ${exc.message}`);
      button.disabled = false;
    }
  };
  const buttons = [];
  if (job.status === "PENDING" || job.status === "RUNNING") {
    const b = el(
      "button",
      { type: "button", class: "danger", "data-action": "cancel", "aria-label": `Cancel job ${job.id}` },
      "Cancel",
    );
    b.addEventListener("click", () => act("cancelJob", b));
    buttons.push(b);
  }
  if (job.status === "FAILED" || job.status === "CANCELLED") {
    const b = el(
      "button",
      { type: "button", "data-action": "retry", "aria-label": `Retry job ${job.id}` },
      "Retry",
    );
    b.addEventListener("click", () => act("retryJob", b));
    buttons.push(b);
  }
  return el("div", { class: "controls" }, buttons);
}

/** A polite live region for messages that are not tied to a field. */
export function notice() {
  const node = el("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  const say = (text) => {
    node.textContent = text;
    node.hidden = !text;
  };
  return { node, say };
}
