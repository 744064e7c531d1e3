// 操作员工作台: take the next lead to call (POST /calls/next), record each call's result in one
// click or key, see what the escalation ladder did; the person's history and the lead's timeline
// beside it, the call queue (who holds which) and the callbacks due below, active alarms on top.
"use strict";

const api = new Api(sessionStorage, "quanzu.desk");

// One button per call result; keys 1–8 in this order.
const RESULTS = [
  {key: "dissuaded", label: "接通-已劝阻", result: "connected", outcome: "dissuaded", kind: "good"},
  {key: "refused", label: "接通-拒不配合", result: "connected", outcome: "refused", kind: "bad"},
  {key: "already_defrauded", label: "接通-已被骗", result: "connected", outcome: "already_defrauded", kind: "bad"},
  {key: "no_answer", label: "无人接听", result: "no_answer", kind: "fail"},
  {key: "busy", label: "忙线", result: "busy", kind: "fail"},
  {key: "powered_off", label: "关机", result: "powered_off", kind: "fail"},
  {key: "rejected", label: "拒接", result: "rejected", kind: "fail"},
  {key: "invalid_number", label: "空号", result: "invalid_number", kind: "fail"},
];
const CALL_RESULT_LABEL = {connected: "接通", no_answer: "无人接听", busy: "忙线", powered_off: "关机", rejected: "拒接",
                           invalid_number: "空号"};
const RULE_LABEL = {
  failed_calls: "多次未接通，已升级为见面劝阻", invalid_number_placed: "空号（人在辖区）→ 见面劝阻",
  invalid_number_unplaced: "空号（未定位）→ 退回中心研判", refused_by_phone: "拒不配合 → 见面劝阻",
  dissuaded_by_phone: "电话劝阻成功，线索已结案", dissuaded_visit_still_required: "已劝阻，仍需见面劝阻",
  already_defrauded: "已被骗 → 升为 P0，紧急止付并见面", closed_by_phone: "电话核实后结案",
  no_connection: "限时内未接通 → 见面劝阻", sms_failed: "短信失败 → 转电话", callback_defrauded: "回访发现被骗 → 见面",
};
const ESCALATING = new Set(["failed_calls", "invalid_number_placed", "invalid_number_unplaced", "refused_by_phone",
                            "already_defrauded", "no_connection", "callback_defrauded"]);
const STEP_LABEL = {triage: "研判", sign: "签收", first_call: "首次通话", call_retry: "重拨", connected_call: "接通",
                    sms: "短信", visit_waiting: "待派队", visit_offered: "已推送处置队", on_the_way: "赶赴现场",
                    on_scene: "到场", visit: "见面劝阻", center: "中心研判", callback: "回访", working: "处置中",
                    checkin: "报平安"};
const LEVEL_LABEL = {duty_officer: "值班员", duty_commander: "值班长", center_head: "中心负责人"};
const ROLE_LABEL = {admin: "管理员", commander: "指挥长", operator: "操作员"};
const WARNING_LABEL = {fraud_call: "涉诈电话", fraud_sms: "涉诈短信", fraud_app: "涉诈APP", fraud_url: "涉诈网址",
                       fund_transfer: "资金预警", citizen_report: "群众举报"};
const CALLBACK_LABEL = {safe: "回访：安全", defrauded: "回访：已被骗", not_reached: "回访：未联系上"};
const EVENT_LABEL = {
  received: "接收", placed: "定位", tiered: "分级", signed: "签收", call: "通话", escalated: "升级",
  sms_queued: "短信排队", sms_sent: "短信已发", sms_delivered: "短信送达", sms_failed: "短信失败", sms_skipped: "未发短信",
  offered: "推送处置队", accepted: "处置队接单", declined: "处置队拒单", expired: "推送超时", withdrawn: "推送撤回",
  arrived: "到场", visit_failed: "见面失败", visit_cancelled: "见面取消", closed: "结案", reopened: "重新打开",
  callback: "回访", transferred: "移交", tier_raised: "升级", tier_overridden: "人工改级", stop_payment: "紧急止付",
  returned_to_center: "退回中心", case_follow_up: "案件跟进", deadline_missed: "超时", alarm_raised: "告警",
  alarm_escalated: "告警升级", alarm_acked: "告警已确认", alarm_resolved: "告警解除", claimed: "领取", released: "释放",
  processing_failed: "处理失败", visit_requested: "发起见面劝阻", claim_released: "释放领取", checkin: "报平安",
  checkin_missed: "报平安超时",
};

