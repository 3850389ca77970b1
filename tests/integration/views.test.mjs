// Per-server views (/mcp/<server>), /metrics and the access log.
//
// Two mini servers a and b share the tool names tool/sleep/hang/die (and the resource
// mini://hello); a also has only_a, b only_b. With prefix mode when-needed the aggregate view
// prefixes the shared names; each server's own view shows its names bare.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseConfig, miniServer, openSession, post, request, sleep, startGateway, until } from './lib.mjs';

const servers = () => [miniServer('a', { extra: 'only_a' }), miniServer('b', { extra: 'only_b' })];
const config = (extra = {}) => baseConfig({ workers: 2, prefix: { mode: 'when-needed' }, servers: servers(), ...extra });
const text = (r) => r.json?.result?.content?.[0]?.text;
const names = (r) => {
  assert.ok(r.json?.result?.tools, `no tools in ${r.status} ${r.text}`);
  return r.json.result.tools.map((x) => x.name).sort();
};
const LIST = { jsonrpc: '2.0', id: 'x', method: 'tools/list' };

// ---------------------------------------------------------------------------
// Views

test('views: /mcp/<server> lists only that server\'s tools, unprefixed, while /mcp prefixes the shared ones', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const agg = await openSession(gw.url);
    assert.deepEqual(names(await agg.rpc('tools/list')), ['a__die', 'a__hang', 'a__sleep', 'a__tool', 'b__die', 'b__hang', 'b__sleep', 'b__tool', 'only_a', 'only_b']);
    const a = await openSession(`${gw.base}/mcp/a`);
    assert.deepEqual(names(await a.rpc('tools/list')), ['die', 'hang', 'only_a', 'sleep', 'tool']);
    const b = await openSession(`${gw.base}/mcp/b`);
    assert.deepEqual(names(await b.rpc('tools/list')), ['die', 'hang', 'only_b', 'sleep', 'tool']);
    // the resource b shares with a is hidden in the aggregate but is b's own in b's view
    const rb = await b.rpc('resources/read', { uri: 'mini://hello' });
    assert.equal(rb.json?.result?.contents?.[0]?.text, 'hello from b', rb.text);
    const ra = await a.rpc('resources/read', { uri: 'mini://hello' });
    assert.equal(ra.json?.result?.contents?.[0]?.text, 'hello from a', ra.text);
  } finally {
    await gw.stop();
  }
});

test('views: tools/call on /mcp/a reaches only a', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const a = await openSession(`${gw.base}/mcp/a`);
    const r1 = await a.callTool('tool', { text: 'hi' });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(text(r1), 'a:hi', r1.text);
    assert.equal(text(await a.callTool('only_a')), 'a:extra');
    // b's names, bare or prefixed, do not exist in a's view
    for (const name of ['only_b', 'b__tool', 'a__tool']) {
      const r = await a.callTool(name, { text: 'leak' });
      assert.ok(r.json?.error || r.json?.result?.isError, `${name} on /mcp/a answered ${r.text}`);
      assert.doesNotMatch(r.text, /b:leak|b:extra|a:leak/, `${name} on /mcp/a reached a server: ${r.text}`);
    }
    const b = await openSession(`${gw.base}/mcp/b`);
    assert.equal(text(await b.callTool('tool', { text: 'yo' })), 'b:yo');
  } finally {
    await gw.stop();
  }
});

