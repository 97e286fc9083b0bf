// The training console: the recipe library with its advice, starting a run with overrides, and
// a run's live curves (loss, eval loss, learning rate, tokens/s, memory) from its metrics stream, with
// stop and resume, checkpoints and lineage.

import {api, follow, sleep, withQuery, vocabulary} from "../api.js";
import {h, clear, table, row, field, options, facts, code, link, number, when, add} from "../dom.js";
import {t, term} from "../i18n.js";

export const page = {
  id: "training",
  title: "nav.training",
  allowed: (ctx) => ctx.can("train"),
  render,
};

const BASE_MODELS = ["tiny", "smollm2-135m"];
const SETTLED = ["anchored", "failed", "stopped"];

async function render(ctx, root, params, signal) {
  if (params[0] === "run" && params[1]) return renderRun(ctx, root, params[1], signal);
  const [recipes, runs, words] = await Promise.all([api("/v1/recipes", {signal}), api("/v1/training/runs", {signal}), vocabulary()]);
  const detail = h("div", {id: "recipe-detail"});
  const recipeSelect = h("select", {id: "run-recipe"}, options(recipes.map((r) => [r.name, r.name]), "knowledge_qa"));
  const show = (name) => {
    recipeSelect.value = name;
    const recipe = recipes.find((r) => r.name === name);
    add(clear(detail), recipeView(recipe));
  };
  add(root, h("h1", {text: t("training.title")}),
    h("section", {class: "card", id: "recipes"}, h("h2", {text: t("training.recipes")}),
      table(t("training.recipes"), [t("training.recipe"), t("training.method"), t("training.description"), t("training.advice")],
        recipes.map((r) => row(
          h("button", {type: "button", class: "linkish", dataset: {recipe: r.name}, text: r.name, on: {click: () => show(r.name)}}),
          term("method", r.method), r.description, r.warnings.length ? number(r.warnings.length) : "–"))),
      detail),
    startForm(ctx, recipeSelect, words, show, signal),
    runsSection(runs));
  show(recipeSelect.value || recipes[0].name);
}

function recipeView(recipe) {
  if (!recipe) return null;
  const settings = (group) => Object.entries(recipe.recipe[group] || {}).map(([k, v]) => [`${group}.${k}`, code(JSON.stringify(v))]);
  return h("div", {class: "card", dataset: {shown: recipe.name}},
    h("h3", {text: t("training.recipe_detail", {name: recipe.name})}),
    h("p", {text: recipe.description}),
    warningsList(recipe.warnings),
    h("details", null, h("summary", {text: t("training.settings")}),
      facts([[t("training.method"), term("method", recipe.method)], [t("training.hash"), code(recipe.hash)], ...settings("method_config"), ...settings("training")])));
}

function warningsList(warnings) {
  if (!warnings || !warnings.length) return h("p", {class: "hint", text: t("training.no_advice")});
  return h("ul", {class: "advice"}, warnings.map((w) => h("li", {class: "warn"}, code(w.field), " ", w.message)));
}

/** key=value lines as typed overrides: JSON values where they parse (numbers, true, lists). */
function parseOverrides(text) {
  const overrides = {};
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const at = trimmed.indexOf("=");
    if (at < 1) throw new Error(t("training.bad_override", {line: trimmed}));
    const key = trimmed.slice(0, at).trim();
    const raw = trimmed.slice(at + 1).trim();
    let value = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    overrides[key] = value;
  }
  return overrides;
}

