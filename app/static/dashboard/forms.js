// Start-a-job forms generated from the schema's input types.
//
// Enums become selects, lists of enums checkboxes, input objects fieldsets, @oneOf inputs a
// choice of branch; defaults are filled in and descriptions shown as help. Every control
// carries its GraphQL path (`parameters.salesRatioStudy.iqrFactor`) so an error naming that
// path is shown next to it.

import { parseLiteral, unwrap } from "./schema.js";
import { el } from "./dom.js";

const NUMBER = new Set(["Int", "Float"]);

/** SALES_RATIO_STUDY -> salesRatioStudy: how a type enum names its @oneOf branch. */
export function camel(enumValue) {
  return enumValue.toLowerCase().replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function label(name) {
  const words = name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1).toLowerCase();
}

let uid = 0;
const nextId = (path) => `f-${path.replace(/[^A-Za-z0-9]/g, "-")}-${++uid}`;

/**
 * One field: its control(s), and `read()` giving its value (undefined: leave it out, so
 * the server's default applies) or throwing FieldError for input it cannot send.
 */
class FieldError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

function wrapper(path, name, description, control, { required, inline = false } = {}) {
  const errorId = `${control.id || nextId(path)}-error`;
  const help = description ? el("small", { class: "help", id: `${errorId}-help` }, description) : null;
  const error = el("p", { class: "field-error", id: errorId, role: "alert", hidden: true });
  const describedBy = [help?.id, errorId].filter(Boolean).join(" ");
  control.setAttribute?.("aria-describedby", describedBy);
  const text = `${label(name)}${required ? " *" : ""}`;
  const head = el("label", { for: control.id }, text);
  return el(
    "div",
    { class: inline ? "field inline" : "field", "data-path": path },
    inline ? [control, head] : [head, control],
    help,
    error,
  );
}

/** Build the control for one input value of type `ref` at `path`. */
function build(schema, path, name, ref, description, defaultText, extras) {
  const t = unwrap(ref);
  const type = schema.type(t.name);
  const fallback = parseLiteral(defaultText);
  const id = nextId(path);

  if (t.kind === "INPUT_OBJECT")
    return inputObject(schema, path, name, type, t, description, fallback, extras);

  if (t.kind === "ENUM" && t.list) {
    const chosen = new Set(Array.isArray(fallback) ? fallback : []);
    const boxes = type.enumValues.map((v) =>
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", value: v.name, checked: chosen.has(v.name) }),
        ` ${v.name}`,
      ),
    );
    const group = el(
      "fieldset",
      { class: "field checks", "data-path": path, id },
      el("legend", {}, `${label(name)}${t.required ? " *" : ""}`),
      boxes,
    );
    if (description) group.append(el("small", { class: "help" }, description));
    group.append(el("p", { class: "field-error", role: "alert", hidden: true }));
    const read = () => {
      const values = boxes
        .map((b) => b.querySelector("input"))
        .filter((i) => i.checked)
        .map((i) => i.value);
      if (!values.length && !t.required) return undefined;
      return values;
    };
    return { node: group, read };
  }

  if (t.kind === "ENUM") {
    const options = type.enumValues.map((v) =>
      el("option", { value: v.name, title: v.description ?? "" }, v.name),
    );
    if (!t.required || fallback === undefined)
      options.unshift(el("option", { value: "" }, t.required ? "— choose —" : "— default —"));
    const select = el("select", { id, name: path, required: t.required }, options);
    select.value = fallback ?? "";
    const read = () => {
      if (!select.value) {
        if (t.required) throw new FieldError(path, "choose one");
        return undefined;
      }
      return select.value;
    };
    return { node: wrapper(path, name, description, select, t), read, control: select };
  }

  if (t.name === "Boolean" && !t.list) {
    if (t.required || fallback !== undefined) {
      const box = el("input", { type: "checkbox", id, name: path, checked: fallback === true });
      return {
        node: wrapper(path, name, description, box, { ...t, inline: true }),
        read: () => box.checked,
        control: box,
      };
    }
    const select = el(
      "select",
      { id, name: path },
      el("option", { value: "" }, "— default —"),
      el("option", { value: "true" }, "yes"),
      el("option", { value: "false" }, "no"),
    );
    return {
      node: wrapper(path, name, description, select, t),
      read: () => (select.value ? select.value === "true" : undefined),
      control: select,
    };
  }

  const known = t.kind === "SCALAR" && ["String", "ID", "Int", "Float", "Date", "DateTime"].includes(t.name);
  if (!known || (t.list && !["String", "ID", "Int", "Float"].includes(t.name))) {
    // JSON, GeoJSON and other custom scalars: JSON text.
    const area = el("textarea", { id, name: path, rows: 3, spellcheck: false, placeholder: "JSON" });
    if (fallback !== undefined && fallback !== null) area.value = JSON.stringify(fallback);
    const read = () => {
      const text = area.value.trim();
      if (!text) {
        if (t.required) throw new FieldError(path, "required");
        return undefined;
      }
      try {
        return JSON.parse(text);
      } catch {
        throw new FieldError(path, "not valid JSON");
      }
    };
    return { node: wrapper(path, name, description, area, t), read, control: area };
  }

  const attrs = { id, name: path, required: t.required, autocomplete: "off" };
  if (NUMBER.has(t.name) && !t.list)
    Object.assign(attrs, { type: "number", step: t.name === "Int" ? "1" : "any", inputmode: "decimal" });
  else if (t.name === "Date") attrs.type = "date";
  else if (t.name === "DateTime") attrs.type = "datetime-local";
  else attrs.type = "text";
  if (t.list) attrs.placeholder = "comma-separated";
  if (extras.datalist?.[name]) attrs.list = extras.datalist[name];
  const input = el("input", attrs);
  if (fallback !== undefined && fallback !== null)
    input.value = Array.isArray(fallback) ? fallback.join(", ") : String(fallback);
  const read = () => {
    const text = input.value.trim();
    if (!text) {
      if (t.required) throw new FieldError(path, "required");
      return undefined;
    }
    const one = (s) => {
      if (!NUMBER.has(t.name)) return s;
      const n = Number(s);
      if (!Number.isFinite(n) || (t.name === "Int" && !Number.isInteger(n)))
        throw new FieldError(path, `not ${t.name === "Int" ? "a whole number" : "a number"}`);
      return n;
    };
    if (t.list)
      return text
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map(one);
    if (t.name === "DateTime") return new Date(text).toISOString();
    return one(text);
  };
  return { node: wrapper(path, name, description, input, t), read, control: input };
}

