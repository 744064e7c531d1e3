// 处置队手机页: duty, location, the current offer, the assigned lead, arrive, check in and complete.
// Works in basements and lifts: a service worker (/m/sw.js) serves the page when offline; the squad's
// answers (accept, decline, arrive, check-in, complete) go through an outbox in localStorage, each with
// the phone's time of the tap ("at") and an Idempotency-Key, sent in order when the connection returns
// (a resend with the same key is applied once); a 409 on arrive / check-in / complete counts as done.
// The last list of assignments and the lead on hand are kept so the page shows them offline.
// While on duty the phone's position follows the squad (watchPosition, throttled).
"use strict";

const api = new Api(localStorage, "quanzu.field");
const OUTBOX = "quanzu.field.outbox";
const KEPT = "quanzu.field.kept";        // {username, assignments, lead}: what the page shows offline
const ACTION_LABEL = {accept: "接受", decline: "拒绝", arrive: "到场", checkin: "报平安", complete: "提交结果"};
const AT_ACTIONS = new Set(["arrive", "checkin", "complete"]);  // the server takes the phone's "at" for these
const DONE_ON_409 = new Set(["arrive", "checkin", "complete"]);  // 409: it was done already (by a teammate)
const LOCATION_EVERY_MS = 30000, LOCATION_MOVED_M = 50;
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
let dutySetAt = 0;  // when the member last switched: a server read begun around then may predate the switch

