// Chinese first, English second: the messages of each language live in ../i18n/<lang>.json
// (the same keys in both; a test compares them). The choice is remembered in localStorage:
// a language preference, nothing secret.

const LANGS = ["zh", "en"];
const SLOT = "byr-console-lang";
const messages = {};
let current = "zh";
const listeners = [];

export async function loadMessages() {
  const loaded = await Promise.all(LANGS.map((lang) => fetch(`/console/static/i18n/${lang}.json`).then((r) => r.json())));
  LANGS.forEach((lang, i) => (messages[lang] = loaded[i]));
  const saved = localStorage.getItem(SLOT);
  current = LANGS.includes(saved) ? saved : "zh";
  applyDocumentLanguage();
}

export function lang() {
  return current;
}

export function otherLang() {
  return current === "zh" ? "en" : "zh";
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === current) return;
  current = next;
  localStorage.setItem(SLOT, next);
  applyDocumentLanguage();
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

function applyDocumentLanguage() {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
}

/** The message `key` in the current language, with {name} placeholders filled in as text. */
export function t(key, params) {
  let text = (messages[current] && messages[current][key]) ?? (messages.en && messages.en[key]);
  if (text === undefined) {
    console.warn("missing message", key);
    text = key;
  }
  if (params) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  return text;
}

/** A vocabulary value (status, reason, discipline...) in the current language, or as is. */
export function term(group, value) {
  if (value === null || value === undefined) return "–";
  const key = `${group}.${value}`;
  const table = messages[current] || {};
  return table[key] ?? (messages.en && messages.en[key]) ?? String(value);
}
