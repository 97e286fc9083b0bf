// Audit: verify a proof bundle (pasted or uploaded) with POST /v1/verify, each check with its
// reason, and the proof path from leaf to root recomputed in the browser; and check a batch's
// anchor on the academic chain, step by step (GET /v1/batches/{id}/anchor; #/audit/anchor/<id>
// opens the page with that batch checked).

import {api, withQuery, ApiError} from "../api.js";
import {h, clear, field, code, add, facts} from "../dom.js";
import {t, term} from "../i18n.js";
import {proofPath, keccak256, fromHex, toHex} from "../keccak.js";

export const page = {
  id: "audit",
  title: "nav.audit",
  allowed: (ctx) => ctx.can("verify"),
  render,
};

// Who may check an anchor, as docs/API.md says: auditors, admins and the owning institution.
const ANCHOR_ROLES = ["auditor", "admin", "contributor"];

function mayCheckAnchors(ctx) {
  return Boolean(ctx.me && (ctx.me.local || ANCHOR_ROLES.includes(ctx.me.role)));
}

async function render(ctx, root, params, signal) {
  const text = h("textarea", {id: "bundle-text", rows: 10, spellcheck: false});
  const file = h("input", {type: "file", id: "bundle-file", accept: ".json,application/json"});
  const offline = h("input", {type: "checkbox", id: "bundle-offline"});
  const result = h("div", {id: "verify-result", attrs: {"aria-live": "polite"}});
  if (ctx.handoff.bundle) {
    text.value = JSON.stringify(ctx.handoff.bundle, null, 2);
    delete ctx.handoff.bundle;
  }
  file.addEventListener("change", async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const form = h("form", {id: "verify-form", on: {submit: async (event) => {
    event.preventDefault();
    clear(result);
    let bundle;
    try {
      bundle = JSON.parse(text.value);
    } catch {
      add(result, h("p", {class: "error", attrs: {role: "alert"}, text: t("audit.not_json")}));
      return;
    }
    add(result, h("p", {class: "hint", text: t("audit.verifying")}));
    try {
      const report = await api(withQuery("/v1/verify", {offline: offline.checked ? "true" : ""}), {method: "POST", json: bundle, signal});
      add(clear(result), verdict(report), pathView(bundle));
    } catch (error) {
      add(clear(result), ctx.failure(error));
      if (error instanceof ApiError && error.body.issues) {
        add(result, h("ul", null, error.body.issues.map((i) => h("li", null, `${(i.loc || []).join(".")}: ${i.msg || i.message || ""}`))));
      }
    }
  }}},
  field(t("audit.paste"), text, t("audit.paste_hint")),
  field(t("audit.file"), file),
  h("label", {class: "check"}, offline, t("audit.offline")),
  h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", id: "verify-submit", text: t("audit.verify")})));
  add(root, h("h1", {text: t("audit.title")}));
  if (mayCheckAnchors(ctx)) await anchorSection(ctx, root, params[0] === "anchor" ? params[1] : null, signal);
  add(root, h("section", {class: "card"}, h("h2", {text: t("audit.bundle")}), form), result);
}

/** A batch id in, its anchor checked on chain out: one line per check, then the coordinates. */
async function anchorSection(ctx, root, initial, signal) {
  const input = h("input", {id: "anchor-batch", type: "text", autocomplete: "off", spellcheck: false, attrs: {list: "anchor-batches"}});
  const choices = h("datalist", {id: "anchor-batches"});
  const result = h("div", {id: "anchor-result", attrs: {"aria-live": "polite"}});
  try {
    const batches = await api("/v1/batches", {signal});
    add(choices, batches.filter((b) => b.tx_hash).reverse().map((b) => h("option", {value: b.batch_id, label: `${b.institution_id} · ${b.source_name}`})));
  } catch (error) {
    if (signal.aborted) throw error;
  }
  const check = async () => {
    const batchId = input.value.trim();
    clear(result);
    if (!batchId) {
      add(result, h("p", {class: "error", attrs: {role: "alert"}, text: t("audit.anchor_empty")}));
      return;
    }
    add(result, h("p", {class: "hint", text: t("audit.anchor_checking")}));
    try {
      const report = await api(`/v1/batches/${encodeURIComponent(batchId)}/anchor`, {signal});
      add(clear(result), anchorVerdict(report));
    } catch (error) {
      if (!signal.aborted) add(clear(result), ctx.failure(error));
    }
  };
  const form = h("form", {id: "anchor-form", on: {submit: (event) => {
    event.preventDefault();
    check();
  }}},
  field(t("audit.anchor_batch"), input, t("audit.anchor_hint")), choices,
  h("div", {class: "actions"}, h("button", {type: "submit", class: "primary", id: "anchor-submit", text: t("audit.anchor_check")})));
  add(root, h("section", {class: "card", id: "anchor-card"}, h("h2", {text: t("audit.anchor")}),
    h("p", {class: "hint", text: t("audit.anchor_lead")}), form, result));
  if (initial) {
    input.value = initial;
    await check();
  }
}

function anchorVerdict(report) {
  return h("div", {id: "anchor-verdict", dataset: {ok: String(report.ok)}},
    h("h3", null, h("span", {class: report.ok ? "ok" : "bad", text: report.ok ? t("audit.anchor_ok") : t("audit.anchor_bad")})),
    h("ol", {class: "checks-list"}, report.checks.map((c) => h("li", {dataset: {check: c.name, ok: String(c.ok)}},
      h("span", {class: c.ok ? "ok" : "bad", attrs: {"aria-hidden": "true"}, text: c.ok ? "✓ " : "✗ "}),
      h("span", {class: "sr-only", text: (c.ok ? t("audit.passed") : t("audit.failed")) + ": "}),
      h("strong", {text: term("check", c.name)}), " — ", c.detail))),
    facts([
      [t("record.batch"), code(report.batch_id)],
      [t("audit.anchor_chain"), code(report.chain_id)],
      [t("audit.anchor_contract"), code(report.contract_address)],
      [t("audit.anchor_tx"), code(report.tx_hash)],
      [t("audit.anchor_block"), code(report.block_number)],
    ]));
}

function verdict(report) {
  return h("section", {class: "card", id: "verdict"},
    h("h2", null, h("span", {class: report.ok ? "ok" : "bad", text: report.ok ? t("audit.valid") : t("audit.invalid")})),
    h("p", {class: "hint"}, t("record.id") + " ", code(report.record_id), " · ", t("record.batch") + " ", code(report.batch_id)),
    h("ul", {class: "checks-list"}, report.checks.map((c) => h("li", {dataset: {check: c.name, ok: String(c.ok)}},
      h("span", {class: c.ok ? "ok" : "bad", attrs: {"aria-hidden": "true"}, text: c.ok ? "✓ " : "✗ "}),
      h("span", {class: "sr-only", text: (c.ok ? t("audit.passed") : t("audit.failed")) + ": "}),
      h("strong", {text: term("check", c.name)}), " — ", c.reason))));
}

/** The proof path drawn from the bundle itself: leaf, each sibling and parent, the root. */
function pathView(bundle) {
  const box = h("section", {class: "card", id: "proof-path"}, h("h2", {text: t("audit.path")}));
  let walk;
  try {
    walk = proofPath(bundle.leaf, bundle.proof || []);
  } catch (error) {
    add(box, h("p", {class: "error", text: t("audit.path_unreadable", {reason: error.message})}));
    return box;
  }
  const items = [];
  if (bundle.record_hash && bundle.salt) {
    let leafOk = null;
    try {
      const joined = new Uint8Array(64);
      joined.set(fromHex(bundle.record_hash));
      joined.set(fromHex(bundle.salt), 32);
      leafOk = toHex(keccak256(keccak256(joined))) === String(bundle.leaf).toLowerCase();
    } catch {
      leafOk = false;
    }
    items.push(h("li", {dataset: {level: "leaf"}},
      h("strong", {text: t("audit.leaf")}), " ", code(bundle.leaf), " ",
      h("span", {class: leafOk ? "ok" : "bad", text: leafOk ? t("audit.leaf_ok") : t("audit.leaf_bad")})));
  } else {
    items.push(h("li", {dataset: {level: "leaf"}}, h("strong", {text: t("audit.leaf")}), " ", code(bundle.leaf)));
  }
  walk.steps.forEach((step, i) => {
    items.push(h("li", {dataset: {level: String(i + 1)}},
      h("div", {class: "sib"}, t(step.siblingFirst ? "audit.sibling_left" : "audit.sibling_right", {level: i + 1}), " ", code(step.sibling)),
      h("div", null, h("strong", {text: t("audit.node", {level: i + 1})}), " ", code(step.parent))));
  });
  const matches = walk.root.toLowerCase() === String(bundle.root || "").toLowerCase();
  items.push(h("li", {class: "root", dataset: {level: "root"}},
    h("strong", {text: t("audit.root")}), " ", code(bundle.root), " ",
    h("span", {class: matches ? "ok" : "bad", id: "path-verdict", text: matches ? t("audit.root_ok") : t("audit.root_bad", {computed: walk.root})})));
  add(box, h("p", {class: "hint", text: t("audit.path_lead")}), h("ol", {class: "proof-path"}, items));
  return box;
}