function inputObject(schema, path, name, type, t, description, fallback, extras) {
  const legend = el("legend", {}, `${label(name)}${t.required ? " *" : ""}`);
  const set = el("fieldset", { class: "group", "data-path": path }, legend);
  if (description) set.append(el("small", { class: "help" }, description));
  set.append(el("p", { class: "field-error", role: "alert", hidden: true }));
  const children = type.inputFields.map((f) => ({
    name: f.name,
    ...build(
      schema,
      path ? `${path}.${f.name}` : f.name,
      f.name,
      f.type,
      f.description,
      f.defaultValue,
      extras,
    ),
  }));

  if (type.isOneOf) {
    // One branch at a time; the rest are hidden and never sent.
    const choices = children.map((c) => el("option", { value: c.name }, label(c.name)));
    if (!t.required) choices.unshift(el("option", { value: "" }, "— defaults —"));
    const chooser = el("select", { id: nextId(path), "aria-label": `${label(name)}: which` }, choices);
    const initial =
      fallback && typeof fallback === "object"
        ? Object.keys(fallback)[0]
        : t.required
          ? children[0]?.name
          : "";
    chooser.value = initial ?? "";
    const show = () => {
      for (const c of children) c.node.hidden = c.name !== chooser.value;
    };
    chooser.addEventListener("change", show);
    set.append(el("div", { class: "field oneof" }, chooser), ...children.map((c) => c.node));
    show();
    const read = () => {
      const chosen = children.find((c) => c.name === chooser.value);
      if (!chosen) return undefined;
      return { [chosen.name]: chosen.read() ?? {} };
    };
    return { node: set, read, chooser, branches: children };
  }

  set.append(...children.map((c) => c.node));
  const read = () => {
    const out = {};
    for (const c of children) {
      const v = c.read();
      if (v !== undefined) out[c.name] = v;
    }
    // A nullable object the user left alone is left out, so the server's defaults apply.
    if (!Object.keys(out).length && !t.required) return undefined;
    return out;
  };
  return { node: set, read, children };
}

/**
 * A whole run form: `mutation` is the introspected `runX` field. Fields every run input
 * shares (priority, schedule, …) go under "More options"; a type enum whose values name
 * the branches of a @oneOf `parameters` drives that branch.
 */