function startForm(ctx, recipeSelect, words, show, signal) {
  const base = h("select", {id: "run-base"}, options(BASE_MODELS.map((m) => [m, m]), "tiny"));
  const maxSteps = h("input", {type: "number", id: "run-max-steps", min: 1, max: 1000000, value: 20});
  const overrides = h("textarea", {id: "run-overrides", rows: 4, spellcheck: false, placeholder: "training.learning_rate=0.0002\ntraining.eval_steps=5"});
  const limit = h("input", {type: "number", id: "run-record-limit", min: 1});
  const disciplines = words.disciplines.map((d) => h("input", {type: "checkbox", value: d}));
  const languages = ["zh", "en", "mixed"].map((l) => h("input", {type: "checkbox", value: l}));
  const out = h("div", {id: "run-advice", attrs: {"aria-live": "polite"}});
  recipeSelect.addEventListener("change", () => show(recipeSelect.value));
  const request = () => ({
    recipe: recipeSelect.value,
    base_model: base.value,
    max_steps: maxSteps.value ? Number(maxSteps.value) : null,
    overrides: parseOverrides(overrides.value),
    disciplines: disciplines.filter((c) => c.checked).map((c) => c.value),
    languages: languages.filter((c) => c.checked).map((c) => c.value),
    record_limit: limit.value ? Number(limit.value) : null,
  });
  const check = h("button", {type: "button", id: "run-check", text: t("training.check"), on: {click: async () => {
    clear(out);
    try {
      const body = request();
      const set = Object.entries(body.overrides).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
      if (body.max_steps) set.push(`training.max_steps=${body.max_steps}`);
      const recipe = await api(withQuery("/v1/recipes/" + encodeURIComponent(body.recipe), {set, records: body.record_limit}), {signal});
      add(out, h("h3", {text: t("training.advice_for", {name: recipe.name})}), warningsList(recipe.warnings));
    } catch (error) {
      add(out, ctx.failure(error));
    }
  }}});
  const form = h("form", {id: "run-form", on: {submit: async (event) => {
    event.preventDefault();
    clear(out);
    try {
      const accepted = await api("/v1/training/runs", {method: "POST", json: request(), signal});
      ctx.handoff.warnings = accepted.warnings;
      ctx.navigate("#/training/run/" + encodeURIComponent(accepted.request_id));
    } catch (error) {
      add(out, ctx.failure(error));
    }
  }}},
  h("div", {class: "inline"}, field(t("training.recipe"), recipeSelect), field(t("training.base"), base), field(t("training.max_steps"), maxSteps), field(t("training.record_limit"), limit)),
  field(t("training.overrides"), overrides, t("training.overrides_hint")),
  h("fieldset", null, h("legend", {text: t("filter.disciplines")}), h("div", {class: "checks"}, disciplines.map((c) => h("label", {class: "check"}, c, term("discipline", c.value))))),
  h("fieldset", null, h("legend", {text: t("filter.languages")}), h("div", {class: "checks"}, languages.map((c) => h("label", {class: "check"}, c, term("language", c.value))))),
  h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", id: "run-start", text: t("training.start")}), check),
  out);
  return h("section", {class: "card", id: "start-run"}, h("h2", {text: t("training.start_title")}), form);
}

function runsSection(runs) {
  return h("section", {class: "card", id: "runs"}, h("h2", {text: t("training.runs")}),
    runs.length
      ? table(t("training.runs"), [t("training.run"), t("training.status"), t("training.recipe"), t("training.base"), t("training.last_step"), t("training.last_loss"), t("training.created")],
        runs.slice().reverse().map((r) => row(
          link("#/training/run/" + encodeURIComponent(r.request_id || r.run_id), (r.run_id || r.request_id).slice(0, 12) + "…"),
          term("run", r.status), r.recipe, r.base_model, r.last_step ?? "–", number(r.last_loss), when(r.created_at))))
      : h("p", {text: t("training.no_runs")}));
}

// -- one run ------------------------------------------------------------------------------------

/** Axis and legend numbers: 3 significant digits, exponents for tiny learning rates. */
function compact(value) {
  if (value === null || value === undefined) return "–";
  const size = Math.abs(value);
  if (size !== 0 && (size < 1e-3 || size >= 1e6)) return value.toExponential(1);
  return Number(value.toPrecision(3)).toString();
}

