// Connecting over each transport, and the polling -> websocket upgrade.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  emitAck,
  sleep,
  until,
  startServer,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";

describe("transports (conformance config)", { timeout: 60_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 15_000 }, withLogs(() => server, fn));

  before(async () => {
    server = await startServer({ config: CONFORMANCE_CONFIG, name: "socket-server(conformance)" });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  t("connects over HTTP long-polling only and exchanges events", async () => {
    const socket = clients.connect(server.url, { transports: ["polling"] });
    await waitConnected(socket);
    assert.equal(socket.io.engine.transport.name, "polling");
    assert.ok(socket.id, "socket.id is set after connect");
    const res = await emitAck(socket, "message-with-ack", ["over polling", 1]);
    assert.deepEqual(res, ["over polling", 1]);
    // several round trips in a row keep working over polling
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await emitAck(socket, "message-with-ack", [i]), [i]);
    }
    assert.equal(socket.io.engine.transport.name, "polling", "polling-only client must never upgrade");
  });

  t("connects over WebSocket only and exchanges events", async () => {
    const socket = clients.connect(server.url, { transports: ["websocket"] });
    await waitConnected(socket);
    assert.equal(socket.io.engine.transport.name, "websocket");
    const back = waitFor(socket, "message-back", 3000);
    socket.emit("message", "over websocket", { n: 2 });
    assert.deepEqual(await back, ["over websocket", { n: 2 }]);
    assert.deepEqual(await emitAck(socket, "message-with-ack", ["ws"]), ["ws"]);
  });

  t("starts on polling and upgrades to websocket; events flow after the upgrade", async () => {
    const socket = clients.connect(server.url); // default transports: polling, websocket
    const engine = socket.io.engine;
    const seen = [];
    engine.on("upgrading", (tr) => seen.push(`upgrading:${tr.name}`));
    engine.on("upgradeError", (err) => seen.push(`upgradeError:${err?.message}`));
    let first = null;
    engine.once("open", () => (first = engine.transport.name));
    const upgraded = waitFor(engine, "upgrade", 5000, 'engine "upgrade" event');
    await waitConnected(socket);
    const [transport] = await upgraded;
    assert.equal(first, "polling", "the Engine.IO session must open on polling");
    assert.equal(transport.name, "websocket");
    assert.equal(socket.io.engine.transport.name, "websocket", `after upgrade (events: ${seen.join(", ")})`);
    assert.ok(socket.connected, "still connected after upgrade");

    const back = waitFor(socket, "message-back", 3000);
    socket.emit("message", "after upgrade");
    assert.deepEqual(await back, ["after upgrade"]);
    assert.deepEqual(await emitAck(socket, "message-with-ack", ["ack after upgrade", { ok: true }]), [
      "ack after upgrade",
      { ok: true },
    ]);
  });

  t("events emitted right after connect (during the upgrade) are all delivered in order", async () => {
    const socket = clients.connect(server.url);
    await waitConnected(socket);
    const got = [];
    socket.on("message-back", (n) => got.push(n));
    for (let i = 0; i < 20; i++) socket.emit("message", i);
    await until(() => got.length >= 20, 4000, "20 message-back events").catch(() => {});
    await sleep(100); // catch duplicates
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
  });
});
