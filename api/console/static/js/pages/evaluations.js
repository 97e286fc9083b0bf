// Evaluations (GET /v1/evaluations[/{id}[/report]]), shown when the server serves them: the
// recorded reports, one report's models on a heat scale of their headline scores and, where this
// server holds the report file (checked against the recorded sha256), a discipline x task heatmap
// per model and dimension, the deltas against the base, forgetting flags and contamination.
// A trainer (or admin) starts an evaluation here (POST /v1/evaluations), follows its job and is
// taken to its report when it is done.

import {api, ApiError, sleep} from "../api.js";
import {h, add, clear, table, row, facts, code, link, number, when, field, options} from "../dom.js";
import {t, term} from "../i18n.js";

const DIMENSIONS = ["overall", "knowledge", "teaching", "application"];
const FINISHED = ["completed", "anchored"];
const POLL_MS = 1000;

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
  if (ctx.can("train") && ctx.routes.includes("/v1/evaluations/jobs/{job_id}")) {
    const runs = await api("/v1/training/runs", {signal});
    add(root, startForm(ctx, runs.filter((r) => r.run_id && FINISHED.includes(r.status)), signal));
  }
}

/** Comma- or space-separated DISCIPLINE:TASK cells. */
function splitCells(text) {
  return text.split(/[\s,，]+/).map((c) => c.trim()).filter(Boolean);
}

function startForm(ctx, runs, signal) {
  const choices = [["base", t("evaluations.base_model")], ...runs.slice().reverse().map((r) => [r.run_id, `${r.run_id.slice(0, 12)}… ${r.recipe} (${term("run", r.status)})`])];
  const models = choices.map(([value]) => h("input", {type: "checkbox", value, checked: value === "base"}));
  const cells = h("input", {type: "text", id: "eval-cells", spellcheck: false, placeholder: "information_theory:knowledge_qa"});
  const limit = h("input", {type: "number", id: "eval-limit", min: 1, value: 2});
  const maxTokens = h("input", {type: "number", id: "eval-max-tokens", min: 1, max: 2048, value: 32});
  const language = h("select", {id: "eval-language"}, options([["", t("evaluations.both_languages")], ["zh", term("language", "zh")], ["en", term("language", "en")]], ""));
  const start = h("button", {type: "submit", class: "primary", id: "eval-start", text: t("evaluations.start")});
  const out = h("div", {id: "eval-job", attrs: {"aria-live": "polite"}});
  const request = () => ({
    models: models.filter((c) => c.checked).map((c) => c.value),
    cells: splitCells(cells.value),
    language: language.value || null,
    limit: limit.value ? Number(limit.value) : null,
    max_new_tokens: maxTokens.value ? Number(maxTokens.value) : 128,
  });
  const show = (job) => {
    out.dataset.status = job.status;
    const progress = job.progress ? t("evaluations.job_progress", {model: job.progress.model, stage: job.progress.stage, done: job.progress.done, total: job.progress.total}) : "";
    add(clear(out), h("p", {text: t("evaluations.job_status", {job: job.job_id, status: term("evaluation", job.status)}) + (progress ? " · " + progress : "")}));
  };
  const form = h("form", {id: "eval-form", on: {submit: async (event) => {
    event.preventDefault();
    clear(out);
    delete out.dataset.status;
    start.disabled = true;
    try {
      let job = await api("/v1/evaluations", {method: "POST", json: request(), signal});
      show(job);
      while (!signal.aborted && !["done", "failed"].includes(job.status)) {
        await sleep(POLL_MS, signal);
        if (signal.aborted) return;
        job = await api(job.status_url, {signal});
        show(job);
      }
      if (job.status === "done") {
        ctx.notify(t("evaluations.job_done", {report: job.report_id}));
        ctx.navigate("#/evaluations/" + encodeURIComponent(job.report_id));
      } else if (job.error) {
        add(out, h("p", {class: "bad", id: "eval-error", text: `${job.error.error}: ${job.error.message}`}));
      }
    } catch (error) {
      add(out, ctx.failure(error));
    } finally {
      start.disabled = false;
    }
  }}},
  h("fieldset", {id: "eval-models"}, h("legend", {text: t("evaluations.compare")}),
    h("div", {class: "checks"}, models.map((c, i) => h("label", {class: "check"}, c, choices[i][1])))),
  field(t("evaluations.cells_field"), cells, t("evaluations.cells_hint")),
  h("div", {class: "inline"}, field(t("evaluations.limit"), limit), field(t("evaluations.max_tokens"), maxTokens), field(t("evaluations.language"), language)),
  h("div", {class: "actions"}, start),
  out);
  return h("section", {class: "card", id: "start-evaluation"}, h("h2", {text: t("evaluations.start_title")}),
    h("p", {class: "hint", text: t("evaluations.start_lead")}), form);
}