/** Megabytes to a tenth: memory moves by fractions of an MB around a large figure. */
function megabytes(value) {
  if (value === null || value === undefined) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function chart(container, title, series, format = compact) {
  const width = () => Math.max(260, container.clientWidth || 320);
  const plot = new window.uPlot({
    title,
    width: width(),
    height: 220,
    scales: {x: {time: false}},
    series: [{label: t("training.step")}, ...series.map((s) => ({label: s.label, stroke: s.stroke, width: 2, spanGaps: true, points: {show: s.points ?? false}, value: (u, v) => format(v)}))],
    axes: [{label: t("training.step")}, {size: 64, values: (u, values) => values.map(format)}],
  }, [[], ...series.map(() => [])], container);
  const observer = new ResizeObserver(() => plot.setSize({width: width(), height: 220}));
  observer.observe(container);
  return {plot, observer};
}

async function renderRun(ctx, root, runId, signal) {
  const base = "/v1/training/runs/" + encodeURIComponent(runId);
  const statusLine = h("p", {id: "run-status", attrs: {"aria-live": "polite"}});
  const latest = h("p", {id: "run-latest", class: "hint", attrs: {"aria-live": "off"}});
  const stop = h("button", {type: "button", id: "run-stop", class: "danger", text: t("training.stop"), disabled: true});
  const resume = h("button", {type: "button", id: "run-resume", text: t("training.resume"), disabled: true});
  const streamState = h("span", {class: "hint", id: "stream-state"});
  const details = h("div", {id: "run-details"});
  const boxes = {loss: h("div", {class: "chart", dataset: {chart: "loss", points: "0"}}), lr: h("div", {class: "chart", dataset: {chart: "lr", points: "0"}}), tps: h("div", {class: "chart", dataset: {chart: "tps", points: "0"}}), memory: h("div", {class: "chart", dataset: {chart: "memory", points: "0"}})};
  const warnings = ctx.handoff.warnings;
  delete ctx.handoff.warnings;
  add(root, h("p", null, link("#/training", "← " + t("training.back"))),
    h("h1", {text: t("training.run_title", {run: runId.slice(0, 12)})}),
    warnings && warnings.length ? h("section", {class: "card"}, h("h2", {text: t("training.advice")}), warningsList(warnings)) : null,
    h("section", {class: "card"}, statusLine, latest, h("div", {class: "actions"}, stop, resume, streamState)),
    h("section", {class: "card"}, h("h2", {text: t("training.curves")}), h("div", {class: "charts"}, boxes.loss, boxes.lr, boxes.tps, boxes.memory)),
    details);

  const charts = {
    loss: chart(boxes.loss, t("training.loss_chart"), [{label: t("training.loss"), stroke: "#0b57d0"}, {label: t("training.eval_loss"), stroke: "#c0392b", points: true}]),
    lr: chart(boxes.lr, t("training.lr_chart"), [{label: t("training.lr"), stroke: "#7b3fa0"}]),
    tps: chart(boxes.tps, t("training.tps_chart"), [{label: t("training.tps"), stroke: "#126b2e"}]),
    // MB over step: the process's resident memory, and the torch allocator's on a GPU run
    memory: chart(boxes.memory, t("training.memory_chart"), [{label: t("training.cpu_rss"), stroke: "#8a5a00"}, {label: t("training.gpu_memory"), stroke: "#b0126b"}], megabytes),
  };
  signal.addEventListener("abort", () => Object.values(charts).forEach((c) => { c.observer.disconnect(); c.plot.destroy(); }), {once: true});

  const points = new Map(); // step -> {loss, eval, lr, tps, rss, gpu}
  let frame = 0;
  const redraw = () => {
    frame = 0;
    const steps = [...points.keys()].sort((a, b) => a - b);
    const col = (name) => steps.map((s) => points.get(s)[name] ?? null);
    charts.loss.plot.setData([steps, col("loss"), col("eval")]);
    charts.lr.plot.setData([steps, col("lr")]);
    charts.tps.plot.setData([steps, col("tps")]);
    charts.memory.plot.setData([steps, col("rss"), col("gpu")]);
    const count = (name) => steps.filter((s) => points.get(s)[name] !== undefined).length;
    boxes.loss.dataset.points = String(count("loss"));
    boxes.loss.dataset.evalPoints = String(count("eval"));
    boxes.lr.dataset.points = String(count("lr"));
    boxes.tps.dataset.points = String(count("tps"));
    boxes.memory.dataset.points = String(count("rss"));
    boxes.memory.dataset.gpuPoints = String(count("gpu"));
  };
  const at = (step) => {
    if (!points.has(step)) points.set(step, {});
    return points.get(step);
  };
  let received = 0;
  const onEvent = ({event, data}) => {
    // every event once: a reconnect or a resume goes on after the last id (Last-Event-ID)
    received += 1;
    latest.dataset.events = String(received);
    if (event === "step") {
      Object.assign(at(data.step), {loss: data.loss, lr: data.learning_rate, tps: data.tokens_per_second});
      // system samples ride on step lines; a CPU run has no GPU field
      if (typeof data.cpu_rss_mb === "number") at(data.step).rss = data.cpu_rss_mb;
      if (typeof data.gpu_memory_mb === "number") at(data.step).gpu = data.gpu_memory_mb;
      latest.textContent = t("training.latest", {step: data.step, total: data.total_steps ?? "?", loss: number(data.loss)});
    } else if (event === "eval") {
      at(data.step).eval = data.eval_loss;
    } else if (event === "end") {
      latest.textContent += " " + t("training.ended", {status: term("run", data.status)});
    }
    if (!frame) frame = requestAnimationFrame(redraw);
  };

  let lastEventId = null;
  let streaming = false;
  const stream = async () => {
    if (streaming || signal.aborted) return;
    streaming = true;
    try {
      lastEventId = await follow(base + "/metrics", {signal, onEvent, lastEventId, onState: (s) => (streamState.textContent = term("stream", s))});
    } catch (error) {
      if (!signal.aborted) streamState.textContent = ctx.describe(error);
    } finally {
      streaming = false;
    }
  };

  let run = null;
  const refresh = async () => {
    run = await api(base, {signal});
    statusLine.textContent = t("training.status_line", {status: term("run", run.status), recipe: run.recipe, base: run.base_model || "–"});
    statusLine.dataset.status = run.status;
    stop.disabled = run.status !== "running";
    resume.disabled = run.status !== "stopped";
    add(clear(details), runDetails(run));
    return run;
  };
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    try {
      await api(base + "/stop", {method: "POST", signal});
      ctx.notify(t("training.stopping"));
    } catch (error) {
      ctx.notify(ctx.describe(error), "error");
    }
    await refresh();
  });
  resume.addEventListener("click", async () => {
    resume.disabled = true;
    try {
      await api(base + "/resume", {method: "POST", signal});
      ctx.notify(t("training.resuming"));
      await refresh();
      stream();
      watch();
    } catch (error) {
      ctx.notify(ctx.describe(error), "error");
      await refresh();
    }
  });

  let watching = false;
  const watch = async () => {
    if (watching) return;
    watching = true;
    try {
      while (!signal.aborted) {
        await sleep(1500, signal);
        if (signal.aborted) return;
        try {
          await refresh();
        } catch {
          continue;
        }
        if (SETTLED.includes(run.status)) return;
      }
    } finally {
      watching = false;
    }
  };

  await refresh();
  stream();
  if (!SETTLED.includes(run.status)) watch();
}

