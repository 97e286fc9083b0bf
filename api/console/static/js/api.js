// Talking to the API: the key (this tab's sessionStorage only, never localStorage or a URL),
// JSON requests, uploads with progress, and Server-Sent Events read with fetch().

const KEY_SLOT = "byr-console-key";

export const session = {
  key() {
    return sessionStorage.getItem(KEY_SLOT);
  },
  set(key) {
    sessionStorage.setItem(KEY_SLOT, key);
  },
  clear() {
    sessionStorage.removeItem(KEY_SLOT);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.type = (body && body.error) || "HttpError";
    this.body = body || {};
  }
}

function authHeaders(extra) {
  const headers = new Headers(extra || {});
  const key = session.key();
  if (key) headers.set("Authorization", "Bearer " + key);
  return headers;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = new ApiError(response.status, body);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("byr:unauthorized", {detail: error}));
  return error;
}

/** A JSON request; resolves to the decoded body, rejects with ApiError. */
export async function api(path, {method = "GET", json, headers, signal} = {}) {
  const init = {method, headers: authHeaders(headers), signal, cache: "no-store"};
  if (json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The path with query parameters; arrays repeat the name, empty values are left out. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== "") query.append(name, String(item));
    }
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * POST a FormData with upload progress (XMLHttpRequest: fetch cannot report it).
 * Resolves to {status, body, headers}; onProgress(sentBytes, totalBytes).
 */
export function upload(path, form, {headers = {}, onProgress} = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of authHeaders(headers)) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    if (onProgress) xhr.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.total));
    xhr.addEventListener("load", () => {
      const result = {status: xhr.status, body: xhr.response, header: (n) => xhr.getResponseHeader(n)};
      if (xhr.status >= 400) {
        const error = new ApiError(xhr.status, xhr.response);
        if (xhr.status === 401) window.dispatchEvent(new CustomEvent("byr:unauthorized", {detail: error}));
        reject(error);
      } else resolve(result);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, {message: "network error"})));
    xhr.send(form);
  });
}

/**
 * Parse a text/event-stream body: yields {event, data, id} per event (data JSON-decoded when
 * it is JSON). Comments and retry fields are skipped.
 */
export async function* readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = {event: "message", data: [], id: null};
  const onAbort = () => reader.cancel().catch(() => {});
  if (signal) signal.addEventListener("abort", onAbort, {once: true});
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data.length) {
            const text = event.data.join("\n");
            let data = text;
            try {
              data = JSON.parse(text);
            } catch {
              data = text;
            }
            yield {event: event.event, data, id: event.id};
          }
          event = {event: "message", data: [], id: event.id};
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (name === "event") event.event = value;
        else if (name === "data") event.data.push(value);
        else if (name === "id") event.id = value;
      }
    }
  } finally {
    if (signal) signal.removeEventListener("abort", onAbort);
  }
}

/**
 * Follow an SSE endpoint with fetch() (EventSource cannot send Authorization), reconnecting
 * after a dropped connection with Last-Event-ID so nothing is lost or repeated. Calls
 * onEvent(event) for each event; resolves to the last event id when an event named in `until`
 * arrives, when the server keeps closing with nothing new, or when the signal aborts.
 */
export async function follow(path, {method = "GET", json, signal, onEvent, onState, until = ["end"], resume = true, lastEventId = null} = {}) {
  let lastId = lastEventId;
  let attempt = 0;
  let idleCloses = 0;
  for (;;) {
    if (signal && signal.aborted) return lastId;
    const headers = authHeaders({Accept: "text/event-stream"});
    if (lastId !== null) headers.set("Last-Event-ID", lastId);
    const init = {method, headers, signal, cache: "no-store"};
    if (json !== undefined) {
      headers.set("Content-Type", "application/json");
      init.body = JSON.stringify(json);
    }
    let response;
    try {
      if (onState) onState(attempt ? "reconnecting" : "connecting");
      response = await fetch(path, init);
    } catch (error) {
      if (signal && signal.aborted) return lastId;
      if (!resume) throw error;
      attempt += 1;
      await sleep(Math.min(1000 * attempt, 5000), signal);
      continue;
    }
    if (!response.ok) throw await failure(response);
    if (onState) onState("open");
    let ended = false;
    let received = 0;
    try {
      for await (const event of readEvents(response.body, signal)) {
        if (event.id !== null) lastId = event.id;
        received += 1;
        onEvent(event);
        if (until.includes(event.event)) {
          ended = true;
          break;
        }
      }
    } catch (error) {
      if (signal && signal.aborted) return lastId;
      if (!resume) throw error;
    }
    idleCloses = received ? 0 : idleCloses + 1;
    if (ended || !resume || idleCloses >= 3 || (signal && signal.aborted)) {
      if (onState) onState("closed");
      return lastId;
    }
    // Closed without the final event (a restart, a proxy): pick up where it stopped.
    attempt += 1;
    await sleep(Math.min(500 * attempt, 5000), signal);
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, {once: true});
  });
}

let schemaPromise = null;

/** Enumerations of the served OpenAPI document (disciplines, task types), read once. */
export function vocabulary() {
  if (!schemaPromise) {
    schemaPromise = fetch("/openapi.json").then((r) => r.json()).then((doc) => {
      const schemas = (doc.components && doc.components.schemas) || {};
      return {
        disciplines: (schemas.Discipline && schemas.Discipline.enum) || [],
        taskTypes: (schemas.TaskType && schemas.TaskType.enum) || [],
        paths: Object.keys(doc.paths || {}),
      };
    }).catch(() => ({disciplines: [], taskTypes: [], paths: []}));
  }
  return schemaPromise;
}
