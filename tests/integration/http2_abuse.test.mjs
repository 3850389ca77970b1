// HTTP/2 abuse against the front door (cleartext prior knowledge; TLS takes the same code after
// the handshake): rapid reset (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316 family),
// PING and SETTINGS floods from a client that never reads, too many concurrent streams, header
// lists and bodies over the limits. The frames are crafted with Python's h2 and hyperframe
// (Debian's python3-h2) in fixtures/h2abuse.py; the limits with node:http2. After each attack
// the gateway must still serve HTTP/1.1 and HTTP/2.
//
// Before HTTP/2 moved to nghttp2, h2o 2.2.5 took 20,000 rapidly reset streams on one connection
// without a GOAWAY; that is the first test here.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { BIN, assertServing, baseConfig, miniServer, startGateway, withTimeout } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ABUSE = path.join(HERE, 'fixtures', 'h2abuse.py');
// Debian's python3 has python3-h2; a python3 earlier on PATH (pyenv, a venv) may not.
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SANITIZED = fs.readFileSync(BIN).includes('AddressSanitizer');

function abuse(scenario, port, n) {
  return withTimeout(
    new Promise((resolve, reject) => {
      execFile(PYTHON, [ABUSE, scenario, String(port), String(n)], { timeout: 30000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`h2abuse ${scenario}: ${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    }),
    40000,
    `h2abuse ${scenario}`,
  );
}

/** One HTTP/2 request on a fresh prior-knowledge connection. */
function h2get(port, { method = 'GET', path: p = '/healthz', headers = {}, body } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const c = http2.connect(`http://127.0.0.1:${port}`, { maxSendHeaderBlockLength: 1 << 20 }); // node's own cap is 64 KiB
      c.on('error', reject);
      const req = c.request({ ':method': method, ':path': p, ...headers });
      let status;
      const chunks = [];
      req.on('response', (h) => (status = h[':status']));
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        c.close();
        resolve({ status, text: Buffer.concat(chunks).toString('utf8') });
      });
      req.on('error', (e) => {
        c.destroy();
        if (status) resolve({ status, text: Buffer.concat(chunks).toString('utf8'), reset: e.code });
        else reject(e);
      });
      if (body !== undefined) req.end(body);
      else req.end();
    }),
    15000,
    `HTTP/2 ${method} ${p}`,
  );
}

async function stillServing(gw) {
  await assertServing(gw, { tool: { name: 'tool', args: { text: 'x' }, text: 'a:x' } });
  const h = await h2get(gw.port);
  assert.equal(h.status, 200, `HTTP/2 /healthz after the attack: ${h.status}`);
}

const gwConfig = (extra = {}) => baseConfig({ servers: [miniServer('a')], ...extra });

test('rapid reset: a connection that opens and resets streams without end gets GOAWAY and is closed', async (t) => {
  const gw = await startGateway(gwConfig(), { t });
  const r = await abuse('rapid-reset', gw.port, 5000);
  assert.ok(r.goaway.length > 0, `no GOAWAY: ${JSON.stringify(r)}`);
  assert.ok(r.closed, `the connection stayed open: ${JSON.stringify(r)}`);
  assert.ok(r.sent < 5000, `every one of 5000 reset streams was taken: ${JSON.stringify(r)}`);
  await stillServing(gw);
  await gw.stop();
});

test('CONTINUATION flood: a header block that never ends closes the connection', async (t) => {
  const gw = await startGateway(gwConfig(), { t });
  const r = await abuse('continuation', gw.port, 20000);
  assert.ok(r.closed, `the connection stayed open: ${JSON.stringify(r)}`);
  assert.ok(r.sent < 20000, `all 20000 CONTINUATION frames were taken: ${JSON.stringify(r)}`);
  await stillServing(gw);
  await gw.stop();
});

for (const kind of ['ping', 'settings']) {
  test(`${kind.toUpperCase()} flood from a client that never reads: the connection is closed`, async (t) => {
    const gw = await startGateway(gwConfig(), { t });
    const r = await abuse(kind, gw.port, 100000);
    assert.ok(r.closed, `the connection stayed open: ${JSON.stringify(r)}`);
    assert.ok(r.sent < 100000, `all 100000 frames were taken: ${JSON.stringify(r)}`);
    await stillServing(gw);
    await gw.stop();
  });
}

