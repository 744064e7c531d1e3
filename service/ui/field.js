// 处置队手机页: duty, location, the current offer, the assigned lead, arrive and complete.
// Arrive and complete go through an outbox in localStorage: kept while offline, sent when the
// connection returns, each with an Idempotency-Key; a 409 (already arrived / completed) counts as done.
"use strict";

const api = new Api(localStorage, "quanzu.field");
const OUTBOX = "quanzu.field.outbox";
const CHECKLIST = [  // domain.md: 四查看·三询问·一保护
  {key: "look", title: "四查看", items: [
    {key: "call_sms_logs", label: "通话和短信记录"}, {key: "chat_apps", label: "聊天软件"},
    {key: "fraud_apps", label: "是否装有涉诈App"}, {key: "large_transfers", label: "大额转账记录"}]},
  {key: "ask", title: "三询问", items: [
    {key: "who_asked", label: "谁让转账"}, {key: "why", label: "为何转账"}, {key: "to_whom", label: "转给了谁"}]},
  {key: "protect", title: "一保护", items: [
    {key: "payment_stopped", label: "止付"}, {key: "app_uninstalled", label: "卸载涉诈App"},
    {key: "family_informed", label: "告知家属"}]},
];
const freshChecklist = () => Object.fromEntries(CHECKLIST.map(g => [g.key, Object.fromEntries(g.items.map(i => [i.key, false]))]));
const freshDone = () => ({outcome: "dissuaded", met_in_person: true, note: "", loss_cny: null, saved_cny: null,
                          checklist: freshChecklist()});
const ACTIVE = new Set(["accepted", "arrived"]);
const view = {map: null, layer: null, beats: null, beatsLoading: null, beatsLayer: null};
let dutyChanges = 0;

