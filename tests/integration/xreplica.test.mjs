// Server-to-client traffic across replicas (docs/architecture.md, "Redis"): two gateway
// processes share one store (and its key file) and one redis-server, with no load balancer: the
// test chooses where each request goes, as a balancer without stickiness might.
//   - the session's GET stream is open on replica A; a call made on replica B makes the server
//     send a notification outside any call (resources/updated for a URI the session subscribed
//     to through B): it reaches the stream on A, through Redis;
//   - a server request relayed by B on a call's stream (sampling) is answered by a POST to A:
//     the answer reaches B, and B's call completes with it;
//   - the same through the MRTR bridge: a 2026-07-28 server's InputRequiredResult, turned by B
//     into a sampling request to a legacy client, answered through A, retried by B;
//   - an answer whose id was altered is refused (400) and never routed; with Redis down an
//     answer for B that lands on A is refused with 503 naming Redis; a notification for A's
//     stream made while Redis is down stays on B (logged);
//   - a message for a stream no replica holds stays where it was made, for a GET opened there;
//   - a replica leaves a session's channel some seconds after its GET stream closed (not while
//     a reconnected one is open);
//   - without Redis, the ids of relayed requests stay integers (nothing changes).

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { PROTOCOL, baseConfig, miniHttp, miniServer, post, request, startGateway, tempDir, until } from './lib.mjs';
import { testStore } from './oauth_lib.mjs';
import { startRedis } from './redis_lib.mjs';

function mini() {
  const m = miniServer('m');
  return { ...m, args: [...m.args, '--era-tools', '--fault-tools'] };
}

/** Two replicas on one store and one Redis (db 2), no authentication. */
async function replicas(t, redis, limits = {}, servers = [mini()]) {
  const dir = tempDir();
  const store = { ...testStore(dir), key_file: path.join(dir, 'master.key') };
  const cfg = baseConfig({ workers: 2, servers, store, ...(redis ? { redis: { url: redis.url(2) } } : {}) });
  cfg.limits = { ...cfg.limits, ...limits };
  const a = await startGateway(cfg, { t, dir: tempDir() });
  const b = await startGateway(cfg, { t, dir: tempDir() });
  return { a, b };
}

async function initialize(url) {
  const r = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: { sampling: {} }, clientInfo: { name: 'xreplica-test', version: '1' } } }, { version: null });
  assert.equal(r.status, 200, r.text);
  const sid = r.headers['mcp-session-id'];
  assert.equal((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session: sid })).status, 202);
  return sid;
}

/** An SSE response (GET stream, or a POST answered as a stream): `messages` grows as events arrive. */
function sse(url, { method = 'GET', sid, body }) {
  const s = { messages: [], status: 0 };
  const headers = { accept: 'application/json, text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': PROTOCOL };
  if (body) headers['content-type'] = 'application/json';
  let buf = '';
  const req = http.request(url, { method, headers }, (res) => {
    s.status = res.statusCode;
    res.setEncoding('utf8');
    res.on('data', (c) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const data = buf
          .slice(0, i)
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        buf = buf.slice(i + 2);
        if (data) s.messages.push(JSON.parse(data));
      }
    });
  });
  req.on('error', () => {});
  req.end(body ? JSON.stringify(body) : undefined);
  s.close = () => req.destroy();
  return s;
}

