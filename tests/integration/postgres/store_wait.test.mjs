// The request path on a PostgreSQL store: store calls wait off the worker's loop. Run under
// tests/unit/store/with-postgres.sh with GATEHOUSE_TEST_STORE=postgres (scripts/check.sh's
// `postgres` phase); it lives apart from the files the integration phase runs on SQLite, where
// there is nothing to show (its tests skip there).
//
// - a credential check that waits on the server (its table locked by another session) does not
//   stall the worker: /healthz and a cached credential on the same (only) worker answer at once;
// - PostgreSQL stopped under load: what needs the store is refused with 503, Retry-After and a
//   JSON-RPC error naming the store, cached credentials and held sessions keep working, and once
//   the server is back the gateway serves again by itself;
// - a wrong password or an unreachable server stops the start, naming PostgreSQL and the cause,
//   never the password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, request, post, sleep, until, writeConfig, tempDir, baseConfig, miniServer, runGatehouse, openSession, startGateway, assertRpcError } from '../lib.mjs';
import { startAuthGateway, mcpInit, mcpCall, createUserClient, token, testStore } from '../oauth_lib.mjs';

const onPostgres = process.env.GATEHOUSE_TEST_STORE === 'postgres';
const skip = onPostgres ? false : 'needs GATEHOUSE_TEST_STORE=postgres (tests/unit/store/with-postgres.sh)';

async function gatewayWithKeys(t, n) {
  const gw = await startAuthGateway(t, { workers: 1, users: [] });
  gw.cli(['account', 'add', 'bot']);
  const keys = [];
  for (let i = 0; i < n; i++) keys.push(gw.cli(['apikey', 'create', '--account', 'bot', '--label', `k${i}`]));
  return { gw, keys };
}

