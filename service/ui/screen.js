// 指挥中心大屏: the queue of all open work (GET /queue), alarms, map, squads, KPIs, the center's actions
// and the commander's panels, over REST and the board socket.
"use strict";

const api = new Api(sessionStorage, "quanzu.screen");
const ACTIONS = {  // action → [method, path pattern]; a button is enabled only when the server has it
  sign: ["post", "/api/v1/leads/{}/sign"], tier: ["post", "/api/v1/leads/{}/tier"],
  assign: ["post", "/api/v1/leads/{}/assign"], transfer: ["post", "/api/v1/leads/{}/transfer"],
  close: ["post", "/api/v1/leads/{}/close"],
};
const OPEN = new Set(["received", "tiered", "working"]);
const WHY_NOT = {off_duty: "离岗", busy: "忙碌", workload: "在办已达上限", tried: "已推送过", stale_location: "定位过旧"};
const REASON = {own_beat: "本警务区", adjacent_beat: "相邻警务区", nearest: "距离最近", own_beat_stale: "本警务区（定位旧）"};
const STEP_LABEL = {triage: "待研判", sign: "待签收", first_call: "首次呼叫", call_retry: "重拨", sms: "短信",
                    visit_waiting: "待派单", visit_offered: "已派单", on_the_way: "在途", on_scene: "在现场",
                    center: "中心研判", callback: "回访", working: "处理中"};
const ALARM_KIND = {sign: "签收超时", first_call: "首次呼叫超时", connected_call: "未接通超时", sms: "短信超时",
                    visit: "上门超时", on_scene: "到场超时", checkin: "现场报平安超时", callback: "回访超时"};
const LEVEL_LABEL = {duty_officer: "值班员", duty_commander: "值班长", center_head: "中心负责人"};
const ROLE_LABEL = {admin: "管理员", commander: "指挥长", operator: "值班民警"};
const SOURCE_LABEL = {national_platform: "全国反诈平台", provincial_center: "省反诈中心", bank_fund_monitor: "银行资金预警",
                      hotline_96110: "96110", alarm_110: "110"};
const PANELS = {rejections: "退回记录", people: "个人历史", report: "月通报", replay: "策略回放"};
const TIER_RANK = {P0: 0, P1: 1, P2: 2, P3: 3};
const TIER_COLOR = {P0: "#ff3b3b", P1: "#ff9f1a", P2: "#ffd43b", P3: "#4dabf7"};
const ROW_H = 30;             // px: every row of the virtual list is this high (screen.css)
const URGENT_P1_CAP = 400;    // P1 rows pinned above the list; any more lead the list below
const PAGE = 1000;            // GET /queue's largest page
const MAX_PAGES = 50;         // 50,000 open leads held in the page at most
const LEAD_BATCH = 100;       // ids per GET /queue?lead=… (a short URL)
const RELOAD_ABOVE = 300;     // more rows touched than this in one flush: read the whole queue instead
const MAP_MARKERS = 600;      // markers drawn on the map (the urgent ones first)

// Leaflet, ECharts and the full queue stay outside the reactive store: only what is drawn is reactive.
const view = {map: null, beats: null, streets: null, leadLayer: null, teamLayer: null, canvas: null, beatInfo: {},
              charts: {}, open: {}};
const Q = {byId: new Map(), order: [], rest: [], complete: false, serverByTier: {}, serverTotal: 0,
           loading: null, reloadAgain: false, pending: new Set(), flushTimer: null, laidOut: false};

function monthNow() { return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 7); }  // the center's month (UTC+8)
function maskPhone(p) {
  if (!p) return p;
  if (p.length === 11 && p[0] === "1") return p.slice(0, 3) + "****" + p.slice(7);
  return p.length > 6 ? p.slice(0, 4) + "*".repeat(p.length - 6) + p.slice(-2) : "*".repeat(p.length);
}
function maskId(s) { return !s ? s : s.length > 8 ? s.slice(0, 4) + "*".repeat(s.length - 8) + s.slice(-4) : "*".repeat(s.length); }

