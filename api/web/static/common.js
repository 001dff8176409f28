// Shared by every page: language (English / Arabic, right-to-left), the signed-in session
// (kept in sessionStorage, never in a URL), the REST client (problem+json errors) and the
// websocket hub client (auth, subscribe with `since` offsets, recovery after a drop).

import { TEXTS } from "/static/texts.js";

export function lang() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  if (fromUrl === "ar" || fromUrl === "en") localStorage.setItem("souk.lang", fromUrl);
  const kept = localStorage.getItem("souk.lang");
  if (kept === "ar" || kept === "en") return kept;
  return (navigator.language || "en").startsWith("ar") ? "ar" : "en";
}

export function t(key, params = {}) {
  const table = TEXTS[lang()];
  const text = table[key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function applyLanguage() {
  const l = lang();
  document.documentElement.lang = l;
  document.documentElement.dir = l === "ar" ? "rtl" : "ltr";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-t-label]")) {
    el.setAttribute("aria-label", t(el.dataset.tLabel));
  }
  for (const el of document.querySelectorAll("[data-t-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.tPlaceholder));
  }
}

// ---- the signed-in session (sessionStorage: gone when the tab closes; never in URLs) ----
export const session = {
  get token() { return sessionStorage.getItem("souk.token"); },
  get me() {
    const raw = sessionStorage.getItem("souk.me");
    return raw ? JSON.parse(raw) : null;
  },
  save(token, me) {
    sessionStorage.setItem("souk.token", token);
    sessionStorage.setItem("souk.me", JSON.stringify(me));
  },
  // True when the access token has expired (read from its `exp`; the server checks it anyway).
  get expired() {
    const token = this.token;
    if (!token) return false;
    try {
      const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof payload.exp === "number" && payload.exp * 1000 <= Date.now();
    } catch (e) {
      return true;
    }
  },
  clear() {
    sessionStorage.removeItem("souk.token");
    sessionStorage.removeItem("souk.me");
  },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem.code || "unknown";
  }
}

