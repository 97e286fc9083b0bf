// The data hub: upload, the batches the caller may read, a batch's governance report, a record
// with its flagged spans, search, and erasure.

import {api, vocabulary, sleep} from "../api.js";
import {h, clear, table, row, code, shortCode, link, facts, number, byr, when, field, add} from "../dom.js";
import {t, term} from "../i18n.js";
import {recordFields} from "../highlight.js";
import {uploadSection, issuesTable} from "./upload.js";
import {searchSection} from "./search.js";

export const page = {
  id: "data",
  title: "nav.data",
  allowed: (ctx) => ctx.can("batches"),
  render,
};

async function render(ctx, root, params, signal) {
  const [view, id] = params;
  if (view === "batch" && id) return renderBatch(ctx, root, id, signal);
  if (view === "record" && id) return renderRecord(ctx, root, id, signal);
  const words = await vocabulary();
  add(root, h("h1", {text: t("data.title")}));
  if (ctx.can("upload")) add(root, uploadSection(ctx, words, signal));
  const list = h("div", {id: "batches"});
  add(root, h("section", {class: "card"}, h("h2", {text: t("batches.title")}), list));
  if (ctx.can("search")) add(root, searchSection(ctx, words, signal));
  const batches = await api("/v1/batches", {signal});
  if (!batches.length) {
    add(list, h("p", {text: t("batches.none")}));
    return;
  }
  add(list, table(t("batches.title"),
    [t("batches.batch"), t("batches.institution"), t("batches.source"), t("batches.records"), t("batches.accepted"), t("batches.status"), t("batches.submitted")],
    batches.slice().reverse().map((b) => row(
      link("#/data/batch/" + encodeURIComponent(b.batch_id), b.batch_id.slice(0, 12) + "…"),
      b.institution_id, b.source_name, number(b.record_count), number(b.accepted_count),
      term("status", b.status), when(b.submitted_at)))));
}

function back() {
  return h("p", null, link("#/data", "← " + t("data.back")));
}

async function renderBatch(ctx, root, batchId, signal) {
  const path = "/v1/batches/" + encodeURIComponent(batchId);
  const summary = h("div");
  const report = h("div", {id: "report"});
  add(root, back(), h("h1", {text: t("batch.title")}), summary, report);
  const load = async () => {
    const [batch, governance] = await Promise.all([api(path, {signal}), api(path + "/report", {signal})]);
    add(clear(summary), batchFacts(batch));
    add(clear(report), reportView(ctx, batch, governance, signal));
    return governance.governed;
  };
  if (await load()) return;
  // governance still pending: look again every few seconds (a worker or dispatch carries it on)
  (async () => {
    while (!signal.aborted) {
      await sleep(3000, signal);
      if (signal.aborted) return;
      try {
        if (await load()) return;
      } catch {
        // the next round tries again
      }
    }
  })();
}

function batchFacts(b) {
  return h("section", {class: "card"}, h("h2", {text: t("batch.summary")}), facts([
    [t("batch.id"), code(b.batch_id)],
    [t("batches.institution"), b.institution_id],
    [t("batches.source"), b.source_name],
    [t("batches.status"), term("status", b.status)],
    [t("batches.records"), number(b.record_count)],
    [t("batches.accepted"), b.accepted_count === null ? "–" : number(b.accepted_count)],
    [t("batch.root"), code(b.merkle_root)],
    [t("batch.anchor"), b.tx_hash ? h("span", null, code(b.tx_hash), " ", t("batch.block", {block: b.block_number, chain: b.chain_id})) : t("batch.not_anchored")],
    [t("batch.reward"), b.reward_wei ? byr(b.reward_wei) + " BYR" : "–"],
    [t("batches.submitted"), when(b.submitted_at)],
  ]), b.rejected_at_intake && b.rejected_at_intake.length
    ? [h("h3", {text: t("batch.rejected_at_intake")}), issuesTable(b.rejected_at_intake)]
    : null);
}