const store = PetiteVue.reactive({
  session: api.session, form: {username: "", password: ""}, loginError: "",
  districtName: "", teams: null, offers: {}, stats: null, ranking: null,
  live: "connecting", now: Date.now(), selectedId: null, sel: null, dialog: null, f: {}, candidates: null, pending: null,
  actionError: "", OUTCOME_LABEL, STATUS_LABEL, STEP_LABEL, PANELS,
  q: {total: 0, byTier: {}, urgent: [], urgentMore: 0, rows: [], padTop: 0, padBottom: 0, loaded: false},
  filter: {street: "", beat: "", tier: "", step: ""}, streets: [], beatList: [],
  alarms: [], acking: {}, alarmError: "",
  panel: null, rej: null, person: {kind: "phone", q: "", result: null, error: ""},
  report: {month: monthNow(), rows: null, error: ""},
  replay: {text: "", since: "", until: "", result: null, error: "", busy: false},

  get clock() { return new Date(this.now).toLocaleString("zh-CN", {hour12: false}); },
  get liveText() { return {connected: "● 实时", connecting: "○ 连接中", disconnected: "✕ 已断开"}[this.live]; },
  get selected() { return this.selectedId ? this.sel : null; },
  get kpi() {  // GET /stats since the center's midnight: the day's row
    const t = (this.stats || {}).total;
    return t ? {leads: t.leads, closed: t.closed_counted, connection_rate: t.connection_rate,
                face_to_face_rate: t.face_to_face_rate, post_warning_cases: t.post_warning_cases}
             : {leads: null, closed: null, connection_rate: null, face_to_face_rate: null, post_warning_cases: null};
  },
  get personLabel() {
    const r = this.person.result;
    if (!r) return "";
    const p = r.person || {};
    const name = (r.leads[0] || {}).name;
    return [name, p.phone ? maskPhone(p.phone) : null, p.id_number ? maskId(p.id_number) : null].filter(Boolean).join(" · ");
  },
  get reportHref() { return "/api/v1/reports/monthly?month=" + this.report.month; },

  // The step's timer: down to step_due_at; red and 超时 once past; none without a deadline.
  timer(l) {
    if (l._due == null) return {text: "—", overdue: false};
    const left = l._due - this.now;
    return {text: left < 0 ? "超时 " + clockText(left) : clockText(left), overdue: left < 0};
  },
  dueText(iso) { const left = Date.parse(iso) - this.now; return left < 0 ? "超时 " + clockText(left) : clockText(left); },
  sinceText(iso) { return iso ? ageText((this.now - Date.parse(iso)) / 1000) : ""; },
  timeText(iso) { return iso ? new Date(iso).toLocaleString("zh-CN", {hour12: false}) : "—"; },
  beatName(code, lead) {
    if (!code) return lead && lead.status === "received" ? "定位中" : "辖区外";
    return (view.beatInfo[code] || {}).name || code;
  },
  beatsOf(street) { return this.beatList.filter(b => !street || b.street === street); },
  stepText(s) { return STEP_LABEL[s] || s || ""; },
  kindText(k) { return ALARM_KIND[k] || k; },
  levelText(a) { return LEVEL_LABEL[a.level_name] || a.level_name || `${a.level} 级`; },
  roleText(r) { return ROLE_LABEL[r] || r; },
  sourceText(s) { return SOURCE_LABEL[s] || s; },
  statusText(l) { return l ? STATUS_LABEL[l.status] || l.status : ""; },
  whoText(l) {
    if (l.claimed_by) return l.claimed_by + " 呼叫中";
    if (l.assigned_team) return this.teamName(l.assigned_team).replace("劝阻分队", "");
    if (l.alarms) return `告警 ${l.alarms}`;
    return STATUS_LABEL[l.status] || l.status;
  },
  isSigned(l) {  // the queue lists `sign` among a lead's open steps until someone signs
    if (!l) return false;
    if (l.signed != null) return l.signed;
    return l.status !== "received" && !(l.steps || []).some(s => s.step === "sign");
  },
  tierText(t) { return TIER_LABEL[t] || "未分级"; },
  outcomeText(o) { return OUTCOME_LABEL[o] || o; },
  dutyText(s) { return DUTY_LABEL[s] || "—"; },
  shortTeam(t) { return (t.name || t.code).replace("劝阻分队", ""); },
  locationAge(t) {  // GET /teams: last_location {lon, lat, at, age_s} of the last live fix
    const at = (t.last_location || {}).at;
    return at ? Math.max(0, (this.now - Date.parse(at)) / 1000) : null;
  },
  // The squad's open offer (GET /assignments?status=offered): delivered when a member's phone got it.
  delivered(t) {
    const o = this.offers[t.code];
    if (!o) return "—";
    const ds = o.delivery || [];
    if (ds.some(d => d.acked_at)) return "已确认";
    if (ds.some(d => d.delivered)) return "已送达";
    return "未送达";
  },
  offDuty(c) { return c.on_duty === false || c.why_not === "off_duty" || c.why_not === "busy"; },
  overLimit(c) { return c.why_not === "workload"; },
  // A candidate the matching would not ask (off duty, busy, at its limit, already asked, stale): warn first.
  get pendingText() { const c = this.pending; return c ? `${this.teamName(c.team_code)}：${this.warnText(c)}` : ""; },
  warnText(c) { return WHY_NOT[c.why_not] || c.why_not || ""; },
  teamName(code) { return ((this.teams || []).find(t => t.code === code) || {}).name || code; },
  reasonText(r) { return REASON[r] || r; },
  km(m) { return m == null ? "—" : m < 1000 ? Math.round(m) + " 米" : (m / 1000).toFixed(1) + " 公里"; },
  pct(x) { return x == null ? "—" : Math.round(x * 1000) / 10 + "%"; },
  signed(n) { return n > 0 ? "+" + n : String(n); },
  ageText,
  can(action) {  // the server has the action and the selected lead is still open
    const [m, p] = ACTIONS[action];
    if (action === "sign" && this.isSigned(this.selected)) return false;  // signed once, by one person
    return api.has(m, p) && !!this.selected && OPEN.has(this.selected.status);
  },
  mayOpen(panel) {
    const role = (this.session || {}).role;
    if (role === "admin" || role === "commander") return true;
    return role === "operator" && panel !== "replay";  // replaying a policy is for the command
  },

  async login() {
    this.loginError = "";
    try { this.session = await api.login(this.form.username, this.form.password); start(); }
    catch (e) { this.loginError = e.message; }
  },
  logout() { api.logout(); location.reload(); },
  select(id) {
    this.selectedId = id; this.actionError = "";
    this.sel = Q.byId.get(id) || null;
    if (!this.sel) refreshSelected([id]).catch(e => console.warn("lead", e));
  },
  open(kind) { this.dialog = kind; this.actionError = ""; this.f = {tier: "P1", outcome: "dissuaded"}; },
  async act(action, body) {
    this.actionError = "";
    const id = this.selectedId;
    try {
      await api.post(`/api/v1/leads/${id}/${action}`, body);
      this.dialog = null; this.pending = null;
      await refreshRows([id]);
    } catch (e) { this.actionError = e.message; }
  },
  submitDialog() {
    const f = this.f;
    if (this.dialog === "tier") return this.act("tier", {tier: f.tier, reason: f.reason});
    if (this.dialog === "transfer") return this.act("transfer", {to: f.to, reason: f.reason});
    if (this.dialog === "close") {
      return this.act("close", {outcome: f.outcome, note: f.note || null,
                                loss_cny: f.loss_cny === "" ? null : f.loss_cny ?? null,
                                saved_cny: f.saved_cny === "" ? null : f.saved_cny ?? null});
    }
  },
  async openAssign() {
    this.open("assign"); this.candidates = null; this.pending = null;
    try {
      this.candidates = (await api.get(`/api/v1/leads/${this.selectedId}/candidates`)).items;
    } catch (e) { this.candidates = []; this.actionError = e.message; }
  },
  pick(c) {  // one click for an available squad; a second, explicit one otherwise
    if (!c.available) { this.pending = c; return; }
    this.assign(c.team_code);
  },
  assign(team) { return this.act("assign", {team_code: team}); },

  // ---- the queue's filters, scrolling and export
  applyFilter() {
    const rest = document.getElementById("queue-rest");
    if (rest) rest.scrollTop = 0;
    Q.pending.clear();
    loadQueue().catch(e => console.warn("queue", e));
  },
  onScroll() { requestAnimationFrame(windowRows); },
  exportCsv() {
    const head = ["编号", "级别", "环节", "时限", "已超时", "电话", "街道", "警务区", "状态", "处置队", "呼叫次数", "告警", "接收时间"];
    const esc = v => { const s = v == null ? "" : String(v); return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; };
    const streetName = c => (this.streets.find(s => s.code === c) || {}).name || c || "";
    const lines = [head, ...Q.order.map(l => [l.id, l.tier || "", STEP_LABEL[l.step] || l.step, l.step_due_at || "",
      l._due != null && l._due < Date.now() ? "是" : "", l.subject.phone || "", streetName(l.street_code),
      this.beatName(l.beat_code, l), STATUS_LABEL[l.status] || l.status, l.assigned_team || "", l.calls, l.alarms,
      l.received_at])].map(r => r.map(esc).join(","));
    const stamp = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 16).replace(/[-:T]/g, "");
    saveBlob(new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], {type: "text/csv;charset=utf-8"}), `待处置队列-${stamp}.csv`);
  },

  // ---- alarms
  async ack(a) {
    this.alarmError = "";
    this.acking[a.id] = true;
    try {
      await api.post(`/api/v1/alarms/${a.id}/ack`);
      dropAlarm(a.id);
    } catch (e) {
      if (e.status === 409) dropAlarm(a.id);  // someone else acknowledged it, or the step was done
      else this.alarmError = e.message;
    } finally { delete this.acking[a.id]; }
  },

  // ---- the commander's panels
  openPanel(key) {
    this.panel = this.panel === key ? null : key;
    if (this.panel === "rejections") loadRejections().catch(e => console.warn("rejections", e));
    if (this.panel === "report") this.loadRanking();
  },
  async searchPerson() {
    const p = this.person;
    p.error = ""; p.result = null;
    try { p.result = await api.post("/api/v1/people/history", {[p.kind]: p.q.trim()}); }
    catch (e) { p.error = e.status === 404 ? "没有这个人的记录" : e.message; }
  },
  async loadRanking() {
    const r = this.report;
    r.error = "";
    try { r.rows = (await api.get("/api/v1/stats/ranking?month=" + r.month)).rows; }
    catch (e) { r.rows = null; r.error = e.message; }
  },
  async downloadReport() {
    const r = this.report;
    r.error = "";
    try {
      const res = await fetch(this.reportHref, {headers: {Authorization: "Bearer " + api.session.token}});
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      saveBlob(await res.blob(), `月通报-${r.month}.xlsx`);
    } catch (e) { r.error = e.message; }
  },
  async pickPolicy(ev) {
    const file = ev.target.files[0];
    this.replay.result = null; this.replay.error = "";
    this.replay.text = file ? await file.text() : "";
  },
  async runReplay() {
    const r = this.replay;
    r.error = ""; r.result = null; r.busy = true;
    const body = {policy: r.text};
    if (r.since) body.since = r.since + "T00:00:00+08:00";
    if (r.until) body.until = r.until + "T00:00:00+08:00";
    try { r.result = await api.post("/api/v1/policy/replay", body); }
    catch (e) { r.error = e.message; }
    finally { r.busy = false; }
  },
});

function saveBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---------------------------------------------------------------- the queue
function queuePath(extra = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(store.filter)) if (v) p.append(k, v);
  for (const [k, v] of Object.entries(extra)) {
    if (Array.isArray(v)) v.forEach(x => p.append(k, x));
    else if (v != null) p.append(k, v);
  }
  return "/api/v1/queue?" + p.toString();
}
function prep(item) {  // the sort key's parts, computed once per answer
  item._rank = TIER_RANK[item.tier] ?? 9;
  item._due = item.step_due_at ? Date.parse(item.step_due_at) : null;
  return item;
}
function byUrgency(a, b) {  // the server's order: tier, then time left to the step's deadline (none last), then id
  return a._rank - b._rank || (a._due == null) - (b._due == null) || (a._due || 0) - (b._due || 0) || a.id - b.id;
}

// The whole queue, page after page (cursor), then drawn: on start, a filter change, a reconnect, once a minute.
function loadQueue() {
  if (Q.loading) { Q.reloadAgain = true; return Q.loading; }
  Q.loading = (async () => {
    try {
      const items = [];
      let cursor = null, first = null, pages = 0;
      do {
        const r = await api.get(queuePath({limit: PAGE, cursor}));
        first ||= r;
        for (const it of r.items) items.push(prep(it));
        cursor = r.next_cursor;
        pages += 1;
      } while (cursor && pages < MAX_PAGES);
      Q.complete = !cursor;
      Q.serverByTier = first.by_tier || {};
      Q.serverTotal = first.total;
      Q.byId = new Map(items.map(i => [i.id, i]));
      relayout();
      if (store.selectedId && Q.byId.has(store.selectedId)) store.sel = Q.byId.get(store.selectedId);
    } finally {
      Q.loading = null;
    }
    if (Q.reloadAgain) { Q.reloadAgain = false; await loadQueue(); }
    if (Q.pending.size) flushSoon();
  })();
  return Q.loading;
}

