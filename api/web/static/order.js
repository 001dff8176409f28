// The order page: status and timeline from the event history, live on `order:{id}`; while out
// for delivery, the rider's position on a map drawn from coordinates (no tiles: works offline).
import { Hub, api, applyLanguage, el, errorText, header, money, requireSignIn, statusText, t } from "/static/common.js";
import { fit, mapSvg, svgNode, xy } from "/static/map.js";

const orderId = location.pathname.split("/")[2];
const seen = new Set(); // event ids already in the timeline
const trail = []; // [{lat, lon, ts}]
let order = null;

function $(id) { return document.getElementById(id); }

function layout() {
  $("main").replaceChildren(
    el("h1", {}, el("span", { text: `${t("order")} ` }), el("span", { id: "order-short", dir: "ltr", text: `#${orderId.slice(0, 8)}` })),
    el("p", { class: "status-line" }, el("span", { id: "conn-status", role: "status", "aria-live": "polite" })),
    el("div", { class: "grid2" },
      el("section", { class: "card", "aria-labelledby": "status-h" },
        el("h2", { id: "status-h", text: t("status") }),
        el("p", { id: "order-state", class: "big", "aria-live": "polite" }),
        el("p", { id: "order-total" }),
        el("ul", { id: "order-lines" }),
        el("h3", { text: t("timeline") }),
        el("ol", { id: "timeline", class: "timeline" })),
      el("section", { class: "card", id: "delivery", "aria-labelledby": "map-h" },
        el("h2", { id: "map-h", text: t("map") }),
        el("p", { id: "eta", "aria-live": "polite", text: t("no_position") }),
        mapSvg("map", t("map"),
          svgNode("polyline", { id: "trail", fill: "none", stroke: "#0b5cad", "stroke-width": "3", points: "" }),
          svgNode("circle", { id: "rider", r: "8", fill: "#a4161a", cx: "-20", cy: "-20" })))),
  );
}

function stateLabel(s) { return t(`st_${s}`); }

function renderOrder() {
  $("order-state").textContent = stateLabel(order.state);
  $("order-state").dataset.state = order.state;
  $("order-total").textContent = `${t("total")}: ${money(order.total, order.currency)}`;
  $("order-lines").replaceChildren(...order.lines.map((l) => el("li", { text: `${l.quantity} × ${l.title}` })));
  $("delivery").hidden = !(order.state === "out_for_delivery" || trail.length);
}

function addEvent(e) {
  if (e.id !== undefined && seen.has(e.id)) return;
  if (e.id !== undefined) seen.add(e.id);
  const at = new Date(e.at).toLocaleString(document.documentElement.lang);
  const what = e.kind === "created" ? t("created")
    : e.kind === "refund" ? `${t("refund")} ${money(e.amount || 0, order.currency)}`
    : `${e.from ? stateLabel(e.from) + " → " : ""}${stateLabel(e.to)}`;
  const who = e.actor_role && e.actor_role !== "system" ? ` (${t("by", { who: e.actor_role })})` : "";
  $("timeline").append(el("li", { "data-kind": e.kind, "data-to": e.to || "" },
    el("time", { text: at }), " — ", el("span", { text: what + who }),
    e.reason ? el("div", { class: "reason", dir: "auto", text: e.reason }) : null));
}

async function reload() {
  order = await api("GET", `/v1/orders/${orderId}`);
  seen.clear();
  $("timeline").replaceChildren();
  for (const e of order.events) addEvent(e);
  renderOrder();
  if (order.state === "out_for_delivery") {
    // Positions are latest-value publications (never replayed): the recent track, when the
    // server has rider tracking, fills the map after a (re)load.
    const track = await api("GET", `/v1/orders/${orderId}/track`).catch(() => null);
    if (track && Array.isArray(track.positions) && track.positions.length) {
      trail.length = 0;
      for (const p of track.positions) position({ lat: p.lat, lon: p.lon, ts: p.ts });
    }
  }
}

function onOrder(data) {
  if (data.type === "rider.position") return position(data);
  if (!order || data.order_id !== orderId) return;
  if (data.to && data.kind !== "refund") order.state = data.to;
  addEvent({ id: data.event_id, kind: data.kind, from: data.from, to: data.to, actor_role: data.by,
    reason: data.reason, at: data.at, amount: data.amount });
  renderOrder();
}

function position(p) {
  if (typeof p.lat !== "number" || typeof p.lon !== "number") return;
  trail.push({ lat: p.lat, lon: p.lon });
  while (trail.length > 500) trail.shift();
  const project = fit(trail);
  $("trail").setAttribute("points", trail.map((q) => xy(q, project).join(",")).join(" "));
  const [x, y] = xy(trail[trail.length - 1], project);
  $("rider").setAttribute("cx", x);
  $("rider").setAttribute("cy", y);
  $("map").dataset.points = String(trail.length);
  $("eta").textContent = typeof p.eta_s === "number"
    ? (p.eta_s < 60 ? t("eta_now") : t("eta", { min: Math.round(p.eta_s / 60) }))
    : `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`;
  $("delivery").hidden = false;
}

async function main() {
  header();
  applyLanguage();
  if (!requireSignIn()) return;
  document.title = `${t("order")} · ${t("brand")}`;
  layout();
  try {
    await reload();
  } catch (e) {
    $("main").replaceChildren(el("p", { class: "error", role: "alert", text: errorText(e.code) }));
    return;
  }
  const hub = new Hub({ onStatus: (kind, n) => { $("conn-status").textContent = statusText(kind, n); $("conn-status").dataset.state = kind; } });
  window.soukHub = hub;
  await hub.subscribe(`order:${orderId}`, onOrder, reload);
}

main();