function reportView(ctx, batch, report, signal) {
  const box = h("section", {class: "card"}, h("h2", {text: t("report.title")}));
  if (!report.governed) {
    add(box, h("p", {class: "notice", text: t("report.pending")}));
    if (ctx.me.role === "admin" || ctx.me.local) {
      const run = h("button", {type: "button", class: "primary", text: t("report.dispatch"), on: {click: async () => {
        run.disabled = true;
        try {
          await api("/v1/dispatch", {method: "POST", signal});
          ctx.notify(t("report.dispatched"));
        } catch (error) {
          ctx.notify(ctx.describe(error), "error");
        } finally {
          run.disabled = false;
        }
      }}});
      add(box, h("div", {class: "actions"}, run));
    }
    return box;
  }
  add(box, facts([
    [t("report.accepted"), `${report.accepted} / ${report.records}`],
    [t("report.rejected"), number(report.rejected)],
    [t("report.reasons"), pills(report.reasons, "reason")],
    [t("report.redactions"), pills(report.redactions, null)],
    [t("report.contribution"), number(report.contribution_score, 6)],
    [t("report.reward"), report.reward_byr],
    [t("report.policy"), report.policy_version],
  ]));
  add(box, h("h3", {text: t("report.decisions")}), table(t("report.decisions"),
    [t("report.line"), t("report.record"), t("report.decision"), t("report.reasons"), t("report.flags")],
    report.decisions.map((d) => row(
      d.source_line ?? "–",
      link("#/data/record/" + encodeURIComponent(d.record_id), d.record_id),
      h("span", {class: d.accepted ? "ok" : "bad", text: d.accepted ? t("decision.accepted") : t("decision.rejected")}),
      d.reasons.length ? d.reasons.map((r) => h("span", {class: "pill", text: term("reason", r)})) : "–",
      d.flags.length ? h("ul", {class: "flags"}, d.flags.map((f) => h("li", null, code(f.code), " ", f.message))) : "–"))));
  return box;
}

function pills(counts, group) {
  const entries = Object.entries(counts || {});
  if (!entries.length) return "–";
  return h("span", null, entries.map(([name, count]) => h("span", {class: "pill", text: `${group ? term(group, name) : name} ${count}`})));
}

async function renderRecord(ctx, root, recordId, signal) {
  const path = "/v1/records/" + encodeURIComponent(recordId);
  const record = await api(path, {signal});
  const decision = record.decision || {flags: [], reasons: [], scores: {}};
  const flagSpans = (decision.flags || []).map((f) => ({...f, kind: "flag", title: `${f.code}: ${f.message}`}));
  const texts = h("section", {class: "card", id: "record-texts"}, h("h2", {text: t("record.texts")}));
  if (record.record) {
    add(texts, h("div", {class: "legend"},
      h("span", null, h("mark", {class: "flag error", text: t("record.legend_error")})),
      h("span", null, h("mark", {class: "flag", text: t("record.legend_warning")})),
      h("span", null, h("span", {class: "placeholder", text: "[PHONE]"}), " ", t("record.legend_placeholder"))),
    recordFields(record.record, flagSpans, (name) => term("recordfield", name)));
  } else {
    add(texts, h("p", {class: "hint", text: record.erased_at ? t("record.erased_at", {time: when(record.erased_at)}) : t("record.text_hidden")}));
  }
  const actions = h("div", {class: "actions"});
  add(root, h("p", null, link("#/data/batch/" + encodeURIComponent(record.batch_id), "← " + t("record.back"))),
    h("h1", {text: t("record.title")}),
    h("section", {class: "card"}, h("h2", {text: t("record.summary")}), facts([
      [t("record.id"), code(record.record_id)],
      [t("record.batch"), link("#/data/batch/" + encodeURIComponent(record.batch_id), record.batch_id)],
      [t("record.status"), term("status", record.status)],
      [t("report.reasons"), record.reasons.length ? record.reasons.map((r) => h("span", {class: "pill", text: term("reason", r)})) : "–"],
      [t("filter.discipline"), term("discipline", record.discipline)],
      [t("filter.task_type"), term("task", record.task_type)],
      [t("filter.language"), term("language", record.language)],
      [t("record.line"), record.source_line ?? "–"],
      [t("report.redactions"), pills(record.redactions, null)],
      [t("record.leaf"), code(record.leaf)],
      [t("record.scores"), Object.keys(decision.scores || {}).length
        ? h("span", null, Object.entries(decision.scores).map(([k, v]) => h("span", {class: "pill", text: `${term("score", k)} ${number(v, 3)}`})))
        : "–"],
    ]), actions),
    texts,
    flagsSection(decision.flags || []));
  if (record.record && ctx.can("proof") && !record.erased_at) {
    add(actions, 
      h("button", {type: "button", id: "proof-download", text: t("record.download_proof"), on: {click: () => downloadProof(ctx, record.record_id, signal)}}),
      h("button", {type: "button", id: "proof-verify", text: t("record.verify_proof"), on: {click: async () => {
        try {
          ctx.handoff.bundle = await api(path + "/proof", {signal});
          ctx.navigate("#/audit");
        } catch (error) {
          ctx.notify(ctx.describe(error), "error");
        }
      }}}));
  }
  if (ctx.can("erase") && record.status !== "erased" && !record.erased_at && (record.record || ctx.me.role === "admin" || ctx.me.local)) {
    add(actions, h("button", {type: "button", class: "danger", id: "erase", text: t("erase.button"), on: {click: () => confirmErase(ctx, record, root, signal)}}));
  }
}

