// Helpers for the recovery and fleet tests: external tools (redis-server,
// nginx, go), the backend API, a numbered-message load, and per-client
// sequence counting (lost, duplicated, out of order, reconnects, recovered).
import { execFileSync, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "redis";
import { freePort, REPO_ROOT, sleep } from "./harness.mjs";

export const CI = process.env.CI === "true";

/** The absolute path of an executable on PATH or in the sbin folders, or null. */
export function findTool(name) {
  const dirs = [...(process.env.PATH || "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const d of dirs.filter(Boolean)) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The `skip` option for a describe block that needs these tools: a message
 * with an install hint when one is missing, false otherwise. Under CI=true a
 * missing tool is not skipped: the caller's tests fail instead (see
 * requireTools).
 */
export function skipUnlessTools(names) {
  const missing = names.filter((n) => !findTool(n));
  if (missing.length === 0 || CI) return false;
  return `missing ${missing.join(", ")}: apt-get install ${missing.map((n) => (n === "redis-server" ? "redis-server" : n)).join(" ")} (CI=true fails instead)`;
}

/** Throws when a tool is missing (for before() under CI=true). */
export function requireTools(names) {
  const missing = names.filter((n) => !findTool(n));
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: apt-get install ${missing.join(" ")}`);
  return names.map(findTool);
}

/** A temp folder with the given files written in it; returns the folder. */
export function tempDir(prefix, files = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

/** A redis-server on a free loopback port; pause()/resume() SIGSTOP/SIGCONT it. */
export async function startRedis() {
  const bin = requireTools(["redis-server"])[0];
  const port = await freePort();
  const child = spawn(bin, ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const url = `redis://127.0.0.1:${port}`;
  const probe = createClient({ url, socket: { reconnectStrategy: false } });
  probe.on("error", () => {});
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      await probe.quit();
      break;
    } catch (err) {
      if (i > 100) throw new Error(`redis-server on ${port} did not start: ${err.message}`);
      await sleep(50);
    }
  }
  return {
    url,
    port,
    child,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    stop: () => {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    },
  };
}

/**
 * nginx on a free port in front of `upstreams` ("127.0.0.1:port" each):
 * round robin, WebSocket only (a polling request gets 400), a refused or
 * 503 handshake retried on the next upstream. Config, pid and logs in a
 * temp folder. Returns { url, dir, stop, errorLog() }.
 */
export async function startNginx(upstreams) {
  const bin = requireTools(["nginx"])[0];
  const port = await freePort();
  const dir = tempDir("sf-nginx-");
  const conf = `
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  upstream socket_servers {
${upstreams.map((u) => `    server ${u} max_fails=0;`).join("\n")}
  }
  server {
    listen 127.0.0.1:${port};
    location /socket.io/ {
      if ($arg_transport != "websocket") { return 400; }
      proxy_pass http://socket_servers;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
      proxy_connect_timeout 2s;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries ${upstreams.length};
    }
  }
}
`;
  const file = path.join(dir, "nginx.conf");
  writeFileSync(file, conf);
  // No pipes: nginx's workers would hold them open after the master is gone.
  const child = spawn(bin, ["-c", file, "-p", dir, "-e", path.join(dir, "error.log")], { stdio: "ignore" });
  const out = { join: () => readLog(path.join(dir, "error.log")) };
  let exited = null;
  const gone = new Promise((resolve) => child.on("exit", (code, signal) => resolve((exited = { code, signal }))));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`nginx exited ${JSON.stringify(exited)}: ${out.join("")}`);
    try {
      const res = await fetch(`${url}/nope`, { signal: AbortSignal.timeout(500) });
      await res.arrayBuffer();
      break;
    } catch {
      if (i > 100) throw new Error(`nginx did not start: ${out.join("")}`);
      await sleep(50);
    }
  }
  return {
    url,
    dir,
    /** SIGTERM (the master stops its workers), SIGKILL after 3 s. */
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await gone;
      clearTimeout(timer);
    },
    errorLog: () => readLog(path.join(dir, "error.log")),
  };
}

