// The seller's studio: pick or create a show, go live from the browser's camera through WHIP,
// start an auction for one of the seller's items, watch bids, viewers and chat.
import { Hub, api, applyLanguage, el, errorText, header, money, requireSignIn, session, statusText, t } from "/static/common.js";
import { eventsOf } from "/static/auction.js";

function $(id) { return document.getElementById(id); }
const me = session.me;
let hub = null;
let current = null; // the show being run
let watching = []; // channels subscribed for the current show
let whip = null; // {pc, location, stream}

function say(id, text, ok = false) {
  const node = $(id);
  node.textContent = text;
  node.className = ok ? "ok" : "error";
}

function layout() {
  const create = el("form", { id: "new-show", class: "row" },
    el("label", { for: "new-title", text: t("title") }), el("input", { id: "new-title", required: true, maxlength: "200" }),
    el("button", { type: "submit", text: t("create") }));
  create.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const show = await api("POST", "/v1/shows", { title: $("new-title").value });
      $("new-title").value = "";
      await loadShows(show.id);
    } catch (e) { say("studio-message", e.problem?.detail || errorText(e.code)); }
  });
  const auction = el("form", { id: "auction-form", class: "row" },
    el("label", { for: "auction-variant", text: t("item") }), el("select", { id: "auction-variant", required: true }),
    el("label", { for: "auction-start", text: t("start_price") }), el("input", { id: "auction-start", type: "number", min: "1", value: "1000", required: true }),
    el("label", { for: "auction-duration", text: t("duration") }), el("input", { id: "auction-duration", type: "number", min: "10", value: "120", required: true }),
    el("button", { type: "submit", text: t("start") }));
  auction.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!current) return;
    try {
      const a = await api("POST", "/v1/auctions", { variant_id: $("auction-variant").value, show_id: current.id,
        start_price: Number($("auction-start").value), duration_s: Number($("auction-duration").value) });
      say("studio-message", `${t("auction")} ${t("open")}`, true);
      await followAuction(a.id);
    } catch (e) { say("studio-message", e.problem?.detail || errorText(e.code)); }
  });
  $("main").replaceChildren(
    el("h1", { text: t("studio") }),
    el("p", { class: "status-line" }, el("span", { id: "conn-status", role: "status", "aria-live": "polite" }), " · ",
      el("span", { id: "viewers" })),
    el("p", { id: "studio-message", role: "alert" }),
    el("div", { class: "grid2" },
      el("section", { class: "card", "aria-labelledby": "shows-h" },
        el("h2", { id: "shows-h", text: t("my_shows") }), el("ul", { id: "my-shows" }),
        el("h3", { text: t("new_show") }), create),
      el("section", { class: "card", "aria-labelledby": "live-h" },
        el("h2", { id: "live-h", text: "—" }),
        el("video", { id: "preview", muted: true, playsinline: true, autoplay: true, "aria-label": t("video") }),
        el("div", { class: "row" },
          el("button", { type: "button", id: "go-live", text: t("go_live"), onclick: goLive }),
          el("button", { type: "button", id: "stop-live", text: t("stop_live"), onclick: stopLive }),
          el("button", { type: "button", id: "start-show", text: t("start_show"), onclick: () => move("start") }),
          el("button", { type: "button", id: "end-show", text: t("end_show"), onclick: () => move("end") })),
        el("p", { id: "live-state", role: "status" }))),
    el("div", { class: "grid2" },
      el("section", { class: "card", "aria-labelledby": "auction-h" },
        el("h2", { id: "auction-h", text: t("start_auction") }), auction,
        el("p", { id: "auction-now", "aria-live": "polite" }), el("ol", { id: "bid-log" })),
      el("section", { class: "card", "aria-labelledby": "chat-h" },
        el("h2", { id: "chat-h", text: t("chat") }), el("ol", { id: "chat-log", tabindex: "0", "aria-label": t("chat") }))),
  );
}

async function loadShows(select = null) {
  const page = await api("GET", `/v1/shows?seller_id=${me.id}&state=live,scheduled&limit=50`);
  $("my-shows").replaceChildren(...page.items.map((s) => el("li", {},
    el("button", { type: "button", class: "pick-show", "data-show": s.id, text: `${s.title} · ${t(s.state)}`,
      onclick: () => pick(s) }))));
  if (!page.items.length) $("my-shows").replaceChildren(el("li", { text: t("none") }));
  const chosen = page.items.find((s) => s.id === (select || current?.id)) || page.items[0];
  if (chosen) await pick(chosen);
}

async function loadItems() {
  const page = await api("GET", `/v1/products?seller_id=${me.id}&limit=50`);
  const options = [];
  for (const p of page.items) for (const v of p.variants) {
    options.push(el("option", { value: v.id, text: `${p.title} · ${v.sku} · ${money(v.price, p.currency || "USD")} (${v.stock})` }));
  }
  $("auction-variant").replaceChildren(...options);
}

