// Connecting to a namespace the server does not serve.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  DEFAULT_CONFIG,
  emitAck,
  startServer,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";

for (const [configName, config] of [
  ["conformance", CONFORMANCE_CONFIG],
  ["default", DEFAULT_CONFIG],
]) {
  describe(`unknown namespace (${configName} config)`, { timeout: 60_000 }, () => {
    let server;
    const clients = new Clients();
    const t = (name, fn) => test(name, { timeout: 15_000 }, withLogs(() => server, fn));

    before(async () => {
      server = await startServer({ config, name: `socket-server(${configName})` });
    });
    afterEach(() => clients.closeAll());
    after(async () => {
      clients.closeAll();
      await server?.stop();
    });

    for (const transport of ["polling", "websocket"]) {
      t(`/does-not-exist -> connect_error "Invalid namespace" (${transport})`, async () => {
        const socket = clients.connect(server.url + "/does-not-exist", { transports: [transport] });
        let connected = false;
        socket.on("connect", () => (connected = true));
        const [err] = await waitFor(socket, "connect_error", 5000, '"connect_error"');
        assert.ok(err instanceof Error, "connect_error gives an Error");
        assert.equal(err.message, "Invalid namespace");
        assert.equal(connected, false, "must not be connected");
        assert.equal(socket.connected, false);
      });
    }

    if (configName === "conformance") {
      t("a rejected namespace does not break the shared connection to /", async () => {
        const main = clients.connect(server.url);
        await waitConnected(main);
        const bad = main.io.socket("/nope");
        clients.sockets.add(bad);
        const errP = waitFor(bad, "connect_error", 5000, '"connect_error" on /nope');
        bad.connect();
        const [err] = await errP;
        assert.equal(err.message, "Invalid namespace");
        assert.ok(main.connected, "/ stays connected");
        assert.deepEqual(await emitAck(main, "message-with-ack", ["still here"]), ["still here"]);
      });
    }
  });
}
