// Config reload under load: 1,000 official clients exchange numbered
// messages in rooms while the config is reloaded 20 times, alternating
// between two configs that differ in event rules, a rate limit, a
// namespace ("/extra", only in A), the log level and the auth plugin
// block (a new auth-jwt process each time). No "/" socket is
// disconnected, no message is lost or duplicated, the sockets of "/extra"
// alone are disconnected when it goes, and the rules of the config just
// loaded answer the very next event.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { io } from "socket.io-client";
import { REPO_ROOT, emitAck, startServer, sleep, waitConnected, withLogs, withTimeout } from "./lib/harness.mjs";
import { apiCall, tempDir } from "./lib/fleet.mjs";

const SOCKETS = 1000;
const ROOM_SIZE = 5;
const RELOADS = 20;
const SEND_EVERY_MS = 1000; // per socket: 1,000 events/s in all, 4,000 deliveries/s
const EXTRA = 20; // "/extra" sockets, multiplexed on the first connections
const API_TOKEN = "reload-test-token-0123456789";
const SECRET = "reload-secret";

function config(which) {
  const a = which === "A";
  return `
server {
  listen     = env("LISTEN_ADDR")
  plugin_dir = "${path.join(REPO_ROOT, "bin/plugins")}"
  log_level  = "${a ? "info" : "warn"}"
  api {
    token = "${API_TOKEN}"
  }
}
auth "jwt" {
  secret   = "${SECRET}"
  audience = "chat"
${a ? "" : '  data_claims = ["sub"]'}
}
namespace "/" {
  event "join" {
    join {
      room  = args[0]
      allow = ["*"]
    }
    ack = [true]
  }
  event "msg" {
    broadcast {
      to             = args[0].room
      except_sender  = true
      require_member = true
    }
  }
  event "which" {
    ack = ["${which}"]
  }
${a ? '  event "only_a" {\n    ack = ["yes"]\n  }' : ""}
  event "limited" {
    rate_limit = "${a ? "1/s" : "1000/s"}"
    rate_burst = ${a ? 1 : 1000}
    ack        = ["ok"]
  }
}
${a ? 'namespace "/extra" {\n  event "which" {\n    ack = ["extra"]\n  }\n}' : ""}
`;
}