// the store URI the gateway was started with
function storeOf(gw) {
  const text = fs.readFileSync(gw.configFile, 'utf8');
  const m = text.match(/postgres(?:ql)?:\/\/[^"'\s]+/);
  assert.ok(m, 'the gateway runs on PostgreSQL');
  return m[0];
}

/** A psql session holding `sql` in an open transaction until release(). */
async function holdLock(db, sql) {
  const { GH_TEST_PG_BINDIR: bin, GH_TEST_PG_HOST: host, GH_TEST_PG_PORT: port } = process.env;
  const p = spawn(path.join(bin, 'psql'), ['-X', '-q', '-h', host, '-p', port, '-U', 'postgres', '-d', db], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (c) => (out += c));
  p.stderr.on('data', (c) => (out += c));
  p.stdin.write(`BEGIN;\n${sql};\nSELECT 'lock' || 'held';\n`);
  await until(() => out.includes('lockheld'), { timeout: 10000, what: `psql: ${sql}` });
  return {
    release: () =>
      new Promise((resolve) => {
        p.once('exit', resolve);
        p.stdin.end('ROLLBACK;\n\\q\n');
      }),
  };
}

async function timed(fn) {
  const t0 = performance.now();
  const r = await fn();
  return { r, ms: performance.now() - t0 };
}

test('a store call that waits on PostgreSQL does not stall the worker', { skip, timeout: 60000 }, async (t) => {
  const { gw, keys } = await gatewayWithKeys(t, 2);
  const db = new URL(storeOf(gw)).pathname.slice(1);
  const cached = await mcpInit(gw.url, keys[0]);
  assert.equal(cached.status, 200, cached.text);

  // The table the API-key check reads is locked: a key not cached yet waits for the lock (up to
  // the store's lock_timeout, 5 s), on a pool thread.
  const lock = await holdLock(db, 'LOCK TABLE apikeys IN ACCESS EXCLUSIVE MODE');
  let released = false;
  t.after(() => !released && lock.release());
  const t0 = performance.now();
  const waiting = mcpInit(gw.url, keys[1]);
  await sleep(300); // the check is at the server, waiting
  for (let i = 0; i < 5; i++) {
    const h = await timed(() => request(`${gw.base}/healthz`));
    assert.equal(h.r.status, 200);
    assert.ok(h.ms < 500, `/healthz took ${h.ms.toFixed(0)} ms while a store call waited`);
    const c = await timed(() => mcpInit(gw.url, keys[0]));
    assert.equal(c.r.status, 200, c.r.text);
    assert.ok(c.ms < 500, `a cached key took ${c.ms.toFixed(0)} ms while a store call waited`);
  }
  const w = await waiting;
  const waited = performance.now() - t0;
  // refused by the store's lock_timeout: a temporary error naming the store
  assert.equal(w.status, 503, w.text);
  assert.equal(w.headers['retry-after'], '1');
  assert.match(w.json.error.message, /store \(postgres\)/);
  assert.ok(waited > 3000, `the locked check came back after ${waited.toFixed(0)} ms: it did not wait on the lock`);
  released = true;
  await lock.release();
  const again = await mcpInit(gw.url, keys[1]);
  assert.equal(again.status, 200, again.text);
  await gw.stop(); // exit 0: nothing left behind (a leak fails an ASan build here)
});

test('PostgreSQL restarted under load: 503 naming the store, cached callers served, back by itself', { skip, timeout: 90000 }, async (t) => {
  const { gw, keys } = await gatewayWithKeys(t, 3);
  const init = await mcpInit(gw.url, keys[0]);
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  const list = () => post(gw.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { session: sid, headers: { Authorization: `Bearer ${keys[0]}` } });
  assert.equal((await list()).status, 200);

  // a loop of calls (cached key and a new one) while the server restarts
  let stop = false;
  const seen = new Map();
  const loop = (async () => {
    while (!stop) {
      for (const k of [keys[0], keys[2]]) {
        const r = await mcpInit(gw.url, k);
        seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
        if (r.status === 503) assert.match(r.json.error.message, /store \(postgres\)/, r.text);
        else assert.equal(r.status, 200, r.text);
      }
    }
  })();
  execSync(process.env.GH_TEST_PG_RESTART, { stdio: 'ignore' });
  await sleep(500);

  execSync(process.env.GH_TEST_PG_STOP, { stdio: 'ignore' });
  try {
    // the store is down: a credential not cached is a temporary error naming the store
    const r = await mcpInit(gw.url, keys[1]);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json.jsonrpc, '2.0');
    assert.match(r.json.error.message, /store \(postgres\)/);
    // a cached one and a session this replica holds keep working
    const c = await mcpInit(gw.url, keys[0]);
    assert.equal(c.status, 200, c.text);
    const l = await list();
    assert.equal(l.status, 200, l.text);
    assert.ok(l.json.result.tools.length > 0);
  } finally {
    execSync(process.env.GH_TEST_PG_START, { stdio: 'ignore' });
  }
  // back without a restart of the gateway (the pool's connections are made again)
  await until(async () => (await mcpInit(gw.url, keys[1])).status === 200, { timeout: 15000, interval: 250, what: 'a new key accepted after PostgreSQL came back' });
  stop = true;
  await loop;
  assert.ok((seen.get(200) ?? 0) > 0, JSON.stringify([...seen]));
  await gw.stop();
});

test("a user's token and settings: read off the loop, kept through an outage", { skip, timeout: 90000 }, async (t) => {
  const spec = path.join(REPO, 'tests/openapi/gateway-pets.yaml');
  const gw = await startAuthGateway(t, { workers: 1, extra: { servers: [miniServer('a'), { name: 'pets', spec, base_url: 'http://127.0.0.1:9/v1' }] } });
  const tokenOf = async (user) => {
    const { id, secret } = createUserClient(gw.configFile, user);
    const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}/mcp` }, { basic: [id, secret] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.access_token;
  };
  const alice = await tokenOf('alice');
  const bob = await tokenOf('bob'); // issued, never presented before the outage
  gw.cli(['user', 'settings', 'alice', '--server', 'pets', '--select', 'list_pets,get_pet']);
  const init = await mcpInit(gw.url, alice);
  assert.equal(init.status, 200, init.text);
  const sid = init.headers['mcp-session-id'];
  const names = async () => {
    const r = await mcpCall(gw.url, alice, sid, 'tools/list');
    assert.equal(r.status, 200, r.text);
    return r.json.result.tools.map((x) => x.name);
  };
  const before = await names();
  assert.ok(before.includes('list_pets') && !before.includes('create_pet'), before.join());

  execSync(process.env.GH_TEST_PG_STOP, { stdio: 'ignore' });
  try {
    // her verdict and her settings are cached: served, with her selection still applied
    assert.deepEqual(await names(), before);
    const r = await mcpInit(gw.url, bob);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.json.error.message, /the token could not be checked: the store \(postgres\) failed/);
  } finally {
    execSync(process.env.GH_TEST_PG_START, { stdio: 'ignore' });
  }
  await until(async () => (await mcpInit(gw.url, bob)).status === 200, { timeout: 15000, interval: 250, what: "bob's token accepted after PostgreSQL came back" });
  // a change made while the gateway runs is seen on the next request (the sequence moved)
  gw.cli(['user', 'settings', 'alice', '--server', 'pets', '--select', 'create_pet']);
  const after = await names();
  assert.ok(after.includes('create_pet') && !after.includes('list_pets'), after.join());
  await gw.stop();
});

test('ended sessions on a shared PostgreSQL store: recorded before the DELETE is answered, checked off the loop by a replica that does not hold them', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  const cfg = baseConfig({ workers: 1, servers: [miniServer('a')], store: testStore(dir) }); // no auth: the key file alone
  const a = await startGateway(cfg, { t, dir: tempDir() });
  const b = await startGateway(cfg, { t, dir: tempDir() });
  const ended = await openSession(a.url);
  const kept = await openSession(a.url);
  assert.match(ended.id, /^gs1\./);
  const del = await ended.close();
  assert.equal(del.status, 200, del.text);
  // B never held either: it asks the store (a pool job), right after the DELETE was answered
  assertRpcError(await post(b.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { session: ended.id }), { status: 404 });
  const live = await post(b.url, { jsonrpc: '2.0', id: 2, method: 'ping' }, { session: kept.id });
  assert.equal(live.status, 200, live.text);
  // and a restart of A on the same store does not bring it back
  await a.stop();
  const a2 = await startGateway(cfg, { t, dir: tempDir() });
  assertRpcError(await post(a2.url, { jsonrpc: '2.0', id: 3, method: 'ping' }, { session: ended.id }), { status: 404 });
  assert.equal((await post(a2.url, { jsonrpc: '2.0', id: 4, method: 'ping' }, { session: kept.id })).status, 200);
  await a2.stop();
  await b.stop();
});

test('a wrong password or an unreachable server stops the start, naming PostgreSQL and the cause', { skip, timeout: 60000 }, async () => {
  const { GH_TEST_PG_PORT: port, GH_TEST_PG_PASSWORD_ROLE: role, GH_TEST_PG_PASSWORD: right } = process.env;
  const wrong = `not-${right}-xyzzy`;
  const run = async (uri) => {
    const dir = tempDir();
    const file = writeConfig(baseConfig({ servers: [miniServer('a')], store: { postgres: uri, key_file: path.join(dir, 'master.key') }, auth: { enabled: true } }), dir);
    return runGatehouse(['run', '-c', file], { timeout: 30000 });
  };
  const bad = await run(`postgresql://${role}:${wrong}@127.0.0.1:${port}/gh_full`);
  assert.notEqual(bad.code, 0);
  const all = bad.stdout + bad.stderr;
  assert.match(all, /postgres/);
  assert.match(all, /password authentication failed/);
  assert.ok(!all.includes(wrong), 'the password is printed');
  const closed = await run(`postgresql://${role}:${wrong}@127.0.0.1:1/gh_full`);
  assert.notEqual(closed.code, 0);
  const all2 = closed.stdout + closed.stderr;
  assert.match(all2, /postgres store .*cannot connect/);
  assert.match(all2, /refused|could not connect/i);
  assert.ok(!all2.includes(wrong), 'the password is printed');
});