test('more concurrent streams than SETTINGS_MAX_CONCURRENT_STREAMS (100): the excess is refused', async (t) => {
  const gw = await startGateway(gwConfig(), { t });
  const r = await abuse('streams', gw.port, 150);
  assert.equal(r.sent, 150);
  assert.equal(r.resets, 50, `streams reset: ${JSON.stringify(r)}`);
  assert.deepEqual(r.reset_codes, [7], `REFUSED_STREAM expected: ${JSON.stringify(r)}`);
  await stillServing(gw);
  await gw.stop();
});

test('concurrent uploads on one connection past twice what one request may send: the excess streams are refused', async (t) => {
  const gw = await startGateway(gwConfig(), { t }); // max_body 4 MiB: one connection holds at most 16 MiB of bodies
  const r = await abuse('uploads', gw.port, 12); // 12 streams of 3 MiB each, none ends
  assert.equal(r.unfinished, 0, JSON.stringify(r));
  assert.ok(r.resets >= 6 && r.resets <= 10, `streams refused: ${JSON.stringify(r)}`);
  assert.deepEqual(r.reset_codes, [7], `REFUSED_STREAM expected: ${JSON.stringify(r)}`);
  assert.match(gw.tail(200), /"event":"http2_refused"/);
  await stillServing(gw);
  await gw.stop();
});

// The answers queued for a connection that is closed are released with it. An answer the server
// sends after the close goes to its request's stream, which keeps it for a resumption (GET with
// Last-Event-ID), like any undelivered response: to test the first, write_timeout is long enough
// for the server to have answered all 32 calls before the close, even on a loaded machine (with
// 2 s, a slow run measured the second: 33 to 44 MiB kept).
test('a client that stops reading: the connection is closed after limits.write_timeout, the answers are not held', async (t) => {
  const gw = await startGateway(
    baseConfig({ servers: [{ ...miniServer('a'), args: [...miniServer('a').args, '--big-tool'] }], limits: { write_timeout: '6s', shutdown_grace: '5s' } }),
    { t },
  );
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))[1]);
  const before = rss();
  // 32 answers of 1 MiB each, the client's flow-control windows wide open, nothing read
  const r = await abuse('slow-reader', gw.port, 32);
  assert.equal(r.sent, 32, JSON.stringify(r));
  assert.ok(r.closed, `the connection was not closed: ${JSON.stringify(r)}`);
  assert.ok(r.bytes_after_stall < 32 << 20, `every answer was written: the client did not stall the server: ${JSON.stringify(r)}`);
  assert.match(gw.tail(2000), /"event":"http2_closed".*read nothing for 6000 ms/);
  // Under AddressSanitizer freed memory stays in its quarantine, so RSS says nothing there.
  if (!SANITIZED) {
    const grew = rss() - before;
    assert.ok(grew < 24 * 1024, `the gateway grew by ${grew} KiB holding a slow reader's answers`);
  }
  await stillServing(gw);
  await gw.stop();
});

test('a header list over 64 KiB gets 431; a body over the limit gets 413; the connection serves on', async (t) => {
  const gw = await startGateway(gwConfig({ limits: { max_body: 2048, shutdown_grace: '5s' } }), { t });
  const big = {};
  for (let i = 0; i < 40; i++) big[`x-big-${i}`] = 'v'.repeat(2000);
  const h = await h2get(gw.port, { headers: big });
  assert.equal(h.status, 431, `status ${h.status}: ${h.text}`);
  const mcp = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
  // over max_body: the gateway's own answer, a JSON-RPC error that names the limit
  const mid = await h2get(gw.port, { method: 'POST', path: '/mcp', headers: mcp, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'p'.repeat(3000) } }) });
  assert.equal(mid.status, 413, `status ${mid.status}: ${mid.text}`);
  assert.match(mid.text, /max_body/);
  // far over (beyond twice the limit): answered without reading the rest, the upload stopped
  const far = await h2get(gw.port, { method: 'POST', path: '/mcp', headers: mcp, body: 'x'.repeat(1 << 20) });
  assert.equal(far.status, 413, `status ${far.status}: ${far.text}`);
  await stillServing(gw);
  await gw.stop();
});

test('http2: false: a client that sends the HTTP/2 preface gets no HTTP/2', async (t) => {
  const gw = await startGateway(gwConfig({ http2: false }), { t });
  await assert.rejects(h2get(gw.port));
  await assertServing(gw);
  await gw.stop();
});
