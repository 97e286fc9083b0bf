// Overview: the pipeline's counters from GET /v1/status and each stage's throughput from
// GET /v1/events/throughput, refreshed while the page is open, and the live event summaries of
// GET /v1/events/stream, read with fetch() and the Authorization header (an EventSource cannot
// send it, and the key never goes in a URL), resumed after a drop from the last event id.

import {api, follow, sleep, withQuery} from "../api.js";
import {h, clear, byr, number, add, table, shortCode} from "../dom.js";
import {t, term} from "../i18n.js";

export const page = {
  id: "overview",
  title: "nav.overview",
  allowed: (ctx) => ctx.can("status"),
  render,
};

const REFRESH_MS = 5000;
const WINDOW_SECONDS = 300;
const RECENT = 20; // past events the list starts with
const KEEP = 50; // events the list shows at most
const RETRY_MS = 3000;

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
  const own = ctx.me.role === "contributor" && !ctx.me.local;
  const throughputBox = h("div", {id: "throughput"});
  const liveState = h("p", {class: "hint", id: "live-state", attrs: {"aria-live": "polite"}});
  const liveList = h("ol", {id: "live-events", reversed: true, dataset: {events: "0"}});
  const liveEmpty = h("p", {class: "hint", id: "live-empty", text: t("overview.live_empty")});
  add(root, h("h1", {text: t("overview.title")}),
    h("section", {class: "card", attrs: {"aria-labelledby": "counters-title"}},
      h("h2", {id: "counters-title", text: t("overview.pipeline")}), box, h("div", {class: "actions"}, refresh, updated)),
    h("section", {class: "card", attrs: {"aria-labelledby": "throughput-title"}},
      h("h2", {id: "throughput-title", text: t("overview.throughput", {minutes: WINDOW_SECONDS / 60})}),
      throughputBox,
      h("p", {class: "hint", text: t("overview.throughput_hint") + (own ? " " + t("overview.throughput_mine", {institution: ctx.me.institution_id}) : "")})),
    h("section", {class: "card", attrs: {"aria-labelledby": "live-title"}},
      h("h2", {id: "live-title", text: t("overview.live")}),
      h("p", {class: "hint", text: t("overview.live_hint") + (own ? " " + t("overview.live_mine", {institution: ctx.me.institution_id}) : "")}),
      liveState, liveEmpty, liveList),
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
    const throughput = await api(withQuery("/v1/events/throughput", {window: WINDOW_SECONDS}), {signal});
    add(clear(throughputBox), throughputTable(throughput));
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
  live(liveList, liveEmpty, liveState, signal);
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

function throughputTable(result) {
  const rows = result.stages.map((s) =>
    h("tr", {dataset: {stage: s.stage, records: String(s.records)}},
      h("th", {scope: "row", text: term("stage", s.stage)}),
      h("td", {text: number(s.records)}),
      h("td", {text: number(s.records_per_second)}),
      h("td", {text: number(s.batches)})));
  return table(t("overview.throughput", {minutes: result.window_seconds / 60}),
    [t("overview.stage"), t("overview.stage_records"), t("overview.stage_rate"), t("overview.stage_batches")], rows);
}

function eventItem(summary) {
  const time = new Date(summary.time);
  const shown = Number.isNaN(time.getTime()) ? String(summary.time) : time.toLocaleTimeString();
  return h("li", {dataset: {position: String(summary.position), type: summary.type, institution: summary.institution_id || ""}},
    h("span", {class: "muted", text: `#${summary.position} · ${shown} · `}),
    h("strong", {text: term("event", summary.type)}),
    summary.institution_id ? ` · ${summary.institution_id}` : "",
    summary.batch_id ? [` · ${t("overview.live_batch")} `, shortCode(summary.batch_id, 6)] : "");
}

/** Follow the event stream until the page goes: each reconnect resumes after the last id. */
async function live(list, empty, state, signal) {
  let lastEventId = null;
  let count = 0;
  const onEvent = ({data}) => {
    if (!data || typeof data !== "object" || data.position === undefined) return;
    empty.hidden = true;
    list.prepend(eventItem(data));
    while (list.children.length > KEEP) list.lastElementChild.remove();
    count += 1;
    list.dataset.events = String(count);
    list.dataset.last = String(data.position);
  };
  while (!signal.aborted) {
    let failure = null;
    try {
      lastEventId = await follow(withQuery("/v1/events/stream", {recent: RECENT}), {
        signal, onEvent, lastEventId, until: [],
        onState: (s) => (state.textContent = term("live", s)),
      });
    } catch (error) {
      // a refused key signs out through the API layer; anything else is shown, then retried
      failure = error;
    }
    if (signal.aborted) return;
    const reason = failure ? ` (${failure.status || failure.message || failure})` : "";
    state.textContent = term("live", "closed") + reason;
    await sleep(RETRY_MS, signal);
  }
}
