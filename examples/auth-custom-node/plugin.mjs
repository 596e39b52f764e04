// auth "apikey", written in Node.js: the same plugin as
// examples/auth-custom-go, speaking hashicorp/go-plugin's protocol for
// plugins not written in Go. The host starts it (through the
// auth-apikey-node wrapper), reads one handshake line from its stdout and
// talks gRPC to it over mutual TLS. See README.md.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import forge from 'node-forge';

// The socketfleet handshake (sdk.Handshake in Go): the host sets this
// variable; its absence means someone ran the plugin by hand.
const MAGIC_COOKIE_KEY = 'SOCKETFLEET_PLUGIN';
const MAGIC_COOKIE_VALUE = '7c3f0e52-socketfleet-plugin-b1d94a6e';
const CORE_PROTOCOL_VERSION = 1; // go-plugin's own protocol
const PROTOCOL_VERSION = 1; // sdk.ProtocolVersion: the services in sdk/proto
const PARENT_GONE_EXIT_CODE = 3; // as sdk.Serve

const here = dirname(fileURLToPath(import.meta.url));

// ---- the plugin ----------------------------------------------------------

// keys maps the SHA-256 of each key to its user; null until Configure.
let keys = null;

// readKeys parses a keys file: `<key> <user-id> [room,room...]` per line.
function readKeys(path) {
  const out = new Map();
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0 || fields[0].startsWith('#')) return;
    if (fields.length > 3 || fields.length < 2) {
      throw new Error(`${path}:${i + 1}: want \`<key> <user-id> [room,room...]\``);
    }
    const h = sha256(fields[0]);
    if (out.has(h)) throw new Error(`${path}:${i + 1}: key listed twice`);
    out.set(h, { id: fields[1], rooms: (fields[2] ?? '').split(',').filter(Boolean) });
  });
  return out;
}

// Keys are looked up by hash, so a lookup takes the same time however much
// of a key an attacker guessed.
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

const lifecycle = {
  Info(_call, done) {
    done(null, { kind: 'auth', name: 'apikey', version: '0.1.0', protocol_version: PROTOCOL_VERSION });
  },
  ConfigSchema(_call, done) {
    done(null, {
      attributes: [{
        name: 'keys_file', type: 'string', required: true,
        description: 'File of lines `<key> <user-id> [room,room...]`; blank lines and # comments are ignored. Read at start-up.',
      }],
    });
  },
  Configure(call, done) {
    try {
      const cfg = JSON.parse(call.request.config_json.toString() || '{}');
      if (typeof cfg?.keys_file !== 'string' || cfg.keys_file === '') throw new Error('keys_file is required');
      // Relative to the config file's folder (config_dir), as the operator reads it.
      const dir = call.request.config_dir;
      keys = readKeys(dir && !isAbsolute(cfg.keys_file) ? join(dir, cfg.keys_file) : cfg.keys_file);
      done(null, {});
    } catch (err) {
      done({ code: grpc.status.UNKNOWN, details: `auth "apikey": ${err.message}` });
    }
  },
};

const auth = {
  Authenticate(call, done) {
    if (keys === null) return done({ code: grpc.status.FAILED_PRECONDITION, details: 'not configured' });
    let key = '';
    try {
      const v = JSON.parse(call.request.auth_json.toString()).key;
      if (typeof v === 'string') key = v;
    } catch { /* anything but {"key": "<string>"} is no key */ }
    if (key === '') return done(null, { allow: false, message: 'authentication required: no key' });
    const user = keys.get(sha256(key));
    if (!user) return done(null, { allow: false, message: 'invalid key' });
    // The key is a credential: the socket does not keep it.
    done(null, { allow: true, user_id: user.id, rooms: user.rooms, redact_auth: ['key'] });
  },
};

// ---- go-plugin's side of things -------------------------------------------

if (process.env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) {
  process.stderr.write('This is a socketfleet plugin: the socket server launches it (auth "apikey" { command = ... }).\n' +
    'It is not meant to be run by hand.\n');
  process.exit(1);
}

// Protocol buffers: the sdk's contract, read where it lives, and the two
// go-plugin services declared in ./proto. keepCase keeps the .proto field
// names (auth_json, user_id); bytes arrive as Buffers.
const loadOpts = { keepCase: true, longs: String, enums: String, defaults: true };
const sdkProto = grpc.loadPackageDefinition(protoLoader.loadSync(
  ['lifecycle.proto', 'auth.proto'], { ...loadOpts, includeDirs: [join(here, '../../sdk/proto')] }));
const pluginProto = grpc.loadPackageDefinition(protoLoader.loadSync(
  ['health.proto', 'controller.proto'], { ...loadOpts, includeDirs: [join(here, 'proto')] }));
const v1 = sdkProto.socketfleet.plugin.v1;

const server = new grpc.Server();
server.addService(v1.Lifecycle.service, lifecycle);
server.addService(v1.Auth.service, auth);
server.addService(pluginProto.grpc.health.v1.Health.service, {
  Check(_call, done) { done(null, { status: 'SERVING' }); },
});
server.addService(pluginProto.plugin.GRPCController.service, {
  // The host is done: answer, then exit (it kills us after a grace period
  // anyway).
  Shutdown(_call, done) {
    done(null, {});
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  },
});

// The host's parent-death signal (Linux) covers a host killed by SIGKILL;
// this poll covers other systems and wrappers: re-parented means orphaned.
// (stdin says nothing: go-plugin hands the plugin the host's own stdin,
// often /dev/null, so its end is no sign that the host is gone.)
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(PARENT_GONE_EXIT_CODE);
}, 500);
// Ctrl-C in a terminal reaches the whole process group; the host shuts its
// plugins down in order, so ignore it (as go-plugin's Go servers do).
process.on('SIGINT', () => {});

// AutoMTLS: the host sends its certificate in PLUGIN_CLIENT_CERT and trusts
// only the certificate we print in the handshake. Without it, plain TCP.
const clientCert = process.env.PLUGIN_CLIENT_CERT;
let creds = grpc.ServerCredentials.createInsecure();
let certField = '';
if (clientCert) {
  const { keyPem, certPem, certDer } = selfSignedCert();
  creds = grpc.ServerCredentials.createSsl(Buffer.from(clientCert),
    [{ private_key: Buffer.from(keyPem), cert_chain: Buffer.from(certPem) }], true);
  // go-plugin decodes this field with unpadded standard base64.
  certField = '|' + certDer.toString('base64').replace(/=+$/, '');
}

server.bindAsync('127.0.0.1:0', creds, (err, port) => {
  if (err) {
    process.stderr.write(`auth "apikey": listen: ${err.message}\n`);
    process.exit(1);
  }
  // The handshake: the first line on stdout.
  // CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK|ADDRESS|PROTOCOL|SERVER-CERT
  process.stdout.write(`${CORE_PROTOCOL_VERSION}|${PROTOCOL_VERSION}|tcp|127.0.0.1:${port}|grpc${certField}\n`);
});

// selfSignedCert makes the server's key and certificate. The host verifies
// it as both the root and the leaf (it puts it in its RootCAs and dials
// "localhost"), so, like go-plugin's own: a CA allowed to sign, for server
// and client auth, naming localhost.
function selfSignedCert() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 }); // native, fast
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x3f) | 0x40; // positive, minimal DER: Go's parser rejects anything else
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 30_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 3600_000);
  const name = [{ name: 'commonName', value: 'localhost' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ]);
  cert.sign(key, forge.md.sha256.create());
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    certPem: forge.pki.certificateToPem(cert),
    certDer: Buffer.from(der, 'binary'),
  };
}
