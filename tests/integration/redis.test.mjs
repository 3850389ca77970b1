// Redis, the state replicas share fast (docs/architecture.md, "Redis"): each test starts its own
// redis-server (redis_lib.mjs) and gateway processes on ephemeral ports.
//   - start-up refuses a Redis it cannot use, naming Redis and the cause, never the password;
//   - a token revoked through replica A is refused by replica B within a second, and a user
//     disabled with the CLI by both, with redis.revocation_poll at 60 s: only the revocation
//     event published over Redis explains it;
//   - a user's settings changed through A are what B lists within a second (the same events);
//   - a session ended on replica A is never resumed by replica B, on separate stores: only the
//     ended id recorded in Redis explains it; and one B holds already is ended on B too;
//   - Redis down: /readyz says so, a session B does not hold is refused (503, fails closed), a
//     revocation still takes effect, and all of it recovers once redis-server is back.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, baseConfig, miniServer, post, readyz, runGatehouse, startGateway, tempDir, until, writeConfig } from './lib.mjs';
import { PASSWORD, cli, createUserClient, mcpCall, mcpInit, testStore, token } from './oauth_lib.mjs';
import { startRedis } from './redis_lib.mjs';

const ISSUER = 'http://127.0.0.1:9';

function init(url, tok) {
  const headers = tok ? { Authorization: `Bearer ${tok}` } : {};
  return post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'redis-test', version: '1' } } }, { version: null, headers });
}

function call(url, sid, method, params = {}, tok) {
  const headers = tok ? { Authorization: `Bearer ${tok}` } : {};
  return post(url, { jsonrpc: '2.0', id: 1, method, params }, { session: sid, headers });
}

