// Strict HTTP/1.1 framing at the front door (RFC 9112): the smuggling corpus in
// fixtures/smuggling-corpus.mjs is written byte for byte on raw sockets, and no entry may ever
// get a second answer. Ambiguous framing gets a 400 that names its cause, with the connection
// closed after it; a normal keep-alive sequence still works; absolute-form targets are served.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { baseConfig, startGateway, tempDir } from './lib.mjs';
import { corpus } from './fixtures/smuggling-corpus.mjs';

let gw;
let port;
let gwTls; // a TLS listener: the head is read from h2o's decrypted input
let tlsPort;
const DIR = tempDir();
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true }));

before(async () => {
  gw = await startGateway(baseConfig());
  port = Number(new URL(gw.url).port);
  const cert = path.join(DIR, 's.crt');
  const key = path.join(DIR, 's.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15000 });
  gwTls = await startGateway(baseConfig({ listen: [{ address: '127.0.0.1', port: 0, tls: { cert, key } }] }));
  tlsPort = Number(new URL(gwTls.url).port);
});
after(async () => {
  for (const g of [gw, gwTls]) {
    if (!g) continue;
    try {
      await g.stop();
    } finally {
      if (g.alive) await g.kill();
    }
  }
});

/**
 * Writes `raw` on a fresh connection and reads until the gateway closes it or `quiet` ms pass
 * without the connection closing. Resolves {responses, closed, reset}; each response is
 * {status, headers (lower-case names), body}; 1xx interim answers are dropped.
 */
function exchange(raw, { quiet = 1500, overTls = false } = {}) {
  return new Promise((resolve) => {
    const sock = overTls
      ? tls.connect({ port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : net.connect(port, '127.0.0.1');
    const chunks = [];
    let reset = false;
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), closed, reset });
    };
    const timer = setTimeout(() => finish(false), quiet);
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => finish(true));
    sock.on('error', (e) => {
      reset = e.code === 'ECONNRESET';
      finish(true);
    });
    sock.write(Buffer.from(raw, 'latin1'));
  });
}

function parseResponses(buf) {
  const out = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) {
      out.push({ status: -1, headers: {}, body: buf.subarray(at).toString('latin1'), partial: true });
      break;
    }
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    at = end + 4;
    const status = m ? Number(m[1]) : -1;
    if (status >= 100 && status < 200) continue;
    let body;
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = buf.subarray(at, at + n).toString('utf8');
      at += n;
    } else {
      body = buf.subarray(at).toString('utf8');
      at = buf.length;
    }
    out.push({ status, headers, body });
  }
  return out;
}

const describe = (r) =>
  JSON.stringify(r.responses.map((x) => `${x.status} ${x.headers.connection ?? ''} ${x.body.slice(0, 160)}`)) +
  ` closed=${r.closed} reset=${r.reset}`;

for (const e of corpus) {
  test(`${e.family}: ${e.name} → ${e.refuse ? 'refused, connection closed' : 'one answer'}`, async () => {
    const r = await exchange(e.raw);
    assert.ok(!r.responses.some((x) => /smuggled-canary|nothing here/.test(x.body)), `the smuggled request was answered: ${describe(r)}`);
    assert.equal(r.responses.length, 1, `exactly one answer: ${describe(r)}`);
    const [res] = r.responses;
    if (e.refuse) {
      assert.ok(res.status >= 400 && res.status < 500, `a 4xx: ${describe(r)}`);
      assert.equal(res.headers.connection, 'close', `Connection: close: ${describe(r)}`);
      assert.ok(r.closed, `the gateway closed the connection: ${describe(r)}`);
      assert.ok(!r.reset, `closed without a reset: ${describe(r)}`);
    } else {
      assert.equal(res.status, 200, describe(r));
    }
  });
}

/** The JSON-RPC error message of a gateway refusal. */
function refusal(res) {
  assert.match(res.headers['content-type'] ?? '', /application\/json/, JSON.stringify(res));
  return JSON.parse(res.body).error.message;
}

