// GraphiQL for TerraFusion Jobs: a file of its own, so the page's Content-Security-Policy
// can forbid inline scripts. An API token comes in the URL fragment (`#token=tf_...`),
// which browsers never send to a server nor put in a Referer; it is moved at once into
// this tab's sessionStorage and the fragment removed, so it stays out of the history too.
(function () {
  "use strict";

  const TOKEN_KEY = "terrafusion-token";
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);

  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
        entry.slice(eq + 1),
      );
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search = Object.keys(parameters)
      .filter((key) => Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
    history.replaceState(null, "", "?" + search);
  }

  const fetchURL = window.location.href.split(/[?#]/)[0];
  const subscriptionURL = new URL(fetchURL);
  subscriptionURL.protocol = subscriptionURL.protocol === "http:" ? "ws:" : "wss:";

  const headers = token ? { Authorization: "Bearer " + token } : {};
  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    headers: headers,
    subscriptionUrl: subscriptionURL.toString(),
    wsConnectionParams: headers,
  });

  function render(defaultDocument) {
    function TerraFusionGraphiQL() {
      const [query, setQuery] = React.useState(parameters.q || defaultDocument);
      const [variables, setVariables] = React.useState(parameters.variables);
      const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
      return React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultEditorToolsVisibility: true,
        plugins: [explorerPlugin],
        query: query,
        variables: variables,
        onEditQuery: (value) => {
          setQuery(value);
          updateURL({ q: value });
        },
        onEditVariables: (value) => {
          setVariables(value);
          updateURL({ variables: value });
        },
        inputValueDeprecation: true,
        isHeadersEditorEnabled: true,
      });
    }
    const root = ReactDOM.createRoot(document.getElementById("graphiql"));
    root.render(React.createElement(TerraFusionGraphiQL));
  }

  fetch(document.getElementById("graphiql").dataset.defaultDocument)
    .then((response) => (response.ok ? response.text() : ""))
    .catch(() => "")
    .then(render);
})();
