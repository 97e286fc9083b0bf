// Evaluations (GET /v1/evaluations[/{id}]), shown when the server serves them: the recorded
// reports, and one report's models on a heat scale of their headline scores. The per-cell
// scores stay in the report file on the evaluating machine; the ledger holds its sha256.

import {api} from "../api.js";
import {h, add, table, row, facts, code, link, number, when} from "../dom.js";
import {t} from "../i18n.js";

export const page = {
  id: "evaluations",
  title: "nav.evaluations",
  allowed: (ctx) => ctx.can("evaluations") && ctx.routes.includes("/v1/evaluations"),
  render,
};

async function render(ctx, root, params, signal) {
  if (params[0]) return renderOne(ctx, root, params[0], signal);
  const evaluations = await api("/v1/evaluations", {signal});
  add(root, h("h1", {text: t("evaluations.title")}), h("section", {class: "card", id: "evaluations"},
    evaluations.length
      ? table(t("evaluations.title"),
        [t("evaluations.report"), t("evaluations.benchmark"), t("evaluations.base"), t("evaluations.models"), t("evaluations.items"), t("evaluations.completed")],
        evaluations.slice().reverse().map((e) => row(
          link("#/evaluations/" + encodeURIComponent(e.report_id), e.report_id),
          `${e.benchmark_name} ${e.benchmark_version}`, e.base_model, number(e.models.length), number(e.items), when(e.completed_at))))
      : h("p", {text: t("evaluations.none")})));
}

/** A light background for a score in [0, 1]: red (low) to green (high), dark text stays legible. */
function heat(cell, score) {
  if (score === null || score === undefined) return;
  const clamped = Math.max(0, Math.min(1, score));
  cell.style.backgroundColor = `hsl(${Math.round(clamped * 120)}, 65%, 85%)`;
}

async function renderOne(ctx, root, reportId, signal) {
  const e = await api("/v1/evaluations/" + encodeURIComponent(reportId), {signal});
  const headers = [t("evaluations.model"), t("evaluations.overall"), t("evaluations.scored"), t("evaluations.refused"), t("evaluations.forgetting")];
  const rows = e.models.map((m) => {
    const overall = h("td", {class: "heat", text: number(m.overall, 3)});
    heat(overall, m.overall);
    return row(
      h("td", null, m.name, m.run_id ? h("div", {class: "hint"}, ctx.can("train") ? link("#/training/run/" + encodeURIComponent(m.run_id), m.run_id.slice(0, 12) + "…") : m.run_id) : null),
      overall, number(m.items_scored), number(m.items_refused),
      h("td", {class: m.forgetting_flags ? "bad" : "", text: number(m.forgetting_flags)}));
  });
  add(root, h("p", null, link("#/evaluations", "← " + t("evaluations.back"))),
    h("h1", {text: t("evaluations.one", {report: e.report_id})}),
    h("section", {class: "card"}, h("h2", {text: t("evaluations.scores")}),
      h("p", {class: "hint", text: t("evaluations.scores_lead")}),
      table(t("evaluations.scores"), headers, rows)),
    h("section", {class: "card"}, h("h2", {text: t("evaluations.details")}), facts([
      [t("evaluations.benchmark"), `${e.benchmark_name} ${e.benchmark_version}`],
      [t("evaluations.benchmark_hash"), code(e.benchmark_hash)],
      [t("evaluations.base"), e.base_model],
      [t("lineage.base"), code(e.base_model_hash)],
      [t("evaluations.items"), number(e.items)],
      [t("evaluations.cells"), number(e.cells)],
      [t("evaluations.control"), number(e.control_items)],
      [t("evaluations.sha"), code(e.report_sha256)],
      [t("evaluations.completed"), when(e.completed_at)],
      [t("evaluations.seconds"), number(e.seconds, 4)],
    ])));
}
