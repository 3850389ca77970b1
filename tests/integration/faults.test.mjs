// What a chatty, buggy or hostile upstream does to other users: a server that floods a call with
// notifications (over HTTP and stdio, to a fast, a slow and a departed client), a body built to
// blow up the parser, a REST API that answers bytes that are not UTF-8 and a path parameter of
// 1 MB, arguments of the wrong type, calls that wait in the queue past their total timeout,
// server-to-client requests by the ten thousand, and an answer put on another call's exchange.
// The HTTP and stdio upstream is tests/integration/fixtures/hostile-http.mjs (a fixture, because
// no well-behaved server floods on purpose). Figures are printed with `#` so a run shows them.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, HERE, JSON_HEADERS, PROTOCOL, assertRpcError, baseConfig, miniServer, openSession, post, request, sleep, startGateway, withTimeout } from './lib.mjs';

// ASan's allocator keeps freed memory in quarantine: RSS bounds hold only for a plain build.
const SANITIZED = fs.readFileSync(BIN).includes('__asan_init');

async function hostile(t) {
  const child = spawn(process.execPath, [path.join(HERE, 'fixtures', 'hostile-http.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`fixture exited ${code}`)));
  });
  return `http://127.0.0.1:${port}/mcp`;
}

/** Splits an SSE body into its JSON messages. */
function events(text) {
  const out = [];
  for (const block of text.split(/\n\n/)) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data) out.push(JSON.parse(data));
  }
  return out;
}

function tally(msgs, id) {
  const c = { log: 0, progress: 0, summary: null, result: null, other: 0 };
  for (const m of msgs) {
    if (m.id === id && ('result' in m || 'error' in m)) c.result = m;
    else if (m.method === 'notifications/message' && m.params?.logger === 'gatehouse') c.summary = m.params.data;
    else if (m.method === 'notifications/message') c.log++;
    else if (m.method === 'notifications/progress') c.progress++;
    else c.other++;
  }
  return c;
}

/** POSTs a tools/call and reads the SSE answer slowly: pauses `pauseMs` after each chunk. */
function slowCall(url, sid, body, pauseMs) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const b = JSON.stringify(body);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...JSON_HEADERS, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL, 'Content-Length': Buffer.byteLength(b) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => {
          chunks.push(c);
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        });
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(b);
  });
}

test('a burst of notifications before the result never loses the result', async (t) => {
  const up = await hostile(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', url: up, timeouts: { total: '120s' } }] }), { t });
  const s = await openSession(gw.url);
  for (const n of [300, 1000, 100000]) {
    const started = Date.now();
    const r = await s.callTool('burst', { n }, { timeout: 120000 });
    const c = tally(events(r.text), r.json?.id);
    console.log(`# burst n=${n}: HTTP ${r.status}, ${c.log} log messages delivered, summary ${JSON.stringify(c.summary)}, result ${c.result ? 'yes' : 'NO'}, ${Date.now() - started} ms`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.ok(c.result, `n=${n}: no result in ${r.text.length} bytes`);
    assert.equal(c.result.result.content[0].text, `burst ${n}`);
    assert.equal(c.log, n, 'back-pressure: a client that reads is sent every notification');
  }
  // A fresh POST after the bursts is answered (no 409 for a request that resumes nothing).
  const p = await s.rpc('ping');
  assert.equal(p.status, 200, p.text);
  await gw.stop();
});

test('a slow client holds the server back and gets every message', async (t) => {
  const up = await hostile(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', url: up, timeouts: { total: '120s', idle: '2s' } }] }), { t });
  const s = await openSession(gw.url);
  const n = 20000;
  const id = 77;
  const started = Date.now();
  // The client pauses 5 ms after every chunk it reads, so that the server writes faster than
  // the client reads for the whole call (and longer than timeouts.idle: a paused exchange is
  // not idle).
  const r = await withTimeout(
    slowCall(gw.url, s.id, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'burst', arguments: { n, progress: true }, _meta: { progressToken: 'p1' } } }, 5),
    120000,
    'slow client',
  );
  const msgs = events(r.text);
  const c = tally(msgs, id);
  const lastProgress = msgs.filter((m) => m.method === 'notifications/progress').at(-1)?.params?.progress;
  console.log(`# slow client, n=${n} (+${n} progress): ${c.log} log messages and ${c.progress} progress delivered (last ${lastProgress}), summary ${JSON.stringify(c.summary)}, result ${c.result ? 'yes' : 'NO'}, ${Date.now() - started} ms`);
  assert.equal(r.status, 200);
  assert.ok(c.result, 'the result reaches a slow client');
  assert.equal(c.result.result.content[0].text, `burst ${n}`);
  assert.equal(c.log, n, 'back-pressure: nothing dropped while the client reads');
  assert.equal(lastProgress, n);
  await gw.stop();
});

test('a slow client holds a stdio server back too (its pipe is not read)', async (t) => {
  const server = { name: 's', command: process.execPath, args: [path.join(HERE, 'fixtures', 'hostile-http.mjs'), '--stdio'], timeouts: { total: '120s' } };
  const gw = await startGateway(baseConfig({ servers: [server] }), { t });
  const s = await openSession(gw.url);
  const n = 20000;
  const id = 79;
  const started = Date.now();
  const r = await withTimeout(
    slowCall(gw.url, s.id, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'burst', arguments: { n, progress: true }, _meta: { progressToken: 'p3' } } }, 5),
    120000,
    'slow client',
  );
  const msgs = events(r.text);
  const c = tally(msgs, id);
  console.log(`# slow client, stdio server, n=${n} (+${n} progress): ${c.log} log messages and ${c.progress} progress delivered, summary ${JSON.stringify(c.summary?.slice(0, 60))}, result ${c.result ? 'yes' : 'NO'}, ${Date.now() - started} ms`);
  assert.ok(c.result, 'the result reaches a slow client');
  assert.equal(c.log, n, 'back-pressure on the pipe: nothing dropped while the client reads');
  // The server still answers once the flood is over.
  const again = await s.callTool('burst', { n: 1 });
  assert.equal(again.json?.result?.content?.[0]?.text, 'burst 1');
  await gw.stop();
});

