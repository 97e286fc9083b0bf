// The chat panel: one prompt, two streamed answers side by side, the trained adapter's and its
// base model's (POST /v1/models/{adapter}/generate, SSE read with fetch()).

import {api, follow} from "../api.js";
import {h, clear, field, options, number, add} from "../dom.js";
import {t, term} from "../i18n.js";

export const page = {
  id: "chat",
  title: "nav.chat",
  allowed: (ctx) => ctx.can("generate"),
  render,
};

const FINISHED = ["completed", "anchored"];

async function render(ctx, root, params, signal) {
  const runs = (await api("/v1/training/runs", {signal})).filter((r) => FINISHED.includes(r.status) && r.run_id);
  add(root, h("h1", {text: t("chat.title")}));
  if (!runs.length) {
    add(root, h("section", {class: "card"}, h("p", {text: t("chat.no_adapters")})));
    return;
  }
  const adapter = h("select", {id: "chat-adapter"}, options(runs.slice().reverse().map((r) => [r.request_id || r.run_id, `${r.recipe} · ${(r.run_id || "").slice(0, 10)} · ${r.base_model}`])));
  const prompt = h("textarea", {id: "chat-prompt", rows: 3, required: true, maxLength: 16000});
  const maxTokens = h("input", {type: "number", id: "chat-max-tokens", min: 1, max: 512, value: 64});
  const temperature = h("input", {type: "number", id: "chat-temperature", min: 0, max: 2, step: 0.1, value: 0});
  const columns = {
    adapter: {log: h("div", {id: "chat-adapter-log", attrs: {"aria-live": "polite"}}), history: []},
    base: {log: h("div", {id: "chat-base-log", attrs: {"aria-live": "polite"}}), history: []},
  };
  const send = h("button", {type: "submit", class: "primary", id: "chat-send", text: t("chat.send")});
  const reset = h("button", {type: "button", text: t("chat.reset"), on: {click: () => {
    for (const c of Object.values(columns)) {
      c.history = [];
      clear(c.log);
    }
  }}});
  adapter.addEventListener("change", () => reset.click());
  const form = h("form", {id: "chat-form", on: {submit: async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    send.disabled = true;
    const run = runs.find((r) => (r.request_id || r.run_id) === adapter.value);
    const settings = {max_new_tokens: Number(maxTokens.value) || 64, temperature: Number(temperature.value) || 0};
    try {
      await Promise.all([
        ask(ctx, columns.adapter, "/v1/models/" + encodeURIComponent(adapter.value) + "/generate", text, settings, signal),
        ask(ctx, columns.base, "/v1/models/base/generate", text, {...settings, base: run.base_model}, signal),
      ]);
      prompt.value = "";
    } finally {
      send.disabled = false;
    }
  }}},
  field(t("chat.adapter"), adapter),
  field(t("chat.prompt"), prompt),
  h("div", {class: "inline"}, field(t("chat.max_tokens"), maxTokens), field(t("chat.temperature"), temperature)),
  h("div", {class: "actions"}, send, reset));
  add(root, h("section", {class: "card"}, form),
    h("div", {class: "chat"},
      h("section", {class: "card", attrs: {"aria-labelledby": "chat-adapter-title"}}, h("h2", {id: "chat-adapter-title", text: t("chat.adapter_answer")}), columns.adapter.log),
      h("section", {class: "card", attrs: {"aria-labelledby": "chat-base-title"}}, h("h2", {id: "chat-base-title", text: t("chat.base_answer")}), columns.base.log)));
}

async function ask(ctx, column, path, text, settings, signal) {
  column.history.push({role: "user", content: text});
  add(column.log, h("div", {class: "bubble user"}, h("span", {class: "who", text: t("chat.you")}), text));
  const answer = h("span", {class: "answer"});
  const stats = h("span", {class: "who"});
  const bubble = h("div", {class: "bubble assistant", dataset: {state: "streaming"}}, h("span", {class: "who", text: t("chat.model")}), answer, stats);
  add(column.log, bubble);
  let reply = "";
  try {
    await follow(path, {
      method: "POST",
      json: {messages: column.history, ...settings},
      signal,
      resume: false,
      until: ["end", "error"],
      onEvent: ({event, data}) => {
        if (event === "token") {
          reply += data.text;
          answer.textContent = reply;
        } else if (event === "end") {
          stats.textContent = t("chat.stats", {tokens: number(data.completion_tokens), seconds: number(data.seconds, 3), finish: term("finish", data.finish_reason)});
        } else if (event === "error") {
          stats.textContent = t("chat.failed", {error: data.error});
        }
      },
    });
    bubble.dataset.state = "done";
  } catch (error) {
    bubble.dataset.state = "failed";
    stats.textContent = ctx.describe(error);
  }
  column.history.push({role: "assistant", content: reply});
}
