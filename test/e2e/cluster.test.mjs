// Several instances over a real redis-server (the Redis adapter plugin):
// broadcasts, the backend API's cluster requests (fetch sockets, rooms,
// join/leave/disconnect, broadcasts with acks), server-side emits, a
// stopped instance that must not make requests hang, and a mixed fleet with
// a Node socket.io server (@socket.io/redis-adapter) and
// @socket.io/redis-emitter on the same Redis.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { createAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import { Server } from "socket.io";
import {
  Clients,
  collect,
  emitAck,
  freePort,
  sleep,
  startServer,
  until,
  waitConnected,
  waitFor,
  withLogs,
  withTimeout,
} from "./lib/harness.mjs";
import { startRedis } from "./lib/fleet.mjs";

const TOKEN = "e2e-cluster-token-0123456789";
const QUIET_MS = 500;

const CONFIG = `
server {
  listen      = env("LISTEN_ADDR")
  instance_id = env("INSTANCE_ID")
  api {
    token = env("API_TOKEN")
  }
}
adapter "redis" {
  url              = env("REDIS_URL")
  requests_timeout = "1500ms"
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast {
      to             = args[0].room
      require_member = false
    }
  }
  event "announce" {
    server_emit { event = "announce" }
  }
  server_event "announce" {
    broadcast { event = "announcement" }
  }
  server_event "census" {
    ack = "go"
  }
}
`;

function writeConfig() {
  const dir = mkdtempSync(path.join(tmpdir(), "sf-cluster-"));
  const file = path.join(dir, "config.hcl");
  writeFileSync(file, CONFIG);
  return file;
}

async function api(server, method, route, body) {
  const res = await fetch(`${server.url}/api/v1/${route}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${route}: HTTP ${res.status}, not JSON: ${text}`);
  }
  if (res.status >= 300) throw new Error(`${method} ${route}: HTTP ${res.status} ${text}`);
  return json;
}

