// The operations dashboard (admins): key figures, live shows and auctions, orders with their
// history and interventions, riders online on a map, dead letters, wallet adjustments. Every
// action is a /v1 call.
import { api, applyLanguage, el, errorText, header, money, session, t, uuid } from "/static/common.js";
import { fit, mapSvg, svgNode, xy } from "/static/map.js";

const STATES = ["pending_payment", "paid", "packed", "out_for_delivery", "delivered", "cancelled", "refunded"];
function $(id) { return document.getElementById(id); }
let lastBids = null;
let searches = 0;
let selectedRider = null; // the rider picked in the list, highlighted on the map

function section(id, title, ...children) {
  return el("section", { class: "card", id, "aria-labelledby": `${id}-h` }, el("h2", { id: `${id}-h`, text: title }), ...children);
}

function layout() {
  const stateSelect = el("select", { id: "order-state-filter", name: "state" },
    el("option", { value: "", text: t("any") }), ...STATES.map((s) => el("option", { value: s, text: t(`st_${s}`) })));
  const search = el("form", { id: "order-search", class: "row" },
    el("label", { for: "order-state-filter", text: t("state") }), stateSelect,
    el("label", { for: "order-id-filter", text: "ID" }), el("input", { id: "order-id-filter", name: "order_id", size: "36", dir: "ltr" }),
    el("button", { type: "submit", text: t("search") }));
  search.addEventListener("submit", (ev) => { ev.preventDefault(); loadOrders(); });
  const adjust = el("form", { id: "adjust-form", class: "row" },
    el("label", { for: "adjust-user", text: t("user_id") }), el("input", { id: "adjust-user", required: true, size: "36", dir: "ltr" }),
    el("label", { for: "adjust-amount", text: t("amount_cents") }), el("input", { id: "adjust-amount", type: "number", required: true }),
    el("label", { for: "adjust-reason", text: t("reason") }), el("input", { id: "adjust-reason", required: true }),
    el("button", { type: "submit", text: t("apply") }), el("p", { id: "adjust-result", role: "status" }));
  adjust.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("adjust-result");
    try {
      await api("POST", `/v1/admin/wallets/${encodeURIComponent($("adjust-user").value.trim())}/adjustments`,
        { amount: Number($("adjust-amount").value), reason: $("adjust-reason").value }, { "idempotency-key": uuid() });
      out.textContent = t("done");
      out.className = "ok";
    } catch (e) { out.textContent = e.problem?.detail || errorText(e.code); out.className = "error"; }
  });
  $("main").replaceChildren(
    el("h1", { text: t("admin") }),
    section("figures", t("figures"), el("dl", { class: "figures", id: "kpis" })),
    el("div", { class: "grid2" },
      section("live", t("live_shows"), el("ul", { id: "live-shows" })),
      section("auctions", t("open_auctions"), el("ul", { id: "open-auctions" }))),
    section("orders", t("orders"), search, el("div", { id: "order-results" })),
    section("riders", t("riders_online"),
      el("p", { id: "riders-count", role: "status" }),
      el("div", { class: "grid2" }, mapSvg("riders-map", t("riders_map")), el("ul", { id: "riders-list", class: "riders" }))),
    section("dead", t("dead_letters"), el("div", { id: "dead-letters" })),
    section("wallet", t("wallet_adjust"), adjust),
  );
}

function metric(text, name) {
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(name) && (line[name.length] === " " || line[name.length] === "{")) total += Number(line.split(" ").pop());
  }
  return total;
}

async function figures() {
  const text = await fetch("/metrics", { cache: "no-store" }).then((r) => r.text()).catch(() => "");
  const bids = metric(text, "souk_auction_bid_attempts_total");
  const now = Date.now();
  const rate = lastBids ? ((bids - lastBids.n) * 1000) / Math.max(1, now - lastBids.at) : 0;
  lastBids = { n: bids, at: now };
  const today = new Date().toISOString().slice(0, 10);
  let ordersToday = 0;
  try {
    const page = await api("GET", "/v1/admin/orders?limit=50");
    ordersToday = page.items.filter((o) => o.created_at.startsWith(today)).length;
  } catch (e) { /* shown as 0 */ }
  $("kpis").replaceChildren(
    el("dt", { text: t("connections") }), el("dd", { class: "kpi", id: "kpi-connections", text: String(metric(text, "souk_ws_connections")) }),
    el("dt", { text: t("bids_per_s") }), el("dd", { class: "kpi", id: "kpi-bids", text: rate.toFixed(1) }),
    el("dt", { text: t("orders_today") }), el("dd", { class: "kpi", id: "kpi-orders", text: ordersToday >= 50 ? "50+" : String(ordersToday) }),
  );
}