/** A light background for a score in [0, 1]: red (low) to green (high), dark text stays legible. */
function heat(cell, score) {
  if (score === null || score === undefined) return;
  const clamped = Math.max(0, Math.min(1, score));
  cell.style.backgroundColor = `hsl(${Math.round(clamped * 120)}, 65%, 85%)`;
}

async function renderOne(ctx, root, reportId, signal) {
  const path = "/v1/evaluations/" + encodeURIComponent(reportId);
  const e = await api(path, {signal});
  let report = null;
  let missing = null;
  if (ctx.routes.includes("/v1/evaluations/{report_id}/report")) {
    try {
      report = await api(path + "/report", {signal});
    } catch (error) {
      if (!(error instanceof ApiError) || ![404, 409].includes(error.status)) throw error;
      missing = t(error.status === 409 ? "evaluations.report_changed" : "evaluations.report_missing");
    }
  }
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
    report ? reportSections(report) : null,
    missing ? h("section", {class: "card", id: "heatmap"}, h("h2", {text: t("evaluations.heatmap")}),
      h("p", {class: "hint", id: "heatmap-missing", text: missing})) : null,
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

// -- the report: heatmaps, forgetting flags, contamination ------------------------------------

/** A delta's background: red for a loss, green for a gain, paler the smaller it is. */
function deltaHeat(cell, delta) {
  if (delta === null || delta === undefined) return;
  const strength = Math.min(1, Math.abs(delta) / 0.25);
  const hue = delta < 0 ? 0 : 120;
  cell.style.backgroundColor = `hsl(${hue}, 65%, ${Math.round(96 - strength * 14)}%)`;
}

function fixed(value, signed) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const text = value.toFixed(3);
  return signed && value > 0 ? "+" + text : text;
}

/** Disciplines and task types in the order the benchmark lists its cells. */
function axes(report) {
  const cells = (report.benchmark && report.benchmark.cells) || [];
  const disciplines = [...new Set(cells.map((c) => c.discipline))];
  const tasks = [...new Set(cells.map((c) => c.task_type))];
  for (const m of report.models || []) {
    for (const c of m.cells || []) {
      if (!disciplines.includes(c.discipline)) disciplines.push(c.discipline);
      if (!tasks.includes(c.task_type)) tasks.push(c.task_type);
    }
  }
  return {disciplines, tasks};
}

function heatmapTable(model, comparison, dimension, deltas, grid) {
  const key = (d, task) => `${d}|${task}`;
  const scores = new Map((model.cells || []).map((c) => [key(c.discipline, c.task_type), c]));
  const changes = new Map(((comparison && comparison.cells) || []).map((c) => [key(c.discipline, c.task_type), c]));
  const label = t(deltas ? "evaluations.heatmap_delta_label" : "evaluations.heatmap_label",
    {model: model.name, dimension: t("evaluations.dim_" + dimension)});
  const head = h("tr", null, h("th", {scope: "col", text: t("evaluations.discipline_task")}),
    grid.tasks.map((task) => h("th", {scope: "col", text: term("task", task)})));
  const body = grid.disciplines.map((d) => h("tr", null, h("th", {scope: "row", text: term("discipline", d)}),
    grid.tasks.map((task) => {
      const cell = h("td", {class: "heat-cell"});
      if (deltas) {
        const change = changes.get(key(d, task));
        const delta = change && change.delta ? change.delta[dimension] : null;
        if (change === undefined) {
          add(cell, h("span", {class: "muted", text: "–"}));
          return cell;
        }
        cell.classList.add("delta");
        cell.dataset.value = String(delta);
        add(cell, h("span", {class: "score", text: fixed(delta, true)}),
          h("span", {class: "n", text: t("evaluations.paired", {n: number(change.paired_items)})}));
        if (change.forgetting) {
          cell.classList.add("forgot");
          add(cell, h("span", {class: "flag", text: "⚠ " + t("evaluations.forgot")}));
        }
        deltaHeat(cell, delta);
        return cell;
      }
      const scored = scores.get(key(d, task));
      if (scored === undefined) {
        add(cell, h("span", {class: "muted", text: "–"}));
        return cell;
      }
      const value = scored[dimension];
      cell.dataset.value = String(value);
      add(cell, h("span", {class: "score", text: fixed(value, false)}),
        h("span", {class: "n", text: t("evaluations.n_items", {n: number(scored.items)})}));
      heat(cell, value);
      return cell;
    })));
  return h("div", {class: "table-wrap heatmap-wrap", tabIndex: 0, attrs: {role: "region", "aria-label": label}},
    h("table", {class: "heatmap", dataset: {model: model.name}}, h("caption", {text: label}), h("thead", null, head), h("tbody", null, body)));
}

