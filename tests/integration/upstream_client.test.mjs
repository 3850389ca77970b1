// The gateway as the client of its HTTP upstreams, where the official conformance suite's client
// scenarios judge it (tests/interop/conformance-client.test.mjs runs the suite itself):
//  - a POST's SSE stream that ends (or whose connection is lost) before the answer, after an event
//    with an id, is resumed with a GET carrying Last-Event-ID once the server's `retry` has passed (2025-11-25 "Resumability
//    and Redelivery"), and a server that never answers ends the call after a bounded number of
//    resumptions;
//  - a modern server that refuses server/discover with -32022 while listing 2026-07-28 among its
//    supported versions is asked once more with that version (SEP-2575), not given up on; one
//    that refuses again is refused with the reason.
// The upstreams are small real HTTP servers written here, each doing the one thing under test.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { baseConfig, openSession, readyz, startGateway, until } from './lib.mjs';

const V = '2026-07-28';

/** A real HTTP server on a loopback port; handler(req, res, body) with the body parsed. */
function serve(handler) {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        let body;
        try {
          body = raw ? JSON.parse(raw) : undefined;
        } catch {
          body = undefined;
        }
        handler(req, res, body);
      });
    });
    srv.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${srv.address().port}/mcp`,
        close: () => new Promise((r) => (srv.closeAllConnections(), srv.close(() => r()))),
      }),
    );
  });
}

const json = (res, msg, status = 200, headers = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(msg));
};

/**
 * A legacy (2025-11-25) server whose tool `slow` answers on an SSE stream that it closes after a
 * priming event (`id`, `retry`), before the answer. A GET with Last-Event-ID continues that
 * stream with the answer, unless `neverAnswer`. GETs without Last-Event-ID get 405 (no standing
 * stream). Records the POST stream's close time and each resuming GET.
 */
async function resumableLegacy({ retry = 300, neverAnswer = false, cut = false } = {}) {
  const seen = { closedAt: 0, gets: [] };
  let pending = null;
  let n = 0;
  const sid = 'resume-session';
  const up = await serve((req, res, m) => {
    if (req.method === 'GET') {
      const last = req.headers['last-event-id'];
      if (!last) return void res.writeHead(405).end();
      seen.gets.push({ at: performance.now(), last, session: req.headers['mcp-session-id'] });
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Mcp-Session-Id': sid });
      if (neverAnswer || pending === null) return void res.end(`id: e${++n}\nretry: ${retry}\ndata: \n\n`);
      const answer = { jsonrpc: '2.0', id: pending, result: { content: [{ type: 'text', text: `resumed after ${last}` }] } };
      pending = null;
      return void res.end(`id: e${++n}\ndata: ${JSON.stringify(answer)}\n\n`);
    }
    if (req.method !== 'POST') return void res.writeHead(405).end();
    if (m?.method === 'initialize')
      return json(res, { jsonrpc: '2.0', id: m.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'resumable', version: '1' } } }, 200, { 'Mcp-Session-Id': sid });
    if (m?.id === undefined) return void res.writeHead(202).end();
    if (m.method === 'tools/list') return json(res, { jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'slow', inputSchema: { type: 'object' } }] } });
    if (m.method === 'tools/call') {
      pending = m.id;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Mcp-Session-Id': sid });
      res.write(`id: e${++n}\nretry: ${retry}\ndata: \n\n`);
      setTimeout(() => {
        seen.closedAt = performance.now();
        if (cut) res.socket.destroy(); // the connection lost mid-answer (no chunked terminator)
        else res.end();
      }, 30);
      return;
    }
    json(res, { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } });
  });
  return { ...up, seen };
}

test('a POST stream closed before its answer is resumed with GET + Last-Event-ID after the server’s retry', async (t) => {
  const up = await resumableLegacy({ retry: 300 });
  t.after(() => up.close());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'r', transport: 'http', url: up.url, protocol: '2025-11-25' }] }), { t });
  const s = await openSession(gw.url);
  await until(async () => (await s.rpc('tools/list')).json?.result?.tools?.length === 1, { what: 'the tool is listed' });
  const r = await s.callTool('slow', {}, { timeout: 10000 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.result?.content?.[0]?.text, 'resumed after e1', r.text);
  assert.equal(up.seen.gets.length, 1, JSON.stringify(up.seen.gets));
  assert.equal(up.seen.gets[0].last, 'e1');
  assert.equal(up.seen.gets[0].session, 'resume-session', 'the resuming GET belongs to the session');
  const waited = up.seen.gets[0].at - up.seen.closedAt;
  assert.ok(waited >= 280, `the GET came ${waited.toFixed(0)} ms after the close; the server asked for retry: 300`);
});

test('a POST stream whose connection is lost before its answer is resumed the same way', async (t) => {
  const up = await resumableLegacy({ retry: 100, cut: true });
  t.after(() => up.close());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'r', transport: 'http', url: up.url, protocol: '2025-11-25' }] }), { t });
  const s = await openSession(gw.url);
  await until(async () => (await s.rpc('tools/list')).json?.result?.tools?.length === 1, { what: 'the tool is listed' });
  const r = await s.callTool('slow', {}, { timeout: 10000 });
  assert.equal(r.json?.result?.content?.[0]?.text, 'resumed after e1', r.text);
  assert.equal(up.seen.gets.length, 1, JSON.stringify(up.seen.gets));
});

test('a server that never answers on the resumed stream ends the call after a bounded number of GETs', async (t) => {
  const up = await resumableLegacy({ retry: 20, neverAnswer: true });
  t.after(() => up.close());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'r', transport: 'http', url: up.url, protocol: '2025-11-25' }] }), { t });
  const s = await openSession(gw.url);
  await until(async () => (await s.rpc('tools/list')).json?.result?.tools?.length === 1, { what: 'the tool is listed' });
  const r = await s.callTool('slow', {}, { timeout: 10000 });
  assert.equal(r.json?.error?.code, -32001, r.text);
  assert.match(r.json.error.message, /ended the exchange without answering/, r.text);
  assert.equal(up.seen.gets.length, 8, 'eight resuming GETs, then the call fails');
  assert.deepEqual(
    up.seen.gets.map((g) => g.last),
    ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8'],
    'each GET resumes from the last id the previous stream named',
  );
  assert.match(gw.tail(), /ended 9 times without its answer; giving up/);
});

/** A modern server that answers its first `refusals` server/discover probes with -32022 (listing
    2026-07-28 as supported), then normally. */
async function refusingModern(refusals) {
  const seen = { discovers: [] };
  const up = await serve((req, res, m) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const meta = m?.params?._meta ?? {};
    if (m?.method === 'server/discover') {
      seen.discovers.push({ header: req.headers['mcp-protocol-version'], meta: meta['io.modelcontextprotocol/protocolVersion'] });
      if (seen.discovers.length <= refusals)
        return json(res, { jsonrpc: '2.0', id: m.id, error: { code: -32022, message: 'Unsupported protocol version', data: { supported: [V], requested: req.headers['mcp-protocol-version'] } } }, 400);
      return json(res, { jsonrpc: '2.0', id: m.id, result: { resultType: 'complete', ttlMs: 0, cacheScope: 'private', supportedVersions: [V], capabilities: { tools: {} }, serverInfo: { name: 'refusing', version: '1' } } });
    }
    if (m?.method === 'tools/list') return json(res, { jsonrpc: '2.0', id: m.id, result: { resultType: 'complete', ttlMs: 0, cacheScope: 'private', tools: [{ name: 'hello', inputSchema: { type: 'object' } }] } });
    json(res, { jsonrpc: '2.0', id: m?.id ?? null, error: { code: -32601, message: `Method not found: ${m?.method}` } }, 404);
  });
  return { ...up, seen };
}

test('a -32022 that lists 2026-07-28 as supported gets the probe asked again with it', async (t) => {
  const up = await refusingModern(1);
  t.after(() => up.close());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'm', transport: 'http', url: up.url }] }), { t });
  const s = await openSession(gw.url);
  await until(async () => (await s.rpc('tools/list')).json?.result?.tools?.some((x) => x.name === 'hello'), { what: 'the modern server’s tool is listed' });
  assert.equal(up.seen.discovers.length, 2, JSON.stringify(up.seen.discovers));
  assert.deepEqual(up.seen.discovers[1], { header: V, meta: V }, 'the retry names 2026-07-28 in the header and in _meta');
  assert.match(gw.tail(), /unsupported version \(-32022\), yet it speaks 2026-07-28: asking again with 2026-07-28/);
  assert.doesNotMatch(gw.tail(), /none of which the gateway speaks/);
});

test('a server that refuses the version it lists twice in a row is refused with the reason', async (t) => {
  const up = await refusingModern(Infinity);
  t.after(() => up.close());
  const gw = await startGateway(baseConfig({ servers: [{ name: 'm', transport: 'http', url: up.url }] }), { t });
  await until(async () => /refused the same version again/.test((await readyz(gw)).text), { what: '/readyz names the refusal' });
  // One probe and one retry per initialisation attempt, never a tight loop.
  const n = up.seen.discovers.length;
  assert.ok(n >= 2 && n % 2 === 0, `${n} probes`);
});
