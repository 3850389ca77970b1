// Three replicas behind a load balancer, as docs/deployment.md describes them: a throwaway
// PostgreSQL cluster (tests/unit/store/with-postgres.sh) and redis-server (redis_lib.mjs), three
// gateway processes on them with one key file, and HAProxy (Debian's, in the foreground, its configuration in a temporary folder)
// balancing round-robin with no stickiness, so that consecutive requests of one session land on
// different replicas. Through it: the OAuth login of the official SDK v1 client (DCR, PKCE, the
// login and consent pages, token; each page may be served by another replica), sessions and calls
// of SDK v1 (2025-11-25) and SDK v2 in both eras (legacy and 2026-07-28), and clients registered
// by DCR. Then one replica is SIGKILLed in the middle of a bounded load loop: every operation
// succeeds, at most after one retry (a request in flight on the killed replica fails once), the
// sessions go on on the other replicas, a refresh goes through, and every client whose
// registration was answered, before or during the kill, is in the store afterwards. Last, alice is
// revoked with the command line, and both surviving replicas refuse her token within a second.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { baseConfig, miniServer, startGateway, tempDir, writeConfig, REPO } from '../integration/lib.mjs';
import { Browser, PASSWORD, cli } from '../integration/oauth_lib.mjs';
import { startRedis } from '../integration/redis_lib.mjs';
import { MemoryProvider, approve, isClientCallback, sdkAuthorize, sdkConnect } from './lib/oauth.mjs';
import { freePort, sleep, withTimeout } from './lib/gateway.mjs';

const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';
const WITH_POSTGRES = path.join(REPO, 'tests', 'unit', 'store', 'with-postgres.sh');

/** A throwaway cluster for the length of the test: with-postgres.sh runs a shell that prints the
    cluster's variables and waits for its standard input to close. */
