// The official Socket.IO Admin UI, served by an instance at /admin/, in
// headless Chromium against a fleet of three instances on a real
// redis-server: it logs in, shows the three servers, the sockets of
// official socket.io-client clients spread over the instances and their
// rooms; a socket of another instance joins a room and is disconnected
// from the UI; a stopped instance turns unhealthy; a Node server with the
// admin-ui package on the same Redis shows up beside ours. The dashboard's
// screenshot goes to a temp file, or to ADMIN_SCREENSHOT when set
// (ADMIN_SCREENSHOT=docs/admin-ui.png renews the README's).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import puppeteer from "puppeteer-core";
import { ADMIN_PASSWORD, ADMIN_USER, adminConfig, loadAdminUI } from "./lib/admin.mjs";
import { Clients, REPO_ROOT, collect, emitAck, freePort, startServer, until, waitConnected, waitFor, withLogs } from "./lib/harness.mjs";
import { skipUnlessTools, startRedis } from "./lib/fleet.mjs";

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SCREENSHOT = process.env.ADMIN_SCREENSHOT
  ? path.resolve(REPO_ROOT, process.env.ADMIN_SCREENSHOT)
  : path.join(tmpdir(), `socketfleet-admin-ui-${process.pid}.png`);
const skip = skipUnlessTools(["redis-server"]);

