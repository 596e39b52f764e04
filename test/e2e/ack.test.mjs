// Client -> server emit with acknowledgement.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { CONFORMANCE_CONFIG, Clients, emitAck, startServer, waitConnected, withLogs } from "./lib/harness.mjs";

describe("emit with ack (conformance config)", { timeout: 60_000 }, () => {
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

  const cases = {
    "a string": ["hello"],
    "several scalars": ["a", 1, 2.5, -3, true, false, null],
    "unicode and escapes": ["héllo wörld ✓ 🚀", 'quote " backslash \\ newline \n tab \t'],
    "nested objects (key order preserved)": [
      { zeta: 1, alpha: { mid: [1, { b: 2, a: 1 }], first: "x" }, list: [[], {}, ""] },
      { "key with spaces": "v", 10: "numeric key", b: "b" },
    ],
    "no arguments": [],
    "a large-ish string": ["x".repeat(50_000)],
  };

  for (const transport of ["websocket", "polling"]) {
    for (const [label, args] of Object.entries(cases)) {
      t(`message-with-ack echoes ${label} (${transport})`, async () => {
        const socket = clients.connect(server.url, { transports: [transport] });
        await waitConnected(socket);
        const res = await emitAck(socket, "message-with-ack", args);
        assert.equal(JSON.stringify(res), JSON.stringify(args));
      });
    }
  }

  for (const transport of ["default", "polling"]) {
    t(`concurrent acks are matched to the right emits (${transport})`, async () => {
      const socket = clients.connect(server.url, transport === "default" ? {} : { transports: [transport] });
      await waitConnected(socket);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => emitAck(socket, "message-with-ack", [i, `n${i}`])),
      );
      assert.deepEqual(
        results,
        Array.from({ length: 50 }, (_, i) => [i, `n${i}`]),
      );
    });
  }
});
