// 预警后发案倒查: the review of one case (GET /api/v1/reviews/{case_id}), laid out for print.
// Everything it shows comes from the API, masked there; nothing is loaded from outside.
"use strict";
const api = new Api(sessionStorage, "quanzu.desk");  // the desk's session, when it is open in this tab
const $ = (id) => document.getElementById(id);

const KIND = {
  received: "收到预警", placed: "定位", tiered: "分级", transferred: "移交", signed: "签收", closed: "结案",
  escalated: "升级", call: "电话", call_outcome: "电话结果", dial: "拨号", sms: "短信", sms_queued: "短信排队",
  sms_skipped: "短信未发", visit_requested: "申请见面", dispatch: "派单", offered: "派单", accepted: "接单",
  declined: "拒单", withdrawn: "撤单", arrived: "到场", checkin: "报平安", visit_completed: "完成见面",
  visit_failed: "见面未成", visit_cancelled: "取消见面", callback: "回访", family_added: "添加家属",
  family_notified: "通知家属", stop_payment: "止付", stop_payment_requested: "申请止付",
  stop_payment_answered: "止付答复", post_warning_case: "预警后发案", tier_overridden: "改级", tier_raised: "升级",
  reopened: "重开", returned_to_center: "退回中心", contact_round: "持续联系", contact_stopped: "停止联系",
  claimed: "领取", claim_released: "释放", alarm_acked: "告警确认", case_follow_up: "案件跟进",
};
const VERDICT = {met: "按时", late: "超时完成", missed: "超时未办", cancelled: "取消", pending: "未到期"};
const DEADLINE = {sign: "签收", sms: "短信", first_call: "首次电话", connected_call: "电话拨通", visit: "见面",
  on_scene: "到场", callback: "回访", checkin: "报平安", stop_payment: "止付答复"};
const TOLD = {sms: "短信", family: "家属", squad: "劝阻小组"};

function esc(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") v = JSON.stringify(v);
  return String(v).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
}
const time = (t) => (t ? esc(t.replace("T", " ").slice(0, 19)) : "");

