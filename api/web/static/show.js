// The live show page: video (WHEP), the current auction with bidding, the chat, the viewer count.
import { Hub, api, applyLanguage, el, errorText, header, money, session, statusText, t, uuid } from "/static/common.js";
import { eventsOf, nextIncrement } from "/static/auction.js";
import { watchVideo } from "/static/video.js";

const showId = location.pathname.split("/")[2];
const names = new Map(); // user id -> display name (learned from auction publications)
const state = { show: null, auction: null, seq: -1, currency: "USD", pollTimer: null };
const me = session.me;
let hub;

function $(id) { return document.getElementById(id); }

function layout() {
  const main = $("main");
  main.replaceChildren(
    el("h1", { id: "show-title", text: "…" }),
    el("p", { class: "status-line" },
      el("span", { id: "conn-status", role: "status", "aria-live": "polite" }), " · ",
      el("span", { id: "viewers", "aria-live": "off" })),
    el("div", { class: "stage" },
      el("section", { class: "card video", "aria-labelledby": "video-h" },
        el("h2", { id: "video-h", text: t("video") }),
        el("video", { id: "video", muted: true, playsinline: true, autoplay: true, "aria-label": t("video") }),
        el("p", { id: "video-status", "data-playing": t("video_playing"), text: t("video_waiting") })),
      el("section", { class: "card auction", id: "auction", "aria-labelledby": "auction-h" },
        el("h2", { id: "auction-h", text: t("auction") }),
        el("div", { id: "auction-body" }, el("p", { id: "no-auction", text: t("no_auction") }))),
      el("section", { class: "card chat", "aria-labelledby": "chat-h" },
        el("h2", { id: "chat-h", text: t("chat") }),
        el("ol", { id: "chat-log", "aria-live": "polite", tabindex: "0", "aria-label": t("chat") }),
        me ? chatForm() : el("p", {}, el("a", { href: `/signin?next=${encodeURIComponent(location.pathname)}`, text: t("signin_to_bid") })))),
  );
}

function chatForm() {
  const input = el("input", { id: "chat-input", maxlength: "500", autocomplete: "off", "aria-label": t("message") });
  const error = el("p", { id: "chat-error", class: "error", role: "alert" });
  const form = el("form", { id: "chat-form" }, input, el("button", { type: "submit", text: t("send") }), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    error.textContent = "";
    try {
      await hub.command({ op: "publish", channel: `show:${showId}:chat`, data: { text } });
      input.value = "";
    } catch (e) {
      error.textContent = errorText(e.code);
    }
  });
  return form;
}

// ---- auction ----
function auctionCard() {
  const a = state.auction;
  const body = $("auction-body");
  if (!a) {
    body.replaceChildren(el("p", { id: "no-auction", text: t("no_auction") }));
    return;
  }
  const minNext = a.min_next_bid ?? a.price;
  const open = a.state === "open";
  const leading = me && a.leader_id && a.leader_id === me.id;
  const children = [
    el("dl", { class: "figures" },
      el("dt", { text: t("price") }), el("dd", { id: "price", class: "big", text: money(a.price, a.currency) }),
      el("dt", { text: t("leader") }), el("dd", { id: "leader", text: a.leader || t("nobody") }),
      el("dt", { text: t("ends_in") }), el("dd", {}, el("span", { id: "countdown", role: "timer", "aria-live": "off" })),
    ),
    el("p", { id: "bid-count", text: t("bids", { n: a.bid_count ?? 0 }) }),
    el("p", { id: "extended", class: "note", text: state.extendedAt && Date.now() - state.extendedAt < 5000 ? t("extended") : "" }),
    el("p", { id: "my-standing", role: "status", "aria-live": "assertive",
      class: leading ? "lead" : (state.wasLeading ? "outbid" : ""),
      text: !me ? "" : leading ? t("you_lead") : (state.wasLeading ? t("outbid") : "") }),
  ];
  if (!open) {
    children.push(el("p", { id: "closed", text: a.outcome === "sold" && a.winner
      ? t("sold_to", { name: a.winner, amount: money(a.price, a.currency) })
      : a.state === "closed" || a.state === "cancelled" ? t("closed") : "" }));
  } else if (me) {
    const maxInput = el("input", { id: "max-amount", type: "number", min: "0", step: "0.01",
      inputmode: "decimal", value: String((minNext + nextIncrement(minNext)) / 100) });
    const form = el("form", { id: "max-form", class: "row" },
      el("label", { for: "max-amount", text: t("max_label") }), maxInput,
      el("button", { type: "submit", id: "bid-max", text: t("bid_max") }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      placeBid(Math.round(Number(maxInput.value) * 100));
    });
    children.push(
      el("button", { type: "button", id: "bid-next", class: "primary",
        text: t("bid_next", { amount: money(minNext, a.currency) }), onclick: () => placeBid(minNext) }),
      form,
    );
  } else {
    children.push(el("p", {}, el("a", { href: `/signin?next=${encodeURIComponent(location.pathname)}`, text: t("signin_to_bid") })));
  }
  children.push(el("p", { id: "bid-message", role: "alert" }));
  const keepFocus = document.activeElement?.id;
  const oldMessage = $("bid-message");
  body.replaceChildren(...children);
  if (oldMessage) { $("bid-message").textContent = oldMessage.textContent; $("bid-message").className = oldMessage.className; }
  if (keepFocus && $(keepFocus)) $(keepFocus).focus();
  tick();
}