// Board events name the leads that changed: their rows are read again, batched, at most ~4 times a second.
function touch(ids) {
  for (const id of ids) if (id != null) Q.pending.add(id);
  flushSoon();
}
function flushSoon() {
  if (Q.flushTimer == null) Q.flushTimer = setTimeout(() => flush().catch(e => console.warn("queue rows", e)), 250);
}
async function flush() {
  Q.flushTimer = null;
  if (Q.loading) { await Q.loading.catch(() => {}); }
  const ids = [...Q.pending];
  Q.pending.clear();
  if (!ids.length) return;
  if (ids.length > RELOAD_ABOVE) { await loadQueue(); return; }
  await refreshRows(ids);
}
async function refreshRows(ids) {
  for (let i = 0; i < ids.length; i += LEAD_BATCH) {
    const chunk = ids.slice(i, i + LEAD_BATCH);
    const r = await api.get(queuePath({lead: chunk, limit: PAGE}));
    const got = new Set();
    for (const it of r.items) { Q.byId.set(it.id, prep(it)); got.add(it.id); }
    for (const id of chunk) if (!got.has(id)) Q.byId.delete(id);  // closed, transferred, or out of the filter
  }
  relayout();
  if (ids.includes(store.selectedId)) await refreshSelected([store.selectedId]);
}
// The selected lead: its queue row; once it left the queue, its state from GET /leads/{id} (masked phone kept).
async function refreshSelected(ids) {
  const id = store.selectedId;
  if (!ids.includes(id)) return;
  const row = Q.byId.get(id);
  if (row) { store.sel = row; return; }
  const d = await api.get(`/api/v1/leads/${id}`);
  if (store.selectedId !== id) return;
  const was = store.sel && store.sel.id === id ? store.sel : {};
  store.sel = {id, tier: d.tier && d.tier.tier, status: d.status, outcome: d.outcome, signed: !!d.signed_at,
               assigned_team: d.assigned_team, beat_code: d.beat_code, street_code: d.street_code, step: null, steps: [],
               alarms: 0, subject: {phone: was.subject ? was.subject.phone : maskPhone(d.subject && d.subject.phone)}};
}

