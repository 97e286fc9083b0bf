// Upload a batch: JSON/JSONL as is, question banks (CSV/TSV/XLSX/Parquet) with a column mapper
// fed by the file's own header row. Sent as multipart with Prefer: respond-async, then the
// submission's status URL is polled until the batch is recorded (or refused).

import {api, upload, sleep, ApiError} from "../api.js";
import {h, clear, field, options, table, row, code, link, add} from "../dom.js";
import {t, term} from "../i18n.js";
import {bankKind, readHeaders} from "../sheets.js";

/** Fields a question bank column can map to (as ingest/mapping.py reads them). */
const MAPPABLE = ["instruction", "input", "output", "options", "answer", "explanation", "discipline", "task_type", "language", "license"];
const POLL_MS = 700;

export function uploadSection(ctx, vocabulary, signal) {
  const file = h("input", {type: "file", id: "upload-file", accept: ".json,.jsonl,.ndjson,.csv,.tsv,.xlsx,.xlsm,.parquet"});
  const mapper = h("div", {id: "mapper"});
  const discipline = h("select", {id: "upload-discipline"},
    options([["", t("upload.discipline_none")], ...vocabulary.disciplines.map((d) => [d, term("discipline", d)])]));
  const wait = h("input", {type: "checkbox", id: "upload-wait", checked: true});
  const strict = h("input", {type: "checkbox", id: "upload-strict"});
  const institution = ctx.me.local
    ? h("input", {type: "text", id: "upload-institution", value: "bupt", required: true})
    : null;
  const submit = h("button", {type: "submit", class: "primary", id: "upload-submit", text: t("upload.submit")});
  const progress = h("progress", {max: 100, value: 0, hidden: true, attrs: {"aria-label": t("upload.progress")}});
  const state = h("p", {id: "upload-state", attrs: {"aria-live": "polite"}});
  const result = h("div", {id: "upload-result"});
  let mapping = null; // {get(): {mapping, sheet}}

  file.addEventListener("change", async () => {
    clear(mapper);
    clear(result);
    state.textContent = "";
    mapping = null;
    const chosen = file.files[0];
    if (!chosen || !bankKind(chosen.name)) return;
    let sheets = [];
    try {
      sheets = (await readHeaders(chosen)).sheets;
    } catch (error) {
      add(mapper, h("p", {class: "warn", text: t("upload.headers_unreadable", {reason: error.message})}));
    }
    mapping = columnMapper(mapper, sheets);
  });

  const form = h("form", {id: "upload-form", on: {submit: async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) {
      state.textContent = t("upload.choose_first");
      return;
    }
    const body = new FormData();
    body.append("file", chosen, chosen.name);
    body.append("institution_id", institution ? institution.value.trim() : ctx.me.institution_id);
    body.append("wait", wait.checked ? "true" : "false");
    if (strict.checked) body.append("strict", "true");
    if (discipline.value) body.append("discipline", discipline.value);
    if (mapping) {
      const chosenMapping = mapping.get();
      if (Object.keys(chosenMapping.mapping).length) body.append("mapping", JSON.stringify(chosenMapping.mapping));
      if (chosenMapping.sheet) body.append("sheet", chosenMapping.sheet);
    }
    submit.disabled = true;
    clear(result);
    progress.hidden = false;
    progress.value = 0;
    state.textContent = t("upload.sending");
    try {
      const answer = await upload("/v1/batches", body, {
        headers: {Prefer: "respond-async"},
        onProgress: (sent, total) => {
          progress.value = total ? Math.round((100 * sent) / total) : 0;
        },
      });
      progress.value = 100;
      let outcome = answer.status === 202 ? await poll(answer.body.status_url, state, signal) : {http_status: answer.status, result: answer.body};
      showOutcome(ctx, result, outcome);
      state.textContent = outcome.http_status === 201 ? t("upload.done") : t("upload.refused");
    } catch (error) {
      state.textContent = t("upload.refused");
      add(result, ctx.failure(error));
      if (error instanceof ApiError && error.body.issues) add(result, issuesTable(error.body.issues));
    } finally {
      submit.disabled = false;
    }
  }}},
  field(t("upload.file"), file, t("upload.file_hint")),
  mapper,
  h("div", {class: "inline"},
    institution ? field(t("upload.institution"), institution) : null,
    field(t("upload.discipline"), discipline, t("upload.discipline_hint"))),
  h("div", {class: "checks"},
    h("label", {class: "check"}, wait, t("upload.wait")),
    h("label", {class: "check"}, strict, t("upload.strict"))),
  h("div", {class: "actions"}, submit),
  progress, state, result);
  return h("section", {class: "card", id: "upload"}, h("h2", {text: t("upload.title")}), form);
}

async function poll(url, state, signal) {
  for (;;) {
    const submission = await api(url, {signal});
    state.textContent = t("upload.status", {status: term("submission", submission.status)});
    if (submission.status === "done" || submission.status === "failed") return submission;
    await sleep(POLL_MS, signal);
    if (signal.aborted) throw new Error("aborted");
  }
}