function reportSections(report) {
  const models = report.models || [];
  const comparisons = new Map((report.comparisons || []).map((c) => [c.model, c]));
  const grid = axes(report);
  const dimension = h("select", {id: "heatmap-dimension"},
    options(DIMENSIONS.map((d) => [d, t("evaluations.dim_" + d)]), "overall"));
  const deltas = h("input", {type: "checkbox", id: "heatmap-deltas", disabled: comparisons.size === 0});
  const maps = h("div", {id: "heatmaps"});
  const draw = () => {
    clear(maps);
    for (const model of models) {
      const comparison = comparisons.get(model.name);
      const showDeltas = deltas.checked && comparison !== undefined;
      const lead = deltas.checked && comparison === undefined
        ? t(model.kind === "base" ? "evaluations.is_base" : "evaluations.no_deltas") : null;
      add(maps, h("h3", {text: model.name}),
        h("p", {class: "hint", text: t("evaluations.model_summary", {
          overall: fixed(model.summary && model.summary.overall, false),
          items: number(model.summary && model.summary.items_scored),
        })}),
        lead ? h("p", {class: "hint", text: lead}) : null,
        heatmapTable(model, comparison, dimension.value, showDeltas, grid));
    }
  };
  dimension.addEventListener("change", draw);
  deltas.addEventListener("change", draw);
  draw();
  return [
    h("section", {class: "card", id: "heatmap"}, h("h2", {text: t("evaluations.heatmap")}),
      h("p", {class: "hint", text: t("evaluations.heatmap_lead")}),
      h("div", {class: "heatmap-controls"},
        field(t("evaluations.dimension"), dimension),
        h("label", {class: "check"}, deltas, t("evaluations.show_deltas"))),
      maps),
    forgettingSection(report.comparisons || []),
    contaminationSection(models.filter((m) => m.kind !== "base")),
  ];
}

function forgettingSection(comparisons) {
  const flags = comparisons.flatMap((c) => (c.forgetting || []).map((f) => row(
    c.model,
    f.scope === "cell" ? `${term("discipline", f.discipline)} × ${term("task", f.task_type)}` : t("evaluations.control_set"),
    f.reason || "–")));
  return h("section", {class: "card", id: "forgetting"}, h("h2", {text: t("evaluations.forgetting")}),
    comparisons.length === 0
      ? h("p", {class: "hint", text: t("evaluations.no_adapters")})
      : flags.length
        ? table(t("evaluations.forgetting"), [t("evaluations.model"), t("evaluations.where"), t("evaluations.reason")], flags)
        : h("p", {class: "ok", text: t("evaluations.no_flags")}));
}

function contaminationSection(adapters) {
  const parts = adapters.map((m) => {
    const c = m.contamination || {};
    if (!c.checked) return h("p", {class: "hint", text: t("evaluations.not_checked", {model: m.name})});
    const items = c.items || [];
    return h("div", null,
      h("p", {text: t("evaluations.checked", {
        model: m.name, texts: number(c.texts_available), records: number(c.training_records), refused: number(items.length),
      })}),
      items.length ? table(t("evaluations.contamination") + ": " + m.name,
        [t("evaluations.item"), t("evaluations.fields"), t("evaluations.shared"), t("evaluations.records")],
        items.map((i) => row(code(i.item_id), (i.fields || []).join(", "), number(i.shared_ngrams),
          h("td", null, (i.record_ids || []).map((r) => h("div", null, code(r))))))) : null);
  });
  return h("section", {class: "card", id: "contamination"}, h("h2", {text: t("evaluations.contamination")}),
    parts.length ? parts : h("p", {class: "hint", text: t("evaluations.no_adapters")}));
}
