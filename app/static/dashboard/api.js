// The dashboard's only way to the server: the public GraphQL API, over HTTP and graphql-ws.
//
// The token lives in sessionStorage (this tab, this browser session) and travels only in
// the Authorization header and the websocket's connection_init, never in a URL.

import { createClient } from "./vendor/graphql-ws/client.js";

const TOKEN_KEY = "terrafusion.token";

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Take `#token=…` (the quick start's printed URL) into sessionStorage and out of the URL. */
export function adoptTokenFromHash() {
  const match = /(?:^#|[#&])token=([^&]+)/.exec(location.hash);
  if (!match) return;
  storeToken(decodeURIComponent(match[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/jobs`);
}

/** A GraphQL error list, kept whole so forms can place each message next to its field. */
export class GraphQLErrors extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
  }

  get code() {
    return this.errors[0]?.extensions?.code;
  }
}

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 4000;
const PING_EVERY_MS = 10000;
const PONG_WITHIN_MS = 5000;

export class Api {
  constructor(token) {
    this.token = token;
    this.listeners = new Set();
    this.lives = new Set();
    this.online = null;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    let pongTimer;
    this.ws = createClient({
      url,
      connectionParams: () => (this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      // Reconnection is ours (Live below): each subscription comes back with fresh variables
      // (the feed's `after:` cursor), which the client's own retry would send unchanged.
      retryAttempts: 0,
      keepAlive: PING_EVERY_MS,
      on: {
        connected: () => this.setOnline(true),
        closed: () => {
          clearTimeout(pongTimer);
          // Idle (no subscription open) is not offline: the client closes unused sockets.
          this.setOnline(this.lives.size ? false : null);
        },
        // A socket that stops answering pings (a laptop that slept) is dead: drop it so the
        // subscriptions reconnect instead of waiting forever.
        ping: (received) => {
          if (!received) pongTimer = setTimeout(() => this.ws.terminate(), PONG_WITHIN_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
      },
    });
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    for (const listener of this.listeners) listener(online);
  }

  onConnectionChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** POST one operation; resolves to `data`, rejects with GraphQLErrors or a network Error. */
  async request(query, variables = {}) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
    let body;
    try {
      body = await response.json();
    } catch {
      throw new Error(`the server answered HTTP ${response.status}`);
    }
    if (body.errors?.length) throw new GraphQLErrors(body.errors);
    return body.data;
  }

  /** A result file's bytes, with the token in the header (works for signed URLs too). */
  async fetchFile(url) {
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    const response = await fetch(url, { headers });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response;
  }

  /**
   * A subscription that outlives its websocket: when the connection drops it is opened
   * again (backing off), with `variables()` asked anew, so a feed can resume from the last
   * change it saw. `restart` runs before each re-subscription (e.g. to re-list). An
   * `endless` feed (true, or a function saying so now) that the server completes (it shut
   * down) is opened again too.
   */
  live(query, { variables, next, error, restart, endless = false }) {
    const live = new Live(this, query, { variables, next, error, restart, endless });
    this.lives.add(live);
    return live;
  }

  close() {
    this.ws.dispose();
  }
}

class Live {
  constructor(api, query, handlers) {
    Object.assign(this, { api, query }, handlers);
    this.stopped = false;
    this.delay = RETRY_FIRST_MS;
    this.open(false);
  }

  async open(again) {
    if (this.stopped) return;
    if (again && this.restart) {
      try {
        await this.restart();
      } catch {
        this.retry();
        return;
      }
    }
    if (this.stopped) return;
    this.dispose = this.api.ws.subscribe(
      { query: this.query, variables: this.variables() },
      {
        next: (message) => {
          this.delay = RETRY_FIRST_MS;
          if (message.errors?.length) this.error?.(new GraphQLErrors(message.errors));
          else this.next(message.data);
        },
        error: (exc) => {
          if (Array.isArray(exc)) {
            // The server refused the operation itself (e.g. CURSOR_EXPIRED): the owner decides.
            const refusal = new GraphQLErrors(exc);
            if (this.error?.(refusal) === "retry") this.retry();
            return;
          }
          if (exc?.code === 4403) {
            // The token was revoked (or never valid): retrying cannot help.
            this.api.onUnauthorized?.();
            return;
          }
          this.retry();
        },
        complete: () => {
          if (typeof this.endless === "function" ? this.endless() : this.endless) this.retry();
          else this.api.lives.delete(this);
        },
      },
    );
  }

  retry() {
    if (this.stopped) return;
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
    this.timer = setTimeout(() => this.open(true), wait);
  }

  stop() {
    this.stopped = true;
    this.api.lives.delete(this);
    clearTimeout(this.timer);
    this.dispose?.();
  }
}
