// The pages' only way to the server: the public REST API and WebSocket of contract.md.
// `Api` keeps the token, knows which paths the server has (from /openapi.json, so a page shows
// "—" instead of calling an endpoint that is not there yet) and speaks the live socket protocol.
"use strict";

class Api {
  constructor(storage, key) {
    this.storage = storage;           // sessionStorage (screen) or localStorage (phone)
    this.key = key;
    this.paths = null;                // {"/api/v1/leads/{lead_id}/sign": ["post"], ...}
    this.onUnauthorized = () => {};
  }
  get session() { try { return JSON.parse(this.storage.getItem(this.key) || "null"); } catch { return null; } }
  set session(v) { v ? this.storage.setItem(this.key, JSON.stringify(v)) : this.storage.removeItem(this.key); }

  async login(username, password) {
    const r = await fetch("/api/v1/auth/token", {method: "POST", body: new URLSearchParams({username, password})});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status === 401 ? "用户名或密码错误" : describe(body, r.status));
    this.session = {token: body.access_token, role: body.role, team: body.team_code, username};
    return this.session;
  }
  logout() { this.session = null; }

  async loadPaths() {
    if (this.paths) return this.paths;
    const r = await fetch("/openapi.json");
    const doc = await r.json();
    this.paths = {};
    for (const [p, ops] of Object.entries(doc.paths || {})) this.paths[p] = Object.keys(ops);
    return this.paths;
  }
  // has("post", "/api/v1/leads/{}/sign"): "{}" stands for any path parameter.
  has(method, path) {
    if (!this.paths) return false;
    const re = new RegExp("^" + path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{\}/g, "\\{[^/]+\\}") + "$");
    return Object.entries(this.paths).some(([p, ops]) => re.test(p) && ops.includes(method));
  }

  // Answers the parsed body; throws ApiError (status, body) for an HTTP error, TypeError when offline.
  async call(method, path, body, headers = {}) {
    if (navigator.onLine === false) throw new TypeError("offline");  // no request the browser knows will fail
    const h = {...headers};
    const s = this.session;
    if (s) h.Authorization = "Bearer " + s.token;
    if (body !== undefined) h["Content-Type"] = "application/json";
    const r = await fetch(path, {method, headers: h, body: body === undefined ? undefined : JSON.stringify(body)});
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (r.status === 401) { this.onUnauthorized(); }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  get(path) { return this.call("GET", path); }
  post(path, body, headers) { return this.call("POST", path, body, headers); }
  put(path, body) { return this.call("PUT", path, body); }
}

class ApiError extends Error {
  constructor(status, body) { super(describe(body, status)); this.status = status; this.body = body; }
}

function describe(body, status) {
  if (body && Array.isArray(body.detail)) return body.detail.map(d => `${d.field}: ${d.message}`).join("；");
  if (body && body.detail) return String(body.detail);
  return `请求失败 (${status})`;
}

// The live socket: hello with the token and the last seq seen, resume after every reconnect,
// back off 1 s → 10 s, ack what arrived. `onState` gets "connecting" | "connected" | "disconnected".
class Live {
  constructor(path, api, {onMessage, onState, seqKey}) {
    Object.assign(this, {path, api, onMessage, onState, seqKey});
    this.delay = 1000; this.ws = null; this.stopped = false;
  }
  get lastSeq() { return Number(sessionStorage.getItem(this.seqKey) || 0); }
  start() { this.stopped = false; this.connect(); }
  stop() { this.stopped = true; if (this.ws) this.ws.close(); }
  connect() {
    if (this.stopped || !this.api.session) return;
    if (navigator.onLine === false) {  // offline: try again later, without a failing request
      this.onState("disconnected");
      setTimeout(() => this.connect(), this.delay);
      return;
    }
    this.onState("connecting");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + this.path);
    this.ws = ws;
    let opened = false, sequenced = false;  // any message yet; any message with a seq yet
    ws.onopen = () => {
      ws.send(JSON.stringify({type: "hello", token: this.api.session.token, last_seq: this.lastSeq}));
    };
    ws.onmessage = (ev) => {
      let msg; try { msg = JSON.parse(ev.data); } catch { return; }
      if (!opened) { opened = true; this.delay = 1000; this.onState("connected"); }
      if (typeof msg.seq === "number") {
        const first = !sequenced;
        sequenced = true;
        // A replay starts above last_seq; a first seq at or below it means the server began a new stream.
        if (!first && msg.seq <= this.lastSeq && msg.type !== "ping") return;  // already applied
        sessionStorage.setItem(this.seqKey, String(msg.seq));
        if (msg.type !== "result") ws.send(JSON.stringify({type: "ack", seq: msg.seq}));
      }
      if (msg.type !== "ping") this.onMessage(msg);
    };
    ws.onclose = () => {
      this.onState("disconnected");
      if (this.stopped) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
    ws.onerror = () => {};
  }
  send(msg) { if (this.ws && this.ws.readyState === 1) { this.ws.send(JSON.stringify(msg)); return true; } return false; }
}

// Shared words of both pages.
const TIER_LABEL = {P0: "P0 紧急", P1: "P1 高", P2: "P2 中", P3: "P3 低"};
const STATUS_LABEL = {received: "待分级", tiered: "待签收", working: "处置中", closed: "已结案", transferred: "已移交"};
const OUTCOME_LABEL = {dissuaded: "劝阻成功", already_defrauded: "已被骗", refused: "拒绝配合", not_reached: "未联系上",
                       false_alarm: "误报", duplicate: "重复"};
const FRAUD_LABEL = {order_brushing: "刷单返利", impersonate_customer_service: "冒充电商物流客服", fake_loan: "虚假贷款",
                     impersonate_acquaintance: "冒充熟人", online_shopping: "网络购物", fake_investment: "虚假投资理财",
                     impersonate_authority: "冒充公检法", game_trading: "网络游戏交易", online_dating: "网络交友",
                     fake_credit_repair: "虚假征信", ticket_refund: "机票退改签", other: "其他"};
const DUTY_LABEL = {on_duty: "在岗", off_duty: "离岗", busy: "忙碌"};

function earliestDeadline(deadlines) {
  const times = Object.values(deadlines || {}).map(t => Date.parse(t)).filter(t => !Number.isNaN(t));
  return times.length ? Math.min(...times) : null;
}
function clockText(ms) {
  const s = Math.max(0, Math.floor(Math.abs(ms) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, ss = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(ss).padStart(2, "0");
}
function ageText(seconds) {
  if (seconds == null) return "—";
  if (seconds < 60) return Math.round(seconds) + "秒前";
  if (seconds < 3600) return Math.round(seconds / 60) + "分钟前";
  return Math.round(seconds / 3600) + "小时前";
}
