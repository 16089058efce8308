// The dashboard's shell: sign-in, navigation, and one view at a time by the URL's hash.

import { Api, adoptTokenFromHash, GraphQLErrors, storedToken, storeToken } from "./api.js";
import { el } from "./dom.js";
import { Schema } from "./schema.js";
import { countiesView } from "./views/counties.js";
import { jobView } from "./views/job.js";
import { jobsView } from "./views/jobs.js";
import { newJobView } from "./views/new_job.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const connection = document.getElementById("connection");
let current = null;
let ctx = null;

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query ?? "");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) return () => jobView(ctx, parts[1]);
  if (parts[0] === "new") return () => newJobView(ctx, parts[1], params);
  if (parts[0] === "counties") return () => countiesView(ctx);
  return () => jobsView(ctx, params);
}

function show() {
  current?.dispose?.();
  current = route()();
  main.replaceChildren(current.node);
  const name = location.hash.split("/")[1]?.split("?")[0] || "jobs";
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.section === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${current.title ?? "Jobs"} · TerraFusion`;
  main.focus({ preventScroll: true });
}

function signInView(problem) {
  const input = el("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: false,
  });
  const error = el(
    "p",
    { class: "field-error", id: "token-error", role: "alert", hidden: !problem },
    problem ?? "",
  );
  input.setAttribute("aria-describedby", "token-help token-error");
  const form = el(
    "form",
    { class: "sign-in", novalidate: true },
    el("h1", {}, "Sign in"),
    el(
      "div",
      { class: "field", "data-path": "token" },
      el("label", { for: "token" }, "API token"),
      input,
      el(
        "small",
        { class: "help", id: "token-help" },
        "Paste the token from `terrafusion token create` (or the quick start's banner). It is kept for this browser tab only.",
      ),
      error,
    ),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = "paste a token first";
      error.hidden = false;
      return;
    }
    const ok = await start(token);
    if (!ok) {
      error.textContent = "that token was not accepted (unknown or revoked)";
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  });
  nav.hidden = true;
  main.replaceChildren(form);
  input.focus();
}

function signOut(problem) {
  current?.dispose?.();
  current = null;
  ctx?.api.close();
  ctx = null;
  storeToken(null);
  connection.textContent = "";
  signInView(problem);
}

/** Open the dashboard with `token`; false when the server refuses it. */
async function start(token) {
  const api = new Api(token);
  let schema;
  let counties;
  try {
    [schema, counties] = await Promise.all([Schema.load(api), loadCounties(api)]);
  } catch (exc) {
    api.close();
    if (exc instanceof GraphQLErrors && exc.code === "UNAUTHENTICATED") return false;
    main.replaceChildren(
      el("p", { class: "form-error", role: "alert" }, `The server could not be reached: ${exc.message}`),
    );
    return true;
  }
  storeToken(token);
  ctx = {
    api,
    schema,
    counties,
    signOut,
    refreshCounties: async () => (ctx.counties = await loadCounties(api)),
  };
  api.onUnauthorized = () => signOut("your token is no longer accepted; sign in again");
  api.onConnectionChange((online) => {
    connection.textContent = online ? "live" : online === false ? "reconnecting…" : "";
    connection.className = online ? "online" : online === false ? "offline" : "";
  });
  nav.hidden = false;
  if (!location.hash || location.hash === "#") history.replaceState(null, "", "#/jobs");
  show();
  return true;
}

async function loadCounties(api) {
  const data = await api.request(
    "query Counties { counties { countyId parcelCount saleCount firstSaleDate lastSaleDate taxYears } }",
  );
  return data.counties;
}

document.getElementById("sign-out").addEventListener("click", () => signOut());
// The hash is the route, so the skip link moves focus instead of following "#main".
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => ctx && show());

adoptTokenFromHash();
// Without a stored token, try none: a server run with AUTH_DISABLED needs no sign-in.
start(storedToken()).then((ok) => {
  if (!ok) signInView(storedToken() ? "your token is no longer accepted; sign in again" : null);
});