test('views: a session opened on /mcp/a is 404 on /mcp/b and /mcp (POST, GET, DELETE), and survives that', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const a = await openSession(`${gw.base}/mcp/a`);
    for (const url of [`${gw.base}/mcp/b`, gw.url]) {
      const p = await post(url, LIST, { session: a.id });
      assert.equal(p.status, 404, `POST ${url}: ${p.status} ${p.text}`);
      assert.ok(p.json?.error, p.text);
      assert.doesNotMatch(p.text, /"tools"/);
      const g = await request(url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': a.id, 'MCP-Protocol-Version': '2025-11-25' }, timeout: 3000 });
      assert.equal(g.status, 404, `GET ${url}: ${g.status} ${g.text}`);
      const d = await request(url, { method: 'DELETE', headers: { 'Mcp-Session-Id': a.id, 'MCP-Protocol-Version': '2025-11-25' } });
      assert.equal(d.status, 404, `DELETE ${url}: ${d.status} ${d.text}`);
    }
    // the DELETEs elsewhere did not close it
    const still = await a.rpc('tools/list');
    assert.equal(still.status, 200, still.text);
    // and the other way round: an aggregate session is not valid on a view
    const agg = await openSession(gw.url);
    const p = await post(`${gw.base}/mcp/a`, LIST, { session: agg.id });
    assert.equal(p.status, 404, p.text);
    // an unknown server's view is 404 naming it
    const z = await post(`${gw.base}/mcp/zz`, { ...LIST, id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }, { version: null });
    assert.equal(z.status, 404, z.text);
    assert.match(z.text, /zz/);
    // closing on its own view works
    assert.equal((await a.close()).status, 200);
    assert.equal((await a.rpc('tools/list')).status, 404);
  } finally {
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Metrics

const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [0-9.eE+-]+$/;

/** Parses Prometheus text; asserts every line is a sample, # HELP, # TYPE or empty. */
function parseMetrics(body) {
  const samples = new Map();
  const types = new Map();
  const lines = body.split('\n');
  assert.equal(lines.at(-1), '', 'the exposition must end with a newline');
  for (const line of lines.slice(0, -1)) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/, line);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      assert.ok(m, `bad TYPE line: ${line}`);
      assert.ok(!types.has(m[1]), `TYPE given twice for ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    assert.match(line, SAMPLE, `not a valid sample line: ${JSON.stringify(line)}`);
    const sp = line.lastIndexOf(' ');
    const key = line.slice(0, sp);
    assert.ok(!samples.has(key), `sample repeated: ${key}`);
    samples.set(key, Number(line.slice(sp + 1)));
    const family = key.replace(/\{.*$/, '').replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family) || types.has(key.replace(/\{.*$/, '')), `sample before its # TYPE: ${line}`);
  }
  return { samples, types };
}

test('metrics: tools/call counts, upstream_up, the duration histogram, valid Prometheus text', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const a = await openSession(`${gw.base}/mcp/a`);
    const agg = await openSession(gw.url);
    const N_VIEW = 3;
    const N_AGG = 2;
    for (let i = 0; i < N_VIEW; i++) assert.equal(text(await a.callTool('tool', { text: `v${i}` })), `a:v${i}`);
    for (let i = 0; i < N_AGG; i++) assert.equal(text(await agg.callTool('a__tool', { text: `g${i}` })), `a:g${i}`);
    assert.equal(text(await agg.callTool('only_b')), 'b:extra');
    const N = N_VIEW + N_AGG;
    const key = 'gatehouse_mcp_requests_total{server="a",method="tools/call",outcome="ok"}';

    // the count is taken when the answer's stream is finished: allow it a moment
    let m;
    let res;
    await until(
      async () => {
        res = await request(`${gw.base}/metrics`);
        m = parseMetrics(res.text);
        return m.samples.get(key) === N;
      },
      { timeout: 3000, what: `${key} == ${N}` },
    ).catch((e) => {
      throw new Error(`${e.message}\n${res?.text}`);
    });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/plain/);
    const s = m.samples;
    assert.equal(s.get('gatehouse_mcp_requests_total{server="b",method="tools/call",outcome="ok"}'), 1, res.text);
    assert.equal(s.get('gatehouse_upstream_up{server="a"}'), 1, res.text);
    assert.equal(s.get('gatehouse_upstream_up{server="b"}'), 1, res.text);
    assert.equal(m.types.get('gatehouse_mcp_requests_total'), 'counter');
    assert.equal(m.types.get('gatehouse_upstream_up'), 'gauge');

    const H = 'gatehouse_mcp_request_duration_seconds';
    assert.equal(m.types.get(H), 'histogram', res.text);
    const buckets = [...s.entries()]
      .filter(([k]) => k.startsWith(`${H}_bucket{`) && k.includes('server="a"') && k.includes('method="tools/call"'))
      .map(([k, v]) => ({ le: /le="([^"]+)"/.exec(k)?.[1], v }));
    assert.ok(buckets.length >= 2, `no buckets for a/tools/call:\n${res.text}`);
    const inf = buckets.find((b) => b.le === '+Inf');
    assert.ok(inf, 'no le="+Inf" bucket');
    assert.equal(inf.v, N);
    const finite = buckets.filter((b) => b.le !== '+Inf').map((b) => ({ le: Number(b.le), v: b.v }));
    for (const b of finite) assert.ok(Number.isFinite(b.le), `bad le ${b.le}`);
    const sorted = [...finite].sort((x, y) => x.le - y.le);
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i].v >= sorted[i - 1].v, `buckets not cumulative: ${JSON.stringify(sorted)}`);
    assert.ok(sorted.at(-1).v <= N);
    assert.equal(s.get(`${H}_count{server="a",method="tools/call"}`), N, res.text);
    const sum = s.get(`${H}_sum{server="a",method="tools/call"}`);
    assert.ok(sum > 0 && sum < 30, `sum ${sum}`);
  } finally {
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Access log

const requestLines = (gw) => gw.events.filter((e) => e.event === 'request');

test('access log: one "request" line per POST with request_id, status, mcp_method, server, target, duration_ms; no session id in the log', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const before = requestLines(gw).length;
    let posts = 0;
    const a = await openSession(`${gw.base}/mcp/a`); // initialize + notifications/initialized
    posts += 2;
    const agg = await openSession(gw.url);
    posts += 2;
    await a.rpc('tools/list');
    posts += 1;
    const calls = [
      [a, 'tool', '/mcp/a', 'a'],
      [a, 'only_a', '/mcp/a', 'a'],
      [agg, 'b__tool', '/mcp', 'b'],
      [agg, 'only_a', '/mcp', 'a'],
    ];
    for (const [s, name] of calls) {
      const r = await s.callTool(name, { text: 'log' });
      assert.ok(r.json?.result, r.text);
      posts += 1;
    }
    await until(() => requestLines(gw).length - before >= posts, { timeout: 3000, what: `${posts} request lines\n${gw.tail()}` });
    const lines = requestLines(gw).slice(before);
    assert.equal(lines.length, posts, `expected exactly ${posts} request lines:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    const ids = new Set();
    for (const l of lines) {
      assert.equal(typeof l.request_id, 'string', JSON.stringify(l));
      assert.ok(l.request_id.length > 0);
      ids.add(l.request_id);
      assert.equal(l.http_method, 'POST', JSON.stringify(l));
      assert.equal(typeof l.status, 'number', JSON.stringify(l));
      assert.equal(typeof l.mcp_method, 'string', JSON.stringify(l));
      assert.ok(typeof l.duration_ms === 'number' && l.duration_ms >= 0 && l.duration_ms < 10000, JSON.stringify(l));
    }
    assert.equal(ids.size, lines.length, 'request_id values repeat');
    assert.deepEqual(
      lines.map((l) => l.mcp_method).sort(),
      ['initialize', 'initialize', 'notifications/initialized', 'notifications/initialized', 'tools/call', 'tools/call', 'tools/call', 'tools/call', 'tools/list'].sort(),
    );
    const wrongPath = [];
    const unused = lines.filter((x) => x.mcp_method === 'tools/call');
    for (const [, name, path, server] of calls) {
      // Two calls may share target and server (only_a on /mcp/a and on /mcp): match each call
      // to a line of its own, preferring one with the expected path, so a wrong path still shows.
      const same = (x) => x.target === name && x.server === server;
      let i = unused.findIndex((x) => same(x) && x.path === path);
      if (i < 0) i = unused.findIndex(same);
      const l = i >= 0 ? unused.splice(i, 1)[0] : undefined;
      assert.ok(l, `no tools/call line with target ${name} and server ${server}:\n${lines.map((x) => JSON.stringify(x)).join('\n')}`);
      assert.equal(l.status, 200, JSON.stringify(l));
      if (l.path !== path) wrongPath.push(`tools/call posted to ${path} logged with path ${JSON.stringify(l.path)}: ${JSON.stringify(l)}`);
    }
    const others = lines.filter((x) => x.mcp_method !== 'tools/call');
    assert.deepEqual(others.filter((x) => x.path === '/mcp/a').map((x) => x.mcp_method).sort(), ['initialize', 'notifications/initialized', 'tools/list']);
    assert.deepEqual(others.filter((x) => x.path === '/mcp').map((x) => x.mcp_method).sort(), ['initialize', 'notifications/initialized']);
    // session ids never reach the log, whole or as the id a client would grep for
    const log = gw.logText();
    for (const sid of [a.id, agg.id]) {
      assert.ok(!log.includes(sid), `session id ${sid} appears in the gateway's stderr`);
      assert.ok(!gw.stdout.includes(sid), `session id ${sid} appears on stdout`);
    }
    // last, so that the checks above still run: the path of a forwarded call is its own
    assert.deepEqual(wrongPath, [], `access-log path wrong for forwarded calls:\n${wrongPath.join('\n')}`);
  } finally {
    await gw.stop();
  }
});

