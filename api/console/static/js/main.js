// The console's shell: sign-in, the navigation a role may use, and a hash router.

import {api, session, ApiError} from "./api.js";
import {h, clear, add} from "./dom.js";
import {loadMessages, t, lang, otherLang, setLang, onLangChange} from "./i18n.js";
import {renderSignIn} from "./pages/signin.js";
import * as overview from "./pages/overview.js";
import * as data from "./pages/data.js";
import * as institutions from "./pages/institutions.js";
import * as audit from "./pages/audit.js";
import * as training from "./pages/training.js";
import * as chat from "./pages/chat.js";
import * as evaluations from "./pages/evaluations.js";

const PAGES = [overview, data, institutions, audit, training, chat, evaluations].map((m) => m.page);

// What each role may do, as docs/API.md's authorization matrix says: the console offers only
// these (the server checks every request anyway).
const PERMISSIONS = {
  admin: ["status", "batches", "search", "erase", "balances", "balances.all", "verify", "train", "generate", "evaluations"],
  contributor: ["status", "batches", "texts", "upload", "search", "erase", "balances", "proof", "verify", "evaluations"],
  auditor: ["status", "batches", "balances", "balances.all", "verify", "evaluations"],
  trainer: ["status", "batches", "search", "search.all", "verify", "train", "generate", "evaluations"],
};

const ctx = {
  me: null,
  status: null,
  routes: [],
  handoff: {},
  can(permission) {
    if (!this.me) return false;
    if (this.me.local) return true;
    return (PERMISSIONS[this.me.role] || []).includes(permission);
  },
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  notify(message, kind = "info") {
    const box = document.getElementById("notice");
    clear(box);
    add(box, h("div", {class: kind === "error" ? "error" : "notice", text: message}));
    clearTimeout(this._noticeTimer);
    this._noticeTimer = setTimeout(() => clear(box), 6000);
  },
  describe(error) {
    return describe(error);
  },
  /** An error as a paragraph for a page (role=alert so screen readers hear it). */
  failure(error) {
    return h("p", {class: "error", attrs: {role: "alert"}, text: describe(error)});
  },
};

function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) return t("error.network");
    const known = {401: "error.401", 403: "error.403", 404: "error.404", 409: "error.409", 429: "error.429"};
    const prefix = known[error.status] ? t(known[error.status]) + " " : "";
    return `${prefix}(${error.status} ${error.type}) ${error.message}`;
  }
  return String((error && error.message) || error);
}

let active = null; // {controller}

async function identify() {
  const [me, status, vocabulary] = await Promise.all([
    api("/v1/keys/me"),
    api("/v1/status"),
    fetch("/openapi.json").then((r) => r.json()).catch(() => ({paths: {}})),
  ]);
  ctx.me = me;
  ctx.status = status;
  ctx.routes = Object.keys(vocabulary.paths || {});
}

function allowedPages() {
  return PAGES.filter((p) => p.allowed(ctx));
}

function renderHeader(currentId) {
  document.getElementById("brand").textContent = t("app.brand");
  document.title = t("app.title");
  document.getElementById("nav").setAttribute("aria-label", t("nav.label"));
  document.getElementById("skip").textContent = t("app.skip");
  const langButton = document.getElementById("lang");
  langButton.textContent = t("lang.switch");
  langButton.setAttribute("lang", otherLang() === "zh" ? "zh-CN" : "en");
  renderInsecureBanner();
  const nav = clear(document.getElementById("nav"));
  const who = clear(document.getElementById("who"));
  const signout = document.getElementById("signout");
  signout.textContent = t("signout");
  signout.hidden = !ctx.me;
  if (!ctx.me) return;
  add(nav, h("ul", null, allowedPages().map((p) =>
    h("li", null, h("a", {href: "#/" + p.id, text: t(p.title), attrs: {"aria-current": p.id === currentId ? "page" : null}})))));
  const role = ctx.me.local ? t("role.local") : t("role." + ctx.me.role);
  who.textContent = ctx.me.institution_id ? `${role} · ${ctx.me.institution_id}` : role;
  who.title = ctx.me.key_id;
}

/** A server started with --insecure-local checks no keys: say so on every page, visibly. */
function renderInsecureBanner() {
  let banner = document.getElementById("insecure-banner");
  if (!(ctx.me && ctx.me.local)) {
    if (banner) banner.remove();
    return;
  }
  if (!banner) {
    banner = h("div", {id: "insecure-banner", class: "error", attrs: {role: "alert"}});
    document.querySelector("header.top").after(banner);
  }
  banner.textContent = t("insecure.banner");
}

function parseHash() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  return hash.split("/").filter(Boolean).map(decodeURIComponent);
}

async function route() {
  if (active) active.controller.abort();
  const controller = new AbortController();
  active = {controller};
  const main = clear(document.getElementById("main"));
  if (!ctx.me) {
    renderHeader(null);
    renderSignIn(main, {onSignedIn: signedIn, signal: controller.signal});
    main.dataset.page = "signin";
    main.dataset.state = "ready";
    return;
  }
  const [id, ...params] = parseHash();
  const pages = allowedPages();
  const page = pages.find((p) => p.id === id) || pages[0];
  renderHeader(page.id);
  // data-state tells a reader (and the browser tests) when the page's first answer is shown
  main.dataset.page = page.id;
  main.dataset.state = "loading";
  try {
    await page.render(ctx, main, params, controller.signal);
    if (!controller.signal.aborted) main.dataset.state = "ready";
  } catch (error) {
    if (!controller.signal.aborted) {
      add(main, ctx.failure(error));
      main.dataset.state = "failed";
    }
  }
}

async function signedIn(key) {
  session.set(key);
  try {
    await identify();
  } catch (error) {
    session.clear();
    ctx.me = null;
    throw error;
  }
  route();
}

function signOut(message) {
  session.clear();
  ctx.me = null;
  ctx.handoff = {};
  if (location.hash) history.replaceState(null, "", location.pathname);
  route();
  if (message) ctx.notify(message, "error");
}

async function boot() {
  await loadMessages();
  document.getElementById("lang").addEventListener("click", () => setLang(otherLang()));
  document.getElementById("signout").addEventListener("click", () => signOut());
  document.getElementById("skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  onLangChange(() => route());
  window.addEventListener("hashchange", () => {
    if (location.hash === "" || location.hash.startsWith("#/")) route();
  });
  window.addEventListener("byr:unauthorized", () => {
    if (ctx.me) signOut(t("signin.refused"));
  });
  if (session.key()) {
    try {
      await identify();
    } catch {
      session.clear();
      ctx.me = null;
    }
  } else {
    // a server without keys (--insecure-local) answers without one: show its warning at once
    try {
      const me = await fetch("/v1/keys/me", {cache: "no-store"});
      if (me.ok && (await me.json()).local) await identify();
    } catch {
      ctx.me = null;
    }
  }
  document.documentElement.dataset.lang = lang();
  route();
}

boot();
