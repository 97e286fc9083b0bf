// Sign in with an API key: kept in this tab's sessionStorage, sent as Authorization: Bearer.

import {h, field, add} from "../dom.js";
import {t} from "../i18n.js";
import {ApiError} from "../api.js";

export function renderSignIn(root, {onSignedIn}) {
  const input = h("input", {type: "password", id: "signin-key", required: true, autocomplete: "off", spellcheck: false, placeholder: "byr_k…_…"});
  const error = h("p", {class: "error", attrs: {role: "alert"}, hidden: true});
  const button = h("button", {type: "submit", class: "primary", text: t("signin.submit")});
  const form = h("form", {class: "card", id: "signin", on: {submit: async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    error.hidden = true;
    try {
      await onSignedIn(key);
      input.value = "";
    } catch (failure) {
      error.hidden = false;
      error.textContent = failure instanceof ApiError && failure.status === 401 ? t("signin.invalid") : String(failure.message || failure);
    } finally {
      button.disabled = false;
    }
  }}},
  h("h1", {text: t("signin.title")}),
  h("p", {text: t("signin.lead")}),
  field(t("signin.key"), input, t("signin.hint")),
  h("div", {class: "actions"}, button),
  error);
  add(root, form);
  input.focus();
}