async function pick(show) {
  if (current && current.id === show.id) { current = show; showState(); return; }
  for (const name of watching) await hub.unsubscribe(name);
  watching = [];
  current = show;
  $("live-h").textContent = show.title;
  $("chat-log").replaceChildren();
  $("bid-log").replaceChildren();
  $("auction-now").textContent = "";
  showState();
  const channel = `show:${show.id}`;
  watching.push(channel, `${channel}:chat`);
  await hub.subscribe(channel, (d) => {
    if (d.type === "viewers") $("viewers").textContent = t("viewers", { n: d.count });
    if (d.type === "state") { current.state = d.state; showState(); loadShows().catch(() => {}); }
  }, async () => {
    current = await api("GET", `/v1/shows/${show.id}`);
    showState();
    const v = await api("GET", `/v1/shows/${show.id}/viewers`).catch(() => null);
    if (v) $("viewers").textContent = t("viewers", { n: v.count });
  });
  await hub.subscribe(`${channel}:chat`, (m) => {
    if (m.type !== "chat") return;
    $("chat-log").append(el("li", {}, el("b", { text: `#${m.user_id.slice(0, 6)}` }), " ", el("span", { dir: "auto", text: m.text })));
  });
  const open = await api("GET", `/v1/auctions?show_id=${show.id}&state=open&limit=1`);
  if (open.items.length) await followAuction(open.items[0].id);
}

function showState() {
  $("live-state").textContent = `${t(current.state)}${whip ? ` · ${t("camera_live")}` : ""}`;
  $("start-show").disabled = current.state !== "scheduled";
  $("end-show").disabled = current.state !== "live";
  $("go-live").disabled = Boolean(whip) || current.state === "ended";
  $("stop-live").disabled = !whip;
}

async function followAuction(id) {
  const name = `auction:${id}`;
  if (watching.includes(name)) return;
  for (const w of watching.filter((n) => n.startsWith("auction:"))) await hub.unsubscribe(w);
  watching = watching.filter((n) => !n.startsWith("auction:"));
  watching.push(name);
  $("bid-log").replaceChildren();
  const show = (a) => {
    $("auction-now").textContent = `${money(a.price, a.currency || "USD")} · ${a.leader || t("nobody")} · ${t(a.state || "open")}`;
  };
  await hub.subscribe(name, (data) => {
    for (const e of eventsOf(data)) {
      if (e.type === "bid") {
        $("bid-log").prepend(el("li", { text: `${money(e.price)} · ${e.leader}` }));
        show({ price: e.price, leader: e.leader, state: "open" });
      } else if (e.type === "closed") {
        $("auction-now").textContent = e.winner ? t("sold_to", { name: e.winner, amount: money(e.price) }) : t("unsold");
      }
    }
  }, async () => show(await api("GET", `/v1/auctions/${id}`)));
}

async function move(action) {
  try {
    current = await api("POST", `/v1/shows/${current.id}/${action}`);
    showState();
  } catch (e) { say("studio-message", e.problem?.detail || errorText(e.code)); }
}

// WHIP: publish the camera (non-trickle: the offer goes once ICE gathering is complete).
async function goLive() {
  if (!current || whip) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    $("preview").srcObject = stream;
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") resolve();
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, 2000);
    });
    const response = await fetch(`/v1/shows/${current.id}/whip`, {
      method: "POST", credentials: "omit", body: pc.localDescription.sdp,
      headers: { "content-type": "application/sdp", authorization: `Bearer ${session.token}` },
    });
    if (response.status !== 201) {
      const problem = await response.json().catch(() => ({ code: "unknown" }));
      throw Object.assign(new Error("whip"), { code: problem.code, problem });
    }
    whip = { pc, stream, location: response.headers.get("location") };
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    pc.addEventListener("connectionstatechange", () => { $("live-state").dataset.connection = pc.connectionState; });
    showState();
  } catch (e) {
    say("studio-message", e.problem?.detail || errorText(e.code || "unknown"));
    stopLive();
  }
}

function stopLive() {
  if (!whip) return;
  const { pc, stream, location: where } = whip;
  whip = null;
  if (where) fetch(where, { method: "DELETE", headers: { authorization: `Bearer ${session.token}` } }).catch(() => {});
  pc.close();
  for (const track of stream.getTracks()) track.stop();
  $("preview").srcObject = null;
  if (current) showState();
}

async function main() {
  header();
  applyLanguage();
  if (!requireSignIn()) return;
  document.title = `${t("studio")} · ${t("brand")}`;
  if (!me || (me.role !== "seller" && me.role !== "admin")) {
    $("main").replaceChildren(el("p", { id: "sellers-only", role: "alert", text: t("sellers_only") }));
    return;
  }
  layout();
  hub = new Hub({ onStatus: (kind, n) => { $("conn-status").textContent = statusText(kind, n); $("conn-status").dataset.state = kind; } });
  window.soukHub = hub;
  addEventListener("pagehide", stopLive);
  await Promise.allSettled([loadShows(), loadItems()]);
}

main();
