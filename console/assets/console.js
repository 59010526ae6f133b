// The wasmrouter console. Message contents reach the page only as text: every element is built
// with createElement and filled with textContent, never from HTML strings, and links are made
// only to the console's own addresses. The Content-Security-Policy forbids inline scripts.
"use strict";
(() => {
  const TOKEN_KEY = "wasmrouter.admin_token";
  const POLL_MS = 2000;
  const viewEl = document.getElementById("view");
  const noticeEl = document.getElementById("notice");
  let cleanup = []; // what the current view must stop when another one is shown

  // ---- building elements ----------------------------------------------------------------

  // el builds an element; children that are strings or numbers become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "href") e.setAttribute("href", internalHref(v));
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    append(e, ...children);
    return e;
  }
  function append(parent, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return parent;
  }
  // internalHref keeps links inside the console: data never becomes a link elsewhere.
  function internalHref(v) {
    const s = String(v);
    return s.startsWith("/") && !s.startsWith("//") ? s : "/";
  }
  const svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    append(e, ...children);
    return e;
  }
  function link(path, label) { return el("a", { href: path, "data-nav": true }, label); }
  function seqLink(seq) { return link("/events/" + encodeURIComponent(String(seq)), String(seq)); }
  function table(headers, rows, attrs) {
    return el("table", attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: /\/s$|^(lag|position|seq|total|done|attempts|calls)/i.test(h) ? "num" : "" }, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))));
  }
  function kv(pairs) {
    return el("table", { class: "kv" }, el("tbody", {}, pairs.filter((p) => p[1] !== undefined && p[1] !== "").map(([k, v]) =>
      el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v)))));
  }
  function card(...children) { return el("div", { class: "card" }, ...children); }
  function fmtRate(r) { return r >= 100 ? r.toFixed(0) + "/s" : r >= 1 ? r.toFixed(1) + "/s" : r > 0 ? r.toFixed(2) + "/s" : "0/s"; }
  function fmtBytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }
  function fmtSeconds(s) {
    if (!s) return "–";
    return s < 1e-3 ? (s * 1e6).toFixed(1) + " µs" : s < 1 ? (s * 1e3).toFixed(2) + " ms" : s.toFixed(2) + " s";
  }
  function valueText(v) { return typeof v === "string" ? v : JSON.stringify(v); }

  // ---- notices, token, API ----------------------------------------------------------------

  function notice(msg, kind) {
    if (!msg) { noticeEl.hidden = true; noticeEl.textContent = ""; return; }
    noticeEl.hidden = false;
    noticeEl.className = "notice" + (kind === "info" ? " info" : "");
    noticeEl.textContent = msg;
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  // askToken shows the token dialog once; concurrent requests wait for the same answer.
  let asking = null;
  function askToken() {
    if (asking) return asking;
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    const cancel = document.getElementById("token-cancel");
    asking = new Promise((resolve) => {
      const done = (ok) => {
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancel);
        dialog.close();
        asking = null;
        resolve(ok);
      };
      const onSubmit = (e) => {
        e.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value);
        input.value = "";
        done(true);
      };
      const onCancel = () => done(false);
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancel);
      dialog.showModal();
      input.focus();
    });
    return asking;
  }

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // request calls the admin API with the tab's token, asking for one when the router wants it.
  async function request(method, path, body, signal) {
    for (let attempt = 0; ; attempt++) {
      const headers = {};
      if (token()) headers.Authorization = "Bearer " + token();
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
      if (resp.status === 401 && attempt < 3) {
        if (token()) sessionStorage.removeItem(TOKEN_KEY);
        if (await askToken()) continue;
        throw new APIError(401, "this needs the router's admin token");
      }
      return resp;
    }
  }
  async function api(method, path, body, signal) {
    const resp = await request(method, path, body, signal);
    let data = null;
    const ct = resp.headers.get("Content-Type") || "";
    if (ct.includes("json")) data = await resp.json();
    if (!resp.ok) {
      const msg = data && (data.error || (data.diagnostics && data.diagnostics.join("\n"))) || resp.statusText;
      const err = new APIError(resp.status, msg);
      err.data = data;
      throw err;
    }
    return { data, resp };
  }
  const get = async (path, signal) => (await api("GET", path, undefined, signal)).data;

  // every runs fn now and then every ms until the view changes.
  function every(ms, fn) {
    let stopped = false, timer = null;
    const tick = async () => {
      if (stopped) return;
      try { await fn(); } catch (e) { if (!stopped) notice(String(e.message || e)); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    cleanup.push(() => { stopped = true; clearTimeout(timer); });
    tick();
  }

  // rates turns two reads of GET /api/v1/counters into per-second rates.
  function counterIndex(c) {
    const idx = new Map();
    for (const [name, samples] of Object.entries(c.metrics || {})) {
      for (const s of samples) idx.set(name + JSON.stringify(Object.entries(s.labels).sort()), s.value);
    }
    return idx;
  }
  function rateOf(prev, cur, name, labels) {
    if (!prev) return 0;
    const key = name + JSON.stringify(Object.entries(labels).sort());
    const dt = (Date.parse(cur.time) - Date.parse(prev.time)) / 1000;
    const a = prev.idx.get(key) || 0, b = cur.idx.get(key) || 0;
    return dt > 0 && b >= a ? (b - a) / dt : 0;
  }
  function samplesOf(c, name) { return (c.metrics && c.metrics[name]) || []; }

  // ---- header readiness -------------------------------------------------------------------

  function showReadiness(status) {
    const pill = document.getElementById("readiness");
    pill.textContent = status.ready ? "ready" : "not ready";
    pill.className = "pill " + (status.ready ? "ok" : "bad");
    pill.title = status.reason || "";
  }

  // ---- overview ---------------------------------------------------------------------------

  function viewOverview() {
    document.title = "Overview · wasmrouter";
    const banner = el("div");
    const flow = el("div", { class: "card flow", id: "flow" });
    const tables = el("div");
    append(viewEl, el("h1", {}, "Overview"), banner, flow, tables);
    let prev = null, topo = null;
    every(POLL_MS, async () => {
      const [status, counters] = await Promise.all([get("/api/v1/status"), get("/api/v1/counters")]);
      if (!topo) topo = await get("/api/v1/topology");
      const cur = { time: counters.time, idx: counterIndex(counters) };
      showReadiness(status);
      banner.replaceChildren();
      if (!status.ready) append(banner, el("div", { class: "banner", id: "not-ready" }, "Not ready: ", status.reason || "unknown reason"));
      drawFlow(flow, topo, status, prev, cur);
      drawOverviewTables(tables, status, prev, cur);
      prev = cur;
      notice("");
    });
  }

  // routeRate estimates the events a route takes per second: what its busiest target got,
  // plus what it dropped or dead-lettered.
  function routeRate(r, prev, cur, streams) {
    let best = 0;
    for (const s of streams.filter((s) => s.route === r.name)) best = Math.max(best, deliveredRate(prev, cur, r.name, s.target, s.cluster));
    return best + rateOf(prev, cur, "router_events_dropped_total", { route: r.name }) +
      rateOf(prev, cur, "router_events_dead_lettered_total", { route: r.name });
  }
  let targetModes = {};
  function deliveredRate(prev, cur, route, target, cluster) {
    const label = targetModes[target] === "all" ? target + "@" + cluster : target;
    return rateOf(prev, cur, "router_events_delivered_total", { route, target: label });
  }

  function drawFlow(box, topo, status, prev, cur) {
    targetModes = Object.fromEntries(topo.targets.map((t) => [t.name, t.mode]));
    const W = 900, NW = 230, NH = 44, GAP = 16, X = [10, 335, 660];
    const cols = [topo.sources, topo.routes, topo.targets];
    const height = Math.max(...cols.map((c) => c.length), 1) * (NH + GAP) + 20;
    const pos = {};
    cols.forEach((col, i) => col.forEach((n, j) => { pos[i + ":" + n.name] = { x: X[i], y: 10 + j * (NH + GAP) }; }));
    const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", "aria-label": "flow from sources through routes to targets" });
    const edges = svg("g"), nodes = svg("g");
    root.append(edges, nodes);
    const clusterUp = Object.fromEntries((status.clusters || []).map((c) => [c.name, c.connected]));
    const consuming = Object.fromEntries((status.sources || []).map((s) => [s.name, s.consuming]));
    const lagOf = {};
    for (const s of status.streams || []) {
      const k = s.route + "\u0000" + s.target;
      lagOf[k] = Math.max(lagOf[k] || 0, s.lag);
    }
    const edge = (from, to, kind, fromName, toName, rate, lag) => {
      if (!from || !to) return;
      const x1 = from.x + NW, y1 = from.y + NH / 2, x2 = to.x, y2 = to.y + NH / 2, mx = (x1 + x2) / 2;
      const label = fmtRate(rate) + (lag !== undefined ? " · lag " + lag : "");
      edges.append(svg("g", {
        class: "edge" + (rate > 0 ? " active" : "") + (lag > 0 ? " lagging" : ""),
        "data-kind": kind, "data-from": fromName, "data-to": toName, "data-rate": rate.toFixed(3), "data-lag": lag === undefined ? "" : lag,
      },
      svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }),
      svg("text", { x: mx - 30, y: (y1 + y2) / 2 - 4 }, label)));
    };
    for (const r of topo.routes) {
      const rate = routeRate(r, prev, cur, status.streams || []);
      edge(pos["0:" + r.source], pos["1:" + r.name], "source-route", r.source, r.name, rate);
      for (const t of r.delivers) {
        const clusters = targetModes[t] === "all" ? (topo.targets.find((x) => x.name === t) || { clusters: [] }).clusters : [null];
        let rt = 0;
        for (const c of clusters) {
          const s = (status.streams || []).find((s) => s.route === r.name && s.target === t && (c === null || s.cluster === c));
          rt += deliveredRate(prev, cur, r.name, t, s ? s.cluster : c);
        }
        edge(pos["1:" + r.name], pos["2:" + t], "route-target", r.name, t, rt, lagOf[r.name + "\u0000" + t] || 0);
      }
    }
    const node = (i, n, kind, sub, down) => {
      const p = pos[i + ":" + n.name];
      nodes.append(svg("g", { class: "node " + kind + (down ? " down" : ""), "data-kind": kind, "data-name": n.name, transform: `translate(${p.x},${p.y})` },
        svg("rect", { width: NW, height: NH }),
        svg("text", { x: 10, y: 18 }, clip(n.name, 30)),
        svg("text", { x: 10, y: 35, class: "sub" }, clip(sub, 36))));
    };
    topo.sources.forEach((s) => node(0, s, "source", `${s.cluster} · ${s.queue}${consuming[s.name] ? "" : " · not consuming"}`, !consuming[s.name]));
    topo.routes.forEach((r) => node(1, r, "route", r.match.join(" ") + (r.filters.length + r.transforms.length || r.handler ? " · " + [...r.filters, ...r.transforms, r.handler].filter(Boolean).join(", ") : "")));
    topo.targets.forEach((t) => node(2, t, "target", `${t.clusters.join(", ")} · ${t.exchange}`, t.clusters.some((c) => clusterUp[c] === false)));
    box.replaceChildren(root);
  }
  function clip(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }

  function drawOverviewTables(box, status, prev, cur) {
    const st = status.store || {};
    box.replaceChildren(el("div", { class: "grid2" },
      card(el("h2", {}, "Sources"), table(["source", "cluster", "queue", "consuming", "logged/s"],
        (status.sources || []).map((s) => el("tr", {}, el("td", {}, s.name), el("td", {}, s.cluster), el("td", {}, s.queue),
          el("td", { class: s.consuming ? "ok" : "bad" }, s.consuming ? "yes" : "no"),
          el("td", { class: "num" }, fmtRate(rateOf(prev, cur, "router_events_stored_total", { source: s.name }))))))),
      card(el("h2", {}, "Clusters"), table(["cluster", "connected", "reconnects", "last error"],
        (status.clusters || []).map((c) => el("tr", {}, el("td", {}, c.name),
          el("td", { class: c.connected ? "ok" : "bad" }, c.connected ? (c.blocked ? "blocked: " + c.blocked : "yes") : "no"),
          el("td", { class: "num" }, c.reconnects), el("td", { class: "text" }, c.last_error || "")))))),
    // With a log several routers share, each pair names the router delivering it; position and
    // lag are current only where this router holds the pair.
    card(el("h2", {}, status.router ? `Deliveries (this router: ${status.router})` : "Deliveries"),
      table(["route", "target", "cluster"].concat(status.router ? ["delivered by"] : [], ["delivered/s", "position", "lag"]),
      (status.streams || []).map((s) => el("tr", {}, el("td", {}, s.route), el("td", {}, s.target), el("td", {}, s.cluster),
        status.router ? el("td", { class: s.held_here ? "ok" : "" }, s.held_here ? "this router" : (s.holder || "nobody yet")) : null,
        el("td", { class: "num" }, fmtRate(deliveredRate(prev, cur, s.route, s.target, s.cluster))),
        el("td", { class: "num" }, s.held_here || s.reported || !status.router ? s.position : ""),
        el("td", { class: "num " + (s.lag > 0 && (s.held_here || s.reported || !status.router) ? "warn" : "") }, s.held_here || s.reported || !status.router ? s.lag : ""))))),
    card(el("h2", {}, "Event log"), kv([["size", fmtBytes(st.size_bytes || 0)], ["seqs", `${st.first_seq} – ${st.last_seq}`],
      ["full", st.full ? "yes: consumption held back" : "no"], ["error", st.error || ""]])));
  }

  // ---- events -----------------------------------------------------------------------------

  const searchFields = [
    ["key", "routing key pattern", "order.*"], ["header", "header NAME:VALUE", "tenant:acme"], ["source", "source", ""],
    ["since", "since (15m or time)", ""], ["until", "until", ""], ["from_seq", "from seq", ""], ["to_seq", "to seq", ""], ["limit", "limit", "100"],
  ];

  function viewEvents() {
    document.title = "Events · wasmrouter";
    const params = new URLSearchParams(location.search);
    const form = el("form", { class: "search", id: "search" });
    for (const [name, label, ph] of searchFields) {
      append(form, el("label", {}, label, el("input", { name, value: params.get(name) || "", placeholder: ph })));
    }
    append(form, el("div", {}, el("button", { type: "submit" }, "Search")));
    const follow = el("button", { type: "button", class: "secondary", id: "follow" }, "Follow new events");
    const info = el("p", { class: "muted", id: "search-info" });
    const results = el("div", { id: "results" });
    append(viewEl, el("h1", {}, "Events"), card(form, el("div", { class: "row" }, follow)), info, results);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (String(v).trim() !== "") q.set(k, String(v).trim());
      navigate("/events" + (q.toString() ? "?" + q : ""));
    });
    follow.addEventListener("click", () => {
      const q = new URLSearchParams(location.search);
      q.set("follow", "1");
      navigate("/events?" + q);
    });
    if (params.get("follow")) followEvents(params, info, results, follow);
    else searchEvents(params, info, results);
  }

  function eventRows(list) {
    return list.map((ev) => el("tr", { "data-seq": ev.seq },
      el("td", { class: "num" }, seqLink(ev.seq)), el("td", { class: "hide-narrow" }, ev.time), el("td", {}, ev.source),
      el("td", { class: "text mono" }, ev.routing_key), el("td", { class: "text mono hide-narrow" }, ev.message_id),
      el("td", { class: "text mono" }, ev.body_encoding ? "(binary, " + ev.body.length + " base64 chars)" : clip(ev.body, 120))));
  }
  const eventHeaders = ["seq", "time", "source", "routing key", "message id", "body"];

  async function searchEvents(params, info, results) {
    const q = new URLSearchParams(params);
    q.delete("follow");
    let note = "";
    if (![...q.keys()].length) {
      // No search yet: the latest events.
      const status = await get("/api/v1/status");
      const first = status.store.first_seq, last = status.store.last_seq;
      if (last > 0) q.set("from_seq", String(Math.max(first, last - 99)));
      note = "The latest events. Search to see others.";
    }
    info.textContent = "Searching…";
    try {
      const { data, resp } = await api("GET", "/api/v1/events?" + q);
      const resume = resp.headers.get("X-Resume-From-Seq");
      const rows = eventRows(data);
      results.replaceChildren(card(table(eventHeaders, rows, { id: "events-table" })));
      info.replaceChildren(`${data.length} event${data.length === 1 ? "" : "s"}. ${note}`);
      const lastSeq = data.length ? data[data.length - 1].seq : 0;
      const limit = Number(q.get("limit") || 100);
      const nextFrom = resume ? Number(resume) : (data.length >= limit ? lastSeq + 1 : 0);
      if (nextFrom) {
        const more = new URLSearchParams(q);
        more.set("from_seq", String(nextFrom));
        append(info, " ", resume ? `The search stopped at seq ${nextFrom - 1} to answer quickly. ` : "",
          link("/events?" + more, resume ? "Continue the search" : "Next page"));
      }
    } catch (e) {
      info.textContent = "";
      notice(e.message);
    }
  }

  // followEvents reads GET /api/v1/events/stream (server-sent events) with fetch, so that the
  // token travels in a header rather than in the address.
  async function followEvents(params, info, results, button) {
    const q = new URLSearchParams();
    for (const k of ["key", "header", "source"]) for (const v of params.getAll(k)) q.append(k, v);
    const ctl = new AbortController();
    cleanup.push(() => ctl.abort());
    button.textContent = "Stop following";
    button.onclick = (e) => { e.stopImmediatePropagation(); const p = new URLSearchParams(location.search); p.delete("follow"); navigate("/events?" + p); };
    const body = el("tbody", {});
    results.replaceChildren(card(el("table", { id: "events-table" },
      el("thead", {}, el("tr", {}, eventHeaders.map((h) => el("th", {}, h)))), body)));
    info.textContent = "Following new events as they are logged…";
    let count = 0;
    try {
      const resp = await request("GET", "/api/v1/events/stream?" + q, undefined, ctl.signal);
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({}));
        throw new Error(data.error || resp.statusText);
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = msg.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          const ev = JSON.parse(data);
          body.prepend(...eventRows([ev]));
          while (body.rows.length > 500) body.deleteRow(-1);
          count++;
          info.textContent = `Following new events as they are logged: ${count} so far.`;
        }
      }
      info.textContent = "The stream ended.";
    } catch (e) {
      if (e.name !== "AbortError") notice("Event stream: " + e.message);
    }
  }

  // ---- one event --------------------------------------------------------------------------

  function decodeBody(ev) {
    if (ev.body_encoding === "base64") {
      const bin = atob(ev.body);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return bytes;
    }
    return new TextEncoder().encode(ev.body);
  }
  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length && off < 65536; off += 16) {
      const chunk = bytes.slice(off, off + 16);
      const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
      const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
      lines.push(off.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + " " + ascii);
    }
    if (bytes.length > 65536) lines.push(`… ${bytes.length - 65536} more bytes`);
    return lines.join("\n");
  }

  async function viewEvent(seq) {
    document.title = `Event ${seq} · wasmrouter`;
    append(viewEl, el("h1", {}, "Event ", seq));
    let ev;
    try { ev = await get("/api/v1/events/" + encodeURIComponent(seq)); } catch (e) { notice(e.message); return; }
    const p = ev.properties || {};
    append(viewEl, el("div", { class: "grid2" },
      card(el("h2", {}, "Event"), kv([["seq", String(ev.seq)], ["logged", ev.time], ["source", ev.source], ["exchange", ev.exchange],
        ["routing key", ev.routing_key], ["message id", ev.message_id]])),
      card(el("h2", {}, "Properties"), kv(Object.entries(p).map(([k, v]) => [k.replace(/_/g, " "), String(v)])))));
    const headers = Object.entries(ev.headers || {}).sort(([a], [b]) => (a < b ? -1 : 1));
    append(viewEl, card(el("h2", {}, "Headers"), table(["name", "type", "value"], headers.map(([k, v]) =>
      el("tr", {}, el("td", { class: "mono" }, k), el("td", { class: "muted" }, (ev.header_types || {})[k] || ""), el("td", { class: "mono" }, valueText(v)))),
    { id: "headers-table" })));
    // Body as text, JSON or hex.
    const bytes = decodeBody(ev);
    const asText = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    let asJSON = null;
    try { asJSON = JSON.stringify(JSON.parse(asText), null, 2); } catch (_) { asJSON = null; }
    const pre = el("pre", { id: "body" });
    const modes = { text: () => asText, json: () => asJSON ?? "(not JSON)", hex: () => hexDump(bytes) };
    const tabs = el("div", { class: "row tabs" });
    const show = (m) => {
      pre.textContent = modes[m]();
      for (const b of tabs.children) b.classList.toggle("active", b.dataset.mode === m);
    };
    for (const m of Object.keys(modes)) append(tabs, el("button", { type: "button", "data-mode": m, onclick: () => show(m) }, m === "json" ? "JSON" : m));
    append(viewEl, card(el("h2", {}, `Body (${bytes.length} bytes${ev.body_encoding ? ", binary" : ""})`), tabs, pre));
    show(asJSON !== null ? "json" : ev.body_encoding ? "hex" : "text");
    append(viewEl, card(el("h2", {}, "Deliveries"), table(["route", "target", "cluster", "state", "position", "reason"],
      ev.deliveries.map((d) => el("tr", { "data-route": d.route, "data-target": d.target, "data-state": d.state },
        el("td", {}, d.route), el("td", {}, d.target), el("td", {}, d.cluster || ""),
        el("td", { class: "state-" + d.state }, d.state.replace("_", " ")), el("td", { class: "num" }, d.position),
        el("td", { class: "text" }, d.reason || ""))), { id: "deliveries-table" })));
    const jobBox = el("div", { class: "job" });
    append(viewEl, card(el("h2", {}, "Dead letters"), deadLetterTable(ev.dead_letters, false, jobBox)), jobBox);
  }

  // ---- dead letters -----------------------------------------------------------------------

  // deadLetterTable lists dead letters with a redrive of the selected ones; the job's report
  // goes to jobBox, and after runs once it ends.
  function deadLetterTable(list, withEventLink, jobBox, after) {
    const checks = [];
    const rows = list.map((d) => {
      const box = el("input", { type: "checkbox", value: d.id, "aria-label": "select dead letter " + d.id, disabled: d.redriven });
      checks.push(box);
      return el("tr", { "data-id": d.id },
        el("td", {}, box), el("td", { class: "num" }, d.id), el("td", {}, d.route), el("td", {}, d.target || "(all)"),
        el("td", { class: "num" }, withEventLink ? seqLink(d.seq) : String(d.seq)),
        el("td", { class: "text" }, d.reason), el("td", { class: "num" }, d.attempts), el("td", { class: "hide-narrow" }, d.time),
        el("td", { class: d.redriven ? "ok" : "warn" }, d.redriven ? "redriven" : "pending"));
    });
    const button = el("button", { type: "button", id: "redrive", onclick: async () => {
      const ids = checks.filter((c) => c.checked).map((c) => Number(c.value));
      if (!ids.length) { notice("Select the dead letters to redrive."); return; }
      button.disabled = true;
      try {
        const { data } = await api("POST", "/api/v1/dlq/replay", { ids });
        if (!data.id) { notice("Nothing to redrive.", "info"); return; }
        followJob(data.id, jobBox, () => { if (after) after(); });
      } catch (e) { notice(e.message); } finally { button.disabled = false; }
    } }, "Redrive selected");
    return el("div", {}, table(["", "id", "route", "target", "seq", "reason", "attempts", "time", "state"], rows, { id: "dlq-table" }),
      list.some((d) => !d.redriven) ? el("div", { class: "row" }, button) : null);
  }

  async function viewDLQ() {
    document.title = "Dead letters · wasmrouter";
    const params = new URLSearchParams(location.search);
    const form = el("form", { class: "search" },
      el("label", {}, "route", el("input", { name: "route", value: params.get("route") || "" })),
      el("label", {}, "since", el("input", { name: "since", value: params.get("since") || "", placeholder: "1h" })),
      el("label", {}, "include redriven", el("select", { name: "all" }, el("option", { value: "" }, "no"), el("option", { value: "true", selected: params.get("all") === "true" }, "yes"))),
      el("div", {}, el("button", { type: "submit" }, "List")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (String(v)) q.set(k, String(v));
      navigate("/dlq" + (q.toString() ? "?" + q : ""));
    });
    const box = el("div");
    const jobBox = el("div", { class: "job" });
    append(viewEl, el("h1", {}, "Dead letters"), card(form), jobBox, box);
    const load = async () => {
      try {
        const list = await get("/api/v1/dlq?" + params);
        box.replaceChildren(card(el("p", { class: "muted" }, `${list.length} dead letter${list.length === 1 ? "" : "s"}`), deadLetterTable(list, true, jobBox, load)));
      } catch (e) { notice(e.message); }
    };
    await load();
  }

  // ---- replay jobs ------------------------------------------------------------------------

  function jobReport(p) {
    const pairs = [["job", p.id], ["state", p.state], ["progress", `${p.done} / ${p.total}`],
      ["selected", p.selected], ["delivered", p.delivered], ["dropped by a filter", p.dropped], ["failed", p.failed],
      ["dead-lettered", p.dead_lettered], ["error", p.error]];
    const out = [kv(pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]))];
    if (p.failures && p.failures.length) {
      out.push(el("h2", {}, "What did not go through"), table(["seq", "route", "target", "reason"], p.failures.map((f) =>
        el("tr", {}, el("td", { class: "num" }, seqLink(f.seq)), el("td", {}, f.route), el("td", {}, f.target || "(all)"), el("td", { class: "text" }, f.reason))), { id: "failures-table" }));
    }
    if (p.dry_run) {
      const d = p.dry_run;
      out.push(el("h2", {}, "Dry run"), kv([["events looked at", String(d.events)], ["would replay", String(d.would_replay)]]),
        table(["route → target", "events"], Object.entries(d.per_target || {}).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, v)))));
    }
    return el("div", { class: "report", "data-state": p.state }, out);
  }

  // followJob polls a job until it ends, showing its report in box; then calls done.
  function followJob(id, box, done) {
    let stopped = false;
    cleanup.push(() => { stopped = true; });
    const tick = async () => {
      if (stopped) return;
      try {
        const p = await get("/api/v1/replay/" + encodeURIComponent(id));
        box.replaceChildren(card(jobReport(p)));
        if (p.state !== "running") { if (done) done(p); return; }
      } catch (e) { notice(e.message); return; }
      setTimeout(tick, 500);
    };
    tick();
  }

  async function viewReplays() {
    document.title = "Replays · wasmrouter";
    const topo = await get("/api/v1/topology");
    const routes = el("select", { name: "routes", multiple: true, size: Math.min(6, topo.routes.length || 1) },
      topo.routes.map((r) => el("option", { value: r.name }, r.name)));
    const target = el("select", { name: "target" }, el("option", { value: "" }, "every target"), topo.targets.map((t) => el("option", { value: t.name }, t.name)));
    const inputs = ["since", "until", "from_seq", "to_seq", "rate"].map((n) => el("input", { name: n, placeholder: n === "since" ? "1h" : "" }));
    const form = el("form", { class: "search", id: "replay-form" },
      el("label", {}, "routes (none: all)", routes), el("label", {}, "target", target),
      inputs.map((i) => el("label", {}, i.name.replace("_", " "), i)));
    const dry = el("button", { type: "button", id: "dry-run" }, "Dry run");
    const start = el("button", { type: "button", id: "start-replay", disabled: true }, "Replay");
    const report = el("div", { id: "dry-report" });
    const jobs = el("div", { id: "jobs" });
    append(viewEl, el("h1", {}, "Replays"), card(el("p", { class: "muted" }, "A replay starts with its dry run: what it would deliver, then the replay itself."),
      form, el("div", { class: "row" }, dry, start), report), el("h2", {}, "Jobs"), jobs);
    const body = () => {
      const b = { routes: [...routes.selectedOptions].map((o) => o.value), target: target.value };
      for (const i of inputs) {
        if (!i.value.trim()) continue;
        b[i.name] = ["from_seq", "to_seq", "rate"].includes(i.name) ? Number(i.value) : i.value.trim();
      }
      return b;
    };
    let checked = null;
    form.addEventListener("input", () => { start.disabled = true; checked = null; });
    form.addEventListener("change", () => { start.disabled = true; checked = null; });
    dry.addEventListener("click", async () => {
      try {
        const b = body();
        const { data } = await api("POST", "/api/v1/replay", { ...b, dry_run: true });
        followJob(data.id, report, (p) => { if (p.state === "done") { checked = b; start.disabled = false; } });
      } catch (e) { notice(e.message); }
    });
    start.addEventListener("click", async () => {
      if (!checked) return;
      start.disabled = true;
      try {
        const { data } = await api("POST", "/api/v1/replay", { ...checked, dry_run: false });
        notice("Replay " + data.id + " started.", "info");
      } catch (e) { notice(e.message); }
    });
    every(1500, async () => {
      const list = await get("/api/v1/replay");
      jobs.replaceChildren(card(table(["job", "state", "progress", "delivered", "dropped", "failed", "started", ""], list.map((p) =>
        el("tr", { "data-id": p.id }, el("td", { class: "mono" }, p.id), el("td", { class: "state-" + p.state }, p.state + (p.dry_run ? " (dry run)" : "")),
          el("td", {}, el("progress", { max: Math.max(p.total, 1), value: p.done }), ` ${p.done} / ${p.total}`),
          el("td", { class: "num" }, p.delivered), el("td", { class: "num" }, p.dropped ?? ""), el("td", { class: "num" }, p.failed ?? ""),
          el("td", { class: "hide-narrow" }, p.started),
          el("td", {}, p.state === "running" ? el("button", { type: "button", class: "danger", onclick: async () => {
            try { await api("DELETE", "/api/v1/replay/" + encodeURIComponent(p.id)); } catch (e) { notice(e.message); }
          } }, "Stop") : el("button", { type: "button", class: "secondary", onclick: () => followJob(p.id, report) }, "Report")))))));
    });
  }

  // ---- modules ----------------------------------------------------------------------------

  function viewModules() {
    document.title = "Modules · wasmrouter";
    const box = el("div");
    append(viewEl, el("h1", {}, "Modules"), box);
    let prev = null, topo = null;
    every(POLL_MS, async () => {
      if (!topo) topo = await get("/api/v1/topology");
      const counters = await get("/api/v1/counters");
      const cur = { time: counters.time, idx: counterIndex(counters) };
      const calls = samplesOf(counters, "router_wasm_calls_total");
      const lat = samplesOf(counters, "router_wasm_call_duration_seconds");
      const inst = samplesOf(counters, "router_wasm_instances_created_total");
      const names = [...new Set([...topo.modules.map((m) => m.name), ...calls.map((s) => s.labels.module)])].sort();
      box.replaceChildren(card(table(["module", "calls/s", "results", "p50", "p90", "p99", "instances created", "pool", "timeout"], names.map((name) => {
        const mine = calls.filter((s) => s.labels.module === name);
        const rate = mine.reduce((a, s) => a + rateOf(prev, cur, "router_wasm_calls_total", s.labels), 0);
        const l = lat.find((s) => s.labels.module === name) || {};
        const spec = topo.modules.find((m) => m.name === name) || {};
        return el("tr", { "data-module": name }, el("td", {}, name), el("td", { class: "num" }, fmtRate(rate)),
          el("td", {}, mine.map((s) => `${s.labels.result} ${s.value}`).join(", ") || "–"),
          el("td", { class: "num" }, fmtSeconds(l.p50)), el("td", { class: "num" }, fmtSeconds(l.p90)), el("td", { class: "num" }, fmtSeconds(l.p99)),
          el("td", {}, inst.filter((s) => s.labels.module === name).map((s) => `${s.labels.reason} ${s.value}`).join(", ") || "–"),
          el("td", { class: "num" }, spec.pool_size ?? ""), el("td", { class: "num" }, spec.timeout_ns ? fmtSeconds(spec.timeout_ns / 1e9) : ""));
      }), { id: "modules-table" })), el("p", { class: "muted" }, "Latency percentiles are estimated from the histogram's buckets since the router started."));
      prev = cur;
    });
  }

  // ---- configuration ----------------------------------------------------------------------

  async function viewConfig() {
    document.title = "Configuration · wasmrouter";
    append(viewEl, el("h1", {}, "Configuration"));
    const genBox = el("div", { id: "generation" });
    const reloadBox = el("div", { id: "reload" });
    const topoBox = el("div");
    append(viewEl, genBox, reloadBox, topoBox);
    let hasConfig = true;
    // The generation and the history, again after each reload from this page.
    const loadGeneration = async () => {
      const c = await get("/api/v1/config");
      genBox.replaceChildren(card(el("h2", {}, "Generation"), kv([["generation", String(c.generation)], ["loaded", c.loaded_at || ""], ["file", c.file || ""], ["hash", c.hash || ""]]),
        el("h2", {}, "Last reloads"), table(["time", "trigger", "result", "generation", "changes"], (c.reloads || []).slice().reverse().map((r) =>
          el("tr", { "data-result": r.result || "" }, el("td", {}, r.time || ""), el("td", {}, r.trigger || ""),
            el("td", { class: r.result === "refused" ? "bad" : "ok" }, r.result || ""),
            el("td", { class: "num" }, r.generation ?? ""),
            el("td", { class: "mono" }, [...(r.changes || []), ...(r.diagnostics || [])].map(valueText).join("\n") || "no changes"))), { id: "reloads-table" })));
    };
    try {
      await loadGeneration();
    } catch (e) {
      hasConfig = false;
      genBox.replaceChildren(card(el("p", { class: "muted" }, e.status === 404 || e.status === 405
        ? "This router does not report configuration generations or reloads (GET /api/v1/config is not available)."
        : "Configuration: " + e.message)));
    }
    if (hasConfig) {
      const out = el("div");
      const check = el("button", { type: "button", id: "reload-check" }, "Check reload (dry run)");
      const apply = el("button", { type: "button", id: "reload-apply", class: "danger", disabled: true }, "Apply reload");
      // A change as `router reload` prints it: + route "x", ~ module "z": wasm file changed.
      const changeLine = (c) => typeof c === "string" ? c : [c.op, c.kind, c.name ? JSON.stringify(c.name) : ""].join(" ").trim() + (c.detail ? ": " + c.detail : "");
      const showResult = (d) => out.replaceChildren(kv([[d.dry_run ? "would apply generation" : "generation", String(d.generation ?? "")], ["applied", String(!!d.applied)]]),
        el("pre", {}, [...(d.changes || []).map(changeLine), ...(d.diagnostics || [])].join("\n") || "no changes"));
      check.addEventListener("click", async () => {
        apply.disabled = true;
        try { const { data } = await api("POST", "/api/v1/reload", { dry_run: true }); showResult(data); apply.disabled = false; } catch (e) { if (e.data) showResult(e.data); notice(e.message); }
        loadGeneration().catch(() => {});
      });
      apply.addEventListener("click", async () => {
        apply.disabled = true;
        try {
          const { data } = await api("POST", "/api/v1/reload", { dry_run: false });
          showResult(data);
          notice(data.applied ? "Reload applied: generation " + data.generation + "." : "Nothing to change: generation " + data.generation + " stays.", "info");
        } catch (e) { if (e.data) showResult(e.data); notice(e.message); }
        loadGeneration().catch(() => {});
      });
      reloadBox.replaceChildren(card(el("h2", {}, "Reload"), el("p", { class: "muted" }, "The router reads its configuration file again. Check what would change first."),
        el("div", { class: "row" }, check, apply), out));
    }
    const t = await get("/api/v1/topology");
    append(topoBox, card(el("h2", {}, "File"), kv([["file", t.file], ["clusters", t.clusters.join(", ")]].concat(t.store.backend === "stream"
      ? [["store", `stream ${t.store.stream} on cluster ${t.store.cluster}`], ["takeover", (t.store.takeover_ns / 1e9) + " s"]]
      : [["store", t.store.path]], [
      ["retention", (t.store.retention_ns / 3.6e12).toFixed(1) + " h"], ["max size", fmtBytes(t.store.max_size)]],
      t.store.backend === "stream" ? [] : [["on full", t.store.on_full]]))),
    card(el("h2", {}, "Sources"), table(["source", "cluster", "exchange", "queue", "bindings"], t.sources.map((s) =>
      el("tr", {}, el("td", {}, s.name), el("td", {}, s.cluster), el("td", {}, s.exchange), el("td", {}, s.queue), el("td", { class: "mono" }, (s.bindings || []).join(" ")))))),
    card(el("h2", {}, "Routes"), table(["route", "source", "match", "filters", "transforms", "handler", "targets", "dead letters to"], t.routes.map((r) =>
      el("tr", {}, el("td", {}, r.name), el("td", {}, r.source), el("td", { class: "mono" }, r.match.join(" ")), el("td", {}, r.filters.join(", ")),
        el("td", {}, r.transforms.join(", ")), el("td", {}, r.handler || ""), el("td", {}, r.delivers.join(", ")), el("td", {}, r.dead_letter || ""))))),
    card(el("h2", {}, "Targets"), table(["target", "mode", "clusters", "exchange", "routing key"], t.targets.map((x) =>
      el("tr", {}, el("td", {}, x.name), el("td", {}, x.mode), el("td", {}, x.clusters.join(", ")), el("td", {}, x.exchange), el("td", { class: "mono" }, x.routing_key || "")))))); 
  }

  // ---- navigation -------------------------------------------------------------------------

  const views = [
    [/^\/$/, "overview", viewOverview], [/^\/events$/, "events", viewEvents], [/^\/events\/(\d+)$/, "events", viewEvent],
    [/^\/dlq$/, "dlq", viewDLQ], [/^\/replays$/, "replays", viewReplays], [/^\/modules$/, "modules", viewModules], [/^\/config$/, "config", viewConfig],
  ];

  function render() {
    for (const stop of cleanup) stop();
    cleanup = [];
    notice("");
    viewEl.replaceChildren();
    const path = location.pathname;
    for (const [re, name, fn] of views) {
      const m = re.exec(path);
      if (!m) continue;
      for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
      Promise.resolve(fn(...m.slice(1))).catch((e) => notice(String(e.message || e)));
      return;
    }
    append(viewEl, el("h1", {}, "Not found"), el("p", {}, link("/", "Overview")));
  }

  function navigate(path) {
    if (path !== location.pathname + location.search) history.pushState(null, "", path);
    render();
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[data-nav]");
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", render);

  // The readiness pill stays current on every view.
  const readiness = async () => {
    try {
      const r = await fetch("/readyz", { cache: "no-store" });
      const d = await r.json();
      showReadiness({ ready: r.ok, reason: d.reason });
    } catch (_) {
      showReadiness({ ready: false, reason: "the router does not answer" });
    }
  };
  readiness();
  setInterval(readiness, 5000);
  render();
})();
