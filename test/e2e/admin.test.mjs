// The Socket.IO Admin UI's protocol (the /admin namespace of config.hcl's
// admin block) over a fleet of three instances on a real redis-server, with
// the official socket.io-client as the UI's stand-in: auth, sessions,
// server_stats from every instance, development mode's all_sockets, the
// actions applied to sockets of other instances, read-only mode refusing
// every action, and a Node server instrumented with @socket.io/admin-ui on
// the same Redis adapter listed beside ours. admin-browser.test.mjs drives
// the real UI in Chromium.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  ADMIN_PASSWORD,
  ADMIN_USER,
  adminConfig,
  loadAdminUI,
  statsServers,
} from "./lib/admin.mjs";
import { Clients, collect, emitAck, freePort, sleep, startServer, until, waitConnected, waitFor, withLogs } from "./lib/harness.mjs";
import { skipUnlessTools, startRedis } from "./lib/fleet.mjs";

const skip = skipUnlessTools(["redis-server"]);

describe("the admin namespace over three instances on Redis", { timeout: 120_000, skip }, () => {
  let redis;
  let servers = [];
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => servers, fn));
  const admin = (server, auth = { username: ADMIN_USER, password: ADMIN_PASSWORD }) =>
    clients.connect(`${server.url}/admin`, { auth, transports: ["websocket"] });

  before(async () => {
    redis = await startRedis();
    const config = adminConfig({ mode: "development" });
    servers = await Promise.all(
      [0, 1, 2].map((i) =>
        startServer({ config: config.file, name: `sf-${i}`, env: { ...config.env, INSTANCE_ID: `sf-${i}`, REDIS_URL: redis.url } }),
      ),
    );
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await Promise.all(servers.map((s) => s.stop()));
    redis?.stop();
  });

  t("a wrong password is refused, the right one gets a session and the config", async () => {
    const wrong = admin(servers[0], { username: ADMIN_USER, password: "not-it" });
    const [err] = await waitFor(wrong, "connect_error");
    assert.equal(err.message, "invalid credentials");
    const noUser = admin(servers[0], { username: "root", password: ADMIN_PASSWORD });
    assert.equal((await waitFor(noUser, "connect_error"))[0].message, "invalid credentials");
    const none = admin(servers[0], {});
    assert.equal((await waitFor(none, "connect_error"))[0].message, "invalid credentials");

    const ok = admin(servers[0]);
    const session = waitFor(ok, "session");
    const config = waitFor(ok, "config");
    await waitConnected(ok);
    const [sessionId] = await session;
    assert.match(sessionId, /^[0-9a-f]{32}$/);
    const [{ supportedFeatures }] = await config;
    assert.deepEqual(supportedFeatures.sort(), [
      "AGGREGATED_EVENTS", "ALL_EVENTS", "DISCONNECT", "EMIT", "JOIN", "LEAVE", "MDISCONNECT", "MJOIN", "MLEAVE",
    ]);

    // The UI reconnects with the session id alone.
    const resumed = admin(servers[0], { sessionId });
    const sessions = collect(resumed, "session");
    const resumedConfig = waitFor(resumed, "config");
    await waitConnected(resumed);
    await resumedConfig;
    assert.equal(sessions.length, 0, "a resumed session gets no new one");
    // An unknown session id is no way in.
    const forged = admin(servers[0], { sessionId: "0".repeat(32) });
    assert.equal((await waitFor(forged, "connect_error"))[0].message, "invalid credentials");
  });

  t("server_stats of all three instances reach a UI connected to one", async () => {
    const users = [];
    for (let i = 0; i < 6; i++) {
      const c = clients.connect(servers[i % 3].url, { transports: ["websocket"] });
      users.push(c);
    }
    await Promise.all(users.map((c) => waitConnected(c)));
    const ui = admin(servers[1]);
    await waitConnected(ui);
    const latest = await statsServers(ui, 3, 6000);
    assert.deepEqual([...latest.keys()].sort(), ["sf-0", "sf-1", "sf-2"]);
    for (const [id, st] of latest) {
      // At least: the readiness probe's polling session counts until it times out.
      assert.ok(st.clientsCount >= 2 + (id === "sf-1" ? 1 : 0), `${id}: clients (the UI's own counts on sf-1)`);
      const root = st.namespaces.find((n) => n.name === "/");
      assert.equal(root.socketsCount, 2, `${id}: sockets in /`);
      assert.ok(st.pid > 0 && st.uptime > 0 && typeof st.hostname === "string");
      assert.ok(Array.isArray(st.aggregatedEvents));
    }
  });

  t("development mode: all_sockets lists every instance's sockets with their rooms", async () => {
    const users = [0, 1, 2].map((i) => clients.connect(servers[i].url, { transports: ["websocket"] }));
    await Promise.all(users.map((c) => waitConnected(c)));
    for (const [i, c] of users.entries()) await emitAck(c, "join", [`room-${i}`]);
    const ui = admin(servers[0]);
    const [all] = await waitFor(ui, "all_sockets", 8000);
    const root = all.filter((s) => s.nsp === "/");
    assert.deepEqual(root.map((s) => s.id).sort(), users.map((c) => c.id).sort());
    for (const [i, c] of users.entries()) {
      const s = root.find((x) => x.id === c.id);
      assert.ok(s.rooms.includes(`room-${i}`), `${c.id} in room-${i}: ${JSON.stringify(s.rooms)}`);
      assert.equal(s.handshake.auth, undefined, "the handshake's auth is not shown");
      assert.ok(s.clientId, "a client id");
    }
  });

  t("development mode: connections, events and room changes on any instance are reported", async () => {
    const ui = admin(servers[0]);
    await waitConnected(ui);
    const connected = collect(ui, "socket_connected");
    const joined = collect(ui, "room_joined");
    const received = collect(ui, "event_received");
    const gone = collect(ui, "socket_disconnected");
    const user = clients.connect(servers[2].url, { transports: ["websocket"] });
    await waitConnected(user);
    await emitAck(user, "join", ["watched"]);
    await until(() => connected.some(([s]) => s.id === user.id), 5000, "socket_connected from sf-2");
    await until(() => joined.some(([nsp, room, id]) => nsp === "/" && room === "watched" && id === user.id), 5000, "room_joined");
    await until(() => received.some(([nsp, id, args]) => id === user.id && args[0] === "join" && args[1] === "watched"), 5000, "event_received");
    const id = user.id;
    user.disconnect();
    await until(() => gone.some(([nsp, sid, reason]) => sid === id && reason === "client namespace disconnect"), 5000, "socket_disconnected");
  });

  t("the UI's actions reach sockets connected to the other instances", async () => {
    const a = clients.connect(servers[1].url, { transports: ["websocket"] });
    const b = clients.connect(servers[2].url, { transports: ["websocket"] });
    await Promise.all([waitConnected(a), waitConnected(b)]);
    const ui = admin(servers[0]);
    await waitConnected(ui);

    // join: every socket of / joins "all-of-us"; then emit to that room.
    ui.emit("join", "/", "all-of-us");
    const gotA = collect(a, "hello");
    const gotB = collect(b, "hello");
    await until(async () => {
      ui.emit("emit", "/", "all-of-us", "hello", { n: 1 });
      await sleep(150);
      return gotA.length > 0 && gotB.length > 0;
    }, 5000, "both sockets in all-of-us");
    assert.deepEqual(gotA.at(-1), [{ n: 1 }]);

    // leave: b only (filter = its id).
    ui.emit("leave", "/", "all-of-us", b.id);
    await sleep(300);
    const before = [gotA.length, gotB.length];
    ui.emit("emit", "/", "all-of-us", "hello", { n: 2 });
    await until(() => gotA.length === before[0] + 1, 5000, "a got the second hello");
    await sleep(300);
    assert.equal(gotB.length, before[1], "b left the room");

    // _disconnect b alone, by its id.
    const reason = waitFor(b, "disconnect", 5000);
    ui.emit("_disconnect", "/", false, b.id);
    assert.equal((await reason)[0], "io server disconnect");
    await sleep(300);
    assert.equal(a.connected, true, "a is still connected");
  });
});

