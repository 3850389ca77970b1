// TLS listeners and the HTTP/2 switch: a throwaway self-signed certificate made with the
// openssl CLI, MCP over HTTPS (the certificate is trusted as the CA and its fingerprint
// checked), start-up refusals for a missing certificate or a key that does not match, ALPN
// with http2 off and on, HTTP/2 over TLS, and cleartext h2c (prior knowledge and Upgrade).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import {
  JSON_HEADERS,
  PROTOCOL,
  assertServing,
  baseConfig,
  miniServer,
  parseBody,
  runGatehouse,
  startGateway,
  tempDir,
  until,
  withTimeout,
  writeConfig,
} from './lib.mjs';

// ---------------------------------------------------------------------------
// Certificates

/** A self-signed EC certificate for 127.0.0.1 and localhost, written into dir. */
function makeCert(dir, name = 'server', { cn = 'localhost', san = 'IP:127.0.0.1,DNS:localhost' } = {}) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=${san}`],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15000 },
  );
  const pem = fs.readFileSync(cert);
  return { cert, key, pem, fingerprint256: new crypto.X509Certificate(pem).fingerprint256 };
}

const DIR = tempDir();
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true })); // throwaway keys go with the run
const CERT = makeCert(DIR, 'server');
const OTHER = makeCert(DIR, 'other', { cn: 'other', san: 'DNS:other.invalid' });

function tlsConfig(extra = {}, { cert = CERT.cert, key = CERT.key } = {}) {
  return baseConfig({ listen: [{ address: '127.0.0.1', port: 0, tls: { cert, key } }], servers: [miniServer('a')], ...extra });
}

// ---------------------------------------------------------------------------
// Clients


function mcpHeaders(session, version = PROTOCOL) {
  const h = { ...JSON_HEADERS };
  if (session) h['Mcp-Session-Id'] = session;
  if (version) h['MCP-Protocol-Version'] = version;
  return h;
}

/**
 * One HTTPS/1.1 request that trusts only our certificate (full verification: chain and
 * subjectAltName) and reports the peer certificate's SHA-256 fingerprint and the ALPN result.
 */
function httpsRequest(url, { method = 'GET', headers = {}, body, ca = CERT.pem, servername, timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
    const req = https.request(
      { host: u.hostname, port: u.port, path: u.pathname, method, headers: h, ca, servername, agent: false, rejectUnauthorized: true },
      (res) => {
        const sock = res.socket;
        const peer = sock.getPeerCertificate();
        const info = { fingerprint256: peer?.fingerprint256, alpn: sock.alpnProtocol, authorized: sock.authorized, protocol: sock.getProtocol() };
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, headers: res.headers, text, json: parseBody(res.headers['content-type'], text), tls: info });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`HTTPS ${method} ${url} timed out after ${timeout} ms`)), timeout);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** One request on an open node:http2 session. */
function h2Request(client, path, { method = 'POST', headers = {}, body, timeout = 15000 } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = client.request({ ':method': method, ':path': path, ...headers });
      let status;
      let rh = {};
      const chunks = [];
      req.on('response', (h) => {
        status = h[':status'];
        rh = h;
      });
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status, headers: rh, text, json: parseBody(rh['content-type'], text) });
      });
      req.on('error', reject);
      if (body !== undefined) req.end(body);
      else req.end();
    }),
    timeout,
    `HTTP/2 ${method} ${path}`,
  );
}

function h2Connect(authority, opts = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const c = http2.connect(authority, opts);
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    }),
    5000,
    `HTTP/2 connect to ${authority}`,
  );
}

/** ALPN as negotiated by a TLS client offering h2 and http/1.1 (our certificate trusted). */
function alpnOf(port) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: CERT.pem, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        const out = { alpn: s.alpnProtocol, authorized: s.authorized, fingerprint256: s.getPeerCertificate().fingerprint256 };
        s.end();
        resolve(out);
      });
      s.once('error', reject);
    }),
    5000,
    'TLS handshake',
  );
}

const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'gatehouse-tls-test', version: '1' } } };

/** initialize, notifications/initialized, tools/list, tools/call through send(body, session). */
async function mcpRoundTrip(send) {
  const init = await send(JSON.stringify(INIT), null, null);
  assert.equal(init.status, 200, `initialize: ${init.status} ${init.text}`);
  assert.equal(init.json?.result?.protocolVersion, PROTOCOL, init.text);
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid, 'no Mcp-Session-Id');
  const note = await send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), sid);
  assert.equal(note.status, 202, `notifications/initialized: ${note.status} ${note.text}`);
  const list = await send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), sid);
  assert.equal(list.status, 200, list.text);
  const names = list.json?.result?.tools?.map((x) => x.name).sort();
  assert.deepEqual(names, ['die', 'hang', 'sleep', 'tool'], list.text);
  const call = await send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'tool', arguments: { text: 'over tls' } } }), sid);
  assert.equal(call.status, 200, call.text);
  assert.deepEqual(call.json, { jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'a:over tls' }] } }, call.text);
  return { init, list, call, sid };
}

// ---------------------------------------------------------------------------
// TLS listener

test('TLS listener: the listening line and banner say https://, and MCP works over HTTPS with our certificate', async (t) => {
  const gw = await startGateway(tlsConfig(), { t });
  try {
    assert.match(gw.url, /^https:\/\/127\.0\.0\.1:\d+\/mcp$/, `listening url for a TLS listener: ${gw.url}`);
    // the banner on stdout is printed just after the log line
    await until(() => /Point an MCP client at/.test(gw.stdout) && /\/mcp\/a /.test(gw.stdout), { what: 'banner on stdout' });
    assert.match(gw.stdout, /^  https:\/\/127\.0\.0\.1:\d+\/mcp$/m, `banner: ${gw.stdout}`);

    const send = (body, session, version = PROTOCOL) => httpsRequest(gw.url, { method: 'POST', headers: mcpHeaders(session, version), body });
    const { init, call } = await mcpRoundTrip(send);
    for (const r of [init, call]) {
      assert.equal(r.tls.authorized, true);
      assert.equal(r.tls.fingerprint256, CERT.fingerprint256, 'the gateway presented another certificate');
      assert.ok(['TLSv1.2', 'TLSv1.3'].includes(r.tls.protocol), r.tls.protocol);
    }
    // by name too (DNS:localhost in subjectAltName, SNI sent)
    const h = await httpsRequest(`https://127.0.0.1:${gw.port}/healthz`, { servername: 'localhost' });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.tls.fingerprint256, CERT.fingerprint256);
    // a client that does not trust the certificate refuses it
    await assert.rejects(httpsRequest(`https://127.0.0.1:${gw.port}/healthz`, { ca: OTHER.pem }), (e) => /self[- ]signed|unable to verify|certificate/i.test(e.code + ' ' + e.message));
  } finally {
    await gw.stop();
  }
});

