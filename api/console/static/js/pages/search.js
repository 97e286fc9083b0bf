// Hybrid search (GET /v1/search) with its filters; hits show the matching spans in the record's
// text where the caller may read it.

import {api, withQuery} from "../api.js";
import {h, clear, field, options, number, link, shortCode, add} from "../dom.js";
import {t, term} from "../i18n.js";
import {recordFields} from "../highlight.js";

export function searchSection(ctx, vocabulary, signal) {
  const q = h("input", {type: "search", id: "search-q", required: true, maxLength: 500});
  const mode = h("select", {id: "search-mode"}, options(["hybrid", "lexical", "embedding"].map((m) => [m, term("mode", m)]), "hybrid"));
  const discipline = h("select", {id: "search-discipline"}, options([["", t("filter.any")], ...vocabulary.disciplines.map((d) => [d, term("discipline", d)])]));
  const taskType = h("select", {id: "search-task"}, options([["", t("filter.any")], ...vocabulary.taskTypes.map((d) => [d, term("task", d)])]));
  const language = h("select", {id: "search-language"}, options([["", t("filter.any")], ["zh", term("language", "zh")], ["en", term("language", "en")], ["mixed", term("language", "mixed")]]));
  const minQuality = h("input", {type: "number", id: "search-min-quality", min: 0, max: 1, step: 0.05});
  const limit = h("input", {type: "number", id: "search-limit", min: 1, max: 100, value: 10});
  const institution = ctx.me.role === "contributor" ? null : h("input", {type: "text", id: "search-institution", maxLength: 64});
  const results = h("div", {id: "search-results", attrs: {"aria-live": "polite"}});
  const form = h("form", {id: "search-form", attrs: {role: "search"}, on: {submit: async (event) => {
    event.preventDefault();
    add(clear(results), h("p", {class: "hint", text: t("search.searching")}));
    try {
      const answer = await api(withQuery("/v1/search", {
        q: q.value.trim(), mode: mode.value, discipline: discipline.value, task_type: taskType.value,
        language: language.value, min_quality: minQuality.value, limit: limit.value,
        institution_id: institution ? institution.value.trim() : "",
      }), {signal});
      showHits(ctx, clear(results), answer);
    } catch (error) {
      add(clear(results), ctx.failure(error));
    }
  }}},
  h("div", {class: "inline"}, field(t("search.query"), q), field(t("search.mode"), mode)),
  h("div", {class: "inline"},
    field(t("filter.discipline"), discipline), field(t("filter.task_type"), taskType), field(t("filter.language"), language),
    field(t("filter.min_quality"), minQuality), field(t("search.limit"), limit),
    institution ? field(t("filter.institution"), institution) : null),
  h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", text: t("search.submit")})));
  return h("section", {class: "card", id: "search"}, h("h2", {text: t("search.title")}),
    ctx.me.role === "contributor" ? h("p", {class: "hint", text: t("search.own_only")}) : null, form, results);
}

function showHits(ctx, box, answer) {
  add(box, h("p", {class: "hint", text: t("search.summary", {hits: answer.hits.length, indexed: answer.indexed_records, language: term("language", answer.query_language)})}));
  if (!answer.hits.length) {
    add(box, h("p", {text: t("search.none")}));
    return;
  }
  add(box, h("ol", {class: "hits"}, answer.hits.map((hit) => h("li", {class: "card", dataset: {record: hit.record_id}},
    h("div", null,
      link("#/data/record/" + encodeURIComponent(hit.record_id), hit.record_id), " · ",
      term("discipline", hit.discipline), " · ", term("task", hit.task_type), " · ", hit.institution_id, " · ",
      t("search.score", {score: number(hit.scores.fused ?? hit.scores.lexical ?? hit.scores.embedding, 3)}),
      hit.quality !== null ? " · " + t("search.quality", {quality: number(hit.quality, 3)}) : null),
    hit.reasons.length ? h("div", null, hit.reasons.map((r) => h("span", {class: "pill", text: term("reason", r)}))) : null,
    hit.record
      ? recordFields(hit.record, hit.spans.map((s) => ({...s, kind: "hit"})), (name) => term("recordfield", name))
      : h("p", {class: "hint", text: t("record.text_hidden")}),
    h("div", {class: "hint"}, t("record.batch") + " ", shortCode(hit.batch_id))))));
}