async function liveLists() {
  const shows = await api("GET", "/v1/shows?state=live&limit=50");
  $("live-shows").replaceChildren(...shows.items.map((s) => el("li", {}, el("a", { href: `/shows/${s.id}`, text: s.title }))));
  if (!shows.items.length) $("live-shows").replaceChildren(el("li", { text: t("none") }));
  const auctions = await api("GET", "/v1/auctions?state=open&limit=50");
  $("open-auctions").replaceChildren(...auctions.items.map((a) => el("li", { dir: "auto",
    text: `#${a.id.slice(0, 8)} · ${a.state} · ${money(a.price, a.currency)} · ${a.leader || t("nobody")}` })));
  if (!auctions.items.length) $("open-auctions").replaceChildren(el("li", { text: t("none") }));
}

function highlight() {
  for (const g of $("riders-map").querySelectorAll("g.rider-dot")) {
    const on = g.dataset.rider === selectedRider;
    g.classList.toggle("selected", on);
    g.querySelector("circle").setAttribute("r", on ? "9" : "6");
    if (on) g.parentNode.append(g); // drawn last: on top of the others
  }
  for (const li of $("riders-list").querySelectorAll("li[data-rider]")) {
    li.querySelector("button").setAttribute("aria-pressed", String(li.dataset.rider === selectedRider));
  }
}

async function ridersOnline() {
  let page;
  try { page = await api("GET", "/v1/tracking/riders/online?limit=200"); }
  catch (e) { $("riders-count").textContent = errorText(e.code); return; }
  const riders = page.items;
  const name = (r) => r.display_name || `#${r.rider_id.slice(0, 8)}`;
  $("riders-count").textContent = t("riders_count", { n: page.total });
  const map = $("riders-map");
  map.replaceChildren();
  map.dataset.riders = String(riders.length);
  if (riders.length) {
    const project = fit(riders);
    for (const r of riders) {
      const [x, y] = xy(r, project);
      map.append(svgNode("g", { class: "rider-dot", "data-rider": r.rider_id },
        svgNode("circle", { cx: x, cy: y, r: "6", fill: r.available ? "#146c2e" : "#595963" }),
        svgNode("text", { x: (Number(x) + 9).toFixed(1), y: (Number(y) + 4).toFixed(1), "font-size": "12", fill: "#1b1b1f" }, name(r))));
    }
  }
  const ago = (r) => Math.max(0, Math.round((Date.now() - r.seen) / 1000));
  const focused = document.activeElement?.closest?.("#riders-list li")?.dataset.rider;
  $("riders-list").replaceChildren(...riders.map((r) => el("li", { "data-rider": r.rider_id },
    el("button", { type: "button", class: "rider-pick", "aria-pressed": "false",
      onclick: () => { selectedRider = selectedRider === r.rider_id ? null : r.rider_id; highlight(); } },
      el("span", { dir: "auto", text: name(r) })),
    ` · ${r.available ? t("rider_available") : t("rider_busy")} · `,
    el("span", { dir: "ltr", text: `${r.lat.toFixed(5)}, ${r.lon.toFixed(5)}` }),
    ` · ${t("seen_ago", { s: ago(r) })}`)));
  if (!riders.length) $("riders-list").replaceChildren(el("li", { text: t("none") }));
  highlight();
  // A refresh keeps the keyboard where it was.
  if (focused) $("riders-list").querySelector(`li[data-rider="${focused}"] button`)?.focus();
}