function table(title, cols, rows) {
  const head = cols.map(([label]) => `<th>${esc(label)}</th>`).join("");
  const body = rows.length
    ? rows.map((r) => "<tr>" + cols.map(([, f]) => `<td>${f(r)}</td>`).join("") + "</tr>").join("")
    : `<tr><td colspan="${cols.length}">无</td></tr>`;
  return `<h2>${esc(title)}（${rows.length}）</h2><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function render(r) {
  const c = r.case, t = r.totals;
  const head = [["案件编号", esc(c.case_id)], ["报案时间", time(c.reported_at)], ["受害人电话", esc(c.victim.phone)],
    ["身份证号", esc(c.victim.id_number)], ["诈骗类型", esc(c.fraud_type)], ["损失（元）", esc(c.loss_cny)],
    ["预警线索", esc(r.lead_id)], ["倒查生成", time(r.generated_at)], ["预警次数", t.warnings],
    ["电话（拨通）", `${t.calls}（${t.connected}）`], ["短信", t.sms], ["见面", t.visits],
    ["时限（超时）", `${t.deadlines}（${t.deadlines_missed + t.deadlines_late}）`], ["通知对象", t.told]]
    .map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  $("review").innerHTML = `<h1>预警后发案倒查 ${esc(c.case_id)}</h1><dl class="head">${head}</dl>`
    + table("预警线索", [["线索", (l) => esc(l.id)], ["来源", (l) => esc(l.source)], ["推送", (l) => time(l.pushed_at)],
        ["类型", (l) => esc(l.fraud_type)], ["等级", (l) => esc(l.tier)], ["状态", (l) => esc(l.status)],
        ["签收", (l) => time(l.signed_at) + " " + esc(l.signed_by)], ["结果", (l) => esc(l.outcome)],
        ["结案", (l) => time(l.closed_at)]], r.leads)
    + table("处置过程", [["时间", (a) => time(a.at)], ["线索", (a) => esc(a.lead_id)], ["操作人", (a) => esc(a.actor)],
        ["动作", (a) => esc(KIND[a.kind] || a.kind)], ["内容", (a) => `<span class="small">${esc(a.data)}</span>`]],
        r.actions)
    + table("时限", [["线索", (d) => esc(d.lead_id)], ["时限", (d) => esc(DEADLINE[d.name] || d.name)],
        ["应完成", (d) => time(d.due_at)], ["完成", (d) => time(d.met_at)],
        ["判定", (d) => `<span class="${esc(d.verdict)}">${esc(VERDICT[d.verdict] || d.verdict)}</span>`]], r.deadlines)
    + table("通知对象", [["方式", (x) => esc(TOLD[x.kind] || x.kind)], ["线索", (x) => esc(x.lead_id)],
        ["对象", (x) => esc(x.phone || x.team_code || "") + (x.name ? " " + esc(x.name) + "（" + esc(x.relation) + "）" : "")],
        ["状态", (x) => esc(x.status || x.purpose || "")], ["时间", (x) => time(x.at)]], r.told)
    + table("电话", [["时间", (x) => time(x.at)], ["线索", (x) => esc(x.lead_id)], ["操作人", (x) => esc(x.actor)],
        ["结果", (x) => esc(x.result)], ["劝阻结果", (x) => esc(x.outcome)]], r.calls)
    + table("见面", [["线索", (x) => esc(x.lead_id)], ["原因", (x) => esc(x.reason)], ["请求", (x) => time(x.requested_at)],
        ["应到场", (x) => time(x.due_at)], ["小组", (x) => esc(x.team_code)], ["状态", (x) => esc(x.status)],
        ["完成", (x) => time(x.done_at)], ["结果", (x) => esc(x.outcome)]], r.visits)
    + table("回访", [["线索", (x) => esc(x.lead_id)], ["应回访", (x) => time(x.due_at)], ["完成", (x) => time(x.done_at)],
        ["回访人", (x) => esc(x.actor)], ["结果", (x) => esc(x.result)]], r.callbacks)
    + table("止付", [["线索", (x) => esc(x.lead_id)], ["银行", (x) => esc(x.bank)], ["申请", (x) => time(x.requested_at)],
        ["状态", (x) => esc(x.status)], ["答复", (x) => time(x.answered_at)], ["止付金额", (x) => esc(x.saved_cny)]],
        r.stop_payment);
}

async function show(caseId) {
  $("error").textContent = "";
  $("pick").case.value = caseId;
  $("xlsx").onclick = (e) => { e.preventDefault(); download(caseId); };
  try {
    render(await api.get(`/api/v1/reviews/${encodeURIComponent(caseId)}`));
    document.title = `倒查 ${caseId}`;
  } catch (e) {
    $("review").innerHTML = "";
    $("error").textContent = e.status === 404 ? "没有该案件的倒查（案件不存在或未匹配预警）" : e.message;
  }
}

async function download(caseId) {
  const r = await fetch(`/api/v1/reviews/${encodeURIComponent(caseId)}/xlsx`,
                        {headers: {Authorization: "Bearer " + api.session.token}});
  if (!r.ok) { $("error").textContent = `下载失败 (${r.status})`; return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = `review-${caseId}.xlsx`;
  a.click();
}

function start() {
  $("login").hidden = true;
  $("pick").hidden = false;
  const caseId = new URLSearchParams(location.search).get("case");
  if (caseId) show(caseId);
}

api.onUnauthorized = () => { api.logout(); $("pick").hidden = true; $("login").hidden = false; };
$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { await api.login(e.target.username.value, e.target.password.value); start(); }
  catch (err) { $("login-error").textContent = err.message; }
});
$("pick").addEventListener("submit", (e) => {
  e.preventDefault();
  history.replaceState(null, "", `?case=${encodeURIComponent(e.target.case.value)}`);
  show(e.target.case.value);
});
$("print").addEventListener("click", () => window.print());
if (api.session) start(); else $("login").hidden = false;
