// Building the page. Every value from the API goes in as text (textContent, text nodes,
// attribute values), never as HTML: nothing here parses markup.

const FORBIDDEN_ATTRIBUTES = /^(on|style$|srcdoc$)/i;

/**
 * h("button", {class: "primary", on: {click}}, "text", child, [more]) -> an element.
 * Props: class, text, on (event handlers), attrs (plain attributes), dataset, and element
 * properties (id, type, value, checked, disabled, hidden, htmlFor, ...).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    else if (name === "text") el.textContent = String(value);
    else if (name === "on") for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "attrs") {
      for (const [attr, v] of Object.entries(value)) {
        if (FORBIDDEN_ATTRIBUTES.test(attr)) throw new Error("refusing attribute " + attr);
        if (v !== undefined && v !== null && v !== false) el.setAttribute(attr, v === true ? "" : String(v));
      }
    } else el[name] = value;
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A table that scrolls sideways inside its own box on a narrow screen. */
export function table(label, headers, rows) {
  const head = h("thead", null, h("tr", null, headers.map((text) => h("th", {scope: "col", text}))));
  const body = h("tbody", null, rows);
  return h("div", {class: "table-wrap", tabIndex: 0, attrs: {role: "region", "aria-label": label}},
    h("table", null, head, body));
}

export function row(...cells) {
  return h("tr", null, cells.map((c) => (c instanceof HTMLElement && c.tagName === "TD" ? c : h("td", null, c))));
}

export function code(value) {
  return h("code", {text: value === null || value === undefined ? "–" : String(value)});
}

/** A hash or id shortened for a table cell, whole in its title. */
export function shortCode(value, keep = 10) {
  if (value === null || value === undefined || value === "") return h("span", {class: "muted", text: "–"});
  const text = String(value);
  const shown = text.length > keep * 2 + 1 ? text.slice(0, keep) + "…" + text.slice(-4) : text;
  return h("code", {text: shown, title: text});
}

export function link(href, text) {
  return h("a", {href, text});
}

/** A definition list from [label, value] pairs (value: text or a node). */
export function facts(pairs) {
  return h("dl", {class: "facts"}, pairs.map(([term, value]) => [h("dt", {text: term}), h("dd", null, value ?? "–")]));
}

export function section(title, ...children) {
  return h("section", {class: "card"}, h("h2", {text: title}), children);
}

export function field(labelText, input, hint) {
  const id = input.id || (input.id = uniqueId("f"));
  let note = null;
  if (hint) {
    note = h("small", {class: "hint", id: id + "-hint", text: hint});
    input.setAttribute("aria-describedby", note.id);
  }
  return h("div", {class: "field"}, h("label", {htmlFor: id, text: labelText}), input, note);
}

let counter = 0;
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** An option list for a <select>: [value, label] pairs. */
export function options(pairs, selected) {
  return pairs.map(([value, label]) => h("option", {value, text: label, selected: value === selected}));
}

// -- formatting ------------------------------------------------------------------------------

const WEI_PER_BYR = 10n ** 18n;

/** A decimal wei string as BYR with up to six decimals ("11.010713"). */
export function byr(wei) {
  let value;
  try {
    value = BigInt(wei || "0");
  } catch {
    return String(wei);
  }
  const micro = value / 10n ** 12n;
  const whole = micro / 1000000n;
  const fraction = (micro % 1000000n).toString().padStart(6, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

export function number(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  return Number(value.toPrecision(digits)).toString();
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export { WEI_PER_BYR };

/** el.append for children that may be arrays, null or false (left out). */
export function add(el, ...children) {
  return append(el, children);
}
