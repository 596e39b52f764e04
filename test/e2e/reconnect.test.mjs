// Automatic reconnection after the server goes away and comes back on the same port.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  collect,
  until,
  ServerProcess,
  emitAck,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";

describe("reconnect after a server restart (conformance config)", { timeout: 90_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));

  before(async () => {
    server = new ServerProcess({ config: CONFORMANCE_CONFIG, name: "socket-server(conformance)" });
    await server.start();
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  for (const transport of ["default", "polling", "websocket"]) {
    t(`client reconnects by itself and acks work again (${transport} transports)`, async () => {
      const socket = clients.connect(server.url, {
        ...(transport === "default" ? {} : { transports: [transport] }),
        reconnection: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 300,
        randomizationFactor: 0,
        auth: { token: "reconnect" },
      });
      await waitConnected(socket);
      if (transport === "default") {
        // let the upgrade happen so that we exercise the websocket path
        if (socket.io.engine.transport.name !== "websocket") await waitFor(socket.io.engine, "upgrade", 5000);
      }
      assert.deepEqual(await emitAck(socket, "message-with-ack", ["before"]), ["before"]);
      const firstId = socket.id;

      const events = [];
      socket.on("disconnect", (reason) => events.push(`disconnect:${reason}`));
      socket.on("connect", () => events.push("connect"));
      socket.io.on("reconnect_attempt", (n) => events.push(`attempt:${n}`));
      const disconnected = waitFor(socket, "disconnect", 10_000, '"disconnect" after server stop');

      const exit = await server.stop();
      const [reason] = await disconnected;
      assert.notEqual(
        reason,
        "io server disconnect",
        "on shutdown the server sent a Socket.IO DISCONNECT packet; the client will then NOT reconnect by itself",
      );
      assert.ok(exit, "server exited");
      assert.notEqual(exit.signal, "SIGKILL", "the server must exit on SIGTERM within 5 s (it had to be SIGKILLed)");

      // wait a few reconnect attempts against the dead port, then bring the server back on the same port
      const authAfter = collect(socket, "auth");
      const reconnected = waitFor(socket, "connect", 15_000, `reconnect (events so far: ${events.join(", ")})`);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(socket.connected, false);
      await server.start();
      await reconnected;
      assert.ok(socket.connected);
      assert.notEqual(socket.id, firstId, "a new session after the restart");
      assert.ok(
        events.some((e) => e.startsWith("attempt:")),
        `the reconnection was driven by the client's own reconnect logic: ${events.join(", ")}`,
      );
      await until(() => authAfter.length >= 1, 3000, '"auth" event after reconnect');
      assert.deepEqual(authAfter[0], [{ token: "reconnect" }], "auth payload is sent again on reconnect");
      assert.deepEqual(await emitAck(socket, "message-with-ack", ["ping", { after: "restart" }]), [
        "ping",
        { after: "restart" },
      ]);
    });
  }
});