async function startPostgres(t) {
  const child = spawn(WITH_POSTGRES, ['bash', '-c', 'env | grep ^GH_TEST_PG_; echo READY; cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise((r) => child.once('exit', r));
  t.after(async () => {
    child.stdin.end();
    await withTimeout(exited, 30000, 'the throwaway PostgreSQL cluster stops').catch(() => child.kill('SIGKILL'));
  });
  await withTimeout(
    (async () => {
      while (!out.includes('READY\n')) {
        if (child.exitCode !== null) throw new Error(`with-postgres.sh exited ${child.exitCode}: ${err}`);
        await sleep(50);
      }
    })(),
    60000,
    `the throwaway PostgreSQL cluster starts\n${err}`,
  );
  const env = Object.fromEntries(out.split('\n').filter((l) => l.startsWith('GH_TEST_PG_')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const psql = (sql) => {
    const r = spawnSync(path.join(env.GH_TEST_PG_BINDIR, 'psql'), ['-X', '-q', '-At', '-h', env.GH_TEST_PG_HOST, '-p', env.GH_TEST_PG_PORT, '-U', 'postgres', '-d', 'gh_store', '-c', sql], { encoding: 'utf8' });
    assert.equal(r.status, 0, `psql ${sql}: ${r.stderr}`);
    return r.stdout.trim();
  };
  return { env, psql, uri: `postgresql:///gh_store?host=${encodeURIComponent(env.GH_TEST_PG_HOST)}&port=${env.GH_TEST_PG_PORT}&user=postgres` };
}

/** HAProxy in the foreground: round-robin over the replicas, no stickiness, health checks on
    /healthz every 300 ms (one failure takes a replica out). A request whose connection to a
    replica could not be made is sent to another one (retry-on conn-failure, redispatch): that is
    always safe, as the replica saw nothing of it. */
async function startHaproxy(t, port, replicas) {
  const dir = tempDir();
  const cfg = [
    'global',
    '  maxconn 2000',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  retries 3',
    '  retry-on conn-failure',
    '  option redispatch 1',
    'frontend gatehouse',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    '  default-server inter 300ms fall 1 rise 2',
    ...replicas.map((r, i) => `  server r${i + 1} 127.0.0.1:${r.port} check`),
    '',
  ].join('\n');
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, cfg);
  const check = spawnSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8' });
  assert.equal(check.status, 0, `haproxy -c: ${check.stdout}${check.stderr}`);
  const child = spawn(HAPROXY, ['-f', file, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (c) => (log += c));
  child.stderr.on('data', (c) => (log += c));
  const exited = new Promise((r) => child.once('exit', r));
  t.after(async () => {
    child.kill('SIGTERM');
    await withTimeout(exited, 5000, 'haproxy stops').catch(() => child.kill('SIGKILL'));
  });
  // ready once it answers and sees every replica up
  const deadline = Date.now() + 15000;
  for (;;) {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
    if (r?.status === 200) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`haproxy did not come up:\n${log}`);
    await sleep(100);
  }
  return { log: () => log };
}

/** A fetch that adds the bearer token (the SDK v2 clients use the token the v1 login got). */
const bearerFetch = (tok) => (input, init = {}) => {
  const headers = new Headers(init.headers ?? {});
  headers.set('Authorization', `Bearer ${tok()}`);
  return fetch(input, { ...init, headers });
};

const text = (res) => (res.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');

test('three replicas on PostgreSQL and Redis behind HAProxy: SDK v1 and v2 (both eras), OAuth, a replica SIGKILLed under load, a revocation everywhere within a second', { timeout: 240000 }, async (t) => {
  const pg = await startPostgres(t);
  const redis = await startRedis(t);
  const lbPort = await freePort('127.0.0.1');
  const issuer = `http://127.0.0.1:${lbPort}`; // the public URL: the load balancer's
  const dir = tempDir();
  const store = { postgres: pg.uri, key_file: path.join(dir, 'master.key') };
  const cfg = baseConfig({ workers: 1, servers: [miniServer('a')], store, auth: { enabled: true, issuer }, redis: { url: redis.url() } });
  const file = writeConfig(cfg, dir);
  cli(file, ['user', 'add', 'alice', '--password-stdin'], { input: `${PASSWORD}\n` });
  const replicas = [];
  for (let i = 0; i < 3; i++) replicas.push(await startGateway(cfg, { t, dir: tempDir() }));
  const lb = await startHaproxy(t, lbPort, replicas);
  const url = `${issuer}/mcp`;
  const logs = () => `${replicas.map((r, i) => `--- replica ${i + 1}\n${r.tail()}`).join('\n')}\n--- haproxy\n${lb.log()}`;

  try {
    // The login, through the balancer: every page and the token request may hit another replica.
    const provider = new MemoryProvider();
    const params = await sdkAuthorize(url, provider, async (au) => {
      const browser = new Browser();
      let { page, location } = await browser.follow(au.toString(), {}, isClientCallback);
      if (!location) ({ page, location } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login', stop: isClientCallback }));
      return location ? new URL(location).searchParams : approve(browser, page);
    });
    assert.equal(params.get('iss'), issuer);
    const tok = () => provider.saved.tokens.access_token;

    // Sessions and calls: a v1 client (2025-11-25) and v2 clients in both eras.
    const v1 = await sdkConnect(url, provider);
    const v2legacy = new ClientV2({ name: 'lb-v2-legacy', version: '1' }, { versionNegotiation: { mode: 'legacy' } });
    await v2legacy.connect(new TransportV2(new URL(url), { fetch: bearerFetch(tok) }));
    const v2modern = new ClientV2({ name: 'lb-v2-modern', version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2modern.connect(new TransportV2(new URL(url), { fetch: bearerFetch(tok) }));
    const clients = { v1, v2legacy, v2modern };
    for (const [name, c] of Object.entries(clients)) {
      // six calls: each replica serves two of them (round-robin), the session follows
      for (let i = 0; i < 6; i++) {
        const r = await c.callTool({ name: 'tool', arguments: { text: `${name} ${i}` } });
        assert.equal(text(r), `a:${name} ${i}`, JSON.stringify(r));
      }
      assert.ok((await c.listTools()).tools.some((x) => x.name === 'tool'));
    }

    // Store writes: clients registered by DCR, each answered by some replica.
    const registered = [];
    const register = async (tag) => {
      const r = await fetch(`${issuer}/oauth/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ client_name: `lb ${tag}`, redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
      });
      if (r.status !== 201) throw new Error(`register: ${r.status} ${await r.text()}`);
      registered.push((await r.json()).client_id);
    };
    for (let i = 0; i < 12; i++) await register(`before ${i}`);

    // The load loop: every client calls in turn, and registrations go on, for a bounded number of
    // rounds; replica 2 is SIGKILLed after the first rounds. An operation that fails is retried
    // once; a second failure fails the test.
    let retried = 0;
    const failures = [];
    const once = async (what, fn) => {
      try {
        return await fn();
      } catch (e1) {
        retried++;
        await sleep(400); // the balancer's health check takes the dead replica out (300 ms)
        try {
          return await fn();
        } catch (e2) {
          failures.push(`${what}: ${e1.message} / then ${e2.message}`);
        }
      }
    };
    // Each replica has served MCP requests of these sessions (its own counter, read directly).
    const served = async (r) => {
      const m = await (await fetch(`${r.base}/metrics`)).text();
      return m.split('\n').filter((l) => l.startsWith('gatehouse_mcp_requests_total')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    };
    const before = await Promise.all(replicas.map(served));
    assert.ok(before.every((n) => n > 0), `MCP requests served per replica: ${before}`);

    const ROUNDS = 40;
    const KILL_AT = 10; // the round of the v1 loop at which replica 2 is SIGKILLed
    let killed = false;
    const loops = [
      ...Object.entries(clients).map(([name, c]) => async () => {
        for (let i = 0; i < ROUNDS; i++) {
          if (name === 'v1' && i === KILL_AT) {
            await replicas[1].kill();
            killed = true;
          }
          await once(`${name} call ${i}`, async () => {
            const r = await withTimeout(c.callTool({ name: 'tool', arguments: { text: `load ${i}` } }), 15000, `${name} call ${i}`);
            assert.equal(text(r), `a:load ${i}`);
          });
        }
      }),
      async () => {
        for (let i = 0; i < ROUNDS; i++) await once(`register ${i}`, () => register(`load ${i}`));
      },
    ];
    await withTimeout(Promise.all(loops.map((f) => f())), 120000, 'the load loop');
    assert.ok(killed);
    assert.deepEqual(failures, [], `operations that failed twice (${retried} retried)\n${logs().slice(-6000)}`);

    // The sessions go on on the survivors; a refresh goes through one of them.
    for (const [name, c] of Object.entries(clients)) {
      const r = await c.callTool({ name: 'tool', arguments: { text: `after ${name}` } });
      assert.equal(text(r), `a:after ${name}`);
    }
    provider.saved.tokens = { ...provider.saved.tokens, access_token: 'expired.invalid.token' };
    const again = await sdkConnect(url, provider);
    assert.notEqual(tok(), 'expired.invalid.token');
    assert.ok((await again.listTools()).tools.length > 0);

    // No write lost: every client whose registration was answered is in the store.
    const stored = new Set(pg.psql('SELECT client_id FROM clients').split('\n'));
    const missing = registered.filter((id) => !stored.has(id));
    assert.deepEqual(missing, [], `registered clients missing from the store (${registered.length} registered)`);
    assert.equal(registered.length, 12 + ROUNDS);
    // A revocation through the command line (which publishes it on Redis) is in force on every
    // surviving replica within a second, asked directly, not through the balancer.
    const token = tok();
    const status = async (r) =>
      (
        await fetch(`${r.base}/mcp`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2025-11-25' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
        })
      ).status;
    const alive = [replicas[0], replicas[2]];
    for (const r of alive) assert.notEqual(await status(r), 401, 'the token works before the revocation');
    const revokedAt = Date.now();
    cli(file, ['revoke', '--user', 'alice']);
    for (const r of alive) {
      while ((await status(r)) !== 401) {
        assert.ok(Date.now() - revokedAt < 1000, `replica ${replicas.indexOf(r) + 1} still accepts alice's token 1 s after the revocation`);
        await sleep(20);
      }
    }
    const refusedWithin = Date.now() - revokedAt;
    t.diagnostic(`revocation refused by both surviving replicas ${refusedWithin} ms after the CLI`);
    t.diagnostic(`MCP requests per replica before the load: ${before}; ${ROUNDS} rounds x 4 loops, replica 2 SIGKILLed at round ${KILL_AT}: ${retried} operation(s) retried once, 0 failed; ${registered.length} clients registered, all stored`);

    for (const c of [...Object.values(clients), again]) await withTimeout(c.close(), 5000, 'client close').catch(() => {});
  } catch (e) {
    e.message += `\n${logs().slice(-8000)}`;
    throw e;
  }
  await Promise.all([replicas[0].stop(), replicas[2].stop()]);
});
