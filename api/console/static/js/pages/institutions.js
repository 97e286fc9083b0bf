// Institutions and their BYR balances (GET /v1/balances joined with GET /v1/institutions), and
// behind each balance its chain transactions: every rewarded batch with its reward, the reward's
// mint transaction and the batch's anchor transaction (GET /v1/batches?institution_id=...).
// A contributor's answer holds its own balance only, and only that row is shown.

import {api, withQuery} from "../api.js";
import {h, table, row, shortCode, byr, number, add, link} from "../dom.js";
import {t} from "../i18n.js";

export const page = {
  id: "institutions",
  title: "nav.institutions",
  allowed: (ctx) => ctx.can("balances"),
  render,
};

// Who may check an anchor on chain (the audit page's anchor check), as docs/API.md says.
const ANCHOR_ROLES = ["auditor", "admin", "contributor"];

async function render(ctx, root, params, signal) {
  const [balances, institutions] = await Promise.all([api("/v1/balances", {signal}), api("/v1/institutions", {signal})]);
  const names = new Map(institutions.map((i) => [i.institution_id, i]));
  const byInstitution = new Map(balances.map((b) => [b.institution_id, b]));
  // Everyone who may read every balance sees every institution (a zero balance included).
  const ids = ctx.can("balances.all") ? institutions.map((i) => i.institution_id) : balances.map((b) => b.institution_id);
  const rows = ids.map((id) => {
    const info = names.get(id) || {};
    const balance = byInstitution.get(id) || {amount_wei: "0", rewards: 0, account: info.account};
    return {id, name: info.name || id, account: balance.account || info.account, active: info.active, amount: balance.amount_wei, rewards: balance.rewards};
  }).sort((a, b) => (BigInt(b.amount || "0") > BigInt(a.amount || "0") ? 1 : -1));
  const withRewards = rows.filter((r) => r.rewards > 0);
  const batches = await Promise.all(withRewards.map((r) => api(withQuery("/v1/batches", {institution_id: r.id}), {signal})));
  const mayCheck = Boolean(ctx.me && (ctx.me.local || ANCHOR_ROLES.includes(ctx.me.role)));
  add(root, h("h1", {text: t("institutions.title")}),
    h("section", {class: "card"}, h("h2", {text: t("institutions.balances")}),
      ctx.can("balances.all") ? null : h("p", {class: "hint", text: t("institutions.own_only")}),
      rows.length
        ? table(t("institutions.balances"),
          [t("institutions.name"), t("institutions.id"), t("institutions.account"), t("institutions.balance"), t("institutions.rewards"), t("institutions.active")],
          rows.map((r) => row(r.name, r.id, shortCode(r.account, 8), byr(r.amount) + " BYR", number(r.rewards),
            r.active === false ? t("institutions.inactive") : t("institutions.yes"))))
        : h("p", {text: t("institutions.none")})),
    withRewards.map((r, i) => ledgerOf(r, batches[i], mayCheck)));
}

/** One institution's rewarded batches: what each paid, its mint and its anchor transactions. */
function ledgerOf(institution, batches, mayCheck) {
  const rewarded = batches.filter((b) => b.reward_tx_hash);
  const total = rewarded.reduce((sum, b) => sum + BigInt(b.reward_wei || "0"), 0n);
  const title = t("institutions.txs", {name: institution.name});
  const headers = [t("institutions.tx_batch"), t("institutions.tx_reward"), t("institutions.tx_reward_hash"), t("institutions.tx_anchor_hash"), t("institutions.tx_block")];
  if (mayCheck) headers.push(t("institutions.tx_audit"));
  const lines = rewarded.map((b) => {
    const cells = [
      link(`#/data/batch/${encodeURIComponent(b.batch_id)}`, b.batch_id.slice(0, 12) + "…"),
      byr(b.reward_wei) + " BYR",
      shortCode(b.reward_tx_hash, 10),
      shortCode(b.tx_hash, 10),
      number(b.block_number),
    ];
    if (mayCheck) cells.push(link(`#/audit/anchor/${encodeURIComponent(b.batch_id)}`, t("institutions.tx_check")));
    const tr = row(...cells);
    tr.dataset.batch = b.batch_id;
    tr.dataset.rewardTx = b.reward_tx_hash;
    tr.dataset.anchorTx = b.tx_hash || "";
    return tr;
  });
  const matches = total === BigInt(institution.amount || "0");
  return h("section", {class: "card", id: `txs-${institution.id}`, dataset: {institution: institution.id}},
    h("h2", {text: title}),
    rewarded.length
      ? [table(title, headers, lines),
        h("p", {class: "hint", dataset: {total: total.toString()}},
          t("institutions.tx_total", {count: rewarded.length, amount: byr(total.toString())}), " ",
          h("span", {class: matches ? "ok" : "bad", text: matches ? t("institutions.tx_total_ok") : t("institutions.tx_total_bad")}))]
      : h("p", {text: t("institutions.tx_none")}));
}
