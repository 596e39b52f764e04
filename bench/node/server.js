// Reference Node socket.io server for `make bench`: the same event contract
// as bench/socketfleet.hcl, so both servers take the same load.
//
//   join     args[0] is a room name or {room}: join it; ack {ok: true}
//   publish  args[0].room: emit "publish" with the received arguments to
//            everyone in that room (the sender need not be a member)
//
// Environment:
//   PORT        port to listen on, 127.0.0.1 (default 8082)
//   JWT_SECRET  when set, CONNECT must carry auth {token}: an HS256 JWT with
//               aud "bench" and a sub, checked in a middleware
//   REDIS_URL   when set, @socket.io/redis-adapter on that Redis
//   REDIS_PREFIX  the adapter's key (default "socket.io")
//   REDIS_STREAMS  with REDIS_URL: @socket.io/redis-streams-adapter instead
//   RECOVERY    when set, connectionStateRecovery with the defaults (2m,
//               skipMiddlewares), as bench/socketfleet-recovery.hcl
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

async function main() {
  const port = Number(process.env.PORT || 8082);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    cors: { origin: "*" },
    // socket.io's defaults, written out because socketfleet uses the same:
    pingInterval: 25000,
    pingTimeout: 20000,
    maxHttpBufferSize: 1e6,
    ...(process.env.RECOVERY ? { connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true } } : {}),
  });

  if (process.env.REDIS_URL && process.env.REDIS_STREAMS) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-streams-adapter");
    const client = createClient({ url: process.env.REDIS_URL });
    client.on("error", (err) => console.error("redis:", err.message));
    await client.connect();
    io.adapter(createAdapter(client));
  } else if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    pub.on("error", (err) => console.error("redis pub:", err.message));
    sub.on("error", (err) => console.error("redis sub:", err.message));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key: process.env.REDIS_PREFIX || "socket.io" }));
  }

  const secret = process.env.JWT_SECRET;
  if (secret) {
    const jwt = require("jsonwebtoken");
    io.use((socket, next) => {
      const token = socket.handshake.auth && socket.handshake.auth.token;
      if (typeof token !== "string" || token === "") {
        return next(new Error("authentication required: no token"));
      }
      jwt.verify(token, secret, { algorithms: ["HS256"], audience: "bench" }, (err, claims) => {
        if (err || !claims.sub) return next(new Error("invalid token"));
        socket.data.user = String(claims.sub);
        next();
      });
    });
  }

  io.on("connection", (socket) => {
    socket.on("join", (arg, ack) => {
      const room = arg && typeof arg === "object" ? arg.room : arg;
      if (typeof room === "string" && room !== "") {
        socket.join(room);
        if (typeof ack === "function") ack({ ok: true });
      } else if (typeof ack === "function") {
        ack({ ok: false, error: "room must be a string" });
      }
    });
    socket.on("publish", (...args) => {
      const room = args[0] && args[0].room;
      if (typeof room !== "string") return;
      // An ack callback, if the client asked for one, is not forwarded.
      if (typeof args[args.length - 1] === "function") args.pop();
      io.to(room).emit("publish", ...args);
    });
  });

  httpServer.listen(port, "127.0.0.1", () => {
    console.error(`node socket.io ${require("socket.io/package.json").version} listening on 127.0.0.1:${port}` +
      (secret ? " (jwt)" : "") + (process.env.REDIS_URL ? " (redis adapter)" : ""));
  });
  const stop = () => { io.close(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