async function revoke(gw, tok, [id, secret]) {
  const r = await fetch(`${gw.base}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64') },
    body: new URLSearchParams({ token: tok }).toString(),
  });
  assert.equal(r.status, 200, await r.text());
}

/** Two replicas with authentication on one store (SQLite file or PostgreSQL) and one Redis. */
async function authReplicas(t, redis, { poll = '60s', workers = 2, servers = [miniServer('a')] } = {}) {
  const dir = tempDir();
  const store = { ...testStore(dir), key_file: path.join(dir, 'master.key') };
  const cfg = baseConfig({ workers, servers, store, auth: { enabled: true, issuer: ISSUER }, redis: { url: redis.url(3), revocation_poll: poll } });
  const file = writeConfig(cfg, dir);
  cli(file, ['user', 'add', 'alice', '--password-stdin'], { input: `${PASSWORD}\n` });
  const a = await startGateway(cfg, { t, dir: tempDir() });
  const b = await startGateway(cfg, { t, dir: tempDir() });
  const client = createUserClient(file, 'alice');
  const issue = async () => {
    const r = await token(a, { grant_type: 'client_credentials', resource: `${ISSUER}/mcp` }, { basic: [client.id, client.secret] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.access_token;
  };
  return { a, b, issue, client: [client.id, client.secret], file };
}

test('start-up refuses a Redis it cannot use, naming Redis and the cause, never the password', async (t) => {
  const secret = 'pw-never-printed-7f3a';
  const redis = await startRedis(t, { password: secret });
  const dir = tempDir();
  const run = async (url) => {
    const file = writeConfig(baseConfig({ redis: { url } }), dir);
    const r = await runGatehouse(['run', '-c', file]);
    assert.notEqual(r.code, 0, r.stdout + r.stderr);
    assert.ok(!(r.stdout + r.stderr).includes('wrong-'), 'a password was printed');
    assert.ok(!(r.stdout + r.stderr).includes(secret), 'the password was printed');
    return r.stderr;
  };
  assert.match(await run(`redis://:wrong-pw@127.0.0.1:${redis.port}/0`), new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port}/0 refused the credentials.*WRONGPASS`));
  assert.match(await run(`redis://127.0.0.1:${redis.port}/0`), /Redis at .* refused a PING: NOAUTH/);
  await redis.stop();
  assert.match(await run(`redis://:${secret}@127.0.0.1:${redis.port}/0`), new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${redis.port}/0: Connection refused`));
  assert.match(await run(`rediss://:${secret}@127.0.0.1:${redis.port}/0`), /redis\.url asks for TLS/);
  assert.match(await run(`redis://:${secret}@127.0.0.1:${redis.port}/0?x=1`), /something after the database/);
  // The right password starts (and /readyz shows Redis up).
  await redis.start();
  const gw = await startGateway(baseConfig({ redis: { url: redis.url() } }), { t });
  await until(async () => (await readyz(gw)).body?.redis?.state === 'up', { what: 'redis up in /readyz' });
  assert.ok(!gw.tail().includes(secret), 'the password was logged');
  await gw.stop();
});

test('a token revoked through replica A is refused by replica B within 1 s (revocation events over Redis)', async (t) => {
  const redis = await startRedis(t);
  const { a, b, issue, client, file } = await authReplicas(t, redis, { poll: '60s' });
  await until(async () => (await readyz(b)).body?.redis?.events === true, { what: 'B subscribed' });
  const tok = await issue();
  // B has seen the token (its verdict is cached on whichever worker served it: ask often).
  for (let i = 0; i < 6; i++) assert.equal((await init(b.url, tok)).status, 200);
  const other = await issue(); // not revoked: still accepted afterwards
  await revoke(a, tok, client);
  const t0 = Date.now();
  let refusedAt = null;
  while (Date.now() - t0 < 3000) {
    const r = await init(b.url, tok);
    if (r.status === 401) {
      refusedAt = Date.now() - t0;
      break;
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(refusedAt !== null && refusedAt < 1000, `B still accepted the revoked token ${Date.now() - t0} ms after the revocation`);
  // Once refused, refused on every worker of B, every time.
  for (let i = 0; i < 6; i++) assert.equal((await init(b.url, tok)).status, 401);
  assert.equal((await init(b.url, other)).status, 200);
  assert.ok(Number(redis.cli(['-n', '3', 'GET', 'gatehouse:revocation'])) >= 1, 'the shared revocation counter moved');
  console.log(`# B refused the token ${refusedAt} ms after A revoked it`);

  // A user disabled with the command-line tool: it publishes too, so both replicas refuse at once.
  for (let i = 0; i < 4; i++) assert.equal((await init(a.url, other)).status, 200);
  cli(file, ['user', 'disable', 'alice']);
  const t1 = Date.now();
  for (const gw of [a, b]) await until(async () => (await init(gw.url, other)).status === 401, { timeout: 1000, interval: 20, what: 'the disabled user refused within 1 s' });
  console.log(`# both replicas refused the disabled user's token within ${Date.now() - t1} ms`);
  await Promise.all([a.stop(), b.stop()]);
});

test("a user's settings changed through replica A reach replica B's settings cache within 1 s (the same events)", async (t) => {
  const redis = await startRedis(t);
  const spec = path.join(REPO, 'tests/openapi/gateway-pets.yaml');
  const { a, b, issue } = await authReplicas(t, redis, { poll: '60s', servers: [miniServer('a'), { name: 'pets', spec, base_url: 'http://127.0.0.1:9/v1' }] });
  const tok = await issue();
  const open = async (gw) => {
    const sid = (await mcpInit(gw.url, tok)).headers['mcp-session-id'];
    await mcpCall(gw.url, tok, sid, 'notifications/initialized');
    return async (method, params) => {
      const r = await mcpCall(gw.url, tok, sid, method, params);
      assert.equal(r.status, 200, r.text);
      return r.json;
    };
  };
  const onA = await open(a);
  const onB = await open(b);
  const names = async (c) => (await c('tools/list', {})).result.tools.map((x) => x.name);
  for (let i = 0; i < 4; i++) assert.ok((await names(onB)).includes('get_pet')); // cached on B's workers
  const set = await onA('tools/call', { name: 'gatehouse__settings', arguments: { server: 'pets', select: ['list_pets'] } });
  assert.equal(set.result.isError, false, JSON.stringify(set));
  const t0 = Date.now();
  await until(async () => !(await names(onB)).includes('get_pet'), { timeout: 1000, interval: 20, what: "B's tools/list without get_pet" });
  for (let i = 0; i < 4; i++) {
    const n = await names(onB);
    assert.ok(n.includes('list_pets') && !n.includes('get_pet'), n.join());
  }
  console.log(`# B listed the new selection ${Date.now() - t0} ms after A stored it`);
  await Promise.all([a.stop(), b.stop()]);
});

test('a session ended on replica A is not resumed by replica B on a separate store, and ended there if B holds it (ended ids in Redis)', async (t) => {
  const redis = await startRedis(t);
  const dir = tempDir();
  const keyFile = path.join(dir, 'shared.key');
  const cfgFor = (name) => baseConfig({ workers: 2, servers: [miniServer('a')], store: { sqlite: path.join(dir, `${name}.db`), key_file: keyFile }, redis: { url: redis.url(1) } });
  const a = await startGateway(cfgFor('a'), { t, dir: tempDir() });
  const b = await startGateway(cfgFor('b'), { t, dir: tempDir() });

  // A session B has never seen is resumed by B (Redis says it did not end).
  const live = (await init(a.url)).headers['mcp-session-id'];
  assert.match(live, /^gs1\./);
  const r1 = await call(b.url, live, 'tools/list');
  assert.equal(r1.status, 200, r1.text);

  // Ended on A: B (its own store, which never heard of it) does not resume it.
  const sid = (await init(a.url)).headers['mcp-session-id'];
  const d = await fetch(a.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' } });
  assert.equal(d.status, 200);
  const keys = redis.cli(['-n', '1', 'KEYS', 'gatehouse:session-ended:*']).split('\n').filter(Boolean);
  assert.equal(keys.length, 1, `one ended id in Redis: ${keys}`);
  assert.match(keys[0], /^gatehouse:session-ended:[0-9a-f]{64}$/, 'the key is a hash, never the id');
  const ttl = Number(redis.cli(['-n', '1', 'TTL', keys[0]]));
  assert.ok(ttl > 23 * 3600 && ttl <= 24 * 3600, `the key lives as long as the seal: ${ttl} s`);
  for (let i = 0; i < 4; i++) {
    const r = await call(b.url, sid, 'tools/list');
    assert.equal(r.status, 404, r.text);
  }

  // A session B holds already (it resumed it above), ended on A: B ends it too, at once.
  const d2 = await fetch(a.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': live, 'MCP-Protocol-Version': '2025-11-25' } });
  assert.equal(d2.status, 200);
  await until(async () => (await call(b.url, live, 'tools/list')).status === 404, { timeout: 1000, interval: 20, what: 'B ends the session A ended' });
  assert.ok(b.lines.some((l) => l.includes('ended by another replica')), b.tail());
  assert.ok(!b.lines.some((l) => l.includes(sid)), 'the id was logged');
  await Promise.all([a.stop(), b.stop()]);
});

test('Redis down: /readyz says so, an unknown session fails closed, revocation still works; all recovers when it is back', async (t) => {
  const redis = await startRedis(t);
  const { a, b, issue, client } = await authReplicas(t, redis, { poll: '60s' });
  await until(async () => (await readyz(b)).body?.redis?.state === 'up', { what: 'redis up' });
  const tok = await issue();
  const sid = (await init(a.url, tok)).headers['mcp-session-id'];
  assert.match(sid, /^gs1\./);
  assert.equal((await init(b.url, tok)).status, 200);

  await redis.stop();
  await until(
    async () => {
      const r = await readyz(b);
      return r.body?.redis?.state === 'down' && r.body.redis.events === false && r.body.redis.error;
    },
    { what: 'redis down in /readyz' },
  );
  const rz = await readyz(b);
  assert.equal(rz.status, 200, 'Redis down does not take the replica out of the balancer (every replica shares it)');
  // B does not hold A's session and cannot ask Redis: refused, naming Redis, not resumed.
  const x = await call(b.url, sid, 'tools/list', {}, tok);
  assert.equal(x.status, 503, x.text);
  assert.match(x.json?.error?.message ?? '', /Redis/);
  // A holds it: served.
  assert.equal((await call(a.url, sid, 'tools/list', {}, tok)).status, 200);
  // A revocation through A, with no event: B reads the store on every request meanwhile.
  const tok2 = await issue();
  assert.equal((await init(b.url, tok2)).status, 200);
  await revoke(a, tok2, client);
  for (let i = 0; i < 4; i++) assert.equal((await init(b.url, tok2)).status, 401, 'a revoked token accepted while Redis was down');

  // Back on the same port: both reconnect by themselves, and B resumes A's session.
  await redis.start();
  for (const gw of [a, b]) await until(async () => (await readyz(gw)).body?.redis?.state === 'up', { timeout: 8000, what: 'redis up again' });
  assert.ok(b.lines.some((l) => l.includes('lost the') && l.includes('connecting again')), 'the outage was logged');
  const y = await call(b.url, sid, 'tools/list', {}, tok);
  assert.equal(y.status, 200, y.text);
  // And revocation events flow again.
  const tok3 = await issue();
  assert.equal((await init(b.url, tok3)).status, 200);
  await revoke(a, tok3, client);
  await until(async () => (await init(b.url, tok3)).status === 401, { timeout: 1000, interval: 20, what: 'B refuses within 1 s after the recovery' });
  await Promise.all([a.stop(), b.stop()]);
});