test('a client that leaves during a flood resumes to the result; only notifications are dropped', async (t) => {
  const up = await hostile(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', url: up, timeouts: { total: '120s' } }] }), { t });
  const s = await openSession(gw.url);
  const n = 100000;
  const id = 78;
  // Read the priming event, then stop reading and go away while the server floods.
  const u = new URL(gw.url);
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'burst', arguments: { n, progress: true }, _meta: { progressToken: 'p2' } } });
  const streamId = await new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { ...JSON_HEADERS, 'Mcp-Session-Id': s.id, 'MCP-Protocol-Version': PROTOCOL, 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        res.once('data', (c) => {
          res.pause();
          const m = /id: (\d+)-0/.exec(String(c));
          setTimeout(() => {
            req.destroy();
            resolve(m?.[1]);
          }, 300);
        });
      },
    );
    req.on('error', () => {});
    req.end(body);
    setTimeout(() => reject(new Error('no priming event')), 10000);
  });
  assert.ok(streamId, 'priming event id');
  // The server is read again once nobody reads: it finishes the flood and answers.
  const status = up.replace(/\/mcp$/, '/status');
  for (let i = 0; i < 600; i++) {
    if ((await request(status)).json?.bursts >= 1) break;
    await sleep(100);
  }
  await sleep(200);
  const r = await request(gw.url, { method: 'GET', headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': s.id, 'MCP-Protocol-Version': PROTOCOL, 'Last-Event-ID': `${streamId}-0` } });
  const msgs = events(r.text);
  const c = tally(msgs, id);
  const gap = msgs.find((m) => m.params?.logger === 'gatehouse' && m.params?._meta?.missed);
  const lastProgress = msgs.filter((m) => m.method === 'notifications/progress').at(-1)?.params?.progress;
  console.log(`# left during a flood of ${n} (+${n} progress), resumed from ${streamId}-0: HTTP ${r.status}, ${msgs.length} messages, ${c.log} log messages, last progress ${lastProgress}, gap ${gap?.params?._meta?.missed}, summary ${JSON.stringify(c.summary?.slice(0, 80))}, result ${c.result ? 'yes' : 'NO'}`);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.ok(c.result, 'the result waits for the resumption');
  assert.equal(c.result.result.content[0].text, `burst ${n}`);
  assert.equal(lastProgress, n, 'progress keeps the latest');
  // Bounded: what the ring held when the client resumed, plus what the server still sent live.
  assert.ok(c.log < n, `notifications were dropped while nobody read (${c.log} of ${n} delivered)`);
  assert.match(c.summary ?? '', /dropped \d+ log messages/);
  await gw.stop();
});

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: Number(/VmRSS:\s+(\d+)/.exec(status)[1]), hwm: Number(/VmHWM:\s+(\d+)/.exec(status)[1]) };
}