let layoutQueued = false;
function relayout() {  // sort, split pinned (P0, P1) from the rest, count; drawn on the next frame
  Q.order = [...Q.byId.values()].sort(byUrgency);
  if (layoutQueued) return;
  layoutQueued = true;
  requestAnimationFrame(() => { layoutQueued = false; layout(); });
}
function layout() {
  const urgent = [], rest = [];
  const counts = {};
  let p1 = 0, more = 0;
  for (const l of Q.order) {
    const t = l.tier || "none";
    counts[t] = (counts[t] || 0) + 1;
    if (l.tier === "P0") urgent.push(l);
    else if (l.tier === "P1" && p1 < URGENT_P1_CAP) { urgent.push(l); p1 += 1; }
    else { if (l.tier === "P1") more += 1; rest.push(l); }
  }
  Q.rest = rest;
  const q = store.q;
  q.urgent = urgent;
  q.urgentMore = more;
  // All of the queue is here unless it had more than MAX_PAGES pages: then the server's counts.
  q.byTier = Q.complete ? counts : Q.serverByTier;
  q.total = Q.complete ? Q.order.length : Q.serverTotal;
  q.loaded = true;
  windowRows();
  mapSoon();
}
function windowRows() {  // only the rows in sight (and a few around them) are in the DOM
  const el = document.getElementById("queue-rest");
  const height = el ? el.clientHeight : 800, top = el ? el.scrollTop : 0;
  const first = Math.max(0, Math.floor(top / ROW_H) - 10);
  const rows = Q.rest.slice(first, first + Math.ceil(height / ROW_H) + 20);
  const q = store.q;
  q.rows = rows;
  q.padTop = first * ROW_H;
  q.padBottom = Math.max(0, (Q.rest.length - first - rows.length) * ROW_H);
}