function tick() {
  const a = state.auction;
  const node = $("countdown");
  if (!a || !node) return;
  if (a.state !== "open") { node.textContent = "—"; return; }
  const left = Math.max(0, a.ends_at_ms - Date.now());
  const s = Math.ceil(left / 1000);
  node.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  node.classList.toggle("urgent", s <= 10);
}

async function placeBid(amount) {
  const message = $("bid-message");
  message.textContent = "";
  message.className = "";
  if (!Number.isFinite(amount) || amount <= 0) {
    message.textContent = t("err_validation_failed");
    message.className = "error";
    return;
  }
  try {
    const ack = await hub.command({ op: "bid", auction_id: state.auction.id, amount, bid_id: uuid() });
    const shown = $("bid-message");
    shown.textContent = ack.leading ? `${t("bid_sent")} — ${t("you_lead")}` : t("outbid");
    shown.className = ack.leading ? "ok" : "error";
    if (ack.seq > state.seq) {
      // The broadcast follows; until then show what the ack says.
      if (ack.leading) { state.auction.leader_id = me.id; state.auction.leader = me.display_name; state.wasLeading = true; }
      state.auction.price = Math.max(state.auction.price, ack.price);
      state.auction.min_next_bid = state.auction.price + nextIncrement(state.auction.price);
      state.auction.ends_at_ms = ack.ends_at;
      auctionCard();
    }
  } catch (e) {
    if (e.code === "bid_too_low") await loadAuction(state.auction.id).catch(() => {});
    const shown = $("bid-message"); // the card may have been drawn again meanwhile
    shown.textContent = errorText(e.code, { minimum: state.auction.min_next_bid });
    shown.className = "error";
  }
}

function applyAuctionEvent(e) {
  const a = state.auction;
  if (!a || e.seq <= state.seq) return;
  state.seq = e.seq;
  a.seq = e.seq;
  if (e.type === "bid" || e.type === "bid_voided") {
    if (e.leader_id) names.set(e.leader_id, e.leader);
    const wasMine = me && a.leader_id === me.id;
    a.price = e.price;
    a.leader = e.leader;
    a.leader_id = e.leader_id;
    a.bid_count = e.bid_count;
    a.min_next_bid = e.leader_id ? e.price + nextIncrement(e.price) : e.price;
    if (e.ends_at) a.ends_at_ms = e.ends_at;
    if (e.extended) state.extendedAt = Date.now();
    if (me && wasMine && e.leader_id !== me.id) state.wasLeading = true;
    if (me && e.leader_id === me.id) state.wasLeading = true;
  } else if (e.type === "extended") {
    a.ends_at_ms = e.ends_at;
    state.extendedAt = Date.now();
  } else if (e.type === "closed") {
    a.state = "closed";
    a.outcome = e.outcome;
    a.winner = e.winner;
    a.price = e.price ?? a.price;
    setTimeout(findAuction, 3000);
  } else if (e.type === "cancelled") {
    a.state = "cancelled";
    setTimeout(findAuction, 3000);
  }
}