const store = PetiteVue.reactive({
  session: api.session, form: {username: "", password: ""}, error: "",
  live: "disconnected", online: navigator.onLine !== false, duty: localStorage.getItem("quanzu.field.duty") || "off_duty",
  position: null, manual: false, manualLon: null, manualLat: null,
  assignments: [], wsOffer: null, lead: null, now: Date.now(), geoState: "",
  outbox: JSON.parse(localStorage.getItem(OUTBOX) || "[]"),
  done: freshDone(), OUTCOME_LABEL, CHECKLIST,

  get offer() {
    const ws = this.wsOffer && !this.assignments.some(a => a.id === this.wsOffer.id && a.status !== "offered")
      ? this.wsOffer : null;  // an offer pushed before the list was read, unless the list says it is over
    const o = this.assignments.find(a => a.status === "offered") || ws;
    if (o && this.outbox.some(x => x.assignment_id === o.id)) return null;  // answered, waiting to be sent
    return o && Date.parse(o.expires_at) > this.now ? o : null;
  },
  get offerLeft() { return this.offer ? Math.max(0, Math.round((Date.parse(this.offer.expires_at) - this.now) / 1000)) : 0; },
  // The task on hand: accepted or arrived, or with actions still in the outbox (shown until the server has them).
  get current() {
    return this.assignments.find(a => ACTIVE.has(this.localStatus(a))
      || this.outbox.some(x => x.assignment_id === a.id && x.action !== "decline")) || null;
  },
  get canArrive() { return !!this.current && this.localStatus(this.current) === "accepted"; },
  get canComplete() { return !!this.current && this.localStatus(this.current) === "arrived"; },
  get pendingText() {
    return this.outbox.map(x => `${ACTION_LABEL[x.action] || x.action} ${timeText(x.at, true)}`).join("、");
  },
  // 报平安: the last check-in on this phone (sent or waiting) and when the next one is due.
  get lastCheckin() {
    const queued = this.current && this.outbox.filter(x => x.assignment_id === this.current.id && x.action === "checkin");
    if (queued && queued.length) return {at: queued[queued.length - 1].at, pending: true};
    return this.current && this.current.checkin_at ? {at: this.current.checkin_at, pending: false} : null;
  },
  get lastCheckinText() {
    const last = this.lastCheckin;
    return last ? `上次 ${timeText(last.at)}${last.pending ? "（待发送）" : ""}` : "";
  },
  get checkinDue() {
    const due = this.current && this.current.checkin_due_at;
    const last = this.lastCheckin;
    // A check-in still in the outbox moved the due time on: the server's interval, counted from its tap.
    if (due && last && last.pending && this.current.checkin_at) {
      const every = Date.parse(due) - Date.parse(this.current.checkin_at);
      if (every > 0) return Date.parse(last.at) + every;
    }
    return due ? Date.parse(due) : null;
  },
  get checkinText() {
    const due = this.checkinDue;
    if (due == null) return "下次报平安：—";
    const left = due - this.now;
    return `下次报平安 ${timeText(due)}（${left >= 0 ? "还有 " + clockText(left) : "已超时 " + clockText(left)}）`;
  },
  get checkinLate() { return this.checkinDue != null && this.checkinDue < this.now; },
  get locText() {
    if (!this.position) return this.geoState || "位置未上报";
    return `${this.position.lon.toFixed(5)}, ${this.position.lat.toFixed(5)} · ${ageText((this.now - this.position.at) / 1000)}`
      + (this.position.sent ? " · 已上报" : " · 待上报");
  },
  // What the phone knows: the server's status, moved on by actions still in the outbox.
  localStatus(a) {
    const queued = this.outbox.filter(x => x.assignment_id === a.id).map(x => x.action);
    if (queued.includes("complete")) return "completed";
    if (a.status === "offered" && queued.includes("decline")) return "declined";
    if (queued.includes("arrive") && ["offered", "accepted"].includes(a.status)) return "arrived";
    if (queued.includes("accept") && a.status === "offered") return "accepted";
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
  logout() {
    if (this.outbox.length && !confirm(`还有 ${this.outbox.length} 项操作未发送，退出将丢弃，确定退出？`)) return;
    api.logout(); forget(); localStorage.removeItem(OUTBOX); location.reload();
  },
  async setDuty(on) {
    dutyChanges += 1; dutySetAt = Date.now();
    const status = on ? "on_duty" : "off_duty";
    this.duty = status; localStorage.setItem("quanzu.field.duty", status);
    followLocation();
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
    const fix = {lon, lat, accuracy, at: Date.now()};
    showFix(fix);
    try { await sendFix(fix); this.error = ""; }
    catch (e) { this.error = "位置未能上报：" + (e instanceof ApiError ? e.message : "网络不可用"); }
  },
  accept() { queue(this.offer.id, "accept", undefined); this.wsOffer = null; },
  decline() { queue(this.offer.id, "decline", {reason: "busy"}); this.wsOffer = null; },
  arrive() { queue(this.current.id, "arrive", undefined); },
  checkin() { queue(this.current.id, "checkin", undefined); },
  complete() {
    const d = this.done;
    queue(this.current.id, "complete", {outcome: d.outcome, met_in_person: !!d.met_in_person, note: d.note || null,
      loss_cny: d.loss_cny === "" ? null : d.loss_cny ?? null, saved_cny: d.saved_cny === "" ? null : d.saved_cny ?? null,
      checklist: JSON.parse(JSON.stringify(d.checklist))});
    this.done = freshDone();
  },
});

// ---------------------------------------------------------------- the outbox
function timeText(t, seconds = false) {
  return new Date(t).toLocaleTimeString("zh-CN", {hour12: false, hour: "2-digit", minute: "2-digit",
                                                  ...(seconds ? {second: "2-digit"} : {})});
}
function saveOutbox() { localStorage.setItem(OUTBOX, JSON.stringify(store.outbox)); }
// crypto.randomUUID exists only in a secure context (https, localhost); getRandomValues everywhere.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map(x => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
function queue(assignmentId, action, body) {
  store.outbox.push({key: newKey(), assignment_id: assignmentId, action, body, at: new Date().toISOString(),
                     user: store.session && store.session.username});
  saveOutbox();
  flush();
}
// What is sent: the body with the phone's time of the tap for the actions the server dates by it.
function bodyOf(item) {
  return AT_ACTIONS.has(item.action) && !item.noAt ? {...(item.body || {}), at: item.at} : item.body;
}
let flushing = false;
async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    while (store.outbox.length) {
      const item = store.outbox[0];
      if (item.user && store.session && item.user !== store.session.username) {  // another member's, left on this phone
        store.outbox.shift(); saveOutbox(); continue;
      }
      try {
        await api.post(`/api/v1/assignments/${item.assignment_id}/${item.action}`, bodyOf(item), {"Idempotency-Key": item.key});
      } catch (e) {
        if (!(e instanceof ApiError) || e.status >= 500 || e.status === 401) break;  // offline or server trouble: later
        if (e.status === 422 && !item.noAt && refusedAt(e)) {
          // The server does not believe the phone's clock (ahead of it, or before the offer): send the action
          // as received now rather than lose it. Another request, so another key.
          Object.assign(item, {noAt: true, key: newKey()});
          saveOutbox();
          continue;
        }
        if (!(e.status === 409 && DONE_ON_409.has(item.action))) store.error = `“${ACTION_LABEL[item.action]}”未成功：${e.message}`;
      }
      store.outbox.shift();
      saveOutbox();
    }
  } finally { flushing = false; }
  await refresh();
}
function refusedAt(e) {
  const detail = e.body && e.body.detail;
  return Array.isArray(detail) && detail.some(d => String(d.field || "").split(".").pop() === "at");
}