test('a body built to blow up the parser is refused before it costs memory', async (t) => {
  const gw = await startGateway(baseConfig(), { t });
  const s = await openSession(gw.url);
  await s.rpc('ping');
  // 4 MB (limits.max_body) of empty objects inside one JSON-RPC request.
  const n = Math.floor((4 * 1024 * 1024 - 200) / 3);
  const bomb = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[${'{},'.repeat(n - 1)}{}]}}}`;
  const before = rssKiB(gw.pid);
  // Without a session, with an unknown session, and with a real one; 8 at once.
  const tries = [
    post(gw.url, bomb),
    post(gw.url, bomb, { session: 'gs1.nope' }),
    ...Array.from({ length: 6 }, () => post(gw.url, bomb, { session: s.id })),
  ];
  const answers = await Promise.all(tries);
  await sleep(200);
  const after = rssKiB(gw.pid);
  console.log(`# 8 bodies of ${bomb.length} bytes (${n} empty objects): RSS before ${before.rss} KiB, peak ${after.hwm} KiB, after ${after.rss} KiB; answers ${answers.map((a) => a.status).join(' ')}`);
  // An unknown session is refused before the parse; without one the era is in the body, whose
  // bytes are bounded before it is parsed.
  assertRpcError(answers[1], { status: 404, message: /session not found/ });
  for (const a of [answers[0], ...answers.slice(2)]) assertRpcError(a, { status: 413, message: /limit of \d+/ });
  if (!SANITIZED) {
    assert.ok(after.hwm - before.rss < 64 * 1024, `peak RSS rose by ${after.hwm - before.rss} KiB (bound 64 MiB)`);
    assert.ok(after.rss - before.rss < 32 * 1024, `RSS stayed ${after.rss - before.rss} KiB higher (bound 32 MiB)`);
  }
  // A large legitimate body (one 3 MB string) still goes through the parser.
  const big = await s.rpc('tools/call', { name: 'nope', arguments: { text: 'x'.repeat(3 * 1024 * 1024) } });
  assertRpcError(big, { code: -32602, message: /nope/ });
  await gw.stop();
});

// A REST API that answers with bytes that are not UTF-8, behind the openapi transport.
const BAD_SPEC = {
  openapi: '3.0.3',
  info: { title: 'bad bytes', version: '1' },
  paths: {
    '/text/{id}': {
      get: {
        operationId: 'get_text',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'status', in: 'query', schema: { type: 'integer' } },
          { name: 'type', in: 'query', schema: { type: 'string' } },
        ],
        responses: { 200: { description: 'bytes' } },
      },
    },
  },
};

async function badBytesApi(t) {
  const seen = [];
  const api = http.createServer((req, res) => {
    req.resume();
    const u = new URL(req.url, 'http://x');
    seen.push(req.url.length);
    const body = Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' ok '), Buffer.from([0xff, 0xfe, 0xc0, 0x80]), Buffer.from(' end')]);
    res.writeHead(Number(u.searchParams.get('status') ?? 200), { 'Content-Type': u.searchParams.get('type') ?? 'text/plain' });
    res.end(body);
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  t.after(() => api.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-faults-'));
  const spec = path.join(dir, 'bad.json');
  fs.writeFileSync(spec, JSON.stringify(BAD_SPEC));
  return { spec, base: `http://127.0.0.1:${api.address().port}`, seen };
}

test('invalid UTF-8 from a REST API becomes U+FFFD with the HTTP status kept', async (t) => {
  const api = await badBytesApi(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'api', spec: api.spec, base_url: api.base, discovery: 'static' }] }), { t });
  const s = await openSession(`${gw.base}/mcp/api`);
  for (const [status, type] of [[200, 'text/plain'], [500, 'text/plain'], [200, 'application/json']]) {
    const r = await s.callTool('get_text', { id: 'a', status, type });
    assert.ok(r.json?.result, `HTTP ${status} ${type}: ${r.text.slice(0, 300)}`);
    const text = r.json.result.content[0].text;
    assert.match(text, new RegExp(`HTTP ${status}`), text);
    assert.match(text, /caf\uFFFD ok \uFFFD+ end/, text);
    assert.doesNotMatch(text, /out of memory/i);
    assert.equal(r.json.result.isError === true, status >= 400, text);
  }
  // A path parameter of 1 MB: the refusal names the limit, not memory; nothing is sent.
  const before = api.seen.length;
  const r = await s.callTool('get_text', { id: 'x'.repeat(1 << 20) });
  const text = r.json?.result?.content?.[0]?.text ?? r.text;
  console.log(`# 1 MB path parameter: ${text.slice(0, 200)}`);
  assert.equal(r.json?.result?.isError, true, r.text.slice(0, 300));
  assert.doesNotMatch(text, /out of memory/i);
  assert.match(text, /URL.*\d+ bytes.*limit/);
  assert.equal(api.seen.length, before);
  // Arguments are checked against the tool's inputSchema, naming the field; nothing is sent.
  for (const [args, want] of [
    [{ id: 'a', status: '500' }, /argument 'status' of tool 'get_text' must be an integer, not a string/],
    [{ id: { x: 1 } }, /argument 'id' of tool 'get_text' must be a string, not an object/],
  ]) {
    const bad = await s.callTool('get_text', args);
    assert.equal(bad.json?.result?.isError, true, bad.text.slice(0, 300));
    assert.match(bad.json.result.content[0].text, want);
  }
  assert.equal(api.seen.length, before);
  await gw.stop();
});

