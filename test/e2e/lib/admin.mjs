// Helpers for the Admin UI tests: the admin config, the bcrypt hash, the
// server_stats a UI hears, and a Node socket.io server instrumented with
// @socket.io/admin-ui. The package (and its bcryptjs) comes from
// core/admin/ui/node_modules, which `make ui` installs from its lockfile.
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";
import { REPO_ROOT, withTimeout } from "./harness.mjs";

export const ADMIN_USER = "admin";
export const ADMIN_PASSWORD = "correct horse battery staple";
export const ADMIN_UI_DIR = path.join(REPO_ROOT, "core", "admin", "ui");

/** @socket.io/admin-ui and bcryptjs from core/admin/ui (make ui). */
export function loadAdminUI() {
  const pkg = path.join(ADMIN_UI_DIR, "node_modules", "@socket.io", "admin-ui");
  if (!existsSync(pkg)) {
    throw new Error(`@socket.io/admin-ui missing in ${ADMIN_UI_DIR}/node_modules: run \`make ui\` (npm ci there)`);
  }
  const require = createRequire(path.join(ADMIN_UI_DIR, "package.json"));
  const { instrument } = require("@socket.io/admin-ui");
  const bcrypt = require("bcryptjs");
  return {
    instrument,
    bcrypt,
    /** A Node socket.io server on the Redis adapter, instrumented with the same credentials. */
    async startNodeServer(redisUrl, serverId, port) {
      const pub = createClient({ url: redisUrl });
      const sub = pub.duplicate();
      await Promise.all([pub.connect(), sub.connect()]);
      const http = createServer();
      const io = new Server(http, { adapter: createAdapter(pub, sub, { requestsTimeout: 2000 }) });
      io.on("connection", (socket) => {
        socket.on("join", (room, cb) => {
          socket.join(room);
          cb?.({ ok: true });
        });
      });
      instrument(io, { auth: { type: "basic", username: ADMIN_USER, password: hash() }, serverId, mode: "development" });
      await new Promise((resolve) => http.listen(port, "127.0.0.1", resolve));
      return {
        url: `http://127.0.0.1:${port}`,
        io,
        close: async () => {
          // instrument()'s stats timer outlives io.close(): let it publish
          // nothing once the Redis clients are gone.
          io.of("/admin").adapter.broadcast = () => {};
          io.close();
          await Promise.allSettled([pub.quit(), sub.quit()]);
        },
      };
    },
  };
}

let cachedHash;
/** The bcrypt hash of ADMIN_PASSWORD (cost 10, the lowest the server takes). */
export function hash() {
  cachedHash ??= loadAdminUI().bcrypt.hashSync(ADMIN_PASSWORD, 10);
  return cachedHash;
}

/**
 * A config file with the admin block: { file, env } (env carries the hash
 * and the instance's own variables are added by the caller). Without
 * REDIS_URL in the env the adapter block is left out.
 */
export function adminConfig({ mode = "production", readOnly = false, redis = true } = {}) {
  const src = `
server {
  listen      = env("LISTEN_ADDR")
  instance_id = env("INSTANCE_ID")
}
${redis ? `adapter "redis" {
  url              = env("REDIS_URL")
  requests_timeout = "1500ms"
}` : ""}
admin {
  username      = "${ADMIN_USER}"
  password_hash = env("ADMIN_PASSWORD_HASH")
  read_only     = ${readOnly}
  mode          = "${mode}"
}
namespace "/" {
  event "join" {
    join { room = args[0] }
  }
  event "chat" {
    broadcast {
      to             = args[0].room
      require_member = false
    }
  }
}
`;
  const dir = mkdtempSync(path.join(tmpdir(), "sf-admin-"));
  const file = path.join(dir, "config.hcl");
  writeFileSync(file, src);
  return { file, env: { ADMIN_PASSWORD_HASH: hash(), INSTANCE_ID: "sf-single" } };
}

/** The latest server_stats per serverId once n servers were heard, within ms. */
export function statsServers(ui, n, ms) {
  const latest = new Map();
  let handler;
  const p = new Promise((resolve) => {
    handler = (st) => {
      latest.set(st.serverId, st);
      if (latest.size >= n) resolve(latest);
    };
    ui.on("server_stats", handler);
  });
  return withTimeout(p, ms, `server_stats from ${n} servers (heard: ${[...latest.keys()].join(", ")})`).finally(() =>
    ui.off("server_stats", handler),
  );
}