// ---------------------------------------------------------------- data and live
async function refresh() {
  try {
    store.assignments = (await api.get("/api/v1/assignments?limit=20")).items;  // a squad sees its own
  } catch { return; }  // offline: what the page kept stays on screen
  const cur = store.current;
  const leadId = cur && cur.status !== "offered" && cur.lead_id;  // readable once the squad's accept is in
  if (leadId && (!store.lead || store.lead.id !== leadId)) {
    try { store.lead = await api.get(`/api/v1/leads/${leadId}`); } catch { store.lead = null; }
  }
  if (!cur) store.lead = null;
  keep();
  setTimeout(drawMini);
}
// The squad's own task stays on its phone (it holds the full record anyway) until logout.
function keep() {
  const s = store.session;
  if (s) localStorage.setItem(KEPT, JSON.stringify({username: s.username, assignments: store.assignments, lead: store.lead}));
}
function restore() {
  try {
    const k = JSON.parse(localStorage.getItem(KEPT) || "null");
    if (k && store.session && k.username === store.session.username) {
      store.assignments = k.assignments || []; store.lead = k.lead || null;
      setTimeout(drawMini);
    }
  } catch { /* nothing kept */ }
}
function forget() { localStorage.removeItem(KEPT); }
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
  if (state === "connected" && store.live !== "connected") { flush(); retryFix(); }
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
    if (asked !== dutyChanges || Date.now() - dutySetAt < 10000) return;  // the member's recent switch wins
    store.duty = t.status; localStorage.setItem("quanzu.field.duty", t.status);
  } catch { /* offline: keep what the phone knows */ }
  followLocation();
}
window.addEventListener("offline", () => { store.online = false; });
window.addEventListener("online", () => { store.online = true; });

// ---------------------------------------------------------------- location follows the phone on duty
// A fix is sent when LOCATION_EVERY_MS have passed since the last one sent, or the phone moved
// LOCATION_MOVED_M from it; between those the newest fix waits (and goes when its time comes).
const geo = {watch: null, tried: 0, sent: null, pending: null, timer: null, failed: false};
function followLocation() {
  const want = !!store.session && store.duty !== "off_duty" && !!navigator.geolocation;
  if (want && geo.watch == null) {
    geo.watch = navigator.geolocation.watchPosition(onFix, onFixError, {enableHighAccuracy: true, maximumAge: 15000});
  } else if (!want && geo.watch != null) {
    navigator.geolocation.clearWatch(geo.watch);
    clearTimeout(geo.timer);
    Object.assign(geo, {watch: null, pending: null, timer: null});
  }
}
function onFix(p) {
  const fix = {lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy, at: p.timestamp || Date.now()};
  store.geoState = "";
  showFix(fix);
  geo.pending = fix;
  sendPending();
}
function onFixError(e) {
  if (e.code === 1) store.geoState = "定位未授权，请手动上报";  // PERMISSION_DENIED; timeouts: the watch goes on
}
function showFix(fix) {
  store.position = {lon: fix.lon, lat: fix.lat, at: fix.at, sent: false};
  drawMini();
}
function metres(a, b) {  // haversine: right for the distances a squad moves
  const r = Math.PI / 180, dLat = (b.lat - a.lat) * r, dLon = (b.lon - a.lon) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371000 * Math.asin(Math.sqrt(h));
}
function waitBeforeSending(fix, now) {
  if (!geo.sent || metres(geo.sent, fix) >= LOCATION_MOVED_M) return 0;
  return Math.max(0, geo.tried + LOCATION_EVERY_MS - now);
}
function sendPending() {
  const fix = geo.pending;
  clearTimeout(geo.timer);
  geo.timer = null;
  if (!fix) return;
  const wait = waitBeforeSending(fix, Date.now());
  if (wait > 0) { geo.timer = setTimeout(sendPending, wait); return; }
  geo.pending = null;
  sendFix(fix).catch(() => {
    if (geo.watch == null) return;                                  // off duty meanwhile
    if (!geo.pending) geo.pending = fix;                            // not sent: the newest fix goes next time
    clearTimeout(geo.timer);
    geo.timer = setTimeout(sendPending, LOCATION_EVERY_MS);
  });
}
// Back online: the fix that could not be sent goes now, not at the end of its 30 s.
function retryFix() { if (geo.pending && geo.failed) { geo.tried = 0; sendPending(); } }
async function sendFix(fix) {
  geo.tried = Date.now();
  try {
    await api.post("/api/v1/teams/me/location",
                   {lon: fix.lon, lat: fix.lat, crs: "wgs84", accuracy_m: fix.accuracy, at: new Date(fix.at).toISOString()});
  } catch (e) { geo.failed = true; throw e; }
  geo.failed = false;
  geo.sent = fix;
  if (store.position && store.position.at === fix.at) store.position = {...store.position, sent: true};
}

async function start() {
  await new Promise(r => setTimeout(r));
  restore();
  followLocation();
  await loadDuty();
  await flush();
  new Live("/api/v1/ws", api, {onMessage, onState: onLive, seqKey: "quanzu.field.seq"}).start();
  window.addEventListener("online", () => { flush(); retryFix(); });
}

// The page itself loads offline: the service worker keeps it (registered while online; an offline
// load would only fail the worker's update check).
if ("serviceWorker" in navigator && navigator.onLine !== false) {
  navigator.serviceWorker.register("/m/sw.js", {scope: "/m/"}).catch(() => {});
}
api.onUnauthorized = () => { api.logout(); forget(); store.session = null; followLocation(); };
setInterval(() => { store.now = Date.now(); }, 1000);
PetiteVue.createApp(store).mount("#app");
if (store.session) start();
