// A record's text with the governance report's flagged spans, search hits and redaction
// placeholders marked at their offsets. Offsets from the server count code points (Python
// str indices), so the text is split into code points first, not UTF-16 units.

import {h} from "./dom.js";

const PLACEHOLDER = /\[[A-Z][A-Z0-9_]*\]/g;

/**
 * Nodes for `text` with `spans` ({start, end, kind: "flag" | "hit", severity, title}) marked,
 * and every redaction placeholder ([PHONE], [EMAIL], ...) shown as one.
 */
export function highlighted(text, spans = []) {
  const points = Array.from(text);
  const cuts = new Set([0, points.length]);
  const placeholders = [];
  for (const match of text.matchAll(PLACEHOLDER)) {
    const start = Array.from(text.slice(0, match.index)).length;
    const end = start + Array.from(match[0]).length;
    placeholders.push([start, end]);
    cuts.add(start).add(end);
  }
  const marks = spans
    .map((s) => ({...s, start: clamp(s.start, points.length), end: clamp(s.end, points.length)}))
    .filter((s) => s.end > s.start);
  for (const s of marks) cuts.add(s.start).add(s.end);
  const bounds = [...cuts].sort((a, b) => a - b);
  const nodes = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const [start, end] = [bounds[i], bounds[i + 1]];
    const piece = points.slice(start, end).join("");
    let node = placeholders.some(([a, b]) => a <= start && end <= b)
      ? h("span", {class: "placeholder", title: piece, text: piece})
      : document.createTextNode(piece);
    const covering = marks.filter((s) => s.start <= start && end <= s.end);
    const flags = covering.filter((s) => s.kind === "flag");
    if (covering.some((s) => s.kind === "hit")) node = h("mark", {class: "hit"}, node);
    if (flags.length) {
      const severe = flags.some((s) => s.severity === "error");
      node = h("mark", {class: ["flag", severe && "error"], title: flags.map((s) => s.title).join("\n")}, node);
    }
    nodes.push(node);
  }
  return nodes;
}

function clamp(value, length) {
  const n = Number(value);
  return Number.isFinite(n) ? Math.max(0, Math.min(length, Math.trunc(n))) : 0;
}

/** The text fields of a record, in reading order, and the rest as metadata. */
export const TEXT_FIELDS = ["system", "instruction", "input", "output"];

export function recordFields(record, spans, names) {
  const blocks = [];
  for (const name of [...TEXT_FIELDS, ...Object.keys(record).filter((k) => !TEXT_FIELDS.includes(k))]) {
    if (!(name in record)) continue;
    const value = record[name];
    const own = spans.filter((s) => s.field === name);
    if (typeof value === "string" && (TEXT_FIELDS.includes(name) || own.length)) {
      blocks.push(h("div", {class: "text-field", dataset: {field: name}},
        h("div", {class: "name", text: names(name)}),
        h("div", {class: "body"}, value === "" ? h("span", {class: "muted", text: "–"}) : highlighted(value, own))));
    } else if (typeof value === "object" && value !== null) {
      // structured fields (a conversation's turns, history): shown as JSON text
      blocks.push(h("div", {class: "text-field", dataset: {field: name}},
        h("div", {class: "name", text: names(name)}),
        h("pre", {class: "body", text: JSON.stringify(value, null, 2)})));
    }
  }
  return blocks;
}