test('TLS listener: cleartext HTTP and a broken handshake on the TLS port do not hurt the gateway', async (t) => {
  const gw = await startGateway(tlsConfig(), { t });
  try {
    for (const payload of ['GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', '\x16\x03\x01\x00\x05garbage-not-a-hello']) {
      await withTimeout(
        new Promise((resolve) => {
          const s = net.connect(gw.port, '127.0.0.1', () => s.write(payload));
          let got = '';
          s.on('data', (d) => (got += d.toString('latin1')));
          s.on('error', () => resolve());
          s.on('close', () => {
            assert.ok(!/HTTP\/1\.1 200/.test(got), `plaintext answered on the TLS port: ${JSON.stringify(got)}`);
            resolve();
          });
          setTimeout(() => s.destroy(), 1500);
        }),
        5000,
        'raw connection on the TLS port',
      );
    }
    const h = await httpsRequest(`https://127.0.0.1:${gw.port}/healthz`);
    assert.equal(h.status, 200, h.text);
    assert.ok(gw.alive, gw.tail());
  } finally {
    await gw.stop();
  }
});

async function refusesToStart(config, file, what) {
  const r = await runGatehouse(['run', '-c', writeConfig(config)], { timeout: 20000 });
  assert.equal(r.signal, null, `killed by ${r.signal}\n${r.stderr}`);
  assert.equal(r.code, 1, `exit code ${r.code} with ${what}\n${r.stderr}`);
  assert.ok(!/"event":"listening"/.test(r.stderr), `it listened anyway with ${what}`);
  assert.ok(r.stderr.includes(file), `no message naming ${file} (${what}):\n${r.stderr}`);
  return r.stderr;
}

test('a missing certificate file: exit 1 and a message naming the file', async () => {
  const missing = path.join(DIR, 'no-such-cert.pem');
  const err = await refusesToStart(tlsConfig({}, { cert: missing }), missing, 'a missing certificate');
  assert.match(err, /certificate/i);
});

test('a missing key file: exit 1 and a message naming the file', async () => {
  const missing = path.join(DIR, 'no-such-key.pem');
  const err = await refusesToStart(tlsConfig({}, { key: missing }), missing, 'a missing key');
  assert.match(err, /key/i);
});

test('a key that does not match the certificate: exit 1 and a message naming the key file', async () => {
  const err = await refusesToStart(tlsConfig({}, { key: OTHER.key }), OTHER.key, 'a mismatched key');
  assert.match(err, /match/i);
});

test('a certificate file that is not PEM: exit 1 and a message naming the file', async () => {
  const junk = path.join(DIR, 'junk.pem');
  fs.writeFileSync(junk, 'not a certificate\n');
  await refusesToStart(tlsConfig({}, { cert: junk }), junk, 'a non-PEM certificate');
});

