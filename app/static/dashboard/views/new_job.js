// Start a job: one generated form per run mutation, errors placed by the field they name.

import { GraphQLErrors } from "../api.js";
import { el } from "../dom.js";
import { errorPath, runForm } from "../forms.js";
import { unwrap } from "../schema.js";

const typeText = (ref) => (ref ? `${ref.kind}:${ref.name}:${typeText(ref.ofType)}` : "");
const sameType = (f, input, name) =>
  typeText(f.type) === typeText(input.inputFields.find((x) => x.name === name).type);

/** Input fields every run input has, of one type, and none requires (priority, …). */
function sharedOptional(schema, mutations) {
  const inputs = mutations.map((m) => schema.type(unwrap(m.args.find((a) => a.name === "input").type).name));
  const [first, ...rest] = inputs;
  return new Set(
    (first?.inputFields ?? [])
      .filter((f) => f.type.kind !== "NON_NULL" || f.defaultValue !== null)
      .map((f) => f.name)
      .filter((name) =>
        rest.every((t) => t.inputFields.some((f) => f.name === name && sameType(f, first, name))),
      ),
  );
}

export function newJobView(ctx, chosen, params) {
  const { api, schema } = ctx;
  const mutations = schema.runMutations();
  const shared = sharedOptional(schema, mutations);
  const current = mutations.find((m) => m.name === chosen) ?? mutations[0];
  const tabs = el(
    "nav",
    { class: "tabs", "aria-label": "Kind of job" },
    mutations.map((m) =>
      el(
        "a",
        {
          href: `#/new/${m.name}${params.size ? `?${params}` : ""}`,
          "aria-current": m === current ? "page" : null,
        },
        m.name.replace(/^run/, "").replace(/([a-z])([A-Z])/g, "$1 $2"),
      ),
    ),
  );
  const datalist = el(
    "datalist",
    { id: "county-ids" },
    ctx.counties.map((c) => el("option", { value: c.countyId }, `${c.parcelCount} parcels`)),
  );
  const built = runForm(schema, current, { shared, datalist: { countyId: "county-ids" } });
  const county = params.get("county") ?? (ctx.counties.length === 1 ? ctx.counties[0].countyId : null);
  if (county) built.setValue("countyId", county);

  built.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    built.clearErrors();
    const { input, problems } = built.read();
    if (problems.length) {
      const first = problems.map((p) => built.showError(p.path, `${p.path}: ${p.message}`))[0];
      first.querySelector?.("input, select, textarea")?.focus();
      return;
    }
    built.submit.disabled = true;
    try {
      const data = await api.request(
        `mutation Start($input: ${built.inputType}!) { ${current.name}(input: $input) { id status } }`,
        { input },
      );
      location.hash = `#/jobs/${data[current.name].id}`;
    } catch (exc) {
      const errors =
        exc instanceof GraphQLErrors
          ? exc.errors
          : [{ message: `could not reach the server: ${exc.message}` }];
      const holders = errors.map((e) => built.showError(errorPath(e), e.message));
      holders[0]?.querySelector?.("input, select, textarea")?.focus();
    } finally {
      built.submit.disabled = false;
    }
  });

  const node = el(
    "section",
    { class: "view new-view" },
    el("h1", {}, "Start a job"),
    tabs,
    datalist,
    built.form,
  );
  return { node, title: "Start a job" };
}