// ---------------------------------------------------------------- alarms
function alarmOrder(a, b) {
  return b.level - a.level || (TIER_RANK[a.tier] ?? 9) - (TIER_RANK[b.tier] ?? 9) || Date.parse(a.raised_at) - Date.parse(b.raised_at)
    || a.id - b.id;
}
async function refreshAlarms() {
  const r = await api.get("/api/v1/alarms?limit=200");
  store.alarms = r.items.filter(a => !a.acked_at && !a.resolved_at).sort(alarmOrder);
}
function upsertAlarm(a) {
  const before = store.alarms.find(x => x.id === a.id);
  const rest = store.alarms.filter(x => x.id !== a.id);
  if (!a.acked_at && !a.resolved_at) rest.push(a);
  store.alarms = rest.sort(alarmOrder);
  return before;
}
function dropAlarm(id) { store.alarms = store.alarms.filter(x => x.id !== id); }

// A P0 alarm beeps (WebAudio, nothing loaded). Browsers start audio only after a click or key: the first one unlocks it.
let audio = null;
function unlockAudio() {
  if (!audio && window.AudioContext) { try { audio = new AudioContext(); } catch { audio = null; } }
  if (audio && audio.state === "suspended") audio.resume().catch(() => {});
}
document.addEventListener("pointerdown", unlockAudio);
document.addEventListener("keydown", unlockAudio);
function beep() {
  if (!audio || audio.state !== "running") return;
  const t = audio.currentTime;
  for (const [at, hz] of [[0, 880], [0.28, 660], [0.56, 880]]) {
    const o = audio.createOscillator(), g = audio.createGain();
    o.type = "square";
    o.frequency.value = hz;
    g.gain.setValueAtTime(0.0001, t + at);
    g.gain.exponentialRampToValueAtTime(0.25, t + at + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, t + at + 0.22);
    o.connect(g).connect(audio.destination);
    o.start(t + at);
    o.stop(t + at + 0.25);
  }
}

// ---------------------------------------------------------------- other data
async function refreshTeams() {
  const [teams, offered] = await Promise.all([api.get("/api/v1/teams"),
                                              api.get("/api/v1/assignments?status=offered&limit=500")]);
  const offers = {};
  for (const a of offered.items) offers[a.team_code] ||= a;  // newest first
  const rank = {on_duty: 0, busy: 1, off_duty: 2};  // who can take work first, then the busiest
  store.teams = teams.items.sort((a, b) => (rank[a.status] ?? 3) - (rank[b.status] ?? 3)
                                         || b.open_assignments - a.open_assignments || a.code.localeCompare(b.code));
  store.offers = offers;
  drawTeams();
}
async function refreshStats() {
  const day = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);  // the center's day (UTC+8)
  const from = encodeURIComponent(day + "T00:00:00+08:00");
  const [stats, ranking] = await Promise.all([api.get("/api/v1/stats?group_by=street&from=" + from),
                                              api.get("/api/v1/stats/ranking?month=" + monthNow())]);
  store.stats = stats;
  store.ranking = ranking.rows;
  drawCharts();
}
async function loadRejections() {
  store.rej = await api.get("/api/v1/rejections?limit=200");
}