function maskPhone(p) {
  if (!p) return "—";
  const d = String(p).replace(/\D/g, "");
  return d.length >= 7 ? d.slice(0, 3) + "****" + d.slice(-4) : "****";
}
function csvCell(v) {
  const s = v == null ? "" : String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

const view = {beats: {}};  // beat code → name, outside the reactive store

const store = PetiteVue.reactive({
  session: api.session, form: {username: "", password: ""}, loginError: "",
  live: "connecting", now: Date.now(), paths: false,
  current: null, claimedUntil: null, showPhone: false, note: "", last: null, empty: false, busy: false, deskError: "",
  focusId: null, focusDetail: null, history: null, timeline: [],
  queue: [], callbacks: [], alarms: [], acking: {}, loss: {},
  RESULTS,

  get clock() { return new Date(this.now).toLocaleString("zh-CN", {hour12: false}); },
  get liveText() { return {connected: "● 实时", connecting: "○ 连接中", disconnected: "✕ 已断开"}[this.live]; },
  get canNext() { return this.paths && api.has("post", "/api/v1/calls/next"); },
  get canRelease() { return this.paths && api.has("delete", "/api/v1/leads/{}/claim"); },
  get resumeId() {  // a lead this operator still holds (a reload, another tab): 下一条 gives it back first
    if (this.current || !this.session) return null;
    const q = this.queue.find(x => x.claimed_by === this.session.username);
    return q ? q.id : null;
  },
  get earlierLeads() { return ((this.history || {}).leads || []).filter(l => l.id !== this.focusId).slice(-8).reverse(); },
  get earlierCalls() { return ((this.history || {}).calls || []).slice(-8).reverse(); },
  get historyTotals() {
    const t = (this.history || {}).totals || {};
    return `预警 ${t.warnings ?? 0} · 通话 ${t.calls ?? 0} · 短信 ${t.sms ?? 0} · 见面 ${t.visits ?? 0} · 案件 ${t.cases ?? 0}`;
  },

  // ---- words
  tierText(t) { return TIER_LABEL[t] || "未分级"; },
  fraudText(f) { return FRAUD_LABEL[f] || f || "—"; },
  warningText(w) { return WARNING_LABEL[w] || w || "—"; },
  statusText(s) { return STATUS_LABEL[s] || s || "—"; },
  outcomeText(o) { return o ? OUTCOME_LABEL[o] || o : "—"; },
  stepText(s) { return s ? STEP_LABEL[s] || s : "—"; },
  ruleText(r) { return RULE_LABEL[r] || r; },
  escalating(r) { return ESCALATING.has(r); },  // (a Set cannot sit in petite-vue's store)
  roleText(r) { return ROLE_LABEL[r] || r; },
  alarmKindText(k) { return STEP_LABEL[k] || k; },
  levelText(a) { return LEVEL_LABEL[a.level_name] || `第 ${a.level} 级`; },
  escalateText(a) {
    const left = Date.parse(a.escalate_at) - this.now;
    return left > 0 ? clockText(left) + " 后升级" : "即将升级";
  },
  callText(result, outcome) {
    return (CALL_RESULT_LABEL[result] || result) + (outcome ? "-" + (OUTCOME_LABEL[outcome] || outcome) : "");
  },
  eventText(e) {
    const d = e.data || {};
    let s = EVENT_LABEL[e.kind] || e.kind;
    if (e.kind === "call") s += "：" + this.callText(d.result, d.outcome);
    if (e.kind === "callback") s += "：" + (CALLBACK_LABEL[d.result] || d.result || "");
    if (e.kind === "deadline_missed" || e.kind.startsWith("alarm_")) s += "：" + this.stepText(d.name || d.kind);
    if (e.kind === "escalated") return s + "：" + (RULE_LABEL[d.rule] || (d.rule || "") + (d.to === "visit" ? " → 见面劝阻" : ""));
    if (d.rule) s += "（" + this.ruleText(d.rule) + "）";
    return s;
  },
  money(x) { return x == null ? "—" : "¥" + Number(x).toLocaleString("zh-CN", {minimumFractionDigits: 2, maximumFractionDigits: 2}); },
  beatName(code) { return code ? view.beats[code] || code : "—"; },
  placeText(l) {
    if (!l) return "—";
    if (!l.beat_code && !l.street_code) return l.in_jurisdiction === false ? "辖区外" : "未定位";
    return this.beatName(l.beat_code);
  },
  maskedOf(x) { const s = (x && x.subject) || {}; return s.phone_masked || maskPhone(s.phone); },
  amountOf(l) { if (!l) return null; return l.amount_cny ?? (this.focusDetail && this.focusDetail.id === l.id ? this.focusDetail.amount_cny : null); },
  timeText(t) { return t ? new Date(t).toLocaleTimeString("zh-CN", {hour12: false}) : "—"; },
  dateText(t) { return t ? new Date(t).toLocaleString("zh-CN", {hour12: false, month: "2-digit", day: "2-digit",
                                                               hour: "2-digit", minute: "2-digit"}) : "—"; },
  // The step a lead is on and its deadline: the shift's queue fields when there, else the next pending deadline.
  stepOf(l) {
    if (!l) return {};
    if (l.step !== undefined || l.step_due_at !== undefined) return {name: l.step, due_at: l.step_due_at};
    const d = l.next_deadline || {};
    return {name: d.name, due_at: d.due_at};
  },
  due(at) {
    if (!at) return {text: "—", overdue: false};
    const left = Date.parse(at) - this.now;
    return {text: left < 0 ? "超时 " + clockText(left) : clockText(left), overdue: left < 0};
  },
  claimLeft() { return this.claimedUntil ? (Date.parse(this.claimedUntil) - this.now) / 1000 : Infinity; },
  claimText() { const s = this.claimLeft(); return s <= 0 ? "已过期" : clockText(s * 1000); },
  // The retry timer after a failed call (queue items' next_call_at), while it is still ahead.
  retryOf(id) {
    const q = this.queue.find(x => x.id === id);
    const at = q && q.next_call_at;
    return at && Date.parse(at) > this.now ? at : null;
  },
  retryText(at) { return clockText(Date.parse(at) - this.now) + " 后"; },

  // ---- actions
  async login() {
    this.loginError = "";
    try { this.session = await api.login(this.form.username, this.form.password); start(); }
    catch (e) { this.loginError = e.message; }
  },
  logout() { api.logout(); location.reload(); },

  async takeNext() {
    if (this.busy || !this.canNext) return;
    this.busy = true; this.deskError = "";
    try {
      const r = await api.post("/api/v1/calls/next", {});
      this.empty = !r.item;
      this.current = r.item; this.claimedUntil = r.claimed_until;
      this.showPhone = false; this.note = "";
      if (r.item) { this.last = null; focus(r.item); }
      refreshSoon();
    } catch (e) { this.deskError = e.message; }
    finally { this.busy = false; }
  },
  async record(r) {
    const lead = this.current;
    if (!lead || this.busy) return;
    this.busy = true; this.deskError = "";
    const body = {result: r.result};
    if (r.outcome) body.outcome = r.outcome;
    if (this.note.trim()) body.note = this.note.trim();
    try {
      const answer = await api.post(`/api/v1/leads/${lead.id}/calls`, body);
      this.last = {lead_id: lead.id, label: r.label, rules: answer.rules || [], lead: answer.lead || {}};
      this.current = null; this.claimedUntil = null; this.showPhone = false; this.note = ""; this.empty = false;
      refreshQueue().catch(() => {});
      loadFocus(lead.id).catch(() => {});  // the timeline shows what the ladder wrote
    } catch (e) { this.deskError = e.message; }
    finally { this.busy = false; }
  },
  async release() {
    const lead = this.current;
    if (!lead || this.busy) return;
    this.busy = true; this.deskError = "";
    try {
      await api.call("DELETE", `/api/v1/leads/${lead.id}/claim`);
      this.current = null; this.claimedUntil = null; this.showPhone = false;
      refreshSoon();
    } catch (e) { this.deskError = e.message; }
    finally { this.busy = false; }
  },
  async ack(a) {
    this.acking[a.id] = true;
    try {
      await api.post(`/api/v1/alarms/${a.id}/ack`);
      this.alarms = this.alarms.filter(x => x.id !== a.id);
    } catch (e) {
      if (e.status === 409) this.alarms = this.alarms.filter(x => x.id !== a.id);  // someone else acked it
      else this.deskError = e.message;
    } finally { delete this.acking[a.id]; }
  },
  async callback(c, result) {
    if (this.busy) return;
    this.busy = true; this.deskError = "";
    const body = {result};
    const loss = this.loss[c.callback_id];
    if (result === "defrauded" && loss !== undefined && loss !== "" && loss !== null) body.loss_cny = Number(loss);
    try {
      await api.post(`/api/v1/leads/${c.lead_id}/callbacks`, body);
      this.callbacks = this.callbacks.filter(x => x.callback_id !== c.callback_id);
      refreshCallbacks().catch(() => {});
    } catch (e) { this.deskError = e.message; }
    finally { this.busy = false; }
  },
  exportCsv() {
    const head = ["顺序", "级别", "线索", "诈骗类型", "电话", "警务区", "当前环节", "时限", "已拨", "未接通", "重拨时间", "认领人"];
    const rows = this.queue.map((q, i) => {
      const step = this.stepOf(q);
      return [i + 1, q.tier || "", q.id, this.fraudText(q.fraud_type), this.maskedOf(q), this.beatName(q.beat_code),
              this.stepText(step.name), step.due_at || "", q.calls ?? 0, q.failed_calls ?? "", q.next_call_at || "",
              q.claimed_by || ""];
    });
    const text = "\ufeff" + [head, ...rows].map(r => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
    const url = URL.createObjectURL(new Blob([text], {type: "text/csv;charset=utf-8"}));
    const a = document.createElement("a");
    const stamp = new Date(this.now + 8 * 3600e3).toISOString().slice(0, 16).replace(/[-:T]/g, "");
    a.href = url; a.download = `待拨队列-${stamp}.csv`;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  },
});

// ---------------------------------------------------------------- the lead in focus: history and timeline
let focusSeq = 0;
function focus(item) {
  store.focusId = item.id; store.history = null; store.timeline = []; store.focusDetail = null;
  loadFocus(item.id).catch(e => console.warn("timeline", e));
  if (item.subject && item.subject.phone) {
    const seq = ++focusSeq;
    api.post("/api/v1/people/history", {phone: item.subject.phone})
      .then(h => { if (seq === focusSeq) store.history = h; })
      .catch(e => { if (seq === focusSeq) store.history = {leads: [], calls: [], totals: {}}; console.warn("history", e); });
  } else {
    store.history = {leads: [], calls: [], totals: {}};
  }
}
async function loadFocus(id) {
  const d = await api.get(`/api/v1/leads/${id}`);
  if (store.focusId !== id) return;
  store.focusDetail = {id: d.id, amount_cny: d.amount_cny};
  store.timeline = (d.timeline || []).slice().reverse();
}

// ---------------------------------------------------------------- lists
async function refreshQueue() {
  const r = await api.get("/api/v1/calls/queue?limit=200");
  store.queue = r.items || [];
  // The claim on my lead may have been lost (expired and taken): the queue says who holds it.
  const cur = store.current && store.queue.find(q => q.id === store.current.id);
  if (cur && cur.claimed_by && cur.claimed_by !== store.session.username) {
    store.deskError = `线索 #${cur.id} 已被 ${cur.claimed_by} 领取`;
    store.current = null; store.claimedUntil = null;
  } else if (cur && cur.claimed_until) {
    store.claimedUntil = cur.claimed_until;
  }
}
async function refreshCallbacks() {
  const r = await api.get("/api/v1/callbacks/due?limit=100");
  store.callbacks = r.items || [];
}
async function refreshAlarms() {
  if (!api.has("get", "/api/v1/alarms")) return;
  const r = await api.get("/api/v1/alarms?limit=50");
  store.alarms = r.items || [];
}
async function loadBeats() {
  const r = await api.get("/api/v1/geo/beats");
  for (const f of r.features || []) view.beats[f.properties.code] = f.properties.name;
}

// ---------------------------------------------------------------- sound: a short beep for P0 (WebAudio, no files)
let audio = null;
function unlockAudio() {
  try {
    if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch { audio = null; }
}
function beep() {
  if (!audio || audio.state !== "running") return;
  const t = audio.currentTime;
  for (const [at, f] of [[0, 880], [0.25, 660]]) {
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = f; o.type = "square";
    g.gain.setValueAtTime(0.0001, t + at);
    g.gain.exponentialRampToValueAtTime(0.2, t + at + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.2);
    o.connect(g).connect(audio.destination);
    o.start(t + at); o.stop(t + at + 0.22);
  }
}
document.addEventListener("pointerdown", unlockAudio);

// ---------------------------------------------------------------- live
const timers = {};
function soon(name, fn, ms) {  // many events in a burst → one read
  clearTimeout(timers[name]);
  timers[name] = setTimeout(() => fn().catch(e => console.warn(name, e)), ms);
}
function refreshSoon() {
  soon("queue", refreshQueue, 250);
  soon("callbacks", refreshCallbacks, 400);
}
function isActive(a) { return !a.acked_at && !a.resolved_at && !(a.data && a.data.resolved) && !a.resolved; }
function onBoard(msg) {
  const d = msg.data || {};
  if (msg.type === "alarm.raised" || msg.type === "alarm.updated") {
    const rest = store.alarms.filter(a => a.id !== d.id);
    store.alarms = isActive(d) ? [d, ...rest].sort((a, b) => b.level - a.level
                                                     || String(a.tier).localeCompare(String(b.tier))
                                                     || Date.parse(a.raised_at) - Date.parse(b.raised_at)) : rest;
    if (msg.type === "alarm.raised" && d.tier === "P0") beep();
    soon("alarms", refreshAlarms, 500);  // the order and levels as the server sees them
    refreshSoon();
  } else if (msg.type === "lead.created" || msg.type === "lead.updated") {
    refreshSoon();
    if (store.focusId && d.lead_id === store.focusId) soon("focus", () => loadFocus(store.focusId), 300);
  }
}
function onLive(state) {
  if (state === "connected" && store.live !== "connected") { refreshSoon(); soon("alarms", refreshAlarms, 50); }
  store.live = state;
}

// ---------------------------------------------------------------- keys: N next, 1–8 results
document.addEventListener("keydown", (ev) => {
  unlockAudio();
  if (!store.session || ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
  const tag = (ev.target && ev.target.tagName) || "";
  if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || (ev.target && ev.target.isContentEditable)) return;
  if (ev.key === "n" || ev.key === "N") { ev.preventDefault(); store.takeNext(); return; }
  const i = "12345678".indexOf(ev.key);
  if (i >= 0 && ev.key.length === 1 && store.current) { ev.preventDefault(); store.record(RESULTS[i]); }
});

async function start() {
  unlockAudio();
  await api.loadPaths();
  store.paths = true;
  await Promise.all([loadBeats().catch(e => console.warn("beats", e)), refreshQueue(), refreshCallbacks(),
                     refreshAlarms()]);
  new Live("/api/v1/board/ws", api, {onMessage: onBoard, onState: onLive, seqKey: "quanzu.desk.seq"}).start();
  // Without events the lists still move: often while the socket is down, now and then when it is up.
  let ticks = 0;
  setInterval(() => {
    ticks += 1;
    if (store.live !== "connected" ? ticks % 3 === 0 : ticks % 15 === 0) {
      refreshSoon(); soon("alarms", refreshAlarms, 50);
    }
  }, 1000);
}

api.onUnauthorized = () => { api.logout(); store.session = null; };
setInterval(() => { store.now = Date.now(); }, 1000);
PetiteVue.createApp(store).mount("#app");
if (store.session) start().catch(e => console.warn("start failed", e));
