// 指挥中心大屏: queue, map, squads, KPIs and the center's actions, over REST and the board socket.
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
function slaDeadlines(l) {
  const d = {...(l.deadlines || {})};
  if (l.signed_at || !["received", "tiered"].includes(l.status)) delete d.sign;
  return d;
}
const TIER_COLOR = {P0: "#ff3b3b", P1: "#ff9f1a", P2: "#ffd43b", P3: "#4dabf7"};

// Leaflet and ECharts objects stay outside the reactive store.
const view = {map: null, beats: null, streets: null, leadLayer: null, teamLayer: null, beatInfo: {}, charts: {}};

const store = PetiteVue.reactive({
  session: api.session, form: {username: "", password: ""}, loginError: "",
  districtName: "", leads: {}, teams: null, offers: {}, stats: null, ranking: null,
  live: "connecting", now: Date.now(), selectedId: null, dialog: null, f: {}, candidates: null, pending: null,
  actionError: "", OUTCOME_LABEL,

  get clock() { return new Date(this.now).toLocaleString("zh-CN", {hour12: false}); },
  get liveText() { return {connected: "● 实时", connecting: "○ 连接中", disconnected: "✕ 已断开"}[this.live]; },
  get openLeads() {
    return Object.values(this.leads).filter(l => OPEN.has(l.status))
      .sort((a, b) => (earliestDeadline(slaDeadlines(a)) ?? Infinity) - (earliestDeadline(slaDeadlines(b)) ?? Infinity)
                      || b.id - a.id);
  },
  get selected() { return this.selectedId ? this.leads[this.selectedId] : null; },
  get kpi() {
    const leads = Object.values(this.leads);
    const since = Date.now() - 24 * 3600e3;
    const today = leads.filter(l => Date.parse(l.received_at) >= since);
    const total = (this.stats || {}).total || null;  // GET /stats: the whole range's row
    return {
      leads: today.length, closed: today.filter(l => l.status === "closed").length,
      connection_rate: total ? total.connection_rate : null,
      face_to_face_rate: total ? total.face_to_face_rate : null,
      post_warning_cases: total ? total.post_warning_cases : null,
    };
  },

  // The queue's SLA: the tier's deadlines (lead.deadlines); the sign deadline no longer counts once signed.
  sla(l) {
    const due = earliestDeadline(slaDeadlines(l));
    if (due == null) return {text: "—", overdue: false};
    const left = due - this.now;
    return {text: left < 0 ? "超时 " + clockText(left) : clockText(left), overdue: left < 0};
  },
  beatName(code, lead) {
    if (!code) return lead && lead.status === "received" ? "定位中" : "辖区外";
    return (view.beatInfo[code] || {}).name || code;
  },
  statusText(l) { return STATUS_LABEL[l.status] || l.status; },
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
  ageText,
  can(action) {  // the server has the action and the selected lead is still open
    const [m, p] = ACTIONS[action];
    if (action === "sign" && this.selected && this.selected.signed_at) return false;  // signed once, by one person
    return api.has(m, p) && !!this.selected && OPEN.has(this.selected.status);
  },

  async login() {
    this.loginError = "";
    try { this.session = await api.login(this.form.username, this.form.password); start(); }
    catch (e) { this.loginError = e.message; }
  },
  logout() { api.logout(); location.reload(); },
  select(id) { this.selectedId = id; this.actionError = ""; },
  open(kind) { this.dialog = kind; this.actionError = ""; this.f = {tier: "P1", outcome: "dissuaded"}; },
  async act(action, body) {
    this.actionError = "";
    try {
      await api.post(`/api/v1/leads/${this.selectedId}/${action}`, body);
      this.dialog = null; this.pending = null;
      await refreshLeads();
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
});

// ---------------------------------------------------------------- data
async function refreshLeads() {
  const r = await api.get("/api/v1/leads?limit=200");
  const fresh = {};
  for (const l of r.items) fresh[l.id] = l;
  store.leads = fresh;
  drawLeads();
}
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
  const month = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 7);  // the center's month (UTC+8)
  const [stats, ranking] = await Promise.all([api.get("/api/v1/stats?group_by=street"),
                                              api.get("/api/v1/stats/ranking?month=" + month)]);
  store.stats = stats;
  store.ranking = ranking.rows;
  drawCharts();
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
  view.beats = L.geoJSON(beats, {style: beatStyle, onEachFeature: (f, layer) => {
    view.beatInfo[f.properties.code].center = layer.getBounds().getCenter();
    layer.bindTooltip(f.properties.name, {sticky: true});
  }}).addTo(map);
  view.streets = L.geoJSON(streets, {interactive: false,
                                     style: {color: "#5ad1ff", weight: 2.5, fill: false, opacity: 0.9},
                                     onEachFeature: (f, layer) => layer.bindTooltip(f.properties.name, {
                                       permanent: true, direction: "center", className: "street-label"})}).addTo(map);
  view.leadLayer = L.layerGroup().addTo(map);
  view.teamLayer = L.layerGroup().addTo(map);
  const fit = () => { map.invalidateSize(); map.fitBounds(view.beats.getBounds(), {padding: [12, 12]}); };
  fit();
  new ResizeObserver(fit).observe(document.getElementById("map"));  // the detail bar or a resize moves it
  document.getElementById("map").dataset.beats = String(beats.features.length);
}
function openWork() {
  const n = {};
  for (const l of Object.values(store.leads)) if (OPEN.has(l.status) && l.beat_code) n[l.beat_code] = (n[l.beat_code] || 0) + 1;
  return n;
}
function beatStyle(f) {
  const n = (view.open || {})[f.properties.code] || 0;
  const shade = ["#0f2a44", "#23679a", "#8a6d1a", "#b0521c", "#c0262a"][Math.min(n, 4)];
  return {color: "#2b6a9a", weight: 1, fillColor: shade, fillOpacity: 0.75, className: "beat"};
}
function spot(code, id) {  // a lead's marker: its beat's centre, spread a little by id
  const c = (view.beatInfo[code] || {}).center;
  if (!c) return null;
  const a = (id * 2.399) % (2 * Math.PI), r = 0.0012 * (1 + (id % 3));
  return [c.lat + r * Math.sin(a), c.lng + r * Math.cos(a)];
}
function drawLeads() {
  if (!view.map) return;
  view.open = openWork();
  view.beats.setStyle(beatStyle);
  view.leadLayer.clearLayers();
  for (const l of store.openLeads) {
    const at = spot(l.beat_code, l.id);
    if (!at) continue;
    L.circleMarker(at, {radius: l.tier === "P0" ? 8 : 6, color: "#fff", weight: 1, fillOpacity: 0.95, className: "lead",
                        fillColor: TIER_COLOR[l.tier] || "#aaa"})
      .bindTooltip(`#${l.id} ${l.tier || ""} ${store.statusText(l)}`).on("click", () => store.select(l.id))
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
  const dark = {textStyle: {color: "#cfe3ff", fontFamily: "Noto Sans CJK SC, sans-serif"}};
  const hours = new Array(24).fill(0);
  const since = Date.now() - 24 * 3600e3;
  for (const l of Object.values(store.leads)) {
    const t = Date.parse(l.received_at);
    if (t >= since) hours[new Date(t).getHours()] += 1;
  }
  view.charts.hours ||= echarts.init(document.getElementById("chart-hours"));
  view.charts.hours.setOption({...dark, title: {text: "分时线索量", textStyle: {color: "#cfe3ff", fontSize: 14}},
    grid: {left: 30, right: 8, top: 30, bottom: 20}, animation: false,
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
let leadsTimer = null, teamsTimer = null;
function teamsSoon() {
  clearTimeout(teamsTimer);
  teamsTimer = setTimeout(() => refreshTeams().catch(e => console.warn("teams", e)), 200);
}
function refreshSoon() {  // many events in a burst → one list read
  clearTimeout(leadsTimer);
  leadsTimer = setTimeout(() => refreshLeads().then(drawCharts).catch(() => {}), 150);
}
function onBoard(msg) {
  const d = msg.data || {};
  // Board events carry ids and deltas ({lead_id, status, ...}, {team_code, ...}): re-read the masked lists.
  if (msg.type === "lead.created" || msg.type === "lead.updated") {
    refreshSoon();
    if (d.outcome || d.visit || d.assignment_id) teamsSoon();
    if (d.outcome) refreshStats().catch(e => console.warn("stats", e));
  } else if (msg.type === "team.updated") {
    teamsSoon();
  } else if (msg.type === "stats") {
    refreshStats().catch(e => console.warn("stats", e));
  }
}
function onLive(state) {
  if (state === "connected" && store.live !== "connected") { refreshLeads().catch(() => {}); refreshTeams().catch(() => {}); }
  store.live = state;
}
// Without the socket the screen still moves: every second from REST.
setInterval(() => { if (store.session && store.live !== "connected") refreshLeads().then(drawCharts).catch(() => {}); }, 1000);

async function start() {
  await new Promise(r => setTimeout(r));  // let the page render the map's box first
  await api.loadPaths();
  await drawMap();
  await refreshLeads();
  await Promise.all([refreshTeams(), refreshStats()]).catch(e => console.error("teams or stats failed", e));
  drawCharts();
  new Live("/api/v1/board/ws", api, {onMessage: onBoard, onState: onLive, seqKey: "quanzu.screen.seq"}).start();
  setInterval(() => { refreshTeams().catch(() => {}); refreshStats().catch(() => {}); }, 15000);
  window.addEventListener("resize", () => Object.values(view.charts).forEach(c => c.resize()));
}

api.onUnauthorized = () => { api.logout(); store.session = null; };
setInterval(() => { store.now = Date.now(); }, 1000);
PetiteVue.createApp(store).mount("#app");
if (store.session) start().catch(e => console.warn("start failed", e));
