package main

// socketbench fleet -node DIR: the same run with Node's socket.io as the
// instances, the reference for what the protocol gives: socket.io with
// @socket.io/redis-streams-adapter and connectionStateRecovery
// (maxDisconnectionDuration 2 min, skipMiddlewares), or, when the config's
// path holds "classic", @socket.io/redis-adapter without recovery. DIR is
// a node_modules folder that has socket.io, redis and both adapters
// (test/e2e/node_modules does). The script keeps socket-server's side of
// the contract: LISTEN_ADDR, REDIS_URL, API_TOKEN; /ready; POST
// /api/v1/emit {rooms, event, args} → 202; "join" joins args[0], acked
// {ok:true}; SIGTERM closes the server (sockets disconnect with "server
// shutting down", which persists their sessions) and exits.

const fleetNodeScript = `'use strict';
const http = require('http');
const { Server } = require('socket.io');
const { createClient } = require('redis');
const classic = process.argv.some(a => a.includes('classic'));
const [host, port] = process.env.LISTEN_ADDR.split(':');
let ready = false, io;
const httpServer = http.createServer((req, res) => {
  if (req.url.startsWith('/socket.io/')) return;
  if (req.url === '/ready') { res.writeHead(ready ? 200 : 503); res.end(); return; }
  if (req.url === '/api/v1/emit' && req.method === 'POST') {
    if (req.headers.authorization !== 'Bearer ' + process.env.API_TOKEN) { res.writeHead(401); res.end(); return; }
    let body = '';
    req.on('data', d => { body += d; });
    req.on('end', () => {
      let b;
      try { b = JSON.parse(body); } catch (e) { res.writeHead(400); res.end(); return; }
      let t = io;
      for (const r of b.rooms || []) t = t.to(r);
      t.emit(b.event, ...(b.args || []));
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    return;
  }
  res.writeHead(404); res.end();
});
(async () => {
  const redis = createClient({ url: process.env.REDIS_URL });
  redis.on('error', e => console.error('redis', e.message));
  await redis.connect();
  let adapter;
  if (classic) {
    const sub = redis.duplicate();
    sub.on('error', e => console.error('redis sub', e.message));
    await sub.connect();
    adapter = require('@socket.io/redis-adapter').createAdapter(redis, sub);
  } else {
    adapter = require('@socket.io/redis-streams-adapter').createAdapter(redis);
  }
  io = new Server(httpServer, {
    adapter, transports: ['websocket'],
    connectionStateRecovery: classic ? undefined : { maxDisconnectionDuration: 120000, skipMiddlewares: true },
  });
  io.on('connection', s => { s.on('join', (room, ack) => { s.join(room); if (typeof ack === 'function') ack({ ok: true }); }); });
  httpServer.listen(Number(port), host, () => {
    ready = true;
    console.log('listening', process.env.LISTEN_ADDR, classic ? 'redis-adapter, no recovery' : 'redis-streams-adapter, recovery');
  });
})().catch(e => { console.error(e); process.exit(1); });
const stop = () => { ready = false; io.close(() => process.exit(0)); setTimeout(() => process.exit(0), 5000); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
`