describe("three instances over Redis", { timeout: 120_000 }, () => {
  let redis;
  const servers = [];
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => servers, fn));

  before(async () => {
    redis = await startRedis();
    const config = writeConfig();
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startServer({
          config,
          name: `sf-${i}`,
          env: { INSTANCE_ID: `sf-${i}`, REDIS_URL: redis.url, API_TOKEN: TOKEN },
        }),
      );
    }
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    for (const s of servers) {
      s.child?.kill("SIGCONT");
      await s.stop();
    }
    redis?.stop();
  });

  /** Two members of room per instance plus one outsider per instance. */
  async function spread(room) {
    const members = [];
    const outsiders = [];
    for (const s of servers) {
      for (let k = 0; k < 3; k++) {
        const c = clients.connect(s.url, { transports: ["websocket"] });
        await waitConnected(c);
        if (k < 2) {
          const [res] = await emitAck(c, "join", [room]);
          assert.equal(res?.ok, true);
          members.push(c);
        } else {
          outsiders.push(c);
        }
      }
    }
    return { members, outsiders };
  }

  t("a room broadcast reaches every member on every instance exactly once", async () => {
    const { members, outsiders } = await spread("r");
    const got = [...members, ...outsiders].map((c) => collect(c, "chat"));
    members[0].emit("chat", { room: "r", n: 1 });
    await until(() => got.slice(0, members.length).every((g) => g.length >= 1), 5000, "every member got the chat");
    await sleep(QUIET_MS);
    got.slice(0, members.length).forEach((g, i) => assert.equal(g.length, 1, `member ${i} got ${g.length} copies`));
    got.slice(members.length).forEach((g, i) => assert.equal(g.length, 0, `outsider ${i} got the chat`));
  });

  t("fetch sockets and rooms on one instance see every instance", async () => {
    const { members } = await spread("fetch-me");
    const res = await api(servers[2], "GET", "sockets?room=fetch-me");
    // Counts include the instance that was asked.
    assert.deepEqual(res.servers, { expected: 3, answered: 3 });
    assert.deepEqual(res.sockets.map((s) => s.id).sort(), members.map((c) => c.id).sort());
    for (const s of res.sockets) assert.ok(s.rooms.includes("fetch-me"), JSON.stringify(s));
    const rooms = await api(servers[1], "GET", "rooms");
    assert.ok(rooms.rooms.includes("fetch-me"), JSON.stringify(rooms));
  });

  t("an API emit with acks collects the ack of every member on every instance", async () => {
    const { members } = await spread("ackers");
    for (const c of members) c.on("question", (q, cb) => cb({ id: c.id, q }));
    const res = await api(servers[0], "POST", "emit", {
      event: "question",
      args: ["ready?"],
      rooms: ["ackers"],
      ack_timeout: "3s",
    });
    assert.deepEqual(res.servers, { expected: 3, answered: 3 });
    assert.deepEqual(res.responses.map((r) => r.id).sort(), members.map((c) => c.id).sort());
    assert.ok(res.responses.every((r) => r.q === "ready?"));
  });

  t("join, leave and disconnect through the API act on every instance", async () => {
    const { members, outsiders } = await spread("base");
    // Like Node's socketsJoin, the call returns once this instance has done
    // its part and the others were asked: wait until every instance has.
    const inRoom = async (room) => (await api(servers[0], "GET", `sockets?room=${room}`)).sockets.map((s) => s.id).sort();
    const memberIds = members.map((c) => c.id).sort();
    await api(servers[1], "POST", "join", { rooms: ["base"], join: ["extra"] });
    await until(async () => JSON.stringify(await inRoom("extra")) === JSON.stringify(memberIds), 5000, "every member in extra");
    const got = [...members, ...outsiders].map((c) => collect(c, "chat"));
    outsiders[0].emit("chat", { room: "extra" });
    await until(() => got.slice(0, members.length).every((g) => g.length === 1), 5000, "members of extra got it");
    await sleep(QUIET_MS);
    assert.ok(got.slice(members.length).every((g) => g.length === 0), "outsiders are not in extra");

    await api(servers[2], "POST", "leave", { rooms: ["extra"], leave: ["extra"] });
    await until(async () => (await inRoom("extra")).length === 0, 5000, "nobody left in extra");
    outsiders[0].emit("chat", { room: "extra" });
    await sleep(QUIET_MS);
    assert.ok(got.every((g) => g.length <= 1), "nobody is in extra any more");

    const gone = members.map((c) => waitFor(c, "disconnect", 5000).then(([reason]) => reason));
    await api(servers[0], "POST", "disconnect", { rooms: ["base"] });
    for (const reason of await Promise.all(gone)) assert.equal(reason, "io server disconnect");
    await sleep(QUIET_MS);
    assert.ok(outsiders.every((c) => c.connected), "outsiders stay connected");
  });

  t("a server_emit rule runs the server_event rules of every instance once", async () => {
    const { members, outsiders } = await spread("any");
    const everyone = [...members, ...outsiders];
    const got = everyone.map((c) => collect(c, "announcement"));
    members[0].emit("announce", "hello");
    await until(() => got.every((g) => g.length === 1), 5000, "every client on every instance got it");
    await sleep(QUIET_MS);
    got.forEach((g, i) => {
      assert.equal(g.length, 1, `client ${i}`);
      assert.deepEqual(g[0], ["hello"]);
    });
  });

  t("a stopped instance does not make requests hang", async () => {
    await spread("frozen");
    servers[2].child.kill("SIGSTOP");
    try {
      const began = Date.now();
      const res = await api(servers[0], "GET", "sockets?room=frozen");
      const took = Date.now() - began;
      assert.deepEqual(res.servers, { expected: 3, answered: 2 });
      assert.equal(res.sockets.length, 4, "the sockets of the two live instances");
      assert.ok(took >= 1400 && took < 5000, `answered after ${took} ms (requests_timeout 1.5s)`);
    } finally {
      servers[2].child.kill("SIGCONT");
    }
  });
});

