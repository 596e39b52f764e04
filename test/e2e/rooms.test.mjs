// Rooms on the default chat config: join / leave / chat:message broadcast.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  Clients,
  DEFAULT_CONFIG,
  collect,
  emitAck,
  sleep,
  startServer,
  toBuffer,
  until,
  waitConnected,
  withLogs,
} from "./lib/harness.mjs";

const QUIET_MS = 500; // how long we wait to be sure something does NOT arrive

describe("rooms and chat:message (default config)", { timeout: 60_000 }, () => {
  let server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 20_000 }, withLogs(() => server, fn));

  before(async () => {
    server = await startServer({ config: DEFAULT_CONFIG, name: "socket-server(default)" });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  async function client(transports) {
    const socket = clients.connect(server.url, transports ? { transports } : {});
    await waitConnected(socket);
    return socket;
  }

  async function join(socket, room) {
    const [res] = await emitAck(socket, "join", [room]);
    assert.equal(res?.ok, true, `join ack should be {ok:true}, got ${JSON.stringify(res)}`);
  }

  t("join acks {ok:true} for a string room and for {room}", async () => {
    const a = await client();
    const [r1] = await emitAck(a, "join", ["lobby"]);
    assert.deepEqual(r1, { ok: true });
    const [r2] = await emitAck(a, "join", [{ room: "lobby2" }]);
    assert.deepEqual(r2, { ok: true });
    const [r3] = await emitAck(a, "leave", ["lobby"]);
    assert.deepEqual(r3, { ok: true });
    const [r4] = await emitAck(a, "leave", [{ room: "lobby2" }]);
    assert.deepEqual(r4, { ok: true });
  });

  t("a room broadcast reaches every member exactly once (sender included) and no one else", async () => {
    const a = await client(["websocket"]);
    const b = await client(["polling"]);
    const c = await client();
    await join(a, "lobby");
    await join(b, { room: "lobby" });
    await join(c, "other");
    const gotA = collect(a, "chat:message");
    const gotB = collect(b, "chat:message");
    const gotC = collect(c, "chat:message");

    const msg = { room: "lobby", text: "hello lobby ✓", from: "A", meta: { z: 1, a: [1, 2] } };
    a.emit("chat:message", msg);
    await until(() => gotA.length >= 1 && gotB.length >= 1, 5000, "A and B to receive the lobby message");
    await sleep(QUIET_MS);

    assert.equal(gotA.length, 1, "A (sender, member) receives it exactly once");
    assert.equal(gotB.length, 1, "B (member) receives it exactly once");
    assert.equal(gotC.length, 0, "C (in another room) never receives it");
    // config.hcl turns connection state recovery on: the server appends
    // the broadcast's offset as the last argument, as Node does.
    assert.equal(gotA[0].length, 2, "the payload and the recovery offset");
    assert.match(gotA[0][1], /^\d+-\d+$/, "the offset");
    assert.equal(JSON.stringify(gotA[0][0]), JSON.stringify(msg), "payload is forwarded unchanged");
    assert.equal(JSON.stringify(gotB[0]), JSON.stringify(gotA[0]), "both members see the same packet, offset included");

    // and the other room is isolated in the other direction as well
    c.emit("chat:message", { room: "other", text: "hello other" });
    await until(() => gotC.length >= 1, 5000, "C to receive its own room message");
    await sleep(QUIET_MS);
    assert.equal(gotC.length, 1);
    assert.deepEqual(gotC[0].slice(0, 1), [{ room: "other", text: "hello other" }]);
    assert.equal(gotA.length, 1, "A must not get the 'other' room message");
    assert.equal(gotB.length, 1, "B must not get the 'other' room message");
  });

  t("a client that did not join cannot broadcast into the room", async () => {
    const a = await client();
    const b = await client();
    const outsider = await client();
    await join(a, "lobby");
    await join(b, "lobby");
    const gotA = collect(a, "chat:message");
    const gotB = collect(b, "chat:message");
    const gotOut = collect(outsider, "chat:message");

    outsider.emit("chat:message", { room: "lobby", text: "let me in", from: "outsider" });
    await sleep(QUIET_MS);
    assert.equal(gotA.length, 0, `A got ${JSON.stringify(gotA)}`);
    assert.equal(gotB.length, 0, `B got ${JSON.stringify(gotB)}`);
    assert.equal(gotOut.length, 0, `outsider got ${JSON.stringify(gotOut)}`);

    // the room itself still works
    b.emit("chat:message", { room: "lobby", text: "members only" });
    await until(() => gotA.length === 1 && gotB.length === 1, 5000, "members to receive a member's message");
    assert.equal(gotOut.length, 0);
  });

  t("after leave a client gets no more messages from the room", async () => {
    const a = await client();
    const b = await client();
    await join(a, "lobby");
    await join(b, "lobby");
    const gotA = collect(a, "chat:message");
    const gotB = collect(b, "chat:message");

    a.emit("chat:message", { room: "lobby", text: "one" });
    await until(() => gotA.length === 1 && gotB.length === 1, 5000, "both to receive 'one'");

    const [res] = await emitAck(b, "leave", ["lobby"]);
    assert.equal(res?.ok, true, `leave ack should be {ok:true}, got ${JSON.stringify(res)}`);

    a.emit("chat:message", { room: "lobby", text: "two" });
    await until(() => gotA.length === 2, 5000, "A to receive 'two'");
    await sleep(QUIET_MS);
    assert.deepEqual(
      gotB.map(([m]) => m.text),
      ["one"],
      "B left the room and must not receive 'two'",
    );

    // having left, B can no longer broadcast into the room either
    b.emit("chat:message", { room: "lobby", text: "three" });
    await sleep(QUIET_MS);
    assert.deepEqual(
      gotA.map(([m]) => m.text),
      ["one", "two"],
    );
  });

  t("a room message carrying binary data reaches members with equal bytes", async () => {
    const a = await client(["websocket"]);
    const b = await client(["polling"]);
    await join(a, "files");
    await join(b, "files");
    const gotA = collect(a, "chat:message");
    const gotB = collect(b, "chat:message");
    const bytes = Buffer.from([0, 255, 1, 254, 2, 253]);
    a.emit("chat:message", { room: "files", text: "a file", file: bytes });
    await until(() => gotA.length >= 1 && gotB.length >= 1, 5000, "A and B to receive the binary message");
    for (const [who, got] of [
      ["A", gotA],
      ["B", gotB],
    ]) {
      const [msg] = got[0];
      assert.equal(msg.room, "files", who);
      assert.equal(msg.text, "a file", who);
      const buf = toBuffer(msg.file);
      assert.ok(buf && buf.equals(bytes), `${who}: file bytes differ: ${JSON.stringify(msg.file)}`);
    }
  });

  t("a member disconnecting does not break the room for the others", async () => {
    const a = await client();
    const b = await client();
    await join(a, "lobby");
    await join(b, "lobby");
    b.disconnect();
    await sleep(100);
    const gotA = collect(a, "chat:message");
    a.emit("chat:message", { room: "lobby", text: "anyone?" });
    await until(() => gotA.length === 1, 5000, "A to receive its own message");
    assert.ok(a.connected);
  });
});