function jwt(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, aud: "chat", exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${crypto.createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

describe("config reload under load", { timeout: 120_000 }, () => {
  let server;
  let dir;
  let cfgPath;
  const sockets = [];
  const cleanup = [];

  before(async () => {
    dir = tempDir("sf-reload-");
    cfgPath = path.join(dir, "config.hcl");
    writeFileSync(cfgPath, config("A"));
    server = await startServer({ config: cfgPath, name: "socket-server(reload)" });
  });
  after(async () => {
    for (const s of [...sockets, ...cleanup]) s.disconnect();
    await server?.stop();
  });

  async function reloadTo(which) {
    writeFileSync(cfgPath, config(which));
    const { status, json } = await apiCall(server.url, API_TOKEN, "POST", "reload", {}, 30_000);
    assert.equal(status, 200, `reload to ${which}: ${JSON.stringify(json)}`);
    return json;
  }

  function connectExtra(main, i) {
    const s = main.io.socket("/extra", { auth: { token: jwt(`extra${i}`) } });
    // Manager.socket connects it (autoConnect): a second connect() would
    // send a second CONNECT, which closes the connection ("invalid state").
    s.gone = new Promise((resolve) => s.once("disconnect", resolve));
    cleanup.push(s);
    return s;
  }

  test(
    `${SOCKETS} sockets, ${RELOADS} reloads: nobody else disconnected, nothing lost or duplicated, new rules at once`,
    { timeout: 110_000 },
    withLogs(
      () => server,
      async () => {
        // Connect in batches, each socket joins its room.
        const rooms = SOCKETS / ROOM_SIZE;
        const state = []; // per socket: {room, sent, got: Map(from -> [seq]), disconnects: []}
        for (let start = 0; start < SOCKETS; start += 100) {
          const batch = [];
          for (let i = start; i < start + 100; i++) {
            const s = io(server.url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: jwt(`u${i}`) } });
            sockets.push(s);
            const st = { room: `r${i % rooms}`, sent: 0, got: new Map(), disconnects: [] };
            state.push(st);
            s.on("msg", (m) => {
              let l = st.got.get(m.from);
              if (!l) st.got.set(m.from, (l = []));
              l.push(m.s);
            });
            s.on("disconnect", (reason) => st.disconnects.push(reason));
            batch.push(waitConnected(s, 15_000).then(() => emitAck(s, "join", [st.room], 10_000)));
          }
          await Promise.all(batch);
        }

        // Steady traffic: each socket sends one numbered message a second,
        // spread over the second.
        let running = true;
        const traffic = (async () => {
          const slots = 20;
          for (let tick = 0; running; tick++) {
            const slot = tick % slots;
            for (let i = slot; i < SOCKETS; i += slots) {
              const st = state[i];
              sockets[i].emit("msg", { room: st.room, from: i, s: ++st.sent });
            }
            await sleep(SEND_EVERY_MS / slots);
          }
        })();

        const probe = sockets[SOCKETS - 1];
        let extra = [];
        for (let i = 0; i < EXTRA; i++) extra.push(connectExtra(sockets[i], i));
        await Promise.all(extra.map((s) => waitConnected(s, 10_000)));
        const extraDisconnects = [];

        for (let n = 1; n <= RELOADS; n++) {
          const which = n % 2 === 1 ? "B" : "A";
          const res = await reloadTo(which);
          // The very next event runs the rules just loaded.
          assert.deepEqual(await emitAck(probe, "which", [], 3000), [which], `reload ${n}: "which" answered by the old rules`);
          const l1 = await emitAck(probe, "limited", [], 3000);
          const l2 = await emitAck(probe, "limited", [], 3000);
          if (which === "A") {
            assert.deepEqual(await emitAck(probe, "only_a", [], 3000), ["yes"], `reload ${n}: only_a missing in A`);
            assert.deepEqual([l1, l2], [["ok"], [{ ok: false, error: "rate limited" }]], `reload ${n}: A's 1/s limit`);
            assert.deepEqual(res.namespaces_added, ["/extra"]);
            // "/extra" is connectable at once, through the new auth process.
            extra = [];
            for (let i = 0; i < EXTRA; i++) extra.push(connectExtra(sockets[i], i));
            await Promise.all(extra.map((s) => waitConnected(s, 10_000)));
            assert.deepEqual(await emitAck(extra[0], "which", [], 3000), ["extra"]);
          } else {
            await assert.rejects(emitAck(probe, "only_a", [], 250), /no ack/, `reload ${n}: only_a still answers in B`);
            assert.deepEqual([l1, l2], [["ok"], ["ok"]], `reload ${n}: B's 1000/s limit`);
            assert.deepEqual(res.namespaces_removed, ["/extra"]);
            assert.equal(res.sockets_disconnected, EXTRA, JSON.stringify(res));
            // Its sockets were told; a new CONNECT is refused.
            const reasons = await withTimeout(Promise.all(extra.map((s) => s.gone)), 5000, "/extra sockets to be told");
            extraDisconnects.push(...reasons);
            const late = connectExtra(sockets[0], 999);
            await assert.rejects(waitConnected(late, 5000), /Invalid namespace/);
            late.disconnect();
          }
          assert.deepEqual(res.plugins_started, ["auth.jwt"], `reload ${n}: the changed auth block gets a process`);
          assert.deepEqual(res.plugins_stopped, ["auth.jwt"]);
          await sleep(150);
        }

        running = false;
        await traffic;
        await sleep(1500); // the last messages arrive

        // Only "/extra" sockets were disconnected, each with the server's reason.
        assert.equal(extraDisconnects.length, (RELOADS / 2) * EXTRA);
        assert.ok(extraDisconnects.every((r) => r === "io server disconnect"), `extra reasons: ${[...new Set(extraDisconnects)]}`);
        const dropped = state.filter((st) => st.disconnects.length > 0);
        assert.equal(dropped.length, 0, `"/" sockets disconnected: ${dropped.length} (${dropped[0]?.disconnects})`);

        // Every message reached every other member of its room, once.
        let expected = 0;
        let lost = 0;
        let dup = 0;
        let total = 0;
        for (let i = 0; i < SOCKETS; i++) {
          for (let j = i % rooms; j < SOCKETS; j += rooms) {
            if (j === i) continue;
            const sent = state[j].sent;
            const got = state[i].got.get(j) || [];
            const seen = new Set(got);
            expected += sent;
            total += got.length;
            dup += got.length - seen.size;
            for (let s = 1; s <= sent; s++) if (!seen.has(s)) lost++;
          }
        }
        const reloaded = server.logs.filter((l) => l.includes('"msg":"config reloaded"'));
        console.log(
          `# ${SOCKETS} sockets, ${RELOADS} reloads: ${expected} deliveries expected, ${total} received, lost ${lost}, duplicated ${dup}; ` +
            `"config reloaded" log lines: ${reloaded.length}`,
        );
        assert.ok(expected > SOCKETS * (ROOM_SIZE - 1) * 3, `too little traffic: ${expected}`);
        assert.equal(lost, 0, "lost");
        assert.equal(dup, 0, "duplicated");
        // The log level changes with the config: B (warn) does not log its
        // own "config reloaded" line, A (info) does.
        assert.equal(reloaded.length, RELOADS / 2);
      },
    ),
  );
});
