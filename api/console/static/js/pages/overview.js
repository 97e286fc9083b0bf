// Overview: the pipeline's counters from GET /v1/status, refreshed while the page is open.

import {api, sleep} from "../api.js";
import {h, clear, byr, number, add} from "../dom.js";
import {t, term} from "../i18n.js";

export const page = {
  id: "overview",
  title: "nav.overview",
  allowed: (ctx) => ctx.can("status"),
  render,
};

const REFRESH_MS = 5000;

function stat(label, value, id) {
  return h("div", {class: "stat", dataset: id ? {stat: id} : {}},
    h("div", {class: "label", text: label}), h("div", {class: "value", text: value}));
}

function breakdown(label, counts, group, id) {
  const entries = Object.entries(counts || {});
  return h("div", {class: "stat", dataset: {stat: id}},
    h("div", {class: "label", text: label}),
    entries.length
      ? h("ul", null, entries.map(([name, count]) => h("li", null, `${term(group, name)}: `, h("strong", {text: number(count)}))))
      : h("div", {class: "value", text: "0"}));
}

async function render(ctx, root, params, signal) {
  const box = h("div", {class: "grid", id: "counters", attrs: {"aria-live": "off"}});
  const mine = h("div");
  const updated = h("p", {class: "hint"});
  const refresh = h("button", {type: "button", text: t("action.refresh"), on: {click: () => load()}});
  add(root, h("h1", {text: t("overview.title")}),
    h("section", {class: "card", attrs: {"aria-labelledby": "counters-title"}},
      h("h2", {id: "counters-title", text: t("overview.pipeline")}), box, h("div", {class: "actions"}, refresh, updated)),
    mine);

  async function load() {
    const status = await api("/v1/status", {signal});
    ctx.status = status;
    add(clear(box), 
      stat(t("overview.head"), number(status.head_position), "head"),
      stat(t("overview.lag"), number(status.projection_lag), "lag"),
      stat(t("overview.institutions"), number(status.institutions), "institutions"),
      stat(t("overview.minted"), byr(status.rewarded_wei_total) + " BYR", "minted"),
      breakdown(t("overview.batches"), status.batches_by_status, "status", "batches"),
      breakdown(t("overview.records"), status.records_by_status, "status", "records"),
      breakdown(t("overview.pending"), status.pending_jobs, "job", "pending"),
      breakdown(t("overview.failed"), status.failed_jobs, "job", "failed"),
      breakdown(t("overview.runs"), status.training_runs_by_status, "run", "runs"),
    );
    updated.textContent = t("overview.updated", {time: new Date().toLocaleTimeString()});
    if (ctx.me.role === "contributor") {
      // The institution's own figures, from the batches it may read (never another's).
      const batches = await api("/v1/batches", {signal});
      const records = batches.reduce((sum, b) => sum + (b.record_count || 0), 0);
      const accepted = batches.reduce((sum, b) => sum + (b.accepted_count || 0), 0);
      add(clear(mine), h("section", {class: "card"},
        h("h2", {text: t("overview.mine", {institution: ctx.me.institution_id})}),
        h("div", {class: "grid"},
          stat(t("overview.my_batches"), number(batches.length), "my-batches"),
          stat(t("overview.my_records"), number(records), "my-records"),
          stat(t("overview.my_accepted"), number(accepted), "my-accepted"))));
    }
  }

  await load();
  (async () => {
    while (!signal.aborted) {
      await sleep(REFRESH_MS, signal);
      if (signal.aborted) return;
      try {
        await load();
      } catch {
        // the next round tries again; a refused key signs out through the API layer
      }
    }
  })();
}
