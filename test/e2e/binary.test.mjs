// Binary payloads both ways (BINARY_EVENT / BINARY_ACK), over websocket and over polling.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CONFORMANCE_CONFIG,
  Clients,
  emitAck,
  startServer,
  toBuffer,
  waitConnected,
  waitFor,
  withLogs,
} from "./lib/harness.mjs";

function assertBytes(actual, expected, where) {
  const buf = toBuffer(actual);
  assert.ok(buf, `${where}: expected binary data, got ${typeof actual} ${JSON.stringify(actual)?.slice(0, 200)}`);
  assert.equal(buf.length, expected.length, `${where}: length`);
  assert.ok(buf.equals(expected), `${where}: bytes differ`);
}

describe("binary payloads (conformance config)", { timeout: 60_000 }, () => {
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
    async function connected() {
      const socket = clients.connect(server.url, { transports: [transport] });
      await waitConnected(socket);
      assert.equal(socket.io.engine.transport.name, transport);
      return socket;
    }

    t(`message with a Buffer -> message-back with equal bytes (${transport})`, async () => {
      const socket = await connected();
      const bytes = Buffer.from([0, 1, 2, 3, 0xfe, 0xff, 0x7f, 0x80, 10, 13]);
      const back = waitFor(socket, "message-back", 3000);
      socket.emit("message", bytes);
      const args = await back;
      assert.equal(args.length, 1);
      assertBytes(args[0], bytes, "message-back[0]");
    });

    t(`message with a nested object containing Buffers -> message-back (${transport})`, async () => {
      const socket = await connected();
      const a = randomBytes(1024);
      const b = randomBytes(3);
      const back = waitFor(socket, "message-back", 3000);
      socket.emit("message", "before", { name: "file.bin", data: a, meta: { parts: [1, b, "x"] } }, 42);
      const args = await back;
      assert.equal(args.length, 3);
      assert.equal(args[0], "before");
      assert.equal(args[2], 42);
      const obj = args[1];
      assert.equal(obj.name, "file.bin");
      assertBytes(obj.data, a, "obj.data");
      assert.equal(obj.meta.parts.length, 3);
      assert.equal(obj.meta.parts[0], 1);
      assertBytes(obj.meta.parts[1], b, "obj.meta.parts[1]");
      assert.equal(obj.meta.parts[2], "x");
    });

    t(`message-with-ack with a Buffer -> ack with equal bytes (${transport})`, async () => {
      const socket = await connected();
      const bytes = randomBytes(4096);
      const res = await emitAck(socket, "message-with-ack", [bytes]);
      assert.equal(res.length, 1);
      assertBytes(res[0], bytes, "ack[0]");
    });

    t(`message-with-ack with several Buffers and text -> ack keeps order (${transport})`, async () => {
      const socket = await connected();
      const one = Buffer.from("first buffer");
      const two = randomBytes(100_000);
      const res = await emitAck(socket, "message-with-ack", [one, "middle", { two }]);
      assert.equal(res.length, 3);
      assertBytes(res[0], one, "ack[0]");
      assert.equal(res[1], "middle");
      assertBytes(res[2].two, two, "ack[2].two");
    });

    t(`text events still work after a binary event (${transport})`, async () => {
      const socket = await connected();
      await emitAck(socket, "message-with-ack", [Buffer.from([1, 2, 3])]);
      assert.deepEqual(await emitAck(socket, "message-with-ack", ["plain"]), ["plain"]);
    });
  }
});