/** gatehouse_xreplica_messages_total{kind, outcome} of gw (0 when absent). */
async function xrCount(gw, kind, outcome) {
  const text = (await request(`${gw.base}/metrics`)).text;
  const m = text.match(new RegExp(`^gatehouse_xreplica_messages_total\\{kind="${kind}",outcome="${outcome}"\\} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

const rpc = (url, sid, id, method, params) => post(url, { jsonrpc: '2.0', id, method, params }, { session: sid });
const answer = (url, sid, id, text) => post(url, { jsonrpc: '2.0', id, result: { role: 'assistant', content: { type: 'text', text }, model: 'test' } }, { session: sid });

/** Starts `ask` on url as a stream; resolves {call, request} once the server's sampling request is on it. */
async function ask(url, sid, id) {
  const call = sse(url, { method: 'POST', sid, body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'ask', arguments: {} } } });
  let request;
  await until(() => (request = call.messages.find((m) => m.method === 'sampling/createMessage')), { what: 'the sampling request on the call stream' });
  return { call, request };
}

test('across replicas: a notification reaches the GET stream held by another replica, and an answer POSTed there completes the call', async (t) => {
  const redis = await startRedis(t);
  const { a, b } = await replicas(t, redis);
  const sid = await initialize(a.url);
  const stream = sse(a.url, { sid });
  t.after(() => stream.close());
  // A subscribes to the session's channel (by the hash of its id, never the id).
  await until(() => redis.cli(['-n', '2', 'PUBSUB', 'CHANNELS', 'gatehouse:s2c:*']).length > 0, { what: "A subscribed to the session's channel" });
  const channel = redis.cli(['-n', '2', 'PUBSUB', 'CHANNELS', 'gatehouse:s2c:*']);
  assert.match(channel, /^gatehouse:s2c:[0-9a-f]{64}$/);
  assert.ok(!channel.includes(sid), 'the session id is in a channel name');

  // Subscribed through B, touched through B: B's server notifies, A's stream hears it.
  assert.equal((await rpc(b.url, sid, 1, 'resources/subscribe', { uri: 'mini://hello' })).status, 200);
  const tn = Date.now();
  const touched = await rpc(b.url, sid, 2, 'tools/call', { name: 'touch', arguments: {} });
  assert.equal(touched.json?.result?.content?.[0]?.text, 'touched', touched.text);
  await until(() => stream.messages.some((m) => m.method === 'notifications/resources/updated' && m.params?.uri === 'mini://hello'), { interval: 2, what: "the notification on A's stream" });
  console.log(`# the notification made on B was on A's stream ${Date.now() - tn} ms after the call was POSTed to B`);

  // A server request relayed by B, answered through A.
  const { call, request } = await ask(b.url, sid, 3);
  assert.equal(typeof request.id, 'string', 'with Redis a relayed request carries a sealed id');
  assert.match(request.id, /^ghr1\./);
  // An altered id is refused and routed nowhere.
  const forged = request.id.slice(0, -3) + (request.id.endsWith('AAA') ? 'BBB' : 'AAA');
  const refused = await answer(a.url, sid, forged, 'forged');
  assert.equal(refused.status, 400, refused.text);
  assert.match(refused.json?.error?.message ?? '', /not issued by the gateway for this session/);
  const t0 = Date.now();
  const routed = await answer(a.url, sid, request.id, 'answered on A');
  assert.equal(routed.status, 202, routed.text);
  await until(() => call.messages.some((m) => m.id === 3 && m.result), { interval: 2, what: "B's call completed" });
  const result = call.messages.find((m) => m.id === 3).result;
  assert.match(result.content[0].text, /answered on A/);
  console.log(`# the call on B completed ${Date.now() - t0} ms after its answer was POSTed to A`);
  call.close();
  // What crossed, in /metrics on both sides.
  assert.equal(await xrCount(b, 'stream', 'sent'), 1);
  assert.equal(await xrCount(a, 'stream', 'received'), 1);
  assert.equal(await xrCount(a, 'answer', 'sent'), 1);
  assert.equal(await xrCount(b, 'answer', 'received'), 1);

  // The same request answered again: B has nothing waiting any more (202, ignored, as locally).
  assert.equal((await answer(a.url, sid, request.id, 'again')).status, 202);

  // Redis down: an answer for B that lands on A is refused with 503 naming Redis.
  const second = await ask(b.url, sid, 4);
  await redis.stop();
  const down = await answer(a.url, sid, second.request.id, 'too late');
  assert.equal(down.status, 503, down.text);
  assert.match(down.json?.error?.message ?? '', /Redis/);
  // ...and the same answer on B, which holds the call, still completes it.
  assert.equal((await answer(b.url, sid, second.request.id, 'answered on B')).status, 202);
  await until(() => second.call.messages.some((m) => m.id === 4 && m.result), { what: "B's second call completed" });
  assert.match(second.call.messages.find((m) => m.id === 4).result.content[0].text, /answered on B/);
  second.call.close();

  // A notification for A's stream made on B while Redis is down stays on B, with a log line.
  const t2 = await rpc(b.url, sid, 5, 'tools/call', { name: 'touch', arguments: {} });
  assert.equal(t2.json?.result?.content?.[0]?.text, 'touched', t2.text);
  await until(() => /kept on this replica/.test(b.tail()), { what: "B's log line" });
  await Promise.all([a.stop(), b.stop()]);
});

test('across replicas: an answer whose replica is gone is refused with 410', async (t) => {
  const redis = await startRedis(t);
  const { a, b } = await replicas(t, redis);
  const sid = await initialize(a.url);
  const { call, request } = await ask(b.url, sid, 1);
  call.close();
  await b.stop();
  const r = await answer(a.url, sid, request.id, 'nobody listens');
  assert.equal(r.status, 410, r.text);
  assert.match(r.json?.error?.message ?? '', /replica that relayed the request .* is gone/);
  await a.stop();
});

test("across replicas: a 2026-07-28 server's input request, bridged to a legacy client by B, is answered through A", async (t) => {
  const up = await miniHttp(['--modern', '--label', 'mm']); // one server both replicas use
  t.after(() => up.kill());
  const redis = await startRedis(t);
  const { a, b } = await replicas(t, redis, {}, [{ name: 'mm', url: up.url }]);
  const sid = await initialize(a.url);
  const { call, request: req } = await ask(b.url, sid, 1);
  assert.match(req.id, /^ghr1\./);
  assert.equal((await answer(a.url, sid, req.id, 'bridged through A')).status, 202);
  await until(() => call.messages.some((m) => m.id === 1 && m.result), { what: "B's call completed by the server's retry" });
  assert.match(call.messages.find((m) => m.id === 1).result.content[0].text, /bridged through A/);
  call.close();
  await Promise.all([a.stop(), b.stop()]);
});

test('across replicas: a message for a stream nobody holds stays on the replica that made it, for a GET there', async (t) => {
  const redis = await startRedis(t);
  const { a, b } = await replicas(t, redis);
  const sid = await initialize(a.url);
  assert.equal((await rpc(b.url, sid, 1, 'resources/subscribe', { uri: 'mini://hello' })).status, 200);
  assert.equal((await rpc(b.url, sid, 2, 'tools/call', { name: 'touch', arguments: {} })).json?.result?.content?.[0]?.text, 'touched');
  await until(async () => (await xrCount(b, 'stream', 'kept')) === 1, { what: 'kept on B' });
  const stream = sse(b.url, { sid });
  t.after(() => stream.close());
  await until(() => stream.messages.some((m) => m.method === 'notifications/resources/updated'), { what: 'the notification on a GET opened on B' });
  assert.ok(!/kept on this replica/.test(b.tail()), 'a stream nobody holds is no cause for a warning');
  await Promise.all([a.stop(), b.stop()]);
});

test("across replicas: a replica leaves a session's channel once its GET stream closed, and a reconnect costs none", async (t) => {
  const redis = await startRedis(t);
  // A closed GET is noticed at its next keep-alive write: 1 s here.
  const { a, b } = await replicas(t, redis, { sse_keepalive: '1s' });
  await b.stop();
  const sid = await initialize(a.url);
  const channels = () => redis.cli(['-n', '2', 'PUBSUB', 'CHANNELS', 'gatehouse:s2c:*']);
  const first = sse(a.url, { sid });
  await until(() => channels().length > 0, { what: 'subscribed' });
  // A GET that reconnects at once keeps the subscription (no UNSUBSCRIBE, no SUBSCRIBE).
  first.close();
  const again = sse(a.url, { sid });
  await until(() => again.status === 200, { what: 'the second GET' });
  await new Promise((r) => setTimeout(r, 11000)); // past a sweep
  assert.ok(channels().length > 0, 'the channel was left while a GET stream was open');
  again.close();
  await until(() => channels() === '', { timeout: 15000, interval: 200, what: 'the channel left after the GET closed' });
  await a.stop();
});

test('without Redis a relayed request keeps an integer id', async (t) => {
  const { a, b } = await replicas(t, null);
  await b.stop();
  const sid = await initialize(a.url);
  const { call, request } = await ask(a.url, sid, 1);
  assert.equal(typeof request.id, 'number');
  assert.equal((await answer(a.url, sid, request.id, 'local')).status, 202);
  await until(() => call.messages.some((m) => m.id === 1 && m.result), { what: 'the call completed' });
  call.close();
  await a.stop();
});