test('access log: no session id in the log at level debug either, also across DELETE and an unknown-session refusal', async (t) => {
  const gw = await startGateway(config({ log: { level: 'debug' } }), { t });
  try {
    const a = await openSession(`${gw.base}/mcp/a`);
    await a.callTool('tool', { text: 'x' });
    await post(`${gw.base}/mcp/b`, LIST, { session: a.id }); // wrong view
    await request(`${gw.base}/mcp/a`, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': a.id, 'MCP-Protocol-Version': '2025-11-25' }, timeout: 500 }).catch(() => {});
    await a.close();
    await post(`${gw.base}/mcp/a`, LIST, { session: a.id }); // closed
    await until(() => requestLines(gw).some((l) => l.mcp_method === 'DELETE' || l.http_method === 'DELETE'), { timeout: 3000, what: 'DELETE line' });
    const log = gw.logText();
    assert.ok(!log.includes(a.id), `session id appears in the debug log:\n${gw.lines.filter((l) => l.includes(a.id)).join('\n')}`);
  } finally {
    await gw.stop();
  }
});

test('access log: a refused POST is logged too, exactly once, with its status', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    const start = requestLines(gw).length;
    const a = await openSession(`${gw.base}/mcp/a`);
    // Lines reach us through a pipe, after the answers: wait for openSession's two (initialize,
    // notifications/initialized) so that none of them is counted against the first refusal.
    await until(() => requestLines(gw).length >= start + 2, { timeout: 3000, what: 'the session lines' });
    const cases = [
      ['unknown session', () => post(gw.url, LIST, { session: 'no-such-session' }), 404],
      ['session of another view', () => post(`${gw.base}/mcp/b`, LIST, { session: a.id }), 404],
      ['no session header', () => post(gw.url, LIST), 400],
      ['bad Accept', () => post(gw.url, LIST, { session: a.id, headers: { Accept: 'application/json' } }), 406],
      ['bad Content-Type', () => post(gw.url, LIST, { session: a.id, headers: { 'Content-Type': 'text/plain' } }), 415],
      ['bad MCP-Protocol-Version', () => post(gw.url, LIST, { session: a.id, version: '1999-01-01' }), 400],
      ['foreign Host', () => post(gw.url, LIST, { session: a.id, headers: { Host: 'evil.example' } }), 403],
    ];
    const missing = [];
    for (const [what, send, status] of cases) {
      const before = requestLines(gw).length;
      const r = await send();
      assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
      // the request line of a refusal is written before the answer; allow a moment anyway
      await until(() => requestLines(gw).length > before, { timeout: 3000, what }).catch(() => {});
      await sleep(100); // a second line, if the gateway wrongly wrote two, has time to arrive
      const got = requestLines(gw).slice(before);
      if (got.length !== 1 || got[0].status !== status || got[0].http_method !== 'POST') missing.push(`${what} (HTTP ${status}): ${got.length} line(s) ${JSON.stringify(got)}`);
    }
    assert.deepEqual(missing, [], `refused POSTs without exactly one access-log line:\n${missing.join('\n')}`);
  } finally {
    await gw.stop();
  }
});

