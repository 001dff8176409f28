import { api, applyLanguage, el, errorText, header, t } from "/static/common.js";

async function render() {
  document.title = `${t("shows")} · ${t("brand")}`;
  header();
  applyLanguage();
  const main = document.getElementById("main");
  const list = el("ul", { id: "show-list", class: "cards" });
  main.replaceChildren(el("h1", { text: t("shows") }), list);
  try {
    const page = await api("GET", "/v1/shows?state=live,scheduled&limit=50");
    if (!page.items.length) list.replaceWith(el("p", { id: "no-shows", text: t("no_shows") }));
    for (const show of page.items) {
      const when = show.starts_at ? new Date(show.starts_at).toLocaleString(document.documentElement.lang) : "";
      list.append(el("li", { class: `card show ${show.state}` },
        el("span", { class: `badge ${show.state}`, text: t(show.state) }),
        el("h2", {}, el("a", { href: `/shows/${show.id}`, class: "show-link", text: show.title })),
        when && show.state === "scheduled" ? el("p", { text: when }) : null,
      ));
    }
  } catch (e) {
    main.append(el("p", { class: "error", role: "alert", text: errorText(e.code) }));
  }
}

render();