test('timeouts.total counts from arrival: a queued call is not given a fresh total', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('m', { max_concurrency: 1, timeouts: { total: '1s' } })] }), { t });
  const s = await openSession(gw.url);
  const started = Date.now();
  // One place: the first call takes it for 700 ms, the second waits 700 ms, then needs 700 ms
  // more; the third waits until the second is done. Each must end by its 1 s from arrival.
  const calls = [0, 1, 2].map((i) =>
    s.callTool('sleep', { ms: 700 }, { timeout: 10000 }).then((r) => ({ i, r, ms: Date.now() - started })),
  );
  const done = await Promise.all(calls);
  for (const { i, r, ms } of done) console.log(`# call ${i}: ${ms} ms, ${r.json?.error ? `error ${r.json.error.code} ${r.json.error.message}` : 'ok'}`);
  // Whichever reached the server first ran; the two that waited ended at their total.
  const ran = done.filter((d) => d.r.json?.result);
  assert.equal(ran.length, 1, 'one call had the place');
  for (const { i, r, ms } of done.filter((d) => !d.r.json?.result)) {
    assert.ok(ms < 1600, `call ${i} answered after ${ms} ms, beyond its timeouts.total of 1 s from arrival`);
    assertRpcError(r, { code: -32004, message: /timeouts\.total/ });
  }
  await gw.stop();
});

test('every server-to-client request to a client without the capability is answered and counted', async (t) => {
  const up = await hostile(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', url: up, timeouts: { total: '60s' } }] }), { t });
  const s = await openSession(gw.url);
  const n = 10000;
  for (const method of ['roots/list', 'sampling/createMessage', 'elicitation/create']) {
    const started = Date.now();
    const r = await s.callTool('requests', { n, method }, { timeout: 60000 });
    const text = r.json?.result?.content?.[0]?.text ?? r.text.slice(0, 300);
    console.log(`# ${n} ${method} requests: ${text}, ${Date.now() - started} ms`);
    assert.equal(text, `answered ${n}: errors ${n}, results 0`);
  }
  const m = await request(`${gw.base}/metrics`);
  const line = m.text.split('\n').find((l) => l.startsWith('gatehouse_server_requests_total') && l.includes('server="h"') && l.includes('method="roots/list"') && l.includes('outcome="refused"'));
  console.log(`# ${line}`);
  assert.ok(line && Number(line.split(' ').at(-1)) === n, `metrics: ${line}`);
  await gw.stop();
});

test("an answer on another call's exchange is dropped: the call gets its own", async (t) => {
  const up = await hostile(t);
  const gw = await startGateway(baseConfig({ servers: [{ name: 'h', url: up }] }), { t });
  const a = await openSession(gw.url);
  const b = await openSession(gw.url);
  const victim = a.callTool('hold', { ms: 1500 });
  await sleep(300);
  const attacker = await b.callTool('cross', {});
  const mine = await victim;
  const textOf = (r) => r.json?.result?.content?.[0]?.text ?? r.text.slice(0, 200);
  console.log(`# A's call: ${textOf(mine)}; B's call: ${textOf(attacker)}`);
  assert.equal(textOf(attacker), 'cross');
  assert.equal(textOf(mine), 'held', "A gets its own answer, not the one put on B's exchange");
  assert.match(gw.tail(), /upstream_crossed_answer/);
  // The ids a server sees are not a counter it could extrapolate to another user's call.
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(Number((await (i % 2 ? a : b).callTool('whoami', {})).json.result.content[0].text));
  console.log(`# ids the server saw: ${ids.join(' ')}`);
  assert.ok(ids.slice(1).every((id, i) => Math.abs(id - ids[i]) > 1000), `ids ${ids.join(' ')}`);
  await gw.stop();
});
