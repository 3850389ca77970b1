// Faults on the path of one call: U+0000 in arguments and answers, an answer that cannot be read
// (it fails its call at once, naming the cause, and its bytes never reach the log), calls whose
// clients went away while a saturated server made them wait (/readyz says so), hostile paths, and
// method and tool names that must not mint metric series.

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { assertRpcError, baseConfig, JSON_HEADERS, miniHttp, miniServer, openSession, post, PROTOCOL, readyz, request, startGateway, tempDir, until } from './lib.mjs';

const faulty = (name, extra = {}) => {
  const s = miniServer(name, extra);
  s.args.push('--fault-tools');
  return s;
};
const text = (r) => r.json?.result?.content?.[0]?.text;
// Short on purpose: jansson quotes an offending token of up to 20 bytes in its error text.
const SECRET = 'sk-CP-4f1d9c';

for (const kind of ['stdio', 'http']) {
  test(`${kind}: U+0000 in a tool argument and in the answer round-trips`, async (t) => {
    let server = faulty('n');
    if (kind === 'http') {
      const up = await miniHttp(['--fault-tools', '--label', 'n']);
      t.after(() => up.kill());
      server = { name: 'n', transport: 'http', url: up.url };
    }
    const gw = await startGateway(baseConfig({ servers: [server] }), { t });
    const s = await openSession(gw.url);
    const t0 = Date.now();
    const r = await s.callTool('nul', { text: 'a\u0000b' }, { timeout: 10000 });
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    assert.equal(text(r), 'got:a\u0000b\u0000end', r.text);
    assert.ok(!gw.lines.some((l) => l.includes('upstream_bad_message')), gw.tail());
  });

  test(`${kind}: an answer that cannot be read fails its call at once, naming the cause; its bytes stay out of the log`, async (t) => {
    let server = faulty('b', { timeouts: { total: '60s' } });
    if (kind === 'http') {
      const up = await miniHttp(['--fault-tools', '--label', 'b']);
      t.after(() => up.kill());
      server = { name: 'b', transport: 'http', url: up.url, timeouts: { total: '60s' } };
    }
    const gw = await startGateway(baseConfig({ servers: [server] }), { t });
    const s = await openSession(gw.url);
    const t0 = Date.now();
    const r = await s.callTool('bad', { secret: SECRET }, { timeout: 20000 });
    const ms = Date.now() - t0;
    const e = assertRpcError(r, { code: -32001, message: [/server "b"/, /cannot be read/, /not JSON|invalid JSON/, /byte \d+ of \d+/] });
    assert.ok(ms < 5000, `answered after ${ms} ms (timeouts.total is 60 s)`);
    assert.ok(!e.message.includes(SECRET), e.message);
    await gw.waitForEvent((ev) => ev.event === 'upstream_bad_message', { what: 'upstream_bad_message' });
    assert.ok(!gw.logText().includes(SECRET), `the upstream's bytes reached the log:\n${gw.lines.filter((l) => l.includes(SECRET)).join('\n')}`);
    if (kind === 'http') {
      // The same as a plain JSON body (the POST's exchange ends with it).
      const j = await s.callTool('bad', { secret: SECRET, json: true }, { timeout: 20000 });
      const je = assertRpcError(j, { code: -32001, message: [/server "b"/, /invalid JSON/, /byte \d+ of \d+/] });
      assert.ok(!je.message.includes(SECRET), je.message);
      assert.ok(!gw.logText().includes(SECRET), gw.tail());
    }
    // The server is still served.
    assert.equal(text(await s.callTool('tool', { text: 'after' })), 'b:after');
  });
}

/** A tools/call on its own connection, which the test can drop: {done (the response), drop()}. */
function droppableCall(url, session, name, args, id) {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
  const u = new URL(url);
  let req;
  const done = new Promise((resolve, reject) => {
    req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent: false,
        headers: { ...JSON_HEADERS, 'Mcp-Session-Id': session, 'MCP-Protocol-Version': PROTOCOL, 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode));
        res.on('error', () => resolve('dropped'));
      },
    );
    req.on('error', () => resolve('dropped'));
    req.end(body);
  });
  return { done, drop: () => req.destroy() };
}