const store = PetiteVue.reactive({
  session: api.session, form: {username: "", password: ""}, error: "",
  live: "disconnected", online: navigator.onLine !== false, duty: localStorage.getItem("quanzu.field.duty") || "off_duty",
  position: null, manual: false, manualLon: null, manualLat: null,
  assignments: [], wsOffer: null, lead: null, now: Date.now(),
  outbox: JSON.parse(localStorage.getItem(OUTBOX) || "[]"),
  done: freshDone(), OUTCOME_LABEL, CHECKLIST,

  get offer() {
    const ws = this.wsOffer && !this.assignments.some(a => a.id === this.wsOffer.id && a.status !== "offered")
      ? this.wsOffer : null;  // an offer pushed before the list was read, unless the list says it is over
    const o = this.assignments.find(a => a.status === "offered") || ws;
    return o && Date.parse(o.expires_at) > this.now ? o : null;
  },
  get offerLeft() { return this.offer ? Math.max(0, Math.round((Date.parse(this.offer.expires_at) - this.now) / 1000)) : 0; },
  // The task on hand: accepted or arrived, or with actions still in the outbox (shown until the server has them).
  get current() {
    return this.assignments.find(a => ACTIVE.has(this.localStatus(a)) || this.outbox.some(x => x.assignment_id === a.id))
      || null;
  },
  get canArrive() { return !!this.current && this.localStatus(this.current) === "accepted"; },
  get canComplete() { return !!this.current && this.localStatus(this.current) === "arrived"; },
  get locText() {
    if (!this.position) return "位置未上报";
    return `${this.position.lon.toFixed(5)}, ${this.position.lat.toFixed(5)} · ${ageText((this.now - this.position.at) / 1000)}`;
  },
  // What the phone knows: the server's status, moved on by actions still in the outbox.
  localStatus(a) {
    const queued = this.outbox.filter(x => x.assignment_id === a.id).map(x => x.action);
    if (queued.includes("complete")) return "completed";
    if (queued.includes("arrive") && a.status === "accepted") return "arrived";
    return a.status;
  },
  stateText(a) {
    if (!a) return "";
    const s = this.localStatus(a);
    const pending = this.outbox.some(x => x.assignment_id === a.id) ? "（待发送）" : "";
    return ({accepted: "已接受，前往现场", arrived: "已到达", completed: "已完成"}[s] || s) + pending;
  },
  leadLine(l) {
    if (!l) return "—";
    const phone = (l.subject || {}).phone || "";
    return [TIER_LABEL[l.tier] || "", phone, l.beat_code, FRAUD_LABEL[l.fraud_type] || l.fraud_type]
      .filter(Boolean).join(" · ");
  },

  async login() {
    this.error = "";
    try { this.session = await api.login(this.form.username, this.form.password); start(); }
    catch (e) { this.error = e.message; }
  },
  logout() { api.logout(); location.reload(); },
  async setDuty(on) {
    dutyChanges += 1;
    const status = on ? "on_duty" : "off_duty";
    this.duty = status; localStorage.setItem("quanzu.field.duty", status);
    try { await api.put("/api/v1/teams/me/status", {status}); this.error = ""; }
    catch (e) { this.error = "状态未能上报：" + e.message; }
  },
  shareLocation() {
    if (!navigator.geolocation) { this.manual = true; return; }
    navigator.geolocation.getCurrentPosition(
      p => this.report(p.coords.longitude, p.coords.latitude, p.coords.accuracy),
      () => { this.manual = true; this.error = "无法获取定位，请手动上报"; }, {timeout: 8000});
  },
  sendManual() {
    const lon = Number(this.manualLon), lat = Number(this.manualLat);
    if (this.manualLon == null || !(lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90)) { this.error = "经纬度不正确"; return; }
    this.report(lon, lat, null);
  },
  async report(lon, lat, accuracy) {
    this.position = {lon, lat, at: Date.now()};
    drawMini();
    try {
      await api.post("/api/v1/teams/me/location", {lon, lat, crs: "wgs84", accuracy_m: accuracy, at: new Date().toISOString()});
      this.error = "";
    } catch (e) { this.error = "位置未能上报：" + e.message; }
  },
  accept() { return this.respond("accept"); },
  decline() { return this.respond("decline", {reason: "busy"}); },
  async respond(action, body) {
    const id = this.offer.id;
    try { await api.post(`/api/v1/assignments/${id}/${action}`, body); this.wsOffer = null; this.error = ""; }
    catch (e) { this.error = e.message; }
    await refresh();
  },
  arrive() { queue(this.current.id, "arrive", undefined); },
  complete() {
    const d = this.done;
    queue(this.current.id, "complete", {outcome: d.outcome, met_in_person: !!d.met_in_person, note: d.note || null,
      loss_cny: d.loss_cny === "" ? null : d.loss_cny ?? null, saved_cny: d.saved_cny === "" ? null : d.saved_cny ?? null,
      checklist: JSON.parse(JSON.stringify(d.checklist))});
    this.done = freshDone();
  },
});

// ---------------------------------------------------------------- the outbox
function saveOutbox() { localStorage.setItem(OUTBOX, JSON.stringify(store.outbox)); }
function queue(assignmentId, action, body) {
  store.outbox.push({key: crypto.randomUUID(), assignment_id: assignmentId, action, body, at: new Date().toISOString()});
  saveOutbox();
  flush();
}
let flushing = false;
async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    while (store.outbox.length) {
      const item = store.outbox[0];
      try {
        await api.post(`/api/v1/assignments/${item.assignment_id}/${item.action}`, item.body, {"Idempotency-Key": item.key});
      } catch (e) {
        if (!(e instanceof ApiError) || e.status >= 500 || e.status === 401) break;  // offline or server trouble: later
        if (e.status !== 409) store.error = "操作未被接受：" + e.message;          // 409: it was done already
      }
      store.outbox.shift();
      saveOutbox();
    }
  } finally { flushing = false; }
  await refresh();
}

