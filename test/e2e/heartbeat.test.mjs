// Heartbeat with the conformance config (pingInterval 300 ms, pingTimeout 200 ms).
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  emitAck,
  sleep,
  startServer,
  waitConnected,
  withLogs,
} from "./lib/harness.mjs";

describe("heartbeat (conformance config)", { timeout: 60_000 }, () => {
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

  for (const transport of ["websocket", "polling", "default"]) {
    t(`stays connected for 2 s with pings flowing (${transport})`, async () => {
      const socket = clients.connect(server.url, transport === "default" ? {} : { transports: [transport] });
      const disconnects = [];
      socket.on("disconnect", (reason) => disconnects.push(reason));
      let pings = 0;
      socket.io.on("ping", () => pings++);
      await waitConnected(socket);
      const engine = socket.io.engine;
      // the handshake advertises the configured heartbeat
      assert.equal(engine.pingInterval ?? engine._pingInterval, 300, "handshake pingInterval");
      assert.equal(engine.pingTimeout ?? engine._pingTimeout, 200, "handshake pingTimeout");

      await sleep(2000);
      assert.deepEqual(disconnects, [], "no disconnect while idle for 2 s");
      assert.ok(socket.connected);
      assert.ok(pings >= 4, `expected >= 4 server pings in 2 s with pingInterval 300 ms, got ${pings}`);
      assert.deepEqual(await emitAck(socket, "message-with-ack", ["alive"]), ["alive"]);
    });
  }
});