function flagsSection(flags) {
  if (!flags.length) return null;
  return h("section", {class: "card"}, h("h2", {text: t("record.flags")}), table(t("record.flags"),
    [t("flag.code"), t("flag.severity"), t("flag.field"), t("flag.span"), t("flag.message"), t("flag.excerpt")],
    flags.map((f) => row(code(f.code), term("severity", f.severity), term("recordfield", f.field), `${f.start}–${f.end}`, f.message, f.excerpt || "–"))));
}

async function downloadProof(ctx, recordId, signal) {
  try {
    const bundle = await api("/v1/records/" + encodeURIComponent(recordId) + "/proof", {signal});
    const blob = new Blob([JSON.stringify(bundle, null, 2)], {type: "application/json"});
    const url = URL.createObjectURL(blob);
    const anchor = h("a", {href: url, download: `${recordId}.proof.json`, hidden: true});
    add(document.body, anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    ctx.notify(ctx.describe(error), "error");
  }
}

function confirmErase(ctx, record, root, signal) {
  const reason = h("textarea", {id: "erase-reason", required: true, maxLength: 500, rows: 3});
  const error = h("p", {class: "error", attrs: {role: "alert"}, hidden: true});
  const confirm = h("button", {type: "submit", class: "danger primary", id: "erase-confirm", text: t("erase.confirm")});
  const dialog = h("dialog", {id: "erase-dialog", attrs: {"aria-labelledby": "erase-title"}},
    h("form", {on: {submit: async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) return;
      confirm.disabled = true;
      try {
        const answer = await api("/v1/records/" + encodeURIComponent(record.record_id), {method: "DELETE", json: {reason: reason.value.trim()}, signal});
        dialog.close();
        dialog.remove();
        ctx.notify(answer.already_erased ? t("erase.already") : t("erase.done"));
        ctx.navigate("#/data/record/" + encodeURIComponent(record.record_id));
      } catch (failure) {
        error.hidden = false;
        error.textContent = ctx.describe(failure);
        confirm.disabled = false;
      }
    }}},
    h("h2", {id: "erase-title", text: t("erase.title")}),
    h("p", {text: t("erase.warning", {record: record.record_id})}),
    field(t("erase.reason"), reason, t("erase.reason_hint")),
    error,
    h("div", {class: "actions"}, confirm,
      h("button", {type: "button", text: t("action.cancel"), on: {click: () => { dialog.close(); dialog.remove(); }}}))));
  add(root, dialog);
  dialog.showModal();
  reason.focus();
}