// ---------------------------------------------------------------- data and live
async function refresh() {
  try {
    store.assignments = (await api.get("/api/v1/assignments?limit=20")).items;  // a squad sees its own
  } catch { return; }
  const cur = store.current;
  const leadId = cur && cur.lead_id;
  if (leadId && (!store.lead || store.lead.id !== leadId)) {
    try { store.lead = await api.get(`/api/v1/leads/${leadId}`); } catch { store.lead = null; }
  }
  if (!cur) store.lead = null;
  setTimeout(drawMini);
}
function drawMini() {
  const el = document.getElementById("minimap");
  if (!el) { if (view.map) { view.map.remove(); view.map = null; } return; }
  if (!view.map || view.map.getContainer() !== el) {
    if (view.map) view.map.remove();
    view.map = L.map(el, {zoomControl: false, attributionControl: false});
    if (window.QUANZU && QUANZU.tileUrl) L.tileLayer(QUANZU.tileUrl).addTo(view.map);
    view.beatsLayer = null;
    view.layer = L.layerGroup().addTo(view.map);
  }
  drawBeats();
  view.layer.clearLayers();
  const pts = [];
  const p = store.lead && store.lead.placement;
  if (p && p.lat != null) {
    pts.push([p.lat, p.lon]);
    L.circleMarker([p.lat, p.lon], {radius: 9, color: "#fff", fillColor: "#ff3b3b", fillOpacity: 1}).addTo(view.layer);
  }
  if (store.position) {
    pts.push([store.position.lat, store.position.lon]);
    L.circleMarker([store.position.lat, store.position.lon], {radius: 7, color: "#fff", fillColor: "#4dabf7", fillOpacity: 1})
      .addTo(view.layer);
  }
  if (pts.length) view.map.fitBounds(L.latLngBounds(pts).pad(0.5), {maxZoom: 16});
  else view.map.setView([0, 0], 2);
}
// The district's beats are the small map's base layer (an intranet has no tile server); the lead's
// own beat is outlined brighter. Fetched once per page: redraws while the request is out wait for it.
async function loadBeats() {
  if (view.beatsLoading) return;
  view.beatsLoading = api.get("/api/v1/geo/beats");
  try { view.beats = await view.beatsLoading; } catch { view.beatsLoading = null; return; }  // offline: next draw asks again
  drawMini();
}
function drawBeats() {
  if (!view.beats) { loadBeats(); return; }
  const own = store.lead && store.lead.placement && store.lead.placement.beat_code;
  const style = f => f.properties.code === own
    ? {color: "#ffd43b", weight: 2.5, fillColor: "#3b2f0a", fillOpacity: 0.6, className: "beat own"}
    : {color: "#2b6a9a", weight: 1, fillColor: "#0f2a44", fillOpacity: 0.6, className: "beat"};
  if (!view.beatsLayer) {
    view.beatsLayer = L.geoJSON(view.beats, {style, interactive: false}).addTo(view.map);
    view.beatsLayer.bringToBack();
  } else view.beatsLayer.setStyle(style);
  document.getElementById("minimap").dataset.beats = String(view.beats.features.length);
}
function onMessage(msg) {
  const d = msg.data || {};
  // offer: {assignment_id, lead, expires_at, attempt, reason}; offer.withdrawn: {assignment_id, reason, status}
  if (msg.type === "offer") store.wsOffer = {...d, id: d.assignment_id, status: "offered"};
  if (msg.type === "offer.withdrawn" && store.wsOffer && store.wsOffer.id === d.assignment_id) store.wsOffer = null;
  if (["offer", "offer.withdrawn", "assignment.updated", "lead.updated"].includes(msg.type)) refresh();
}
function onLive(state) {
  if (state === "connected" && store.live !== "connected") flush();
  store.live = state;
}
// Without the socket: poll, and retry the outbox.
setInterval(() => { if (store.session && store.live !== "connected") flush(); }, 2000);

async function loadDuty() {  // the squad's stored duty status wins over what this phone remembers
  const team = store.session && store.session.team;
  if (!team) return;
  try {
    const asked = dutyChanges;
    const t = await api.get(`/api/v1/teams/${encodeURIComponent(team)}`);
    if (asked !== dutyChanges) return;  // the member switched meanwhile: that wins
    store.duty = t.status; localStorage.setItem("quanzu.field.duty", t.status);
  } catch { /* offline: keep what the phone knows */ }
}
window.addEventListener("offline", () => { store.online = false; });
window.addEventListener("online", () => { store.online = true; });

async function start() {
  await new Promise(r => setTimeout(r));
  await api.loadPaths().catch(() => {});
  await loadDuty();
  await flush();
  new Live("/api/v1/ws", api, {onMessage, onState: onLive, seqKey: "quanzu.field.seq"}).start();
  window.addEventListener("online", flush);
}

api.onUnauthorized = () => { api.logout(); store.session = null; };
setInterval(() => { store.now = Date.now(); }, 1000);
PetiteVue.createApp(store).mount("#app");
if (store.session) start();