describe("read-only admin", { timeout: 60_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));
  before(async () => {
    const config = adminConfig({ readOnly: true, redis: false });
    server = await startServer({ config: config.file, name: "sf-readonly", env: config.env });
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  t("every write action is refused", async () => {
    const user = clients.connect(server.url, { transports: ["websocket"] });
    await waitConnected(user);
    await emitAck(user, "join", ["r"]);
    const ui = clients.connect(`${server.url}/admin`, { auth: { username: ADMIN_USER, password: ADMIN_PASSWORD } });
    const config = waitFor(ui, "config");
    await waitConnected(ui);
    assert.deepEqual((await config)[0].supportedFeatures, ["AGGREGATED_EVENTS"]);
    const got = collect(user, "hello");
    const gone = collect(user, "disconnect");
    ui.emit("emit", "/", null, "hello", 1);
    ui.emit("emit", "/", "r", "hello", 2);
    ui.emit("join", "/", "joined-by-admin");
    ui.emit("leave", "/", "r");
    ui.emit("_disconnect", "/", false);
    ui.emit("_disconnect", "/", true, user.id);
    await sleep(500);
    assert.deepEqual(got, [], "no emit went through");
    assert.deepEqual(gone, [], "nobody was disconnected");
    assert.equal(user.connected, true);
    // Still in "r" (no leave) and not in the admin's room (no join): the
    // rules' own broadcast to "r" reaches it.
    const other = clients.connect(server.url, { transports: ["websocket"] });
    await waitConnected(other);
    const chats = collect(user, "chat");
    other.emit("chat", { room: "r", text: "still here" });
    await until(() => chats.length === 1, 3000, "user still in r");
    // The server says what it refused.
    const log = server.logs.join("\n");
    assert.equal((log.match(/admin action refused: read-only/g) || []).length, 6, "six refusals logged");
  });
});

