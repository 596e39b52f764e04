// Connection state recovery across a fleet: three instances on a real
// redis-server (adapter "redis", mode = "streams") behind a real nginx
// (round robin, WebSocket only), 300 official socket.io-client sockets in
// 12 rooms, numbered messages from the backend API (30/s), counted per
// client: lost, duplicated, out of order, reconnects, recovered.
//   a. rolling deploy (SIGTERM = the drain, restart, in turn)
//   b. crash (kill -9 of the busiest instance, restart)
//   c. Redis blip (SIGSTOP 5 s, SIGCONT): nothing lost, /ready 503 meanwhile
//   d. mixed fleet: Node socket.io 4.8 with @socket.io/redis-streams-adapter
//      and connectionStateRecovery plus a Go instance on one Redis.
//
// Expected for a client = messages of its room whose publication was
// accepted (HTTP 202) and began after the client joined. A client that
// reconnects without recovery rejoins its room (as an application would),
// so what it missed counts as lost.
//
// FLEET_CLASSIC=1 runs the same load against the fleet without the
// recovery block and in the adapter's classic mode (d skipped): the
// counters must then show losses and no recovery, i.e. the test can fail.
// FLEET_CLIENTS overrides the number of clients (300), FLEET_ROLLING_MS the
// least duration of the rolling deploy's load (40 s); PLUGIN_DIR the folder
// of the plugin binaries (bin/plugins of the repository).
//
// Needs nginx and redis-server (skipped with an install hint when missing,
// failed under CI=true).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";
import {
  Clients,
  emitAck,
  freePort,
  sleep,
  startServer,
  until,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";
import {
  api,
  apiCall,
  cutTransport,
  reconnectSnapshot,
  requireTools,
  SeqClient,
  SeqLoad,
  skipUnlessTools,
  startNginx,
  startRedis,
  tally,
  tempDir,
} from "./lib/fleet.mjs";

const TOKEN = "e2e-fleet-token-0123456789";
const CLASSIC = process.env.FLEET_CLASSIC === "1";
const N_CLIENTS = Number(process.env.FLEET_CLIENTS || 300);
const N_ROOMS = 12;
const INTERVAL_MS = 400; // per room: 12 rooms x 2.5/s = 30 messages/s
const ROLLING_MIN_MS = Number(process.env.FLEET_ROLLING_MS || 40_000);

const config = (classic) => `
server {
  listen      = env("LISTEN_ADDR")
  instance_id = env("INSTANCE_ID")
  plugin_dir  = env("PLUGIN_DIR", "bin/plugins")
  api {
    token = env("API_TOKEN")
  }
  drain {
    timeout = "2s"
  }
${classic ? "" : `  recovery {\n    max_disconnection = "2m"\n    skip_auth         = true\n  }`}
}
adapter "redis" {
  url              = env("REDIS_URL")
  requests_timeout = "1500ms"
${classic ? "" : `  mode             = "streams"`}
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
}
`;

const rejoin = (socket, room) => socket.emit("join", room);

async function health(server) {
  try {
    const res = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(1000) });
    return await res.json();
  } catch {
    return null;
  }
}

function report(label, k, extra = {}) {
  const { samples, lostSamples, ...counts } = k;
  console.log(`${label}: ${JSON.stringify({ ...counts, ...extra })}`);
  for (const s of lostSamples || []) console.log(`${label}: lost (time phase seq offset | connect):\n${s}`);
  for (const s of samples || []) console.log(`${label}: duplicate or out of order (time phase seq offset | connect):\n${s}`);
}