function readLog(file) {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** go build a main package of this repository into dir; returns the binary's path. */
export function goBuild(pkg, dir, name) {
  const out = path.join(dir, name);
  execFileSync(findTool("go") || "/usr/local/go/bin/go", ["build", "-o", out, pkg], { cwd: REPO_ROOT, stdio: "pipe" });
  return out;
}

/** A call to the backend API of an instance; resolves with {status, json}. Throws on network errors. */
export async function apiCall(baseUrl, token, method, route, body, ms = 5000) {
  const res = await fetch(`${baseUrl}/api/v1/${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { text };
  }
  return { status: res.status, json };
}

/** Like apiCall but throws unless the status is 2xx; resolves with the JSON. */
export async function api(baseUrl, token, method, route, body, ms) {
  const { status, json } = await apiCall(baseUrl, token, method, route, body, ms);
  if (status >= 300) throw new Error(`${method} ${route}: HTTP ${status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * Numbered messages: one loop per room publishes {p: phase, r: room, s: seq}
 * every `intervalMs` through `publish(room, payload)` (resolves true when
 * the publication was accepted). Each attempt is recorded with the time it
 * began, so that a client's expected messages are those accepted and begun
 * after it joined. A failed attempt (refused, network error) is recorded
 * as not accepted: never expected, its number is not reused.
 */
export class SeqLoad {
  constructor({ phase, rooms, intervalMs, publish }) {
    this.phase = phase;
    this.rooms = rooms;
    this.intervalMs = intervalMs;
    this.publish = publish;
    this.sent = new Map(rooms.map((r) => [r, []])); // room -> [{s, t, ok}]
    this.running = false;
    this.loops = [];
  }

  start() {
    this.running = true;
    this.startedAt = Date.now();
    this.loops = this.rooms.map((room, i) => this.#loop(room, i));
    return this;
  }

  async #loop(room, i) {
    const list = this.sent.get(room);
    // Spread the rooms over the interval.
    await sleep((this.intervalMs * i) / this.rooms.length);
    let next = Date.now();
    for (let s = 1; this.running; s++) {
      const t = Date.now();
      let ok = false;
      try {
        ok = await this.publish(room, { p: this.phase, r: room, s });
      } catch {
        ok = false;
      }
      list.push({ s, t, ok });
      next += this.intervalMs;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now();
    }
  }

  async stop() {
    this.running = false;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
  }

  get accepted() {
    let n = 0;
    for (const list of this.sent.values()) n += list.filter((e) => e.ok).length;
    return n;
  }

  get failed() {
    let n = 0;
    for (const list of this.sent.values()) n += list.filter((e) => !e.ok).length;
    return n;
  }

  perSecond() {
    const secs = ((this.stoppedAt || Date.now()) - this.startedAt) / 1000;
    return this.accepted / secs;
  }
}

/**
 * One client's view of the numbered messages of its room, per phase, plus
 * its reconnections. `rejoin()` is called after a reconnection that was not
 * recovered (what an application does), so that a missed stretch counts as
 * lost rather than everything after it.
 */
export class SeqClient {
  constructor(socket, room, { event = "tick", rejoin } = {}) {
    this.socket = socket;
    this.room = room;
    this.got = new Map(); // phase -> [seq...] in arrival order
    this.joinedAt = null;
    this.connects = 0;
    this.reconnects = 0;
    this.recovered = 0;
    this.notRecovered = 0;
    this.ids = [];
    this.events = []; // [time, what]
    if (socket.connected) {
      this.connects = 1;
      this.ids.push(socket.id);
    }
    this.log = []; // [time, phase, seq, offset, socket id] per message, and connects
    socket.on(event, (m, offset) => {
      if (!m || m.r !== room) {
        this.stray = (this.stray || 0) + 1;
        return;
      }
      let l = this.got.get(m.p);
      if (!l) this.got.set(m.p, (l = []));
      l.push(m.s);
      this.log.push([Date.now(), m.p, m.s, offset]);
    });
    socket.on("connect", () => {
      this.connects++;
      this.ids.push(socket.id);
      this.log.push([Date.now(), "connect", socket.recovered ? "recovered" : "new", socket.io.engine?.id]);
      if (this.connects === 1) return;
      this.reconnects++;
      if (socket.recovered) this.recovered++;
      else {
        this.notRecovered++;
        this.events.push([Date.now(), "not recovered"]);
        rejoin?.(socket, room);
      }
    });
    socket.on("disconnect", (reason) => {
      this.events.push([Date.now(), `disconnect ${reason}`]);
      // The offset the client will send back in its CONNECT.
      this.log.push([Date.now(), "connect", `disconnect (${reason}), last offset`, socket._lastOffset]);
    });
  }

  /** Counts for one phase of `load`, given the time this client joined. */
  count(load) {
    const sent = load.sent.get(this.room) || [];
    const expected = new Set(sent.filter((e) => e.ok && e.t >= this.joinedAt).map((e) => e.s));
    const got = this.got.get(load.phase) || [];
    const seen = new Set();
    let dup = 0;
    let disorder = 0;
    let max = 0;
    for (const s of got) {
      if (seen.has(s)) dup++;
      seen.add(s);
      if (s < max) disorder++;
      max = Math.max(max, s);
    }
    const lostSeqs = [...expected].filter((s) => !seen.has(s));
    return { expected: expected.size, received: got.length, lost: lostSeqs.length, dup, disorder, lostSeqs };
  }

  /** The message and connect log of one phase around where seq should have been. */
  around(phase, seq) {
    const l = this.log.filter((e) => e[1] === phase || e[1] === "connect");
    let i = l.findIndex((e) => e[1] === phase && e[2] > seq);
    if (i < 0) i = l.length;
    return l.slice(Math.max(0, i - 5), i + 5).map((x) => x.join(" ")).join("\n");
  }

  /** The message and connect log of one phase around its first duplicate or disorder, for failure reports. */
  trouble(phase) {
    const seen = new Set();
    let max = 0;
    const l = this.log.filter((e) => e[1] === phase || e[1] === "connect");
    for (let i = 0; i < l.length; i++) {
      const e = l[i];
      if (e[1] === "connect") continue;
      if (seen.has(e[2]) || e[2] < max) {
        // From a few before it to the next connect (the client emits what
        // arrived before the CONNECT reply first, then "connect").
        let j = i;
        while (j < l.length - 1 && j < i + 30 && !(l[j][1] === "connect" && l[j][2] !== "new" && l[j][2] !== "recovered")) j++;
        while (j < l.length - 1 && j < i + 30 && l[j][1] !== "connect") j++;
        return l.slice(Math.max(0, i - 6), j + 1).map((x) => x.join(" ")).join("\n");
      }
      seen.add(e[2]);
      max = Math.max(max, e[2]);
    }
    return null;
  }
}

/** Sum of SeqClient counts over clients for one load, plus reconnection counters (since snap when given). */
export function tally(clients, load, snap) {
  const t = { clients: clients.length, expected: 0, received: 0, lost: 0, dup: 0, disorder: 0, reconnects: 0, recovered: 0, notRecovered: 0, clientsWithLoss: 0 };
  t.samples = [];
  t.lostSamples = [];
  for (const c of clients) {
    const k = c.count(load);
    if ((k.dup || k.disorder) && t.samples.length < 3) t.samples.push(`room ${c.room}, socket ${c.socket.id}:\n${c.trouble(load.phase)}`);
    if (k.lost && t.lostSamples.length < 3) t.lostSamples.push(`room ${c.room}, socket ${c.socket.id}: lost ${k.lostSeqs.join(",")} (published at ${k.lostSeqs.map((s) => load.sent.get(c.room).find((e) => e.s === s)?.t).join(",")}):\n${c.around(load.phase, k.lostSeqs[0])}`);
    t.expected += k.expected;
    t.received += k.received;
    t.lost += k.lost;
    t.dup += k.dup;
    t.disorder += k.disorder;
    if (k.lost) t.clientsWithLoss++;
  }
  Object.assign(t, reconnectsSince(clients, snap || clients.map(() => ({ reconnects: 0, recovered: 0, notRecovered: 0 }))));
  return t;
}

/** Reconnection counters as they are now, to diff a phase against. */
export function reconnectSnapshot(clients) {
  return clients.map((c) => ({ reconnects: c.reconnects, recovered: c.recovered, notRecovered: c.notRecovered }));
}

/** Reconnection counters since a snapshot. */
export function reconnectsSince(clients, snap) {
  const d = { reconnects: 0, recovered: 0, notRecovered: 0 };
  clients.forEach((c, i) => {
    d.reconnects += c.reconnects - snap[i].reconnects;
    d.recovered += c.recovered - snap[i].recovered;
    d.notRecovered += c.notRecovered - snap[i].notRecovered;
  });
  return d;
}

/** Close the client's TCP connection under its transport (no close frame): a "transport close" on both sides. */
export function cutTransport(socket) {
  const tr = socket.io.engine?.transport;
  if (tr?.ws?._socket) tr.ws._socket.destroy();
  else throw new Error(`cannot cut transport ${tr?.name}: no underlying TCP socket`);
}