async function loadAuction(id) {
  const view = await api("GET", `/v1/auctions/${id}`);
  if (state.auction && state.auction.id === id && view.seq < state.seq) {
    // Publications overtook this read: keep their live figures, take the fixed ones.
    Object.assign(state.auction, { currency: view.currency, buy_now_price: view.buy_now_price });
    auctionCard();
    return;
  }
  state.auction = { ...view, ends_at_ms: view.ends_at_ms ?? Date.parse(view.ends_at) };
  state.seq = view.seq;
  if (view.leader_id) names.set(view.leader_id, view.leader);
  if (me && view.leader_id === me.id) state.wasLeading = true;
  auctionCard();
}

async function followAuction(id) {
  if (state.auction && state.auction.id === id) return;
  if (state.auction) await hub.unsubscribe(`auction:${state.auction.id}`);
  state.auction = { id, state: "open", price: 0, seq: -1, currency: "USD", ends_at_ms: Date.now() };
  state.seq = -1;
  state.wasLeading = false;
  await hub.subscribe(`auction:${id}`, (data) => {
    for (const e of eventsOf(data)) applyAuctionEvent(e);
    auctionCard();
  }, () => loadAuction(id));
}

async function findAuction() {
  try {
    const page = await api("GET", `/v1/auctions?show_id=${showId}&state=open&limit=1`);
    if (page.items.length) await followAuction(page.items[0].id);
    else if (state.auction && state.auction.state === "open") await loadAuction(state.auction.id);
  } catch (e) { /* tried again by the poll */ }
}

// ---- chat ----
function chatLine(m) {
  const who = names.get(m.user_id) || (me && m.user_id === me.id ? me.display_name : `#${m.user_id.slice(0, 6)}`);
  const time = new Date(m.ts).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  const log = $("chat-log");
  log.append(el("li", {}, el("time", { text: time }), " ", el("b", { text: who }), " ", el("span", { dir: "auto", text: m.text })));
  while (log.children.length > 200) log.firstChild.remove();
  log.scrollTop = log.scrollHeight;
}

// ---- show channel: state, viewers, video ----
function onShow(data) {
  if (data.type === "viewers") $("viewers").textContent = t("viewers", { n: data.count });
  if (data.type === "state") {
    state.show.state = data.state;
    if (data.state === "live") video.start();
  }
  if (data.type === "video" && data.state === "live") video.start();
}

let video;

async function main() {
  header();
  applyLanguage();
  layout();
  try {
    state.show = await api("GET", `/v1/shows/${showId}`);
  } catch (e) {
    $("main").replaceChildren(el("p", { class: "error", role: "alert", text: errorText(e.code) }));
    return;
  }
  document.title = `${state.show.title} · ${t("brand")}`;
  $("show-title").textContent = state.show.title;
  hub = new Hub({ onStatus: (kind, n) => { $("conn-status").textContent = statusText(kind, n); $("conn-status").dataset.state = kind; } });
  window.soukHub = hub; // for the browser tests and the curious: holds no token
  video = watchVideo($("video"), $("video-status"), showId);
  await hub.subscribe(`show:${showId}`, onShow, async () => {
    const v = await api("GET", `/v1/shows/${showId}/viewers`).catch(() => null);
    if (v) $("viewers").textContent = t("viewers", { n: v.count });
    state.show = await api("GET", `/v1/shows/${showId}`);
    if (state.show.state === "live") video.start();
  });
  await hub.subscribe(`show:${showId}:chat`, (m) => { if (m.type === "chat") chatLine(m); });
  await findAuction();
  state.pollTimer = setInterval(() => {
    if (!state.auction || state.auction.state !== "open") findAuction();
  }, 5000);
  setInterval(tick, 250);
}

main();
