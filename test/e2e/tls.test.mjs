// TLS on the main listener: the official client over wss:// and over
// https:// long-polling with a test CA made here (openssl), the certificate
// files replaced while clients exchange numbered messages: new clients see
// the new certificate, the connected ones are not disconnected and lose or
// duplicate nothing. And `validate` pointing a bad key pair at its line.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Clients, emitAck, sleep, SERVER_BIN, ServerProcess, until, waitConnected, withLogs } from "./lib/harness.mjs";
import { reconnectSnapshot, requireTools, SeqClient, SeqLoad, skipUnlessTools, tally, tempDir } from "./lib/fleet.mjs";

const CONFIG = `
server {
  listen = env("LISTEN_ADDR")
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}
namespace "/" {
  event "join" {
    join { room = args[0] }
    ack = [true]
  }
  event "pub" {
    broadcast {
      to             = args[0].r
      event          = "tick"
      require_member = false
    }
    ack = [true]
  }
}
`;

/** A test CA and leaf certificates for 127.0.0.1 made with openssl (EC P-256, a few ms each). */
class TestCA {
  constructor(openssl, dir) {
    this.openssl = openssl;
    this.dir = dir;
    this.#run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", this.#p("ca.key"), "-out", this.#p("ca.pem"), "-subj", "/CN=socketfleet e2e CA", "-days", "1"]);
    writeFileSync(this.#p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    this.pem = readFileSync(this.#p("ca.pem"), "utf8");
  }

  #p(name) {
    return path.join(this.dir, name);
  }

  #run(args) {
    execFileSync(this.openssl, args, { stdio: "pipe" });
  }

  /** Issue a leaf with this serial; returns {cert, key} PEM. */
  issue(serial) {
    const key = this.#p(`leaf-${serial}.key`);
    const csr = this.#p(`leaf-${serial}.csr`);
    const cert = this.#p(`leaf-${serial}.pem`);
    this.#run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"]);
    this.#run(["x509", "-req", "-in", csr, "-CA", this.#p("ca.pem"), "-CAkey", this.#p("ca.key"), "-set_serial", String(serial),
      "-days", "1", "-out", cert, "-extfile", this.#p("ext.cnf")]);
    return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
  }
}

/** Put a pair in place as deployment tools do: each file written whole, then renamed over the old one. */
function install(dir, pair) {
  for (const [name, text] of [["key.pem", pair.key], ["cert.pem", pair.cert]]) {
    writeFileSync(path.join(dir, `${name}.tmp`), text);
    renameSync(path.join(dir, `${name}.tmp`), path.join(dir, name));
  }
}

/** An https.Agent trusting the CA that records the serial of each certificate it is shown. */
class CertAgent extends https.Agent {
  constructor(ca) {
    // ALPN as a browser offers it: h2 first. The server must pick
    // HTTP/1.1 (WebSocket's upgrade and polling are HTTP/1.1 here).
    super({ ca, keepAlive: true, ALPNProtocols: ["h2", "http/1.1"] });
    this.serials = [];
    this.alpn = [];
  }

  createConnection(options, cb) {
    const sock = super.createConnection(options, cb);
    sock.once("secureConnect", () => {
      this.serials.push(Number.parseInt(sock.getPeerCertificate().serialNumber, 16));
      this.alpn.push(sock.alpnProtocol);
    });
    return sock;
  }
}

/** The serial a brand-new TLS client is shown (a fresh agent: no session to resume). */
function serialSeen(port, ca) {
  return new Promise((resolve, reject) => {
    const agent = new CertAgent(ca);
    const req = https.get({ host: "127.0.0.1", port, path: "/socket.io/?EIO=4&transport=polling", agent, timeout: 3000 }, (res) => {
      res.resume();
      res.on("end", () => {
        agent.destroy();
        resolve({ serial: agent.serials[0], status: res.statusCode, alpn: agent.alpn[0] });
      });
    });
    req.on("error", reject);
  });
}

/** The server over TLS: ready once an https polling handshake answers 200. */
class TLSServer extends ServerProcess {
  constructor(opts, ca) {
    super(opts);
    this.ca = ca;
  }

  get url() {
    return `https://127.0.0.1:${this.port}`;
  }

  async waitReady(timeoutMs = 15_000) {
    await until(async () => {
      if (this.exitInfo) throw new Error(`${this.name} exited: ${JSON.stringify(this.exitInfo)}\n${this.formatLogs()}`);
      try {
        return (await serialSeen(this.port, this.ca)).status === 200;
      } catch {
        return false;
      }
    }, timeoutMs, `${this.name} to answer over https`);
  }
}

const skip = skipUnlessTools(["openssl"]);