test('each framing refusal names its cause', async () => {
  const cases = [
    [`POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, /both Content-Length and Transfer-Encoding/],
    [`POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n`, /2 Content-Length headers/],
    [`POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, /2 Transfer-Encoding headers/],
    [`GET /healthz HTTP/1.1\r\nHost: evil.example\r\nHost: 127.0.0.1\r\n\r\n`, /2 Host headers/],
    [`GET /healthz HTTP/1.1\r\n\r\n`, /must carry a Host header/],
    [`POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 05\r\n\r\nhello`, /not a plain decimal number/],
    [`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n`, /obs-fold/],
    [`GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n`, /bare LF/],
    [`POST /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, /HTTP\/1\.0/],
    [`GET https://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, /https scheme on an http connection/],
    [`GET http://user@127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, /userinfo/],
  ];
  for (const [raw, cause] of cases) {
    const r = await exchange(raw);
    assert.equal(r.responses.length, 1, `${JSON.stringify(raw)}: ${describe(r)}`);
    assert.equal(r.responses[0].status, 400, `${JSON.stringify(raw)}: ${describe(r)}`);
    assert.match(refusal(r.responses[0]), cause, JSON.stringify(raw));
  }
});

test('bare CR, NUL and whitespace before the colon stay refused', async () => {
  for (const raw of [
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n`,
  ]) {
    const r = await exchange(raw);
    assert.equal(r.responses.length, 1, describe(r));
    assert.equal(r.responses[0].status, 400, describe(r));
    assert.ok(r.closed, describe(r));
  }
});

test('a keep-alive sequence (GET, Content-Length, chunked, pipelined) still works', async () => {
  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  const mcp = 'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n';
  const chunked = `${Buffer.byteLength(init).toString(16)}\r\n${init}\r\n0\r\n\r\n`;
  const raw =
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` +
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n${mcp}Content-Length: ${Buffer.byteLength(init)}\r\n\r\n${init}` +
    `POST /mcp HTTP/1.1\r\nHost: localhost:${port}\r\n${mcp}Transfer-Encoding: chunked\r\n\r\n${chunked}` +
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  const r = await exchange(raw, { quiet: 1500 });
  assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 200, 200], describe(r));
  for (const x of r.responses) assert.equal(x.headers.connection, 'keep-alive', describe(r));
  assert.match(r.responses[1].body, /"protocolVersion"/);
  assert.ok(!r.closed, 'the connection stays open for more');
});

test('absolute-form targets that name this server are served (RFC 9112 §3.2.2)', async () => {
  let r = await exchange(`GET http://127.0.0.1:${port}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  assert.deepEqual(r.responses.map((x) => x.status), [200], describe(r));
  assert.match(r.responses[0].body, /"ok"/);
  const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  r = await exchange(
    `POST HTTP://localhost:${port}/mcp HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${init.length}\r\n\r\n${init}`,
  );
  assert.deepEqual(r.responses.map((x) => x.status), [200], describe(r));
  assert.match(r.responses[0].body, /"protocolVersion"/);
  // The target's authority replaces Host: a foreign one is judged by the Host check, even when
  // the Host header itself is allowed.
  r = await exchange(
    `POST http://evil.example/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${init.length}\r\n\r\n${init}`,
  );
  assert.deepEqual(r.responses.map((x) => x.status), [403], describe(r));
  assert.match(refusal(r.responses[0]), /evil\.example/);
});