test('views: a subscription to a URI no server lists goes to the one server behind a view, and is refused where several are', async (t) => {
  const gw = await startGateway(config(), { t });
  try {
    // b's own view: b decides (the mini server accepts any URI and logs the request).
    const b = await openSession(`${gw.base}/mcp/b`);
    const sub = await b.rpc('resources/subscribe', { uri: 'mini://not-listed' });
    assert.deepEqual(sub.json?.result, {}, sub.text);
    await until(() => gw.lines.find((l) => l.includes('mini-server: request resources/subscribe') && l.includes('mini://not-listed')), { what: `subscribe upstream\n${gw.tail()}` });
    const unsub = await b.rpc('resources/unsubscribe', { uri: 'mini://not-listed' });
    assert.deepEqual(unsub.json?.result, {}, unsub.text);
    // The aggregate of two servers cannot tell whose it is; a read is answered by the gateway too.
    const agg = await openSession(gw.url);
    const e = await agg.rpc('resources/subscribe', { uri: 'mini://not-listed' });
    assert.equal(e.json?.error?.code, -32002, e.text);
    assert.match(e.json.error.message, /no server behind this endpoint offers it/);
    const read = await b.rpc('resources/read', { uri: 'mini://not-listed' });
    assert.equal(read.json?.error?.code, -32002, read.text);
  } finally {
    await gw.stop();
  }
});
