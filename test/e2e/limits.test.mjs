// maxPayload (1000000 bytes in the conformance config): an oversized message
// ends that client's connection, and the server keeps serving everyone else.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  emitAck,
  startServer,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";

describe("maxPayload (conformance config)", { timeout: 60_000 }, () => {
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

  for (const transport of ["websocket", "polling"]) {
    t(`a message just under the limit is echoed (${transport})`, async () => {
      const socket = clients.connect(server.url, { transports: [transport] });
      await waitConnected(socket);
      const big = "y".repeat(900_000);
      const [res] = await emitAck(socket, "message-with-ack", [big], 5000);
      assert.equal(res?.length, big.length);
      assert.ok(res === big);
    });

    t(`a message over the limit disconnects only that client (${transport})`, async () => {
      const bystander = clients.connect(server.url);
      const socket = clients.connect(server.url, { transports: [transport] });
      await Promise.all([waitConnected(socket), waitConnected(bystander)]);
      const disconnected = waitFor(socket, "disconnect", 5000, '"disconnect" after an oversized message');
      socket.emit("message-with-ack", "z".repeat(1_500_000), () => {});
      const [reason] = await disconnected;
      assert.ok(["transport close", "transport error"].includes(reason), `disconnect reason: ${reason}`);
      assert.ok(bystander.connected, "other clients stay connected");
      assert.deepEqual(await emitAck(bystander, "message-with-ack", ["ok"]), ["ok"]);
      const fresh = clients.connect(server.url, { transports: [transport] });
      await waitConnected(fresh);
      assert.deepEqual(await emitAck(fresh, "message-with-ack", ["fresh"]), ["fresh"]);
    });
  }
});
