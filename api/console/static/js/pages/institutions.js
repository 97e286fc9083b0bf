// Institutions and their BYR balances (GET /v1/balances joined with GET /v1/institutions).
// A contributor's answer holds its own balance only, and only that row is shown.

import {api} from "../api.js";
import {h, table, row, shortCode, byr, number, add} from "../dom.js";
import {t} from "../i18n.js";

export const page = {
  id: "institutions",
  title: "nav.institutions",
  allowed: (ctx) => ctx.can("balances"),
  render,
};

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
  add(root, h("h1", {text: t("institutions.title")}),
    h("section", {class: "card"}, h("h2", {text: t("institutions.balances")}),
      ctx.can("balances.all") ? null : h("p", {class: "hint", text: t("institutions.own_only")}),
      rows.length
        ? table(t("institutions.balances"),
          [t("institutions.name"), t("institutions.id"), t("institutions.account"), t("institutions.balance"), t("institutions.rewards"), t("institutions.active")],
          rows.map((r) => row(r.name, r.id, shortCode(r.account, 8), byr(r.amount) + " BYR", number(r.rewards),
            r.active === false ? t("institutions.inactive") : t("institutions.yes"))))
        : h("p", {text: t("institutions.none")})));
}