test('a saturated server shows in /readyz; calls whose clients went away while they waited are never sent', async (t) => {
  const gw = await startGateway(
    baseConfig({ limits: { sse_keepalive: '200ms', shutdown_grace: '5s' }, servers: [faulty('c', { max_concurrency: 2, timeouts: { total: '3s' } })] }),
    { t },
  );
  const s = await openSession(gw.url);
  assert.equal((await readyz(gw)).status, 200);
  const inflight = [droppableCall(gw.url, s.id, 'hang', {}, 'a1'), droppableCall(gw.url, s.id, 'hang', {}, 'a2')];
  let rz = await until(async () => {
    const r = await readyz(gw);
    return r.body?.servers?.c?.inflight === 2 ? r : undefined;
  }, { what: 'two calls in flight' });
  assert.equal(rz.status, 503, rz.text);
  assert.equal(rz.body.ready, false);
  assert.deepEqual(rz.body.saturated, ['c']);
  assert.equal(rz.body.servers.c.saturated, true);
  assert.equal(rz.body.servers.c.max_concurrency, 2);
  const waiting = [droppableCall(gw.url, s.id, 'hang', {}, 'q1'), droppableCall(gw.url, s.id, 'hang', {}, 'q2')];
  rz = await until(async () => {
    const r = await readyz(gw);
    return r.body?.servers?.c?.queued === 2 ? r : undefined;
  }, { what: 'two calls waiting' });
  // Every client goes away.
  const t0 = Date.now();
  for (const c of [...inflight, ...waiting]) c.drop();
  await Promise.all([...inflight, ...waiting].map((c) => c.done));
  // A new client's call waits for the hung calls to time out (3 s), then is sent at once: the
  // waiting calls of the clients that left are dropped, not sent (they would hang 3 s more).
  const e = await openSession(gw.url);
  const r = await e.callTool('tool', { text: 'served' }, { timeout: 15000 });
  assert.equal(text(r), 'c:served', r.text);
  const ms = Date.now() - t0;
  assert.ok(ms < 5000, `served after ${ms} ms`);
  assert.equal(gw.events.filter((ev) => ev.event === 'call_dropped' && /client went away/.test(ev.msg)).length, 2, gw.tail());
  rz = await readyz(gw);
  assert.equal(rz.status, 200, rz.text);
  assert.equal(rz.body.servers.c.saturated, false);
  assert.deepEqual(rz.body.saturated, []);
});

test('a session ended with DELETE stays ended after a restart on the same store; one not ended is resumed', async (t) => {
  const dir = tempDir();
  const cfg = baseConfig({ servers: [miniServer('a')], store: { sqlite: path.join(dir, 'gh.db'), key_file: path.join(dir, 'master.key') } });
  let gw = await startGateway(cfg, { t, dir: tempDir() });
  const ended = await openSession(gw.url);
  const kept = await openSession(gw.url);
  assert.match(ended.id, /^gs1\./);
  const del = await ended.close();
  assert.ok(del.status === 200 || del.status === 204, `DELETE: ${del.status} ${del.text}`);
  assert.equal((await ended.rpc('ping')).status, 404);
  await gw.stop();
  gw = await startGateway(cfg, { t, dir: tempDir() });
  const again = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { session: ended.id });
  assertRpcError(again, { status: 404 });
  const live = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { session: kept.id });
  assert.equal(live.status, 200, live.text);
});

test('a path with bytes that are not a server name (%ff, %00, UTF-8) is 404 naming it, escaped', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('a')] }), { t });
  const h = { Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };
  const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
  for (const [p, shown] of [['/mcp/%ff', '\\xff'], ['/mcp/a%00b', 'a\\x00b'], ['/mcp/a%FFb/x', 'a\\xffb/x'], ['/mcp/%c3%a9', '\\xc3\\xa9']]) {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const r = await request(gw.base + p, { method, headers: h, body: method === 'POST' ? body : undefined });
      assertRpcError(r, { status: 404, code: -32600 });
      assert.equal(r.json.error.message, `no server named "${shown}" behind this gateway`, `${method} ${p}`);
    }
  }
  assert.ok(gw.alive);
});

test('10,000 made-up method names mint no metric series: a real call still gets its own', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [miniServer('a')], log: { level: 'warn' } }), { t });
  const s = await openSession(gw.url);
  const N = 10000;
  for (let i = 0; i < N; i += 100) {
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => s.rpc(`bogus/${i + k}`, {}).then((r) => assert.equal(r.json?.error?.code, -32601, r.text))),
    );
  }
  const r = await s.callTool('tool', { text: 'counted' });
  assert.equal(text(r), 'a:counted', r.text);
  const m = (await request(`${gw.base}/metrics`)).text;
  assert.ok(!m.includes('bogus/'), 'a made-up method became a label');
  assert.ok(!m.includes('_other'), 'series were folded into _other');
  assert.ok(!m.includes('gatehouse_metrics_series_overflow_total'), 'the series cap was reached');
  assert.match(m, /gatehouse_mcp_requests_total\{server="gateway",method="\(other\)",outcome="error"\} 10000/);
  assert.match(m, /gatehouse_mcp_requests_total\{server="a",method="tools\/call",outcome="ok"\} 1/);
});