function runDetails(run) {
  const parts = [h("section", {class: "card"}, h("h2", {text: t("training.details")}), facts([
    [t("training.run"), code(run.run_id || "–")],
    [t("training.request"), code(run.request_id || "–")],
    [t("training.status"), term("run", run.status)],
    [t("training.recipe"), run.recipe],
    [t("training.method"), term("method", run.method)],
    [t("training.base"), run.base_model || "–"],
    [t("training.dataset_root"), code(run.dataset_root)],
    [t("training.train_records"), number(run.train_records)],
    [t("training.last_step"), run.last_step ?? "–"],
    [t("training.last_loss"), number(run.last_loss)],
    [t("training.final_loss"), number(run.final_loss)],
    [t("training.created"), when(run.created_at)],
    run.error ? [t("training.error"), h("span", {class: "bad", text: run.error})] : null,
  ].filter(Boolean)))];
  const checkpoints = run.checkpoints || [];
  parts.push(h("section", {class: "card", id: "checkpoints"}, h("h2", {text: t("training.checkpoints")}),
    checkpoints.length
      ? table(t("training.checkpoints"), [t("training.step"), t("training.checkpoint_name")],
        checkpoints.map((c) => row(c.step ?? "–", code(c.name))))
      : h("p", {class: "hint", text: t("training.no_checkpoints")})));
  if (run.lineage) {
    const l = run.lineage;
    parts.push(h("section", {class: "card", id: "lineage"}, h("h2", {text: t("training.lineage")}), facts([
      [t("lineage.adapter"), code(l.adapter_hash)],
      [t("lineage.recipe"), code(l.recipe_hash)],
      [t("lineage.base"), code(l.base_model_hash)],
      [t("training.dataset_root"), code(l.dataset_root)],
      [t("lineage.anchor"), l.anchor_tx_hash ? code(l.anchor_tx_hash) : t("batch.not_anchored")],
      [t("training.train_records"), number(l.train_records)],
      [t("lineage.validation_records"), number(l.validation_records)],
      [t("lineage.steps"), number(l.steps)],
      [t("lineage.validation_loss"), number(l.validation_loss)],
      [t("lineage.disciplines"), Object.entries(l.discipline_counts || {}).map(([d, n]) => h("span", {class: "pill", text: `${term("discipline", d)} ${n}`}))],
    ])));
  }
  return parts;
}