export function runForm(schema, mutation, { shared, datalist }) {
  const inputArg = mutation.args.find((a) => a.name === "input");
  const inputType = schema.type(unwrap(inputArg.type).name);
  const fields = inputType.inputFields.map((f) => ({
    name: f.name,
    ...build(schema, f.name, f.name, f.type, f.description, f.defaultValue, { datalist }),
  }));
  const main = fields.filter((f) => !shared.has(f.name));
  const more = fields.filter((f) => shared.has(f.name));
  linkTypeToBranch(schema, inputType, fields);

  const formError = el("p", { class: "form-error", role: "alert", hidden: true });
  const submit = el(
    "button",
    { type: "submit", class: "primary" },
    `Start ${label(mutation.name.replace(/^run/, ""))}`,
  );
  const form = el(
    "form",
    { class: "run-form", novalidate: true, "data-mutation": mutation.name },
    mutation.description ? el("p", { class: "lead" }, mutation.description) : null,
    formError,
    main.map((f) => f.node),
    more.length
      ? el(
          "details",
          { class: "more" },
          el("summary", {}, "More options"),
          more.map((f) => f.node),
        )
      : null,
    el("div", { class: "actions" }, submit),
  );

  const clearErrors = () => {
    formError.hidden = true;
    for (const p of form.querySelectorAll(".field-error")) {
      p.hidden = true;
      p.textContent = "";
    }
    for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
  };

  /** Put `message` next to the control at `path` (or its nearest enclosing one). */
  const showError = (path, message) => {
    let parts = (path ?? "").split(".").filter(Boolean);
    while (parts.length) {
      const holder = form.querySelector(`[data-path="${CSS.escape(parts.join("."))}"]`);
      if (holder && !holder.closest("[hidden]")) {
        const p = holder.querySelector(":scope > .field-error");
        p.textContent = message;
        p.hidden = false;
        const control = holder.querySelector("input, select, textarea");
        control?.setAttribute("aria-invalid", "true");
        const details = holder.closest("details");
        if (details) details.open = true;
        return holder;
      }
      parts = parts.slice(0, -1);
    }
    formError.textContent = message;
    formError.hidden = false;
    return formError;
  };

  const read = () => {
    const input = {};
    const problems = [];
    for (const f of fields) {
      try {
        const v = f.read();
        if (v !== undefined) input[f.name] = v;
      } catch (exc) {
        if (!(exc instanceof FieldError)) throw exc;
        problems.push(exc);
      }
    }
    return { input, problems };
  };

  const setValue = (name, value) => {
    const f = fields.find((x) => x.name === name);
    if (f?.control) {
      f.control.value = value;
      f.control.dispatchEvent(new Event("change"));
    }
  };

  return { form, submit, read, clearErrors, showError, setValue, inputType: inputType.name };
}

function linkTypeToBranch(schema, inputType, fields) {
  const oneOf = fields.find((f) => f.chooser);
  if (!oneOf) return;
  const branchNames = new Set(oneOf.branches.map((b) => b.name));
  const driver = fields.find((f) => {
    const def = inputType.inputFields.find((x) => x.name === f.name);
    const t = unwrap(def.type);
    return t.kind === "ENUM" && !t.list && schema.enumValues(t.name).every((v) => branchNames.has(camel(v)));
  });
  if (!driver) return;
  const follow = () => {
    oneOf.chooser.value = driver.control.value ? camel(driver.control.value) : oneOf.chooser.value;
    oneOf.chooser.dispatchEvent(new Event("change"));
  };
  driver.control.addEventListener("change", follow);
  oneOf.chooser.closest(".oneof").hidden = true;
  // The type is what the form is for: start on the first one, its parameters in view.
  if (!driver.control.value)
    driver.control.value = driver.control.querySelector("option[value]:not([value=''])").value;
  follow();
}

/** Where an API error points: `extensions.field`, graphql-core's "at 'input.x.y'", or "x.y: …". */
export function errorPath(error) {
  const field = error.extensions?.field;
  if (typeof field === "string" && field) return field.replace(/^input\./, "");
  const at = /at '([^']+)'/.exec(error.message);
  if (at) return at[1].replace(/^input\.?/, "");
  const lead = /^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*|\[\d+\])*):\s/.exec(error.message);
  if (lead) return lead[1].replace(/^input\./, "").replace(/\[\d+\]/g, "");
  const field2 = /[Ff]ield '(?:\w+\.)?(\w+)'/.exec(error.message);
  return field2 ? field2[1] : null;
}
