// The browser chat example in headless Chromium against the real server:
// the page connects over polling, upgrades to websocket, joins a room and
// shows messages sent by a Node socket.io-client (and vice versa).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import puppeteer from "puppeteer-core";
import {
  Clients,
  DEFAULT_CONFIG,
  REPO_ROOT,
  collect,
  emitAck,
  freePort,
  startServer,
  until,
  waitConnected,
  withLogs,
} from "./lib/harness.mjs";

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHAT_DIR = path.join(REPO_ROOT, "examples", "browser-chat");
const BUNDLE = path.join(CHAT_DIR, "node_modules", "socket.io-client", "dist", "socket.io.min.js");
const ROOM = "e2e-room";

/** Collects the output of the static server and of the browser page, printed on failure. */
class LogBook {
  constructor(name) {
    this.name = name;
    this.logs = [];
  }
  push(line) {
    this.logs.push(line);
  }
  formatLogs() {
    return [`===== ${this.name} (${this.logs.length} lines) =====`, ...this.logs, `===== end ${this.name} =====`].join(
      "\n",
    );
  }
}

describe("browser chat example in headless Chromium (default config)", { timeout: 100_000 }, () => {
  let server;
  let web;
  let webUrl;
  let browser;
  let page;
  let userDataDir;
  const webLog = new LogBook("serve.mjs");
  const pageLog = new LogBook("browser page console");
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => [server, webLog, pageLog], fn));

  const chromiumMissing =
    `Chromium not found at CHROMIUM_PATH=${CHROMIUM_PATH}. Install it (Debian: apt-get install -y chromium) ` +
    `or set CHROMIUM_PATH to a Chromium/Chrome binary. The browser tests fail (they never skip) without it.`;

  before(async () => {
    if (!existsSync(BUNDLE)) {
      // examples/browser-chat has its own package.json/package-lock.json; install it on demand.
      execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: CHAT_DIR, stdio: "inherit", timeout: 120_000 });
    }
    assert.ok(existsSync(BUNDLE), `socket.io-client bundle missing at ${BUNDLE}`);

    server = await startServer({ config: DEFAULT_CONFIG, name: "socket-server(default)" });

    const webPort = await freePort();
    webUrl = `http://127.0.0.1:${webPort}`;
    web = spawn(process.execPath, [path.join(CHAT_DIR, "serve.mjs")], {
      cwd: CHAT_DIR,
      env: { ...process.env, PORT: String(webPort), HOST: "127.0.0.1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    web.stdout.on("data", (d) => webLog.push(`[stdout] ${String(d).trimEnd()}`));
    web.stderr.on("data", (d) => webLog.push(`[stderr] ${String(d).trimEnd()}`));
    web.on("exit", (code, signal) => webLog.push(`--- exited code=${code} signal=${signal}`));
    await until(
      async () => {
        try {
          const res = await fetch(`${webUrl}/`, { signal: AbortSignal.timeout(1000) });
          await res.arrayBuffer();
          return res.status === 200;
        } catch {
          return false;
        }
      },
      10_000,
      `serve.mjs on ${webUrl}`,
    );

    if (!existsSync(CHROMIUM_PATH)) return; // reported by the tests below
    userDataDir = mkdtempSync(path.join(tmpdir(), "socketfleet-chromium-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM_PATH,
      headless: false, // headless mode is set by the explicit --headless flag below
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        `--user-data-dir=${userDataDir}`,
      ],
      timeout: 30_000,
      protocolTimeout: 30_000,
    });
    page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    page.on("console", (msg) => pageLog.push(`[console.${msg.type()}] ${msg.text()}`));
    page.on("pageerror", (err) => pageLog.push(`[pageerror] ${err.message}`));
    page.on("requestfailed", (req) => pageLog.push(`[requestfailed] ${req.url()} ${req.failure()?.errorText}`));
  });

  afterEach(() => clients.closeAll());

  after(async () => {
    clients.closeAll();
    await browser?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (web && web.exitCode === null) {
      web.kill("SIGTERM");
      const timer = setTimeout(() => web.kill("SIGKILL"), 5000);
      await new Promise((r) => (web.exitCode !== null ? r() : web.once("exit", r)));
      clearTimeout(timer);
    }
    await server?.stop();
  });

  const text = (testid) => page.$eval(`[data-testid="${testid}"]`, (el) => el.textContent.trim());

  async function pageMessages() {
    return page.$$eval('[data-testid="message"]', (items) =>
      items.map((li) => ({
        from: li.querySelector('[data-testid="message-from"]').textContent,
        text: li.querySelector('[data-testid="message-text"]').textContent,
      })),
    );
  }

  async function nodeClientInRoom() {
    const node = clients.connect(server.url);
    await waitConnected(node);
    const [res] = await emitAck(node, "join", [ROOM]);
    assert.equal(res?.ok, true, `join ack: ${JSON.stringify(res)}`);
    return node;
  }

  t("Chromium is available at CHROMIUM_PATH", async () => {
    assert.ok(existsSync(CHROMIUM_PATH), chromiumMissing);
    assert.ok(page, "the browser did not start");
  });

  t("the page connects over polling, upgrades to websocket and joins the room", async () => {
    assert.ok(page, chromiumMissing);
    const url = `${webUrl}/?server=${encodeURIComponent(server.url)}&room=${ROOM}&name=browser`;
    const res = await page.goto(url, { waitUntil: "load" });
    assert.equal(res.status(), 200);
    try {
      await page.waitForFunction(
        () => {
          const q = (id) => document.querySelector(`[data-testid="${id}"]`);
          return (
            q("connection-state").textContent === "connected" &&
            q("transport").textContent === "websocket" &&
            q("room-state").dataset.state === "joined"
          );
        },
        { timeout: 15_000, polling: 50 },
      );
    } catch (err) {
      const state = await page.evaluate(() =>
        [...document.querySelectorAll("[data-testid]")]
          .filter((el) => !["message", "messages"].includes(el.dataset.testid))
          .map((el) => `${el.dataset.testid}=${JSON.stringify(el.textContent.trim())}`)
          .join(" "),
      );
      throw new Error(`page did not reach connected/websocket/joined: ${err.message}\npage state: ${state}`);
    }
    assert.equal(await text("connection-state"), "connected");
    assert.equal(await text("transport"), "websocket");
    assert.equal(await text("room"), ROOM);
    const history = await page.$eval('[data-testid="transport-history"]', (el) => JSON.parse(el.dataset.history));
    assert.deepEqual(history, ["polling", "websocket"], "the page must start on polling, then upgrade to websocket");
    assert.equal(await text("error"), "");
  });

  t("a message sent by a Node client in the same room appears in the page", async () => {
    assert.ok(page, chromiumMissing);
    const node = await nodeClientInRoom();
    const body = `hello from node ${Date.now()}`;
    node.emit("chat:message", { room: ROOM, text: body, from: "node-client" });
    await page.waitForFunction(
      (expected) =>
        [...document.querySelectorAll('[data-testid="message-text"]')].some((el) => el.textContent === expected),
      { timeout: 10_000, polling: 50 },
      body,
    );
    const msgs = await pageMessages();
    const mine = msgs.filter((m) => m.text === body);
    assert.equal(mine.length, 1, `shown exactly once: ${JSON.stringify(msgs)}`);
    assert.equal(mine[0].from, "node-client");

    // a message for another room does not show up
    const other = await nodeClientInRoom();
    await emitAck(other, "join", ["not-" + ROOM]);
    const stray = `stray ${Date.now()}`;
    const strayGot = collect(other, "chat:message");
    other.emit("chat:message", { room: "not-" + ROOM, text: stray, from: "node-client" });
    await until(() => strayGot.length === 1, 5000, "the stray message to reach its own room");
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!(await pageMessages()).some((m) => m.text === stray), "other-room message must not appear");
  });

  t("a message typed in the page reaches a Node client in the room and is shown in the page", async () => {
    assert.ok(page, chromiumMissing);
    const node = await nodeClientInRoom();
    const got = collect(node, "chat:message");
    const body = `hello from the browser ${Date.now()}`;
    await page.type('[data-testid="message-input"]', body);
    await page.click('[data-testid="send-button"]');
    await until(() => got.some(([m]) => m?.text === body), 10_000, "the Node client to receive the browser message");
    const [msg] = got.find(([m]) => m?.text === body);
    assert.equal(msg.room, ROOM);
    assert.equal(msg.from, "browser");
    await page.waitForFunction(
      (expected) =>
        [...document.querySelectorAll('[data-testid="message-text"]')].some((el) => el.textContent === expected),
      { timeout: 10_000, polling: 50 },
      body,
    );
    assert.equal(await page.$eval('[data-testid="message-input"]', (el) => el.value), "", "input is cleared");
  });
});