test('DELETE of a session cancels its call in flight upstream and never sends its waiting one', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [faulty('d', { max_concurrency: 1, timeouts: { total: '60s' } })] }), { t });
  const s = await openSession(gw.url);
  const first = droppableCall(gw.url, s.id, 'hang', {}, 'first');
  await until(async () => (await readyz(gw)).body?.servers?.d?.inflight === 1, { what: 'the call in flight' });
  const second = droppableCall(gw.url, s.id, 'hang', {}, 'second');
  await until(async () => (await readyz(gw)).body?.servers?.d?.queued === 1, { what: 'the call waiting' });
  const del = await s.close();
  assert.equal(del.status, 200, del.text);
  await Promise.all([first.done, second.done]);
  await gw.waitForEvent((e) => e.event === 'upstream_stderr' && /got notifications\/cancelled .*the client ended its session/.test(e.line), { what: 'notifications/cancelled upstream' });
  await gw.waitForEvent((e) => e.event === 'call_dropped' && /client went away|client ended its session/.test(e.msg), { what: 'the waiting call dropped' });
  const rz = await readyz(gw);
  assert.equal(rz.body.servers.d.inflight, 0, rz.text);
  assert.equal(rz.body.servers.d.queued, 0, rz.text);
  const e = await openSession(gw.url);
  const t0 = Date.now();
  assert.equal(text(await e.callTool('tool', { text: 'next' }, { timeout: 5000 })), 'd:next');
  assert.ok(Date.now() - t0 < 2000);
});

test('notifications/cancelled for a call still waiting for a place takes it out of the queue unsent', async (t) => {
  const gw = await startGateway(baseConfig({ servers: [faulty('w', { max_concurrency: 1, timeouts: { total: '60s' } })] }), { t });
  const s = await openSession(gw.url);
  const first = droppableCall(gw.url, s.id, 'sleep', { ms: 1500 }, 'first');
  await until(async () => (await readyz(gw)).body?.servers?.w?.inflight === 1, { what: 'the call in flight' });
  const second = s.callTool('hang', {}, { id: 'second', timeout: 10000 });
  await until(async () => (await readyz(gw)).body?.servers?.w?.queued === 1, { what: 'the call waiting' });
  const note = await s.raw({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'second', reason: 'changed my mind' } });
  assert.equal(note.status, 202);
  const r = await second;
  assertRpcError(r, { code: -32003, id: 'second', message: [/not sent to server "w"/, /cancelled by the client while it waited for a place/] });
  assert.equal((await readyz(gw)).body.servers.w.queued, 0);
  assert.equal(await first.done, 200);
  // The hang call never reached the server: only the sleep and the next call did.
  assert.equal(text(await s.callTool('tool', { text: 'after' }, { timeout: 5000 })), 'w:after');
});

test('gatehouse_calls_total counts every call once by how it ended, also when its client left', async (t) => {
  const gw = await startGateway(
    baseConfig({ servers: [faulty('d', { max_concurrency: 1, timeouts: { total: '60s' } }), faulty('e', { timeouts: { total: '300ms' } })] }),
    { t },
  );
  const s = await openSession(gw.url);
  assert.equal(text(await s.callTool('d__tool', { text: 'ok' })), 'd:ok');
  const late = await s.callTool('e__hang', {}, { timeout: 5000 });
  assertRpcError(late, { code: -32004 });
  // One call in flight and one waiting for a place, both ended by the session's end.
  const first = droppableCall(gw.url, s.id, 'd__hang', {}, 'first');
  await until(async () => (await readyz(gw)).body?.servers?.d?.inflight === 1, { what: 'the call in flight' });
  const second = droppableCall(gw.url, s.id, 'd__hang', {}, 'second');
  await until(async () => (await readyz(gw)).body?.servers?.d?.queued === 1, { what: 'the call waiting' });
  assert.equal((await s.close()).status, 200);
  await Promise.all([first.done, second.done]);
  const count = async (server, outcome) => {
    const m = (await request(`${gw.base}/metrics`)).text;
    const hit = m.match(new RegExp(`^gatehouse_calls_total\\{server="${server}",outcome="${outcome}"\\} (\\d+)$`, 'm'));
    return hit ? Number(hit[1]) : 0;
  };
  await until(async () => (await count('d', 'cancelled')) === 2, { what: 'both calls counted as cancelled' });
  assert.equal(await count('d', 'ok'), 1);
  assert.equal(await count('e', 'timeout'), 1);
  assert.equal(await count('d', 'error'), 0);
});