describe("TLS with certificate reload", { skip, timeout: 60_000 }, () => {
  let openssl, dir, ca, server;
  const clients = new Clients();
  const t = (name, fn) => test(name, { timeout: 30_000 }, withLogs(() => server, fn));

  before(async () => {
    [openssl] = requireTools(["openssl"]);
    dir = tempDir("sf-tls-", { "config.hcl": CONFIG });
    ca = new TestCA(openssl, dir);
    install(dir, ca.issue(1001));
    server = new TLSServer({ config: path.join(dir, "config.hcl"), name: "sf-tls" }, ca.pem);
    await server.start();
  });

  after(async () => {
    clients.closeAll();
    await server?.stop();
  });

  /** A client over one transport with its own agent (to see its certificate). */
  function connect(transports) {
    const agent = new CertAgent(ca.pem);
    const socket = clients.connect(server.url, { transports, ca: ca.pem, agent, upgrade: false });
    return { socket, agent };
  }

  t("wss:// and https:// polling clients stay connected through a certificate change; new ones see the new one", async () => {
    const first = await serialSeen(server.port, ca.pem);
    assert.deepEqual(first, { serial: 1001, status: 200, alpn: "http/1.1" });

    // 8 WebSocket and 8 polling clients in two rooms, and a publisher.
    const rooms = ["a", "b"];
    const conns = [];
    for (let i = 0; i < 16; i++) conns.push({ ...connect(i % 2 ? ["polling"] : ["websocket"]), room: rooms[i % 2] });
    const pub = connect(["websocket"]);
    await Promise.all([...conns, pub].map((c) => waitConnected(c.socket)));
    const seq = [];
    for (const c of conns) {
      c.seq = new SeqClient(c.socket, c.room);
      await emitAck(c.socket, "join", [c.room]);
      c.seq.joinedAt = Date.now();
      seq.push(c.seq);
      assert.equal(c.agent.serials[0], 1001, `${c.socket.io.engine.transport.name} client saw serial ${c.agent.serials[0]}`);
    }
    const snap = reconnectSnapshot(seq);
    const load = new SeqLoad({
      phase: "tls",
      rooms,
      intervalMs: 20,
      publish: async (room, m) => (await emitAck(pub.socket, "pub", [m]))[0] === true,
    }).start();
    await sleep(700);

    install(dir, ca.issue(1002));
    const changedAt = Date.now();
    await until(async () => (await serialSeen(server.port, ca.pem)).serial === 1002, 5000, "a new handshake to show serial 1002");
    const took = Date.now() - changedAt;

    // New clients over both transports get the new certificate and work.
    const fresh = [connect(["websocket"]), connect(["polling"])];
    await Promise.all(fresh.map((c) => waitConnected(c.socket)));
    for (const c of fresh) {
      assert.equal(c.agent.serials[0], 1002, `new ${c.socket.io.engine.transport.name} client saw serial ${c.agent.serials[0]}`);
      assert.deepEqual(await emitAck(c.socket, "join", ["a"]), [true]);
    }

    await sleep(700);
    await load.stop();
    await sleep(500); // the last publications arrive
    const tl = tally(seq, load, snap);
    const disconnects = seq.flatMap((c) => c.events.filter((e) => String(e[1]).startsWith("disconnect")));
    assert.deepEqual(disconnects, [], "no client was disconnected");
    assert.equal(tl.reconnects, 0, "no reconnection");
    assert.ok(conns.every((c) => c.socket.connected), "every client still connected");
    assert.ok(load.failed === 0 && load.accepted > 50, `publications: ${load.accepted} accepted, ${load.failed} failed`);
    assert.ok(tl.expected > 400, `expected ${tl.expected}`);
    assert.equal(tl.lost, 0, `lost ${tl.lost} of ${tl.expected}\n${tl.lostSamples.join("\n")}`);
    assert.equal(tl.dup, 0, `duplicated ${tl.dup}\n${tl.samples.join("\n")}`);
    assert.equal(tl.disorder, 0, `out of order ${tl.disorder}`);
    // The old clients' transports are the ones they started on.
    for (const c of conns) assert.ok(c.agent.serials.length >= 1);
    process.stdout.write(`# tls: new certificate served ${took} ms after the files changed; ${tl.expected} messages to ${seq.length} clients, 0 lost, 0 dup\n`);
  });

  t("a key that does not match its certificate is refused by validate (at file:line:col) and leaves the running server on the old one", async () => {
    const bad = tempDir("sf-tls-bad-", { "config.hcl": CONFIG });
    const a = ca.issue(2001);
    const b = ca.issue(2002);
    install(bad, { cert: a.cert, key: b.key });
    const r = spawnSync(SERVER_BIN, ["validate", "--config", path.join(bad, "config.hcl")], { encoding: "utf8" });
    assert.equal(r.status, 1, `validate exit ${r.status}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /config\.hcl:6:17/, r.stderr);
    assert.match(r.stderr, /Key does not match certificate/, r.stderr);

    // The same mistake in the running server's files: it keeps serving
    // the certificate it has.
    const before = (await serialSeen(server.port, ca.pem)).serial;
    install(dir, { cert: a.cert, key: b.key });
    await until(() => server.logs.some((l) => l.includes("do not load")), 5000, "the server to log the bad pair");
    assert.equal((await serialSeen(server.port, ca.pem)).serial, before);
  });
});
