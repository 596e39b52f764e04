// Connection state recovery on one instance (in-memory session store, no
// Redis), with the official socket.io-client: a transport cut under a
// stream of numbered room messages from the backend API recovers the same
// socket (same id, rooms, data) with nothing missed and without calling the
// auth plugin again (skip_auth); an expired session gives a clean new one;
// without the recovery block nothing changes on the wire (no pid, no
// offsets).
//
// Auth calls are counted by the test auth plugin
// core/pluginhost/internal/testplugins/authecho (built here with `go build`):
// it numbers its calls in the data it attaches, which the "whoami" rule
// returns.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  Clients,
  emitAck,
  sleep,
  startServer,
  until,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";
import { api, cutTransport, goBuild, SeqClient, SeqLoad, tally, tempDir } from "./lib/fleet.mjs";

const TOKEN = "e2e-recovery-token-0123456789";

function config({ authCommand, recovery }) {
  return `
server {
  listen = env("LISTEN_ADDR")
  api {
    token = env("API_TOKEN")
  }
${recovery ?? ""}
}
${authCommand ? `auth "echo" {\n  command  = "${authCommand}"\n  greeting = "hi"\n}` : ""}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "whoami" {
    ack = [{ id = socket.id, data = data }]
  }
}
`;
}

let authCommand;
function authPlugin() {
  authCommand ??= goBuild("./core/pluginhost/internal/testplugins/authecho", tempDir("sf-authecho-"), "auth-echo");
  return authCommand;
}

async function serverWith(name, recovery) {
  const dir = tempDir("sf-recovery-", { "config.hcl": config({ authCommand: authPlugin(), recovery }) });
  return startServer({ config: `${dir}/config.hcl`, name, env: { API_TOKEN: TOKEN } });
}

async function whoami(socket) {
  const [res] = await emitAck(socket, "whoami");
  return res;
}

/** Numbered messages to `room` through the API every 20 ms (50/s). */
function roomLoad(server, phase, room) {
  return new SeqLoad({
    phase,
    rooms: [room],
    intervalMs: 20,
    publish: async (r, payload) => {
      await api(server.url, TOKEN, "POST", "emit", { event: "tick", args: [payload], rooms: [r] });
      return true;
    },
  }).start();
}

/** Raw Socket.IO packets (strings) as the engine receives them. */
function rawPackets(socket) {
  const raw = [];
  socket.io.on("open", () => socket.io.engine.on("packet", (p) => p.type === "message" && raw.push(String(p.data))));
  return raw;
}

describe("connection state recovery on one instance", { timeout: 120_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 40_000 }, withLogs(() => server, fn));

  before(async () => {
    server = await serverWith("sf-recovery", `  recovery {\n    max_disconnection = "2m"\n    skip_auth         = true\n  }`);
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  t("a cut transport recovers the same socket: nothing missed, rooms and data kept, auth not called again", async () => {
    const socket = clients.connect(server.url, {
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 300,
      randomizationFactor: 0,
    });
    const raw = rawPackets(socket);
    await waitConnected(socket);
    const id = socket.id;
    assert.equal(socket.recovered, false, "a first connection is not recovered");
    assert.ok(socket._pid, `the CONNECT reply carries a pid (raw: ${raw[0]})`);
    const before = await whoami(socket);
    assert.equal(before.id, id);
    assert.equal(typeof before.data?.calls, "number", `auth data: ${JSON.stringify(before)}`);

    const client = new SeqClient(socket, "r1", { rejoin: () => assert.fail("the room should be kept") });
    assert.deepEqual(await emitAck(socket, "join", ["r1"]), [{ ok: true }]);
    client.joinedAt = Date.now();

    const load = roomLoad(server, "cut", "r1");
    await until(() => (client.got.get("cut") || []).length >= 20, 5000, "20 numbered messages before the cut");

    // The offset is appended to each stored broadcast as its last argument
    // (listeners see it too, as with Node's server) and the client keeps the
    // latest as _lastOffset for its next CONNECT.
    const ev = raw.find((p) => p.startsWith('2["tick"'));
    const arr = JSON.parse(ev.slice(1));
    assert.equal(arr.length, 3, `["tick", payload, offset] on the wire: ${ev}`);
    assert.equal(typeof arr[2], "string", `offset: ${ev}`);
    assert.equal(socket._lastOffset, JSON.parse(raw.filter((p) => p.startsWith('2["tick"')).at(-1).slice(1))[2]);

    const reconnected = waitFor(socket, "connect", 10_000, "reconnection");
    const disc = waitFor(socket, "disconnect", 2000, "disconnect");
    const cutAt = Date.now();
    cutTransport(socket);
    const [reason] = await disc;
    assert.equal(reason, "transport close");
    await sleep(200); // messages keep being published while the client is away
    await reconnected;
    const backAt = Date.now();
    assert.equal(socket.recovered, true, "socket.recovered after the reconnection");
    assert.equal(socket.id, id, "same socket id");

    await sleep(1000); // more after the recovery, without rejoining
    await load.stop();
    await sleep(300);
    const k = tally([client], load);
    const away = load.sent.get("r1").filter((e) => e.ok && e.t >= cutAt && e.t <= backAt).length;
    const { samples, lostSamples, ...counts } = k;
    console.log(`single-instance cut: ${JSON.stringify({ ...counts, publishedWhileAway: away })}`);
    for (const s of [...samples, ...lostSamples]) console.log(s);
    assert.ok(away >= 5, `messages published while the client was away: ${away}`);
    assert.ok(k.expected >= 50, `expected ${k.expected}`);
    assert.equal(k.lost, 0, "lost");
    assert.equal(k.dup, 0, "duplicated");
    assert.equal(k.disorder, 0, "out of order");
    assert.equal(k.recovered, 1);

    // Rooms kept: a later broadcast to the room arrives without rejoining.
    const later = waitFor(socket, "later", 3000, "a broadcast to r1 after the recovery");
    await api(server.url, TOKEN, "POST", "emit", { event: "later", args: ["x"], rooms: ["r1"] });
    const [x, offset] = await later;
    assert.equal(x, "x");
    assert.equal(typeof offset, "string", "the offset is the last argument");
    const listed = await api(server.url, TOKEN, "GET", "sockets?room=r1");
    assert.deepEqual(listed.sockets.map((s) => s.id), [id]);

    // Data kept, and the auth plugin was not called for the recovery: the
    // next new socket gets the very next call number.
    const afterRecovery = await whoami(socket);
    assert.deepEqual(afterRecovery.data, before.data, "data restored");
    const other = clients.connect(server.url, { transports: ["websocket"] });
    await waitConnected(other);
    assert.equal((await whoami(other)).data.calls, before.data.calls + 1, "auth calls: one for the new socket, none for the recovery");
  });

  t("a socket.emit-style reply survives too: recovered sockets keep getting events sent to their own id", async () => {
    const socket = clients.connect(server.url, { transports: ["websocket"], reconnection: true, reconnectionDelay: 200, randomizationFactor: 0 });
    await waitConnected(socket);
    const id = socket.id;
    const reconnected = waitFor(socket, "connect", 10_000, "reconnection");
    cutTransport(socket);
    await reconnected;
    assert.equal(socket.recovered, true);
    const got = waitFor(socket, "direct", 3000, "an emit to the socket's own room");
    await api(server.url, TOKEN, "POST", "emit", { event: "direct", args: [1], rooms: [id] });
    assert.equal((await got)[0], 1);
  });
});

