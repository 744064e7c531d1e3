// 手机页的 service worker (scope /m/): the page and its assets load in a basement or a lift.
// Network first, the last good copy when the network fails; the API (and the socket) never goes
// through here, so nothing a squad reads from the server is kept by this worker.
"use strict";

const CACHE = "quanzu-field-v1";
const SHELL = ["/m/", "/ui/field.js", "/ui/field.css", "/ui/api.js", "/ui/config.js", "/ui/vendor/petite-vue.js",
               "/ui/vendor/leaflet.js", "/ui/vendor/leaflet.css"];

self.addEventListener("install", (event) => {
  // cache: "reload" so the shell is what the server has now, not what the HTTP cache kept.
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, {cache: "reload"}))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("quanzu-field-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// The page and its assets: /m/… and /ui/…; everything else (API, /openapi.json) is left to the browser.
function isShell(url) {
  return url.origin === self.location.origin && (url.pathname === "/m/" || url.pathname.startsWith("/ui/"));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (!isShell(url)) return;
  event.respondWith(networkFirst(event, request));
});

async function networkFirst(event, request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) event.waitUntil(cache.put(request, response.clone()).catch(() => {}));
    return response;
  } catch {  // offline: the copy kept last time, or a plain 503 (no rejected promise, nothing logged)
    const kept = await cache.match(request, {ignoreSearch: true});
    return kept || new Response("离线，且本机没有缓存", {status: 503, headers: {"Content-Type": "text/plain; charset=utf-8"}});
  }
}
