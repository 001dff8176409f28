import { api, applyLanguage, el, errorText, header, session, t } from "/static/common.js";

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function render() {
  document.title = `${t("signin")} · ${t("brand")}`;
  const main = document.getElementById("main");
  const message = el("p", { id: "signin-error", class: "error", role: "alert" });
  const form = el("form", { id: "signin-form", class: "card narrow" },
    el("h1", { text: t("signin") }),
    el("label", { for: "email", text: t("email") }),
    el("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true }),
    el("label", { for: "password", text: t("password") }),
    el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    el("button", { type: "submit", id: "signin-submit", text: t("signin") }),
    message,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    message.textContent = "";
    try {
      const tokens = await api("POST", "/v1/auth/login", {
        email: form.email.value, password: form.password.value,
      });
      session.save(tokens.access_token, null);
      const me = await api("GET", "/v1/me");
      session.save(tokens.access_token, me);
      location.assign(safeNext());
    } catch (e) {
      session.clear();
      message.textContent = e.problem?.detail || errorText(e.code);
    }
  });
  main.replaceChildren(form);
  header();
  applyLanguage();
  document.getElementById("email").focus();
}

render();