describe("a mixed fleet: Node socket.io with @socket.io/redis-adapter and a Go instance", { timeout: 120_000 }, () => {
  let redis, goServer, nodeIO, nodeHTTP, nodeURL, pub, sub, emitterClient;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => goServer, fn));

  before(async () => {
    redis = await startRedis();
    goServer = await startServer({
      config: writeConfig(),
      name: "sf-go",
      env: { INSTANCE_ID: "sf-go", REDIS_URL: redis.url, API_TOKEN: TOKEN },
    });
    pub = createClient({ url: redis.url });
    sub = pub.duplicate();
    emitterClient = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);
    nodeHTTP = createServer();
    nodeIO = new Server(nodeHTTP, { adapter: createAdapter(pub, sub, { requestsTimeout: 2000 }) });
    // The same event contract as the Go instance's config.
    nodeIO.on("connection", (socket) => {
      socket.on("join", (room, cb) => {
        socket.join(room);
        cb?.({ ok: true });
      });
      socket.on("chat", (msg) => nodeIO.to(msg.room).emit("chat", msg));
    });
    const port = await freePort();
    await new Promise((resolve) => nodeHTTP.listen(port, "127.0.0.1", resolve));
    nodeURL = `http://127.0.0.1:${port}`;
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    nodeIO?.close();
    await Promise.allSettled([pub?.quit(), sub?.quit(), emitterClient?.quit()]);
    await goServer?.stop();
    redis?.stop();
  });

  async function pair(room) {
    const onGo = clients.connect(goServer.url, { transports: ["websocket"] });
    const onNode = clients.connect(nodeURL, { transports: ["websocket"] });
    await Promise.all([waitConnected(onGo), waitConnected(onNode)]);
    for (const c of [onGo, onNode]) assert.equal((await emitAck(c, "join", [room]))[0]?.ok, true);
    return { onGo, onNode };
  }

  t("a broadcast from either server reaches clients on both", async () => {
    const { onGo, onNode } = await pair("mixed");
    const got = [collect(onGo, "chat"), collect(onNode, "chat")];
    onGo.emit("chat", { room: "mixed", from: "go" });
    await until(() => got.every((g) => g.length === 1), 5000, "both got the Go-side chat");
    onNode.emit("chat", { room: "mixed", from: "node", bin: Buffer.from([1, 2, 3]) });
    await until(() => got.every((g) => g.length === 2), 5000, "both got the Node-side chat");
    await sleep(QUIET_MS);
    for (const g of got) {
      assert.equal(g.length, 2);
      assert.equal(g[0][0].from, "go");
      assert.equal(g[1][0].from, "node");
      assert.deepEqual([...new Uint8Array(g[1][0].bin)], [1, 2, 3]);
    }
  });

  t("@socket.io/redis-emitter reaches clients on the Go instance", async () => {
    const { onGo, onNode } = await pair("emitted");
    const emitter = new Emitter(emitterClient);
    const got = collect(onGo, "from-emitter");
    emitter.to("emitted").emit("from-emitter", { n: 1 });
    await until(() => got.length === 1, 5000, "the emitter's broadcast");
    assert.deepEqual(got[0], [{ n: 1 }]);

    // Requests from the emitter: socketsJoin, then a broadcast to that room.
    emitter.in("emitted").socketsJoin("joined-by-emitter");
    await until(async () => {
      const res = await api(goServer, "GET", "sockets?room=joined-by-emitter");
      return res.sockets.some((s) => s.id === onGo.id);
    }, 5000, "the Go client joined by the emitter");
    await until(async () => (await nodeIO.in("joined-by-emitter").fetchSockets()).length === 2, 5000,
      "both clients joined by the emitter, seen from Node");
    const gone = [waitFor(onGo, "disconnect", 5000), waitFor(onNode, "disconnect", 5000)];
    emitter.in("joined-by-emitter").disconnectSockets();
    for (const [reason] of await Promise.all(gone)) assert.equal(reason, "io server disconnect");
  });

  t("fetchSockets from Node sees the Go sockets, and the reverse", async () => {
    const { onGo, onNode } = await pair("fetched");
    const fromNode = await nodeIO.in("fetched").fetchSockets();
    assert.deepEqual(fromNode.map((s) => s.id).sort(), [onGo.id, onNode.id].sort());
    const goSocket = fromNode.find((s) => s.id === onGo.id);
    assert.ok(goSocket.rooms.has("fetched"), `rooms of the Go socket: ${[...goSocket.rooms]}`);
    assert.equal(typeof goSocket.handshake.address, "string");

    const fromGo = await api(goServer, "GET", "sockets?room=fetched");
    assert.deepEqual(fromGo.sockets.map((s) => s.id).sort(), [onGo.id, onNode.id].sort());
    assert.deepEqual(fromGo.servers, { expected: 2, answered: 2 });
  });

  t("serverSideEmit from Node reaches the Go instance's server_event rules and gets its ack", async () => {
    const responses = await withTimeout(nodeIO.serverSideEmitWithAck("census"), 5000, "census acks");
    assert.deepEqual(responses, ["go"]);
  });

  t("a Go API emit with acks reaches Node clients and collects their acks", async () => {
    const { onGo, onNode } = await pair("acks");
    onGo.on("q", (cb) => cb("from-go-client"));
    onNode.on("q", (cb) => cb("from-node-client"));
    const res = await api(goServer, "POST", "emit", { event: "q", rooms: ["acks"], ack_timeout: "3s" });
    assert.deepEqual(res.responses.sort(), ["from-go-client", "from-node-client"]);
  });
});
