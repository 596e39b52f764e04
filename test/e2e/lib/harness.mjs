// Test harness: starts the socket-server binary on a free port, waits until it
// serves Engine.IO requests, stops it, and prints its stderr when a test fails.
// Also small helpers for socket.io-client (connect, wait-with-timeout, acks).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
export const E2E_DIR = path.resolve(here, "..");
export const REPO_ROOT = path.resolve(E2E_DIR, "../..");
export const SERVER_BIN = path.resolve(
  E2E_DIR,
  process.env.SOCKET_SERVER_BIN || "../../bin/socket-server",
);
export const DEFAULT_CONFIG = path.join(REPO_ROOT, "config.hcl");
export const CONFORMANCE_CONFIG = path.join(REPO_ROOT, "examples/conformance/config.hcl");

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

// Every child process still alive when the test process exits gets SIGKILL,
// so a failed/aborted test file never leaves a server behind.
const liveChildren = new Set();
process.on("exit", () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read the port, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolve with `value` or reject after `ms` with a message naming what we waited for. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A running (or stopped) socket-server child process.
 * stderr and stdout are captured in `logs` (JSON lines from the server).
 */
export class ServerProcess {
  constructor({ config = DEFAULT_CONFIG, port, name = "socket-server", bin = SERVER_BIN, env = {} }) {
    this.config = config;
    this.port = port;
    this.name = name;
    this.bin = bin;
    this.env = env;
    this.logs = [];
    this.child = null;
    this.exited = null; // promise resolving to {code, signal}
    this.exitInfo = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!existsSync(this.bin)) {
      throw new Error(
        `socket-server binary not found at ${this.bin}. Build it with \`make build\` in the repo root ` +
          `or point SOCKET_SERVER_BIN at it.`,
      );
    }
    if (!this.port) this.port = await freePort();
    this.logs.push(`--- start ${this.bin} run --config ${this.config} (LISTEN_ADDR=127.0.0.1:${this.port})`);
    const child = spawn(this.bin, ["run", "--config", this.config], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.env, LISTEN_ADDR: `127.0.0.1:${this.port}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exitInfo = null;
    liveChildren.add(child);
    const capture = (stream, label) => {
      let buf = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          this.logs.push(`[${label}] ${buf.slice(0, nl)}`);
          buf = buf.slice(nl + 1);
        }
      });
      stream.on("end", () => {
        if (buf) this.logs.push(`[${label}] ${buf}`);
      });
    };
    capture(child.stderr, "stderr");
    capture(child.stdout, "stdout");
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        liveChildren.delete(child);
        this.exitInfo = { code, signal };
        this.logs.push(`--- exited code=${code} signal=${signal}`);
        resolve(this.exitInfo);
      });
      child.on("error", (err) => {
        liveChildren.delete(child);
        this.exitInfo = { code: null, signal: null, error: err };
        this.logs.push(`--- spawn error: ${err.message}`);
        resolve(this.exitInfo);
      });
    });
    await this.waitReady();
    return this;
  }

  /** Poll GET /socket.io/?EIO=4&transport=polling until it answers 200. */
  async waitReady(timeoutMs = READY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let lastErr = "no attempt";
    while (Date.now() < deadline) {
      if (this.exitInfo) {
        throw new Error(
          `${this.name} exited before becoming ready (${JSON.stringify(this.exitInfo)})\n${this.formatLogs()}`,
        );
      }
      try {
        const res = await fetch(`${this.url}/socket.io/?EIO=4&transport=polling`, {
          signal: AbortSignal.timeout(1000),
        });
        await res.arrayBuffer().catch(() => {});
        if (res.status === 200) return;
        lastErr = `HTTP ${res.status}`;
      } catch (err) {
        lastErr = err.cause?.code || err.message;
      }
      await sleep(50);
    }
    throw new Error(
      `${this.name} not ready on ${this.url} after ${timeoutMs} ms (last: ${lastErr})\n${this.formatLogs()}`,
    );
  }

  /** SIGTERM, then SIGKILL after 5 s. Resolves with the exit info. */
  async stop() {
    const child = this.child;
    if (!child || this.exitInfo) return this.exitInfo;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (!this.exitInfo) {
        this.logs.push(`--- did not exit ${STOP_GRACE_MS} ms after SIGTERM; sending SIGKILL`);
        child.kill("SIGKILL");
      }
    }, STOP_GRACE_MS);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }

  formatLogs() {
    return [`===== ${this.name} output (${this.logs.length} lines) =====`, ...this.logs, `===== end ${this.name} =====`].join(
      "\n",
    );
  }
}

/** Start a server with the given config on a free port (or the given one). */
export async function startServer(opts = {}) {
  const server = new ServerProcess(opts);
  await server.start();
  return server;
}

/**
 * Wrap a test body so that on failure the captured output of the servers
 * returned by getServers() is printed (to stderr) before the error propagates.
 */
export function withLogs(getServers, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      const servers = [getServers()].flat().filter(Boolean);
      for (const s of servers) {
        process.stderr.write(`\n[test failed: ${t.name}]\n${s.formatLogs()}\n`);
      }
      throw err;
    }
  };
}

/** Tracks socket.io-client sockets so that tests can close them all in afterEach. */
export class Clients {
  constructor() {
    this.sockets = new Set();
  }

  /** io(url, opts) with forceNew (never share a Manager between test clients) and no reconnection unless asked. */
  connect(url, opts = {}) {
    const socket = io(url, {
      forceNew: true,
      reconnection: false,
      timeout: 5000,
      ...opts,
    });
    this.sockets.add(socket);
    return socket;
  }

  closeAll() {
    for (const s of this.sockets) {
      s.io.reconnection(false);
      s.disconnect();
      s.io.engine?.close();
    }
    this.sockets.clear();
  }
}

/** Wait for one `event` on an emitter (socket, manager, engine). Resolves with the args array. */
export function waitFor(emitter, event, ms = 5000, what = `"${event}"`) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return withTimeout(p, ms, what).finally(() => emitter.off(event, handler));
}

/** Wait until the socket is connected; fails with the connect_error message if any. */
export function waitConnected(socket, ms = 5000) {
  if (socket.connected) return Promise.resolve();
  let onConnect, onError;
  const p = new Promise((resolve, reject) => {
    onConnect = () => resolve();
    onError = (err) => reject(new Error(`connect_error: ${err?.message} ${JSON.stringify(err?.data ?? null)}`));
    socket.once("connect", onConnect);
    socket.once("connect_error", onError);
  });
  return withTimeout(p, ms, `socket to connect (${socket.nsp})`).finally(() => {
    socket.off("connect", onConnect);
    socket.off("connect_error", onError);
  });
}

/** Emit with an ack and a timeout; resolves with ALL ack arguments as an array. */
export function emitAck(socket, event, args = [], ms = 3000) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`no ack for "${event}" within ${ms} ms`));
      else resolve(res);
    });
  });
}

/** Collect every occurrence of `event` on `socket` into an array (for exactly-once / never assertions). */
export function collect(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

/** Normalize Buffer / ArrayBuffer / TypedArray to a Buffer (null if not binary). */
export function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return null;
}

/** Poll `predicate` until true or time out. */
export async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(20);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}