function orderRow(o) {
  const result = el("p", { class: "result", role: "status" });
  const act = async (fn) => {
    result.textContent = "";
    try { await fn(); result.textContent = t("done"); result.className = "ok"; await loadOrders(); }
    catch (e) { result.textContent = e.problem?.detail || errorText(e.code); result.className = "error"; }
  };
  const idp = `o-${o.id.slice(0, 8)}`;
  const to = el("select", { id: `${idp}-to`, class: "force-to" }, ...STATES.map((s) => el("option", { value: s, text: t(`st_${s}`) })));
  const reason = el("input", { id: `${idp}-reason`, class: "force-reason", required: true });
  const amount = el("input", { id: `${idp}-amount`, class: "refund-amount", type: "number", min: "1" });
  const force = el("form", { class: "row force-form" },
    el("label", { for: to.id, text: t("to") }), to,
    el("label", { for: reason.id, text: t("reason") }), reason,
    el("button", { type: "submit", class: "force", text: t("force") }),
    el("button", { type: "button", class: "cancel", text: t("cancel"), onclick: () => {
      if (!reason.reportValidity()) return;
      act(() => api("POST", `/v1/admin/orders/${o.id}/cancel`, { reason: reason.value }));
    } }),
    el("label", { for: amount.id, text: t("amount_cents") }), amount,
    el("button", { type: "button", class: "refund", text: t("refund"), onclick: () => {
      if (!reason.reportValidity()) return;
      act(() => api("POST", `/v1/admin/orders/${o.id}/refunds`, { amount: Number(amount.value), reason: reason.value },
        { "idempotency-key": uuid() }));
    } }));
  force.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(() => api("POST", `/v1/admin/orders/${o.id}/transition`, { to: to.value, reason: reason.value }));
  });
  const history = el("ol", { class: "timeline" }, ...o.events.map((e) => el("li", { dir: "auto",
    text: `${new Date(e.at).toLocaleString(document.documentElement.lang)} — ${e.kind}: ${e.from || ""} → ${e.to}`
      + ` (${e.actor_role})${e.reason ? " — " + e.reason : ""}` })));
  return el("details", { class: "order", "data-order": o.id },
    el("summary", {}, el("span", { dir: "ltr", text: `#${o.id.slice(0, 8)}` }),
      ` · ${t(`st_${o.state}`)} · ${money(o.total, o.currency)}`),
    el("p", {}, el("a", { href: `/orders/${o.id}`, dir: "ltr", text: o.id })),
    history, force, result);
}

async function loadOrders() {
  const params = new URLSearchParams({ limit: "20" });
  if ($("order-state-filter").value) params.set("state", $("order-state-filter").value);
  if ($("order-id-filter").value.trim()) params.set("order_id", $("order-id-filter").value.trim());
  const box = $("order-results");
  const ticket = ++searches; // only the latest search is drawn
  try {
    const page = await api("GET", `/v1/admin/orders?${params}`);
    if (ticket !== searches) return;
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.order));
    box.replaceChildren(...page.items.map(orderRow));
    for (const d of box.querySelectorAll("details")) if (open.has(d.dataset.order)) d.open = true;
    if (!page.items.length) box.replaceChildren(el("p", { text: t("none") }));
    box.dataset.query = params.toString();
  } catch (e) { box.replaceChildren(el("p", { class: "error", role: "alert", text: errorText(e.code) })); }
}

async function deadLetters() {
  const page = await api("GET", "/v1/admin/dead-letters?limit=20");
  const box = $("dead-letters");
  if (!page.items.length) { box.replaceChildren(el("p", { text: t("none") })); return; }
  box.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["#", "topic", "attempts", "error", ""].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...page.items.map((d) => el("tr", {},
      el("td", { text: String(d.id) }), el("td", { text: d.topic }), el("td", { text: String(d.attempts) }),
      el("td", { dir: "ltr", text: d.last_error || "" }),
      el("td", {}, el("button", { type: "button", class: "replay", text: t("replay"), onclick: async () => {
        try { await api("POST", `/v1/admin/dead-letters/${d.id}/replay`); await deadLetters(); }
        catch (e) { box.append(el("p", { class: "error", role: "alert", text: errorText(e.code) })); }
      } })))))));
}

async function main() {
  header();
  applyLanguage();
  document.title = `${t("admin")} · ${t("brand")}`;
  if (!session.me || session.me.role !== "admin") {
    $("main").replaceChildren(el("p", { id: "admins-only", role: "alert", text: t("admins_only") }),
      el("a", { href: "/signin?next=/admin", text: t("signin") }));
    return;
  }
  layout();
  await Promise.allSettled([figures(), liveLists(), loadOrders(), ridersOnline(), deadLetters()]);
  setInterval(() => { figures(); liveLists(); ridersOnline(); }, 5000);
}

main();