describe("a mixed fleet: a Node server instrumented with @socket.io/admin-ui beside ours", { timeout: 60_000, skip }, () => {
  let redis, server, node;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));
  before(async () => {
    redis = await startRedis();
    const config = adminConfig({});
    server = await startServer({ config: config.file, name: "sf-go", env: { ...config.env, INSTANCE_ID: "sf-go", REDIS_URL: redis.url } });
    node = await loadAdminUI().startNodeServer(redis.url, "node-1", await freePort());
  });
  after(async () => {
    clients.closeAll();
    await node?.close();
    await server?.stop();
    redis?.stop();
  });

  t("a UI connected to either lists both servers", async () => {
    for (const url of [server.url, node.url]) {
      const ui = clients.connect(`${url}/admin`, { auth: { username: ADMIN_USER, password: ADMIN_PASSWORD }, transports: ["websocket"] });
      await waitConnected(ui);
      const latest = await statsServers(ui, 2, 6000);
      assert.deepEqual([...latest.keys()].sort(), ["node-1", "sf-go"], `seen from ${url}`);
    }
  });

  t("an action from a UI on the Node server reaches a socket on ours", async () => {
    const user = clients.connect(server.url, { transports: ["websocket"] });
    await waitConnected(user);
    const ui = clients.connect(`${node.url}/admin`, { auth: { username: ADMIN_USER, password: ADMIN_PASSWORD }, transports: ["websocket"] });
    await waitConnected(ui);
    const reason = waitFor(user, "disconnect", 5000);
    ui.emit("_disconnect", "/", false, user.id);
    assert.equal((await reason)[0], "io server disconnect");
  });
});