test('over TLS: CL.TE refused and closed, keep-alive and absolute-form https served', async () => {
  const cl = 5 + 'GET /smuggled-canary HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.length;
  let r = await exchange(
    `POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${cl}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled-canary HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    { overTls: true },
  );
  assert.deepEqual(r.responses.map((x) => x.status), [400], describe(r));
  assert.match(refusal(r.responses[0]), /both Content-Length and Transfer-Encoding/);
  assert.ok(r.closed, describe(r));
  r = await exchange(
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET https://127.0.0.1:${tlsPort}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET http://127.0.0.1:${tlsPort}/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    { overTls: true },
  );
  assert.deepEqual(r.responses.map((x) => x.status), [200, 200, 400], describe(r));
  assert.match(refusal(r.responses[2]), /http scheme on an https connection/);
});

test('the lingering close after a 413 is bounded: a client that never stops sending is cut off', async () => {
  // h2o refuses a declared body over its hard limit at once; the gateway then half-closes and
  // drains. A client that keeps its side open and keeps sending is closed after the bound (2 s).
  const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => sock.once('connect', r));
  const t0 = Date.now();
  let got = '';
  let ended = -1;
  sock.on('data', (c) => (got += c.toString('latin1')));
  sock.on('end', () => (ended = Date.now() - t0));
  const cut = new Promise((resolve) => {
    sock.on('error', () => resolve(Date.now() - t0));
    sock.on('close', () => resolve(Date.now() - t0));
  });
  const chunk = Buffer.alloc(16 * 1024, 0x61);
  // The head and the start of the body in one write: unread input when h2o closes.
  sock.write(Buffer.concat([Buffer.from('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n'), chunk]));
  const pump = setInterval(() => {
    if (!sock.destroyed) sock.write(chunk, () => {});
  }, 20);
  const ms = await Promise.race([cut, new Promise((r) => setTimeout(() => r(-1), 10000))]);
  clearInterval(pump);
  sock.destroy();
  assert.match(got, /^HTTP\/1\.1 413 /, `the 413 was read: ${JSON.stringify(got.slice(0, 200))}`);
  assert.match(got, /Connection: close/i);
  assert.ok(ended >= 0 && ended < 1000, `the gateway half-closed right after the 413 (FIN after ${ended} ms)`);
  assert.ok(ms > 1000, `the gateway kept reading what the client sent for a while (cut after ${ms} ms)`);
  assert.ok(ms < 6000, `the drain ended within its bound (cut after ${ms} ms)`);
  const r = await exchange(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  assert.deepEqual(r.responses.map((x) => x.status), [200], describe(r));
});

// Differential: Node's llhttp (strict mode, as a Node reverse proxy in front of the gateway would
// parse) reads every corpus entry too. Whatever the gateway accepts, llhttp must read as the same
// single request; what llhttp makes of each refused entry is reported, not judged (the gateway
// refuses and closes whatever a proxy in front decided).
test('differential: llhttp reads each accepted corpus entry as the same single request', async (t) => {
  const seen = [];
  const srv = http.createServer({ keepAliveTimeout: 500 }, (req, res) => {
    let n = 0;
    req.on('data', (c) => (n += c.length));
    req.on('end', () => {
      seen.push({ url: req.url, body: n });
      res.end('ok');
    });
  });
  let clientErrors = 0;
  srv.on('clientError', (err, sock) => {
    clientErrors++;
    sock.destroy();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const llPort = srv.address().port;
  const readAll = (raw) =>
    new Promise((resolve) => {
      seen.length = 0;
      clientErrors = 0;
      const sock = net.connect(llPort, '127.0.0.1');
      const timer = setTimeout(() => sock.destroy(), 700);
      sock.on('data', () => {});
      sock.on('close', () => {
        clearTimeout(timer);
        resolve({ requests: [...seen], refused: clientErrors > 0 });
      });
      sock.on('error', () => {});
      sock.write(Buffer.from(raw, 'latin1'));
    });
  const report = [];
  try {
    for (const e of corpus) {
      const ll = await readAll(e.raw);
      if (!e.refuse) {
        assert.equal(ll.requests.length, 1, `${e.name}: llhttp read ${JSON.stringify(ll)}`);
        assert.ok(!ll.refused, `${e.name}: llhttp refused it`);
      } else {
        report.push(`${e.family} ${e.name}: llhttp ${ll.refused ? 'refuses' : `reads ${ll.requests.length} request(s)`}`);
      }
    }
  } finally {
    srv.close();
    srv.closeAllConnections?.();
  }
  for (const line of report) t.diagnostic(line);
});