describe("the Admin UI in Chromium over three instances on Redis", { timeout: 120_000, skip }, () => {
  let redis;
  let servers = [];
  let browser;
  let page;
  let userDataDir;
  let node;
  const pageLog = [];
  const clients = new Clients();
  const users = []; // [{socket, server index}]
  const t = (name, fn) => test(name, { timeout: 40_000 }, withLogs(() => [...servers, { formatLogs: () => pageLog.join("\n") }], fn));

  before(async () => {
    assert.ok(existsSync(CHROMIUM_PATH), `Chromium not found at ${CHROMIUM_PATH}: apt-get install chromium, or set CHROMIUM_PATH`);
    redis = await startRedis();
    const config = adminConfig({ mode: "development" });
    servers = await Promise.all(
      [0, 1, 2].map((i) =>
        startServer({ config: config.file, name: `sf-${i}`, env: { ...config.env, INSTANCE_ID: `sf-${i}`, REDIS_URL: redis.url } }),
      ),
    );
    for (let i = 0; i < 6; i++) {
      const socket = clients.connect(servers[i % 3].url, { transports: ["websocket"] });
      users.push({ socket, at: i % 3 });
    }
    await Promise.all(users.map((u) => waitConnected(u.socket)));
    for (const u of users) {
      await emitAck(u.socket, "join", ["lobby"]);
      await emitAck(u.socket, "join", [`team-${u.at}`]);
    }
    userDataDir = mkdtempSync(path.join(tmpdir(), "socketfleet-admin-chromium-"));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM_PATH,
      headless: false, // the explicit --headless flag below
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", `--user-data-dir=${userDataDir}`],
      timeout: 30_000,
      protocolTimeout: 30_000,
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    page.setDefaultTimeout(15_000);
    page.on("console", (m) => pageLog.push(`[console.${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => pageLog.push(`[pageerror] ${e.message}`));
    page.on("requestfailed", (r) => pageLog.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  });

  after(async () => {
    clients.closeAll();
    await node?.close();
    await browser?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await Promise.all(servers.map((s) => s.stop()));
    redis?.stop();
  });

  const main = () => page.evaluate(() => document.querySelector("main")?.innerText || "");
  /** The rows of the page's data table, as arrays of cell texts. */
  const rows = () =>
    page.evaluate(() =>
      [...document.querySelectorAll("main table tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.innerText.trim())),
    );
  async function go(route) {
    await page.goto(`${servers[0].url}/admin/#${route}`);
  }
  async function untilRows(pred, what, ms = 10_000) {
    let last = [];
    try {
      await until(async () => pred((last = await rows())), ms, what);
    } catch (err) {
      err.message += `\nrows: ${JSON.stringify(last)}\npage: ${await main()}`;
      throw err;
    }
    return last;
  }

  t("the page served by an instance logs in to it", async () => {
    await page.goto(`${servers[0].url}/admin/`);
    // Pre-filled with this server's URL.
    await page.waitForSelector(".v-dialog input");
    const labels = await page.$$eval(".v-dialog label", (ls) => ls.map((l) => [l.textContent.trim(), l.htmlFor]));
    const field = (label) => `#${labels.find((l) => l[0] === label)[1]}`;
    assert.equal(await page.$eval(field("Server URL"), (el) => el.value), servers[0].url);
    await page.type(field("Username"), ADMIN_USER);
    await page.type(field("Password"), "wrong password");
    const connect = () =>
      page.evaluate(() => [...document.querySelectorAll(".v-dialog button")].find((b) => b.textContent.trim() === "Connect").click());
    await connect();
    await page.waitForFunction(() => /invalid credentials/i.test(document.body.innerText));
    await page.click(field("Password"), { clickCount: 3 });
    await page.type(field("Password"), ADMIN_PASSWORD);
    await connect();
    await page.waitForFunction(() => /Status:\s*connected/i.test(document.querySelector("header")?.innerText || ""));
  });

  t("it shows the three servers, every client's socket and the rooms", async () => {
    await go("/servers");
    await untilRows(
      (r) => ["sf-0", "sf-1", "sf-2"].every((id) => r.some((row) => row[0] === id && row.includes("HEALTHY"))),
      "three healthy servers",
    );
    await go("/sockets");
    const ids = users.map((u) => u.socket.id).sort();
    await untilRows((r) => JSON.stringify(r.map((row) => row[0]).sort()) === JSON.stringify(ids), "the six sockets of /");
    await go("/rooms");
    const rooms = await untilRows(
      (r) => ["lobby", "team-0", "team-1", "team-2"].every((name) => r.some((row) => row[0] === name)),
      "the four rooms",
    );
    const count = (name) => Number(rooms.find((row) => row[0] === name)[2]);
    assert.equal(count("lobby"), 6);
    for (const i of [0, 1, 2]) assert.equal(count(`team-${i}`), 2);

    await go("/");
    await page.waitForFunction(() => document.querySelector("main")?.innerText.includes("Namespaces"));
    const text = await main();
    assert.match(text, /HEALTHY\s+3\b/, "the dashboard counts 3 healthy servers");
    await new Promise((r) => setTimeout(r, 2500)); // a stats round for the charts
    await page.screenshot({ path: SCREENSHOT });
  });

  t("a socket on another instance joins a room, then is disconnected, from the UI", async () => {
    const target = users.find((u) => u.at === 2).socket; // the UI is on sf-0
    const sender = users.find((u) => u.at === 1).socket;
    await go(`/n/%2F/sockets/${target.id}`);
    await page.waitForFunction(() => document.querySelector("main")?.innerText.includes("Join a room"));
    const joinInput = await page.$$eval("main label", (ls) => ls.find((l) => l.textContent.trim() === "Join a room")?.htmlFor);
    assert.ok(joinInput, "the Join a room field");
    await page.click(`#${joinInput}`);
    await page.type(`#${joinInput}`, "vip");
    await page.keyboard.press("Tab"); // the combobox takes the typed value on blur
    await page.evaluate(() => document.querySelector("main i.mdi-tag-plus-outline").closest("button").click());
    // The UI shows the room (room_joined came back from sf-2 through Redis)...
    await page.waitForFunction(() => [...document.querySelectorAll("main table tbody tr td")].some((td) => td.innerText.trim() === "vip"));
    // ...and the socket on sf-2 is in it: a broadcast from sf-1 to "vip" reaches it alone.
    const got = users.map((u) => collect(u.socket, "chat"));
    sender.emit("chat", { room: "vip", text: "for vip" });
    const i = users.findIndex((u) => u.socket === target);
    await until(() => got[i].length === 1, 5000, "the vip chat at the target");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(got.map((g) => g.length), users.map((u, j) => (j === i ? 1 : 0)));

    const reason = waitFor(target, "disconnect", 10_000);
    // The socket's own disconnect button (the first is its client's).
    await page.evaluate(() => document.querySelectorAll("main i.mdi-logout")[1].closest("button").click());
    assert.equal((await reason)[0], "io server disconnect");
    for (const u of users) if (u.socket !== target) assert.equal(u.socket.connected, true, `${u.socket.id} still connected`);
    await go("/sockets");
    await untilRows((r) => r.length === 5 && !r.some((row) => row[0] === target.id), "five sockets left");
  });

  t("an instance that stops is shown unhealthy within the UI's 10 s", async () => {
    await servers[2].stop();
    const stopped = Date.now();
    await go("/servers");
    await untilRows((r) => r.some((row) => row[0] === "sf-2" && row.includes("UNHEALTHY")), "sf-2 unhealthy", 15_000);
    const took = Date.now() - stopped;
    assert.ok(took <= 13_000, `unhealthy after ${took} ms`);
    const r = await rows();
    for (const id of ["sf-0", "sf-1"]) assert.ok(r.some((row) => row[0] === id && row.includes("HEALTHY")), `${id} healthy`);
  });

  t("a Node server instrumented with @socket.io/admin-ui on the same Redis joins the list", async () => {
    node = await loadAdminUI().startNodeServer(redis.url, "node-1", await freePort());
    await go("/servers");
    await untilRows((r) => r.some((row) => row[0] === "node-1" && row.includes("HEALTHY")), "node-1 listed, healthy");
    const r = await rows();
    for (const id of ["sf-0", "sf-1"]) assert.ok(r.some((row) => row[0] === id && row.includes("HEALTHY")), `${id} still listed`);
  });
});