// ---------------------------------------------------------------- the map
async function drawMap() {
  const [beats, streets] = await Promise.all([api.get("/api/v1/geo/beats"), api.get("/api/v1/geo/streets")]);
  const map = view.map = L.map("map", {zoomControl: false, attributionControl: false, zoomSnap: 0.25});
  if (window.QUANZU && QUANZU.tileUrl) L.tileLayer(QUANZU.tileUrl, {attribution: QUANZU.tileAttribution}).addTo(map);
  for (const f of beats.features) {
    const p = f.properties;
    view.beatInfo[p.code] = {name: p.name, street: p.street_code};
  }
  store.beatList = beats.features.map(f => ({code: f.properties.code, name: f.properties.name, street: f.properties.street_code}))
    .sort((a, b) => a.code.localeCompare(b.code));
  store.streets = streets.features.map(f => ({code: f.properties.code, name: f.properties.name}))
    .sort((a, b) => a.code.localeCompare(b.code));
  view.beats = L.geoJSON(beats, {style: beatStyle, onEachFeature: (f, layer) => {
    view.beatInfo[f.properties.code].center = layer.getBounds().getCenter();
    layer.bindTooltip(f.properties.name, {sticky: true});
  }}).addTo(map);
  view.streets = L.geoJSON(streets, {interactive: false,
                                     style: {color: "#5ad1ff", weight: 2.5, fill: false, opacity: 0.9},
                                     onEachFeature: (f, layer) => layer.bindTooltip(f.properties.name, {
                                       permanent: true, direction: "center", className: "street-label"})}).addTo(map);
  view.canvas = L.canvas({padding: 0.2});  // hundreds of lead markers: one canvas, not one SVG node each
  view.leadLayer = L.layerGroup().addTo(map);
  view.teamLayer = L.layerGroup().addTo(map);
  const fit = () => { map.invalidateSize(); map.fitBounds(view.beats.getBounds(), {padding: [12, 12]}); };
  fit();
  new ResizeObserver(fit).observe(document.getElementById("map"));  // the detail bar or a resize moves it
  document.getElementById("map").dataset.beats = String(beats.features.length);
}
function beatStyle(f) {
  const n = view.open[f.properties.code] || 0;
  const shade = ["#0f2a44", "#23679a", "#8a6d1a", "#b0521c", "#c0262a"][Math.min(n, 4)];
  return {color: "#2b6a9a", weight: 1, fillColor: shade, fillOpacity: 0.75, className: "beat"};
}
function spot(code, id) {  // a lead's marker: its beat's centre, spread a little by id
  const c = (view.beatInfo[code] || {}).center;
  if (!c) return null;
  const a = (id * 2.399) % (2 * Math.PI), r = 0.0012 * (1 + (id % 3));
  return [c.lat + r * Math.sin(a), c.lng + r * Math.cos(a)];
}
let mapTimer = null, mapDrawn = 0;
function mapSoon() {  // at most once a second: thousands of rows change faster than a map needs to
  if (mapTimer != null) return;
  mapTimer = setTimeout(() => { mapTimer = null; mapDrawn = Date.now(); drawLeads(); drawCharts(); },
                        Math.max(0, 1000 - (Date.now() - mapDrawn)));
}
function drawLeads() {
  if (!view.map) return;
  const open = {};
  for (const l of Q.order) if (l.beat_code) open[l.beat_code] = (open[l.beat_code] || 0) + 1;
  view.open = open;
  view.beats.setStyle(beatStyle);
  view.leadLayer.clearLayers();
  for (const l of Q.order.slice(0, MAP_MARKERS)) {  // the most urgent first
    const at = spot(l.beat_code, l.id);
    if (!at) continue;
    L.circleMarker(at, {renderer: view.canvas, radius: l.tier === "P0" ? 8 : 6, color: "#fff", weight: 1,
                        fillOpacity: 0.95, fillColor: TIER_COLOR[l.tier] || "#aaa"})
      .bindTooltip(`#${l.id} ${l.tier || ""} ${STEP_LABEL[l.step] || ""}`).on("click", () => store.select(l.id))
      .addTo(view.leadLayer);
  }
}
function drawTeams() {
  if (!view.map || !store.teams) return;
  view.teamLayer.clearLayers();
  for (const t of store.teams) {
    const loc = t.last_location;
    if (!loc || loc.lat == null) continue;
    const color = t.status === "on_duty" ? "#51cf66" : t.status === "busy" ? "#ffa94d" : "#868e96";
    L.marker([loc.lat, loc.lon], {icon: L.divIcon({className: "squad", html: `<span style="color:${color}">▲</span>`,
                                                   iconSize: [14, 14]})})
      .bindTooltip(`${store.shortTeam(t)} ${store.dutyText(t.status)}`).addTo(view.teamLayer);
  }
}