describe("three instances on Redis streams behind nginx", { timeout: 600_000, skip: skipUnlessTools(["nginx", "redis-server"]) }, () => {
  let redis, nginx;
  const servers = [];
  const up = [];
  const clients = new Clients();
  const seq = [];
  const rooms = Array.from({ length: N_ROOMS }, (_, i) => `room-${i}`);
  const lastVia = new Map();
  let maintenance = 0; // server:maintenance events received by the clients
  const t = (name, fn) => test(name, { timeout: 180_000 }, withLogs(() => servers, fn));

  before(async () => {
    requireTools(["nginx", "redis-server"]);
    redis = await startRedis();
    const cfg = `${tempDir("sf-fleet-", { "config.hcl": config(CLASSIC) })}/config.hcl`;
    for (let i = 0; i < 3; i++) {
      servers.push(await startServer({ config: cfg, name: `sf-${i}`, env: { INSTANCE_ID: `sf-${i}`, REDIS_URL: redis.url, API_TOKEN: TOKEN } }));
      up.push(true);
    }
    nginx = await startNginx(servers.map((s) => `127.0.0.1:${s.port}`));
    const began = Date.now();
    for (let i = 0; i < N_CLIENTS; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, N_CLIENTS - i) }, async (_, j) => {
          const n = i + j;
          const room = rooms[n % N_ROOMS];
          const socket = clients.connect(nginx.url, {
            transports: ["websocket"],
            reconnection: true,
            reconnectionDelay: 300,
            reconnectionDelayMax: 2000,
            timeout: 5000,
          });
          const c = new SeqClient(socket, room, { rejoin });
          socket.on("server:maintenance", () => maintenance++);
          seq[n] = c;
          await waitConnected(socket, 10_000);
          assert.deepEqual(await emitAck(socket, "join", [room], 5000), [{ ok: true }]);
          c.joinedAt = Date.now();
        }),
      );
    }
    const spread = await Promise.all(servers.map(async (s) => (await health(s))?.sockets));
    console.log(`${N_CLIENTS} clients in ${N_ROOMS} rooms through nginx in ${Date.now() - began} ms; per instance: ${spread}`);
  });
  after(async () => {
    clients.closeAll();
    redis?.resume();
    await nginx?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    redis?.stop();
  });

  /** Room i is published through instance i % 3, or the next one up; a switch waits 150 ms so that order holds. */
  async function publish(room, payload) {
    const i = rooms.indexOf(room);
    let via = i % servers.length;
    for (let k = 0; k < servers.length && !up[via]; k++) via = (via + 1) % servers.length;
    if (!up[via]) return false;
    if (lastVia.has(room) && lastVia.get(room) !== via) await sleep(150);
    lastVia.set(room, via);
    const { status } = await apiCall(servers[via].url, TOKEN, "POST", "emit", { event: "tick", args: [payload], rooms: [room] });
    return status === 202;
  }

  async function allConnected(ms = 20_000) {
    await until(() => seq.every((c) => c.socket.connected), ms, "every client connected again");
  }

  /** Run scenario under load, settle, count. */
  async function underLoad(phase, scenario) {
    const snap = reconnectSnapshot(seq);
    const load = new SeqLoad({ phase, rooms, intervalMs: INTERVAL_MS, publish }).start();
    const extra = (await scenario(load)) || {};
    await load.stop();
    await allConnected();
    await sleep(2000);
    const k = tally(seq, load, snap);
    report(phase, k, { published: load.accepted, refused: load.failed, perSecond: +load.perSecond().toFixed(1), ...extra });
    return k;
  }

  function assertClean(k, { mustReconnect = true } = {}) {
    assert.ok(k.expected > 0, "messages were expected");
    if (mustReconnect) assert.ok(k.reconnects > 0, "clients reconnected");
    assert.equal(k.lost, 0, `lost (clients with losses: ${k.clientsWithLoss})`);
    assert.equal(k.dup, 0, "duplicated");
    assert.equal(k.disorder, 0, "out of order");
    assert.equal(k.notRecovered, 0, "reconnections not recovered");
    assert.equal(k.recovered, k.reconnects, "every reconnection recovered");
  }

  t("a. rolling deploy: each instance drained (SIGTERM) and restarted in turn loses nothing", async () => {
    const maintenanceBefore = maintenance;
    let drained = 0;
    const k = await underLoad("rolling", async (load) => {
      await sleep(3000);
      for (let i = 0; i < servers.length; i++) {
        up[i] = false;
        await sleep(200);
        const before = (await health(servers[i]))?.sockets;
        drained += before ?? 0;
        const info = await servers[i].stop();
        assert.equal(info.code, 0, `sf-${i} exit after the drain: ${JSON.stringify(info)}`);
        await servers[i].start();
        up[i] = true;
        console.log(`rolling: sf-${i} drained (${before} sockets) and restarted at +${Date.now() - load.startedAt} ms`);
        await sleep(5000);
      }
      const left = ROLLING_MIN_MS - (Date.now() - load.startedAt);
      if (left > 0) await sleep(left);
      return { drained, maintenance: maintenance - maintenanceBefore };
    });
    assert.ok(maintenance - maintenanceBefore >= drained, `server:maintenance reached the ${drained} drained sockets (${maintenance - maintenanceBefore})`);
    assert.ok(k.expected >= N_CLIENTS * 20, `enough messages expected (${k.expected})`);
    assertClean(k);
  });

  t("b. crash: kill -9 of the busiest instance; its clients recover elsewhere", async () => {
    const sockets = await Promise.all(servers.map(async (s) => (await health(s))?.sockets ?? 0));
    const victim = sockets.indexOf(Math.max(...sockets));
    const k = await underLoad("crash", async () => {
      await sleep(3000);
      up[victim] = false;
      await sleep(200);
      servers[victim].child.kill("SIGKILL");
      await servers[victim].exited;
      await sleep(3000);
      await servers[victim].start();
      up[victim] = true;
      await sleep(5000);
      return { victim: `sf-${victim}`, victimSockets: sockets[victim] };
    });
    assert.ok(k.reconnects >= sockets[victim], `the victim's ${sockets[victim]} clients reconnected (${k.reconnects})`);
    assertClean(k);
  });

  t("c. Redis blip: redis-server stopped 5 s under load loses nothing; /ready answers 503 meanwhile", async () => {
    const statuses = servers.map(() => new Set());
    const k = await underLoad("redis-blip", async () => {
      await sleep(3000);
      redis.pause();
      const end = Date.now() + 5000;
      try {
        while (Date.now() < end) {
          await Promise.all(
            servers.map(async (s, i) => {
              try {
                const res = await fetch(`${s.url}/ready`, { signal: AbortSignal.timeout(1000) });
                await res.arrayBuffer();
                statuses[i].add(res.status);
              } catch (err) {
                statuses[i].add(err.name);
              }
            }),
          );
          await sleep(250);
        }
      } finally {
        redis.resume();
      }
      await sleep(8000);
      return { readyDuringBlip: statuses.map((s) => [...s].join("/")) };
    });
    assert.ok(statuses.some((s) => s.has(503)), `some instance answered /ready 503 while Redis was stopped: ${statuses.map((s) => [...s])}`);
    assertClean(k, { mustReconnect: false });
  });
});