function showOutcome(ctx, box, outcome) {
  const doc = outcome.result || {};
  if (outcome.http_status !== 201) {
    add(box, h("p", {class: "error", attrs: {role: "alert"}, text: `${outcome.http_status} ${doc.error || ""}: ${doc.message || ""}`}));
    if (doc.issues) add(box, issuesTable(doc.issues));
    return;
  }
  add(box, h("div", {class: "notice"},
    h("p", null, t("upload.recorded", {records: doc.valid_records ?? doc.record_ids.length, status: term("status", doc.status)}), " ",
      link("#/data/batch/" + encodeURIComponent(doc.batch_id), t("upload.open_report"))),
    Object.keys(doc.redactions || {}).length
      ? h("p", null, t("upload.redactions") + " ", Object.entries(doc.redactions).map(([k, v]) => h("span", {class: "pill", text: `${k} ${v}`})))
      : null));
  if (doc.issues && doc.issues.length) add(box, issuesTable(doc.issues));
}

export function issuesTable(issues) {
  return table(t("upload.issues"), [t("issue.where"), t("issue.field"), t("issue.code"), t("issue.message")],
    issues.map((i) => row(
      [i.sheet, i.line !== undefined && i.line !== null ? t("issue.line", {line: i.line}) : null, i.index !== undefined && i.index !== null ? `#${i.index}` : null].filter(Boolean).join(" "),
      i.column || i.field || "–", code(i.code), i.message)));
}

/**
 * The column mapper: one choice per mappable field (a <select> of the file's headers, or free
 * text when they could not be read), several columns for the options. get() returns
 * {mapping, sheet}: only the fields the user set (the server guesses the others from
 * well-known headers).
 */
function columnMapper(box, sheets) {
  const sheetSelect = sheets.length > 1 || (sheets[0] && sheets[0].name)
    ? h("select", {id: "map-sheet"}, options([["", t("mapper.all_sheets")], ...sheets.map((s) => [s.name, s.name])]))
    : null;
  const grid = h("div", {class: "inline"});
  const preview = h("output", {id: "map-preview", class: "mono", attrs: {"aria-live": "polite"}});
  let controls = {};

  function headersNow() {
    if (!sheets.length) return null;
    const chosen = sheetSelect && sheetSelect.value ? sheets.find((s) => s.name === sheetSelect.value) : sheets[0];
    return chosen ? chosen.headers : null;
  }

  function build() {
    clear(grid);
    controls = {};
    const headers = headersNow();
    for (const name of MAPPABLE) {
      if (name === "options") continue;
      const control = headers
        ? h("select", {id: "map-" + name}, options([["", t("mapper.auto")], ...headers.map((c) => [c, c])]))
        : h("input", {type: "text", id: "map-" + name, placeholder: t("mapper.column")});
      control.addEventListener("change", update);
      control.addEventListener("input", update);
      controls[name] = control;
      add(grid, field(term("recordfield", name), control));
    }
    let optionBox;
    if (headers) {
      optionBox = h("fieldset", {id: "map-options"}, h("legend", {text: term("recordfield", "options")}),
        h("div", {class: "checks"}, headers.map((c) => {
          const box = h("input", {type: "checkbox", value: c, on: {change: update}});
          return h("label", {class: "check"}, box, c);
        })));
      controls.options = optionBox;
    } else {
      const text = h("input", {type: "text", id: "map-options", placeholder: t("mapper.columns"), on: {input: update}});
      controls.options = text;
      optionBox = field(term("recordfield", "options"), text, t("mapper.options_hint"));
    }
    add(grid, optionBox);
    update();
  }

  function current() {
    const mapping = {};
    for (const name of MAPPABLE) {
      const control = controls[name];
      if (!control) continue;
      if (name === "options") {
        const chosen = control.tagName === "FIELDSET"
          ? Array.from(control.querySelectorAll("input:checked"), (c) => c.value)
          : control.value.split(",").map((s) => s.trim()).filter(Boolean);
        if (chosen.length === 1) mapping.options = chosen[0];
        else if (chosen.length > 1) mapping.options = chosen;
      } else if (control.value.trim()) mapping[name] = control.value.trim();
    }
    return mapping;
  }

  function update() {
    const mapping = current();
    preview.textContent = Object.keys(mapping).length ? JSON.stringify(mapping) : t("mapper.none");
  }

  if (sheetSelect) sheetSelect.addEventListener("change", build);
  add(box, h("fieldset", {class: "mapper"},
    h("legend", {text: t("mapper.title")}),
    h("p", {class: "hint", text: sheets.length ? t("mapper.lead") : t("mapper.lead_free")}),
    sheetSelect ? field(t("mapper.sheet"), sheetSelect) : null,
    grid,
    h("div", {class: "field"}, h("span", {class: "hint", text: t("mapper.preview")}), preview)));
  build();
  return {get: () => ({mapping: current(), sheet: sheetSelect ? sheetSelect.value : ""})};
}
