// The header row of a question bank, read in the browser so the column mapper can offer the
// file's own column names before anything is uploaded: CSV/TSV (the first record, quotes
// included) and XLSX (a zip of XML parts, inflated with DecompressionStream). Other formats
// (Parquet) get free-text column names; the server checks the mapping either way.

const HEAD_BYTES = 256 * 1024;

export function bankKind(name) {
  const ext = (name.split(".").pop() || "").toLowerCase();
  if (ext === "csv" || ext === "tsv") return ext;
  if (ext === "xlsx" || ext === "xlsm") return "xlsx";
  if (ext === "parquet") return "parquet";
  return null;
}

/** {sheets: [{name, headers}]} of a question bank file (one unnamed sheet for CSV/TSV). */
export async function readHeaders(file) {
  const kind = bankKind(file.name);
  if (kind === "csv" || kind === "tsv") {
    const text = await file.slice(0, HEAD_BYTES).text();
    return {sheets: [{name: null, headers: firstRecord(text.replace(/^\uFEFF/, ""), kind === "tsv" ? "\t" : ",")}]};
  }
  if (kind === "xlsx") return {sheets: await xlsxHeaders(file)};
  return {sheets: []};
}

/** The first record of delimited text, RFC 4180 quoting (a quoted field may hold newlines). */
export function firstRecord(text, delimiter) {
  const fields = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === delimiter) {
      fields.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") break;
    else field += ch;
  }
  fields.push(field);
  return fields.map((f) => f.trim()).filter((f) => f !== "");
}

// -- XLSX -------------------------------------------------------------------------------------

async function zipEntries(file) {
  const tail = new DataView(await file.slice(Math.max(0, file.size - 65557)).arrayBuffer());
  let eocd = -1;
  for (let i = tail.byteLength - 22; i >= 0; i--) {
    if (tail.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip file");
  const count = tail.getUint16(eocd + 10, true);
  const size = tail.getUint32(eocd + 12, true);
  const offset = tail.getUint32(eocd + 16, true);
  const dir = new DataView(await file.slice(offset, offset + size).arrayBuffer());
  const entries = new Map();
  let p = 0;
  for (let n = 0; n < count && p + 46 <= dir.byteLength; n++) {
    if (dir.getUint32(p, true) !== 0x02014b50) break;
    const method = dir.getUint16(p + 10, true);
    const compressed = dir.getUint32(p + 20, true);
    const nameLength = dir.getUint16(p + 28, true);
    const extraLength = dir.getUint16(p + 30, true);
    const commentLength = dir.getUint16(p + 32, true);
    const local = dir.getUint32(p + 42, true);
    const name = new TextDecoder().decode(new Uint8Array(dir.buffer, dir.byteOffset + p + 46, nameLength));
    entries.set(name, {method, compressed, local});
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function zipText(file, entries, name) {
  const entry = entries.get(name);
  if (!entry) return null;
  const header = new DataView(await file.slice(entry.local, entry.local + 30).arrayBuffer());
  const start = entry.local + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  const data = file.slice(start, start + entry.compressed);
  if (entry.method === 0) return data.text();
  if (entry.method !== 8) throw new Error("unsupported zip compression");
  const inflated = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(inflated).text();
}

function xml(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) throw new Error("malformed workbook XML");
  return doc;
}

function byLocalName(node, name) {
  return Array.from(node.getElementsByTagNameNS("*", name));
}

async function xlsxHeaders(file) {
  const entries = await zipEntries(file);
  const workbook = xml(await zipText(file, entries, "xl/workbook.xml"));
  const relsText = await zipText(file, entries, "xl/_rels/workbook.xml.rels");
  const targets = new Map();
  if (relsText) {
    for (const rel of byLocalName(xml(relsText), "Relationship")) {
      const target = rel.getAttribute("Target") || "";
      targets.set(rel.getAttribute("Id"), target.startsWith("/") ? target.slice(1) : "xl/" + target);
    }
  }
  const sharedText = await zipText(file, entries, "xl/sharedStrings.xml");
  const shared = sharedText
    ? byLocalName(xml(sharedText), "si").map((si) => byLocalName(si, "t").map((t) => t.textContent).join(""))
    : [];
  const sheets = [];
  for (const [index, sheet] of byLocalName(workbook, "sheet").entries()) {
    const rid = sheet.getAttributeNS("http://schemas.openxmlformats.org/officeDocument/2006/relationships", "id");
    const path = targets.get(rid) || `xl/worksheets/sheet${index + 1}.xml`;
    const text = await zipText(file, entries, path);
    if (text === null) continue;
    const firstRow = byLocalName(xml(text), "row")[0];
    const headers = firstRow ? byLocalName(firstRow, "c").map((c) => cellText(c, shared)) : [];
    sheets.push({name: sheet.getAttribute("name"), headers: headers.map((t) => t.trim()).filter(Boolean)});
  }
  return sheets;
}

function cellText(cell, shared) {
  const type = cell.getAttribute("t");
  if (type === "inlineStr") return byLocalName(cell, "t").map((t) => t.textContent).join("");
  const value = byLocalName(cell, "v")[0];
  if (!value) return "";
  return type === "s" ? shared[Number(value.textContent)] || "" : value.textContent;
}
