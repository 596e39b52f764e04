// The CONNECT auth payload is echoed back by the server as an "auth" event.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { CONFORMANCE_CONFIG, Clients, startServer, waitConnected, waitFor, withLogs } from "./lib/harness.mjs";

describe("auth payload on connect (conformance config)", { timeout: 60_000 }, () => {
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

  // Register the "auth" listener before connecting: the server emits it right after CONNECT.
  async function authFor(nsp, opts) {
    const socket = clients.connect(server.url + nsp, opts);
    const got = waitFor(socket, "auth", 5000, `"auth" event on ${nsp}`);
    await waitConnected(socket);
    return got;
  }

  for (const transport of ["polling", "websocket"]) {
    t(`"/" echoes {token:"abc"} (${transport})`, async () => {
      const args = await authFor("/", { transports: [transport], auth: { token: "abc" } });
      assert.deepEqual(args, [{ token: "abc" }]);
    });
  }

  t(`"/" sends {} when the client gives no auth`, async () => {
    assert.deepEqual(await authFor("/", {}), [{}]);
  });

  t(`"/" echoes a nested auth payload unchanged (key order preserved)`, async () => {
    const auth = { z: 1, a: { y: [1, "two", null, true, 2.5], b: "c" }, token: "abc", empty: {} };
    const args = await authFor("/", { auth });
    assert.equal(JSON.stringify(args), JSON.stringify([auth]));
  });

  t(`"/custom" echoes {token:"abc"}`, async () => {
    assert.deepEqual(await authFor("/custom", { auth: { token: "abc" } }), [{ token: "abc" }]);
  });

  t(`"/custom" sends {} when the client gives no auth`, async () => {
    assert.deepEqual(await authFor("/custom", {}), [{}]);
  });

  t(`"/" and "/custom" on one connection each get their own auth`, async () => {
    // Same Manager (multiplexed Engine.IO connection), two namespaces.
    const main = clients.connect(server.url, { auth: { token: "main" } });
    const custom = main.io.socket("/custom", { auth: { token: "custom" } });
    clients.sockets.add(custom);
    const gotMain = waitFor(main, "auth", 5000, '"auth" on /');
    const gotCustom = waitFor(custom, "auth", 5000, '"auth" on /custom');
    custom.connect();
    await Promise.all([waitConnected(main), waitConnected(custom)]);
    assert.deepEqual(await gotMain, [{ token: "main" }]);
    assert.deepEqual(await gotCustom, [{ token: "custom" }]);
    assert.equal(main.io.engine, custom.io.engine, "both namespaces share one Engine.IO connection");
  });
});