// ---------------------------------------------------------------------------
// HTTP/2

test('http2: false: ALPN over TLS does not negotiate h2, HTTP/1.1 still works', async (t) => {
  const gw = await startGateway(tlsConfig({ http2: false }), { t });
  try {
    const a = await alpnOf(gw.port);
    assert.notEqual(a.alpn, 'h2', 'h2 negotiated although http2 is off');
    assert.equal(a.authorized, true);
    assert.equal(a.fingerprint256, CERT.fingerprint256);
    const h = await httpsRequest(`https://127.0.0.1:${gw.port}/healthz`);
    assert.equal(h.status, 200);
    // node:http2 cannot get a session: the server does not speak h2
    await assert.rejects(
      (async () => {
        const c = await h2Connect(`https://127.0.0.1:${gw.port}`, { ca: CERT.pem });
        try {
          await h2Request(c, '/healthz', { method: 'GET', timeout: 3000 });
        } finally {
          c.destroy();
        }
      })(),
    );
  } finally {
    await gw.stop();
  }
});

test('http2 on (the default): ALPN negotiates h2 and MCP works over HTTP/2 with TLS', async (t) => {
  const gw = await startGateway(tlsConfig(), { t });
  let client;
  try {
    const a = await alpnOf(gw.port);
    assert.equal(a.alpn, 'h2');
    assert.equal(a.fingerprint256, CERT.fingerprint256);
    client = await h2Connect(`https://127.0.0.1:${gw.port}`, { ca: CERT.pem });
    assert.equal(client.alpnProtocol, 'h2');
    assert.equal(client.socket.getPeerCertificate().fingerprint256, CERT.fingerprint256);
    const send = (body, session, version = PROTOCOL) => h2Request(client, '/mcp', { headers: mcpHeaders(session, version), body });
    await mcpRoundTrip(send);
    // a client that offers only http/1.1 still gets HTTP/1.1
    const h = await httpsRequest(`https://127.0.0.1:${gw.port}/healthz`);
    assert.equal(h.status, 200);
    assert.notEqual(h.tls.alpn, 'h2');
  } finally {
    client?.close();
    await gw.stop();
  }
});

test('http2 on (the default) on a cleartext listener: prior-knowledge h2c carries MCP', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('a')] }), { t });
  let client;
  try {
    client = await h2Connect(`http://127.0.0.1:${gw.port}`);
    const send = (body, session, version = PROTOCOL) => h2Request(client, '/mcp', { headers: mcpHeaders(session, version), body });
    await mcpRoundTrip(send);
  } finally {
    client?.destroy();
    await gw.stop();
  }
});

/** Raw bytes back for payload sent on a fresh connection (bounded). */
function rawExchange(port, payload, ms = 1000) {
  return withTimeout(
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(payload));
      let got = Buffer.alloc(0);
      s.on('data', (d) => (got = Buffer.concat([got, d])));
      s.on('error', () => {});
      s.on('close', () => resolve(got.toString('latin1')));
      setTimeout(() => s.destroy(), ms);
    }),
    ms + 4000,
    'raw exchange',
  );
}

const UPGRADE = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n';

// RFC 9113 §3.1 deprecates the h2c upgrade; the request is answered over HTTP/1.1 instead.
test('http2 on: Upgrade: h2c is not taken up, the request is answered over HTTP/1.1', async (t) => {
  const gw = await startGateway(baseConfig({}), { t });
  try {
    const got = await rawExchange(gw.port, UPGRADE);
    assert.match(got, /^HTTP\/1\.1 200 /, JSON.stringify(got.slice(0, 200)));
    assert.doesNotMatch(got, /101 Switching/);
  } finally {
    await gw.stop();
  }
});

test('http2: false on a cleartext listener: neither prior-knowledge h2c nor Upgrade: h2c gets HTTP/2', async (t) => {
  const gw = await startGateway(baseConfig({ http2: false, servers: [miniServer('a')] }), { t });
  try {
    const pri = await rawExchange(gw.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    // an HTTP/2 server answers the preface with a SETTINGS frame (type 0x04 at byte 3)
    assert.ok(!(pri.length >= 9 && pri.charCodeAt(3) === 4), `an HTTP/2 SETTINGS frame came back: ${JSON.stringify(pri.slice(0, 40))}`);
    assert.match(pri, /^(HTTP\/1\.1 4\d\d |$)/, JSON.stringify(pri.slice(0, 200)));
    const up = await rawExchange(gw.port, UPGRADE);
    assert.match(up, /^HTTP\/1\.1 200 /, JSON.stringify(up.slice(0, 200)));
    assert.doesNotMatch(up, /101 Switching/);
    await assertServing(gw, { tool: { name: 'tool', args: { text: 'h1' }, text: 'a:h1' } });
  } finally {
    await gw.stop();
  }
});