describe("mixed fleet: Node socket.io with @socket.io/redis-streams-adapter and a Go instance", { timeout: 120_000, skip: CLASSIC ? "FLEET_CLASSIC=1" : skipUnlessTools(["redis-server"]) }, () => {
  let redis, goServer, nodeIO, nodeHTTP, nodeURL, redisClient;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 40_000 }, withLogs(() => goServer, fn));

  before(async () => {
    requireTools(["redis-server"]);
    redis = await startRedis();
    goServer = await startServer({
      config: `${tempDir("sf-mixed-", { "config.hcl": config(false) })}/config.hcl`,
      name: "sf-go",
      env: { INSTANCE_ID: "sf-go", REDIS_URL: redis.url, API_TOKEN: TOKEN },
    });
    redisClient = createClient({ url: redis.url });
    redisClient.on("error", () => {});
    await redisClient.connect();
    nodeHTTP = createServer();
    nodeIO = new Server(nodeHTTP, {
      adapter: createAdapter(redisClient),
      connectionStateRecovery: { maxDisconnectionDuration: 120_000, skipMiddlewares: true },
    });
    nodeIO.on("connection", (socket) => {
      socket.on("join", (room, cb) => {
        socket.join(room);
        cb?.({ ok: true });
      });
    });
    const port = await freePort();
    await new Promise((resolve) => nodeHTTP.listen(port, "127.0.0.1", resolve));
    nodeURL = `http://127.0.0.1:${port}`;
    await sleep(500); // the adapters' subscriptions
  });
  after(async () => {
    clients.closeAll();
    nodeIO?.close();
    await redisClient?.quit().catch(() => {});
    await goServer?.stop();
    redis?.stop();
  });

  const connect = (url) =>
    clients.connect(url, { transports: ["websocket"], reconnection: true, reconnectionDelay: 300, randomizationFactor: 0 });

  async function pair(room) {
    const onGo = connect(goServer.url);
    const onNode = connect(nodeURL);
    await Promise.all([waitConnected(onGo), waitConnected(onNode)]);
    for (const c of [onGo, onNode]) assert.deepEqual(await emitAck(c, "join", [room]), [{ ok: true }]);
    return { onGo, onNode };
  }

  t("broadcasts both ways reach clients on both servers once", async () => {
    const { onGo, onNode } = await pair("both");
    const got = [onGo, onNode].map((c) => {
      const l = [];
      c.on("m", (x) => l.push(x));
      return l;
    });
    await api(goServer.url, TOKEN, "POST", "emit", { event: "m", args: ["from-go"], rooms: ["both"] });
    nodeIO.to("both").emit("m", "from-node");
    await until(() => got.every((l) => l.length >= 2), 5000, "both messages on both clients");
    await sleep(500);
    for (const l of got) assert.deepEqual(l.sort(), ["from-go", "from-node"]);
    assert.ok(onGo._pid && onNode._pid, "both servers gave a pid");
  });

  t("fetch sockets both ways", async () => {
    const { onGo, onNode } = await pair("fetched");
    const fromNode = await nodeIO.in("fetched").fetchSockets();
    assert.deepEqual(fromNode.map((s) => s.id).sort(), [onGo.id, onNode.id].sort());
    assert.ok(fromNode.find((s) => s.id === onGo.id).rooms.has("fetched"));
    const fromGo = await api(goServer.url, TOKEN, "GET", "sockets?room=fetched");
    assert.deepEqual(fromGo.sockets.map((s) => s.id).sort(), [onGo.id, onNode.id].sort());
    assert.deepEqual(fromGo.servers, { expected: 2, answered: 2 });
  });

  /**
   * A client on `fromURL` in a room, numbered messages published by that
   * same server (so the other one restores a session and stream entries
   * written by the other language), the transport cut, the client sent to
   * `toURL`: recovered, same id, nothing missed.
   */
  async function crossRecovery(phase, fromURL, toURL, publishVia) {
    const socket = connect(fromURL);
    await waitConnected(socket);
    const id = socket.id;
    const c = new SeqClient(socket, phase, { rejoin });
    assert.deepEqual(await emitAck(socket, "join", [phase]), [{ ok: true }]);
    c.joinedAt = Date.now();
    const load = new SeqLoad({ phase, rooms: [phase], intervalMs: 50, publish: publishVia }).start();
    await until(() => (c.got.get(phase) || []).length >= 10, 5000, "10 messages before the cut");
    socket.io.uri = toURL; // the next Engine.IO connection goes to the other server
    const reconnected = waitFor(socket, "connect", 10_000, "reconnection to the other server");
    cutTransport(socket);
    await reconnected;
    const recovered = socket.recovered;
    await sleep(1500);
    await load.stop();
    await sleep(500);
    const k = tally([c], load);
    report(phase, k, { socketRecovered: recovered, sameId: socket.id === id });
    assert.equal(recovered, true, "socket.recovered on the other server");
    assert.equal(socket.id, id, "same socket id");
    assert.equal(k.lost, 0, "lost");
    assert.equal(k.dup, 0, "duplicated");
    assert.equal(k.disorder, 0, "out of order");
    // The room is kept on the new server: the other server's broadcasts arrive.
    const fetched = await nodeIO.in(phase).fetchSockets();
    assert.deepEqual(fetched.map((s) => s.id), [id]);
  }

  const viaGo = async (room, payload) =>
    (await apiCall(goServer.url, TOKEN, "POST", "emit", { event: "tick", args: [payload], rooms: [room] })).status === 202;
  const viaNode = async (room, payload) => {
    nodeIO.to(room).emit("tick", payload);
    return true;
  };

  t("a session from Node recovered on Go (messages published by Node)", async () => {
    await crossRecovery("node-to-go", nodeURL, goServer.url, viaNode);
  });

  t("a session from Go recovered on Node (messages published by Go)", async () => {
    await crossRecovery("go-to-node", goServer.url, nodeURL, viaGo);
  });
});