// ---------------------------------------------------------------- charts
function drawCharts() {
  if (!store.session || !document.getElementById("chart-hours")) return;
  const dark = {textStyle: {color: "#cfe3ff", fontFamily: "Noto Sans CJK SC, sans-serif"}};
  const hours = new Array(24).fill(0);
  const since = Date.now() - 24 * 3600e3;
  for (const l of Q.order) {
    const t = Date.parse(l.received_at);
    if (t >= since) hours[new Date(t).getHours()] += 1;
  }
  view.charts.hours ||= echarts.init(document.getElementById("chart-hours"));
  view.charts.hours.setOption({...dark, title: {text: "在办线索 · 分时到达", textStyle: {color: "#cfe3ff", fontSize: 14}},
    grid: {left: 36, right: 8, top: 30, bottom: 20}, animation: false,
    xAxis: {type: "category", data: hours.map((_, h) => h), axisLabel: {color: "#8fb3d9"}},
    yAxis: {type: "value", minInterval: 1, axisLabel: {color: "#8fb3d9"}, splitLine: {lineStyle: {color: "#1e3a5a"}}},
    series: [{type: "bar", data: hours, itemStyle: {color: "#4dabf7"}}]});
  const rows = (store.ranking || []).slice(0, 8);
  const nameOf = r => (r.supervision ? "⚑" : "") + (r.name || r.key);
  const valueOf = r => r.score == null ? 0 : Math.round(r.score * 1000) / 10;  // mean of the street's rates, %
  view.charts.ranking ||= echarts.init(document.getElementById("chart-ranking"));
  view.charts.ranking.setOption({...dark, animation: false,
    title: {text: "街道排名（由差到好）", textStyle: {color: "#cfe3ff", fontSize: 14}},
    graphic: rows.length ? [] : [{type: "text", left: "center", top: "middle",
                                  style: {text: "—", fill: "#6c8fb5", fontSize: 22}}],
    grid: {left: 90, right: 12, top: 30, bottom: 10},
    xAxis: {type: "value", show: rows.length > 0, axisLabel: {show: false}, splitLine: {show: false}},
    yAxis: {type: "category", show: rows.length > 0, inverse: true, data: rows.map(nameOf), axisLabel: {color: "#cfe3ff"}},
    series: [{type: "bar", data: rows.map(valueOf), itemStyle: {color: "#ff8787"}}]}, {replaceMerge: ["graphic"]});
}

// ---------------------------------------------------------------- live
let teamsTimer = null, statsTimer = null;
function teamsSoon() {
  clearTimeout(teamsTimer);
  teamsTimer = setTimeout(() => refreshTeams().catch(e => console.warn("teams", e)), 200);
}
function statsSoon() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(() => refreshStats().catch(e => console.warn("stats", e)), 300);
}
function onBoard(msg) {
  const d = msg.data || {};
  // Lead events carry ids and deltas ({lead_id, status, ...}; lead.created {lead_ids}): re-read those rows only.
  if (msg.type === "lead.created" || msg.type === "lead.updated") {
    touch(d.lead_ids || [d.lead_id]);
    if (d.outcome || d.visit || d.assignment_id) teamsSoon();
    if (d.outcome || msg.type === "lead.created") statsSoon();
  } else if (msg.type === "alarm.raised" || msg.type === "alarm.updated") {
    const before = upsertAlarm(d);
    const louder = msg.type === "alarm.raised" || (before && d.level > before.level);
    if (louder && d.tier === "P0" && !d.acked_at && !d.resolved_at) beep();
    touch([d.lead_id]);  // the row's alarm count
  } else if (msg.type === "team.updated") {
    teamsSoon();
  } else if (msg.type === "stats") {
    statsSoon();
  }
}
function onLive(state) {
  if (state === "connected" && store.live !== "connected") {  // missed while away: read everything again
    loadQueue().catch(() => {});
    refreshAlarms().catch(() => {});
    refreshTeams().catch(() => {});
  }
  store.live = state;
}
// Without the socket the screen still moves: every 5 s from REST.
setInterval(() => {
  if (store.session && store.live !== "connected" && Q.laidOut) {
    loadQueue().catch(() => {});
    refreshAlarms().catch(() => {});
  }
}, 5000);

async function start() {
  await new Promise(r => setTimeout(r));  // let the page render the map's box first
  await api.loadPaths();
  await drawMap();
  await Promise.all([loadQueue(), refreshAlarms()]);
  Q.laidOut = true;
  await Promise.all([refreshTeams(), refreshStats()]).catch(e => console.error("teams or stats failed", e));
  drawCharts();
  new Live("/api/v1/board/ws", api, {onMessage: onBoard, onState: onLive, seqKey: "quanzu.screen.seq"}).start();
  setInterval(() => { refreshTeams().catch(() => {}); refreshStats().catch(() => {}); }, 15000);
  // Once a minute the whole queue again: steps that moved on by time alone, anything an event missed.
  setInterval(() => { loadQueue().catch(() => {}); refreshAlarms().catch(() => {}); }, 60000);
  window.addEventListener("resize", () => { Object.values(view.charts).forEach(c => c.resize()); windowRows(); });
}

api.onUnauthorized = () => { api.logout(); store.session = null; };
setInterval(() => { store.now = Date.now(); }, 1000);
PetiteVue.createApp(store).mount("#app");
if (store.session) start().catch(e => console.warn("start failed", e));
