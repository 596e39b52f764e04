// Tiny static server for the browser chat example (Node's http module, no dependencies).
// Serves the page and the socket.io-client browser bundle installed by `npm ci`.
//   PORT (default 8080), HOST (default: all interfaces)
import { createReadStream, existsSync, statSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const bundleDir = path.join(here, "node_modules", "socket.io-client", "dist");

// Only these URLs are served; nothing else on disk is reachable.
const routes = {
  "/": { file: path.join(here, "index.html"), type: "text/html; charset=utf-8" },
  "/index.html": { file: path.join(here, "index.html"), type: "text/html; charset=utf-8" },
  "/app.js": { file: path.join(here, "app.js"), type: "text/javascript; charset=utf-8" },
  "/style.css": { file: path.join(here, "style.css"), type: "text/css; charset=utf-8" },
  "/vendor/socket.io.min.js": {
    file: path.join(bundleDir, "socket.io.min.js"),
    type: "text/javascript; charset=utf-8",
  },
  "/vendor/socket.io.min.js.map": {
    file: path.join(bundleDir, "socket.io.min.js.map"),
    type: "application/json; charset=utf-8",
  },
};

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || undefined;

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, "http://localhost");
  const route = routes[pathname];
  if ((req.method !== "GET" && req.method !== "HEAD") || !route) {
    res.writeHead(route ? 405 : 404, { "content-type": "text/plain; charset=utf-8" });
    res.end(route ? "method not allowed\n" : "not found\n");
    return;
  }
  if (!existsSync(route.file)) {
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end(`${path.relative(here, route.file)} is missing; run \`npm ci\` in examples/browser-chat\n`);
    return;
  }
  res.writeHead(200, {
    "content-type": route.type,
    "content-length": statSync(route.file).size,
    "cache-control": "no-cache",
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(route.file).pipe(res);
});

if (!existsSync(path.join(bundleDir, "socket.io.min.js"))) {
  console.warn("warning: socket.io-client is not installed; run `npm ci` in examples/browser-chat first");
}

server.listen(port, host, () => {
  const { port: actual } = server.address();
  console.log(`browser-chat: serving on http://localhost:${actual}/ (open with ?server=http://localhost:8081)`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