describe("an expired session", { timeout: 60_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));

  before(async () => {
    server = await serverWith("sf-recovery-1s", `  recovery {\n    max_disconnection = "1s"\n    skip_auth         = true\n  }`);
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  t("gives a clean new session: not recovered, new id, no rooms, auth called again", async () => {
    const socket = clients.connect(server.url, {
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: 2500, // longer than max_disconnection
      reconnectionDelayMax: 2500,
      randomizationFactor: 0,
    });
    await waitConnected(socket);
    const id = socket.id;
    const first = await whoami(socket);
    assert.deepEqual(await emitAck(socket, "join", ["gone"]), [{ ok: true }]);
    const reconnected = waitFor(socket, "connect", 10_000, "reconnection");
    cutTransport(socket);
    await reconnected;
    assert.ok(!socket.recovered, "an expired session is not recovered");
    assert.notEqual(socket.id, id, "a new socket id");
    const now = await whoami(socket);
    assert.equal(now.data.calls, first.data.calls + 1, "the auth plugin was called for the new session");
    const listed = await api(server.url, TOKEN, "GET", "sockets?room=gone");
    assert.deepEqual(listed.sockets, [], "the new socket is in no room of the old one");
    const stray = [];
    socket.on("tick", (m) => stray.push(m));
    await api(server.url, TOKEN, "POST", "emit", { event: "tick", args: [{ s: 1 }], rooms: ["gone"] });
    await sleep(300);
    assert.deepEqual(stray, []);
  });
});

describe("without the recovery block", { timeout: 60_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));

  before(async () => {
    server = await serverWith("sf-no-recovery", "");
  });
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  t("no pid, no offset appended to event arguments, a cut is not recovered", async () => {
    const socket = clients.connect(server.url, { transports: ["websocket"], reconnection: true, reconnectionDelay: 200, randomizationFactor: 0 });
    const raw = rawPackets(socket);
    await waitConnected(socket);
    const id = socket.id;
    const connect = raw.find((p) => p.startsWith("0"));
    assert.equal(JSON.parse(connect.slice(1)).pid, undefined, `CONNECT reply: ${connect}`);
    assert.equal(socket._pid, undefined);
    assert.deepEqual(await emitAck(socket, "join", ["plain"]), [{ ok: true }]);
    const got = waitFor(socket, "tick", 3000, "the tick");
    await api(server.url, TOKEN, "POST", "emit", { event: "tick", args: [1, "a"], rooms: ["plain"] });
    assert.deepEqual(await got, [1, "a"]);
    assert.equal(raw.find((p) => p.startsWith('2["tick"')), '2["tick",1,"a"]');

    const reconnected = waitFor(socket, "connect", 10_000, "reconnection");
    cutTransport(socket);
    await reconnected;
    assert.ok(!socket.recovered, `recovered: ${socket.recovered}`);
    assert.notEqual(socket.id, id);
  });
});