export async function api(method, path, body = undefined, headers = {}) {
  const h = { "accept": "application/json", "accept-language": lang(), ...headers };
  if (session.token) h.authorization = `Bearer ${session.token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, { code: "network", title: t("err_network") });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data || { code: "unknown" });
  return data;
}

export function errorText(code, detail = {}) {
  const key = `err_${code}`;
  if (TEXTS.en[key]) {
    return t(key, { ...detail, min: detail.minimum !== undefined ? money(detail.minimum) : "" });
  }
  return t("err_unknown", { code });
}

export function money(cents, currency = "USD") {
  return new Intl.NumberFormat(lang() === "ar" ? "ar" : "en", { style: "currency", currency })
    .format(cents / 100);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function uuid() { return crypto.randomUUID(); }

// ---- the page header: brand, navigation, language switch, sign-in state ----
export function header() {
  const me = session.me;
  const nav = el("nav", { "aria-label": "main" },
    el("a", { href: "/", text: t("shows") }),
    me && (me.role === "seller" || me.role === "admin") ? el("a", { href: "/studio", text: t("studio") }) : null,
    me && me.role === "admin" ? el("a", { href: "/admin", text: t("admin") }) : null,
  );
  const langButton = el("button", {
    type: "button", id: "lang-switch", text: t("language"),
    lang: lang() === "ar" ? "en" : "ar",
    onclick: () => {
      localStorage.setItem("souk.lang", lang() === "ar" ? "en" : "ar");
      const url = new URL(location.href);
      url.searchParams.delete("lang");
      location.replace(url.toString());
    },
  });
  const who = me
    ? el("span", { class: "who" }, el("span", { id: "who", text: t("signed_in_as", { name: me.display_name }) }), " ",
      el("button", { type: "button", id: "signout", text: t("signout"), onclick: signOut }))
    : el("a", { href: `/signin?next=${encodeURIComponent(location.pathname)}`, id: "signin-link", text: t("signin") });
  const bar = el("header", { class: "top" }, el("a", { href: "/", class: "brand", text: t("brand") }), nav, who, langButton);
  document.body.prepend(bar);
}

async function signOut() {
  try { await api("POST", "/v1/auth/logout", {}); } catch (e) { /* signed out here anyway */ }
  session.clear();
  location.assign("/");
}

// ---- the websocket hub client ----
// Each channel remembers {epoch, offset} of the last publication seen. After a dropped
// connection it re-subscribes with `since`: the hub replays exactly what was missed
// (`recovered: true`), or says it cannot and the page reloads that channel's state over REST
// (`onReset`). A publication whose offset is not the next one also triggers a reset: no gap
// passes silently. Latest-value publications (no offset) are delivered as they come.
export class Hub {
  constructor({ onStatus = () => {} } = {}) {
    this.channels = new Map(); // name -> {onData, onReset, epoch, offset}
    this.pending = new Map();
    this.nextId = 1;
    this.onStatus = onStatus;
    this.attempt = 0;
    this.stopped = false;
    this.everConnected = false;
    this.ready = false;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/v1/ws`, "souk.v1.json");
    this.socket = ws;
    this.onStatus("connecting");
    ws.addEventListener("open", () => this.opened(ws));
    ws.addEventListener("message", (ev) => {
      for (const line of String(ev.data).split("\n")) if (line) this.receive(JSON.parse(line));
    });
    ws.addEventListener("close", (ev) => this.closed(ws, ev.code));
  }

  async opened(ws) {
    this.attempt = 0;
    const again = this.everConnected;
    this.everConnected = true;
    try {
      if (session.token && session.expired) {
        // Stay connected anonymously (public channels keep working) and say why bids stop.
        this.onStatus("auth_failed", "token_expired");
      } else if (session.token) {
        try {
          await this.command({ op: "auth", token: session.token });
        } catch (e) {
          this.onStatus("auth_failed", e.code);
        }
      }
      let replayed = 0;
      let reset = false;
      // Channels added while this runs are picked up by the next round.
      for (;;) {
        const todo = [...this.channels].filter(([, ch]) => !ch.live && !ch.busy);
        if (!todo.length) break;
        for (const [name, ch] of todo) {
          const outcome = await this.subscribeNow(name, ch);
          replayed += outcome.replayed;
          reset = reset || outcome.reset;
        }
      }
      this.ready = true;
      if (!(session.token && session.expired)) {
        this.onStatus(again ? (reset ? "reloaded" : "recovered") : "connected", replayed);
      }
    } catch (e) {
      if (ws === this.socket && ws.readyState === WebSocket.OPEN) ws.close(4000);
    }
  }

  closed(ws, code) {
    if (ws !== this.socket) return;
    this.ready = false;
    for (const ch of this.channels.values()) { ch.live = false; ch.busy = false; }
    for (const { reject } of this.pending.values()) reject(Object.assign(new Error("closed"), { code: "closed" }));
    this.pending.clear();
    if (this.stopped) return;
    if (code >= 4500 && code <= 4999) {
      this.onStatus("terminal", code);
      return;
    }
    this.onStatus("reconnecting");
    const delay = Math.min(5000, 300 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }

  command(frame) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
        reject(Object.assign(new Error("not connected"), { code: "network" }));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, ...frame }));
    });
  }

  receive(msg) {
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      const { resolve, reject } = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) reject(Object.assign(new Error(msg.error.message), msg.error));
      else resolve(msg.result);
      return;
    }
    if (msg.channel !== undefined) this.publication(msg);
  }

  publication(msg) {
    const ch = this.channels.get(msg.channel);
    if (!ch || !ch.live) return;
    if (msg.offset === undefined || msg.offset === null) {
      ch.onData(msg.data, null);
      return;
    }
    if (ch.offset !== null && msg.offset <= ch.offset) return; // already seen
    if (ch.offset !== null && msg.offset !== ch.offset + 1) {
      // A gap: fetch what was missed (resubscribe with `since`), never skip it silently.
      ch.live = false;
      this.command({ op: "unsubscribe", channel: msg.channel })
        .catch(() => {})
        .then(() => this.subscribeNow(msg.channel, ch));
      return;
    }
    ch.offset = msg.offset;
    ch.onData(msg.data, msg.offset);
  }

  async subscribeNow(name, ch) {
    ch.busy = true;
    try {
      return await this.subscribeOnce(name, ch);
    } finally {
      ch.busy = false;
    }
  }

  async subscribeOnce(name, ch) {
    const frame = { op: "subscribe", channel: name };
    if (ch.epoch !== null && ch.offset !== null) frame.since = { epoch: ch.epoch, offset: ch.offset };
    const result = await this.command(frame);
    const recovered = Boolean(frame.since) && result.recovered && result.epoch === ch.epoch;
    ch.epoch = result.epoch;
    if (recovered) {
      for (const p of result.publications) {
        if (p.offset !== undefined && p.offset !== null) ch.offset = p.offset;
        ch.onData(p.data, p.offset);
      }
      ch.offset = Math.max(ch.offset ?? 0, result.offset);
      ch.live = true;
      return { replayed: result.publications.length, reset: false };
    }
    ch.offset = result.offset;
    ch.live = true;
    await ch.onReset();
    return { replayed: 0, reset: Boolean(frame.since) };
  }

  // `onReset()` (re)loads the channel's state over REST; it runs after the subscription is in
  // place, so nothing published in between is lost (pages ignore what their state already has).
  async subscribe(name, onData, onReset = async () => {}) {
    const ch = { onData, onReset, epoch: null, offset: null, live: false, busy: false };
    this.channels.set(name, ch);
    if (this.ready && this.socket.readyState === WebSocket.OPEN) {
      await this.subscribeNow(name, ch);
    }
  }

  async unsubscribe(name) {
    if (!this.channels.delete(name)) return;
    try { await this.command({ op: "unsubscribe", channel: name }); } catch (e) { /* gone anyway */ }
  }
}

export function statusText(kind, n) {
  switch (kind) {
    case "connecting": return t("connecting");
    case "connected": return t("connected");
    case "reconnecting": return t("reconnecting");
    case "recovered": return t("recovered", { n });
    case "reloaded": return t("reloaded");
    case "terminal": return n === 4501 ? t("err_token_expired") : t("err_forbidden");
    case "auth_failed": return errorText(n);
    default: return "";
  }
}

export function requireSignIn() {
  if (!session.token) {
    location.assign(`/signin?next=${encodeURIComponent(location.pathname)}`);
    return false;
  }
  return true;
}
