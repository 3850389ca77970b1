// Slow, broken and dying upstreams: the gateway isolates each one, reports why in /readyz,
// answers the client with an error naming the server, and keeps serving the others.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closedLoopbackPort, assertRpcError, assertServing, baseConfig, miniServer, openSession, readyz, startGateway, until } from './lib.mjs';

let gw;
let s;
let closedPort;

before(async () => {
  closedPort = await closedLoopbackPort();
  gw = await startGateway(
    baseConfig({
      servers: [
        { name: 'crashy', command: 'sh', args: ['-c', 'exit 1'], restart: { initial: '100ms', max: '1s' } },
        miniServer('garbage', { garbage: true, extra: 'garbage_only' }),
        miniServer('slow', { timeouts: { total: '2s' }, restart: { initial: '100ms', max: '1s' } }),
        { name: 'deadhttp', url: `http://127.0.0.1:${closedPort}/mcp`, timeouts: { connect: '1s' } },
      ],
    }),
  );
  s = await openSession(gw.url);
});
after(async () => {
  if (!gw) return;
  try {
    await gw.stop();
  } finally {
    if (gw.alive) await gw.kill();
  }
});

describe('a stdio upstream that exits at once (sh -c "exit 1")', () => {
  test('/readyz: 503, crashy not ready with a why, the others ready', async () => {
    const r = await readyz(gw);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.ready, false, r.text);
    const c = r.body.servers.crashy;
    assert.ok(c, r.text);
    assert.notEqual(c.state, 'ready', r.text);
    assert.match(c.why, /exit|status 1/, r.text);
    assert.equal(r.body.servers.garbage.state, 'ready', r.text);
    assert.equal(r.body.servers.slow.state, 'ready', r.text);
  });

  test('it is restarted with a growing back-off, capped at restart.max', async () => {
    const ev = await gw.waitForEvent((e) => e.event === 'upstream_restart_scheduled' && e.server === 'crashy' && e.restarts >= 4, { timeout: 8000, what: '5 restarts of crashy' });
    assert.ok(ev);
    const delays = gw.events.filter((e) => e.event === 'upstream_restart_scheduled' && e.server === 'crashy').map((e) => e.delay_ms);
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i] >= delays[i - 1] * 0.75, `back-off shrank: ${delays}`);
    assert.ok(delays.every((d) => d <= 1000 * 1.25), `a delay beyond restart.max 1s: ${delays}`);
    assert.ok(delays.at(-1) >= 400, `back-off did not grow: ${delays}`);
  });

  test('the retry delay /readyz reports agrees with the restart policy (restart.max 1s)', async () => {
    await gw.waitForEvent((e) => e.event === 'upstream_restart_scheduled' && e.server === 'crashy' && e.delay_ms >= 900, { timeout: 8000, what: 'crashy back-off at its max' });
    const r = await readyz(gw);
    const why = r.body.servers.crashy.why;
    const m = /retrying in (\d+) ms/.exec(why);
    const logged = gw.events.filter((e) => e.event === 'upstream_state' && e.server === 'crashy' && /retrying in/.test(e.why ?? '')).map((e) => e.why.match(/retrying in (\d+)/)[1]);
    const scheduled = gw.events.filter((e) => e.event === 'upstream_restart_scheduled' && e.server === 'crashy').map((e) => e.delay_ms);
    const claims = [...(m ? [m[1]] : []), ...logged].map(Number);
    assert.ok(
      claims.every((ms) => ms <= 1000 * 1.25),
      `the "why" text claims retries in ${[...new Set(claims)].join(', ')} ms, but the restart policy is {initial: 100ms, max: 1s} and the scheduled delays were ${scheduled.join(', ')} ms`,
    );
  });

  test('the other servers still serve through the aggregate', async () => {
    const r = await s.callTool('slow__tool', { text: 'fine' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'slow:fine', r.text);
  });

  test('/mcp/crashy answers with an error naming the server while it is down', async () => {
    const r = await openSession(`${gw.url}/crashy`).then(
      (c) => c.rpc('tools/list'),
      (e) => ({ initError: e }),
    );
    if (r.initError) {
      assert.match(String(r.initError.message), /crashy|not ready|unavailable|down/i);
    } else {
      // either an empty catalog or an error naming the server is acceptable
      if (r.json?.error) assertRpcError(r, { message: /crashy/ });
      else assert.deepEqual(r.json?.result?.tools ?? [], [], r.text);
    }
  });
});

describe('an stdio upstream that writes garbage lines to stdout', () => {
  test('its tools are listed and calls are answered correctly', async () => {
    const l = await s.rpc('tools/list');
    const names = (l.json?.result?.tools ?? []).map((t) => t.name);
    assert.ok(names.includes('garbage__tool'), `tools: ${names}`);
    assert.ok(names.includes('garbage_only'), `tools: ${names}`);
    for (let i = 0; i < 5; i++) {
      const r = await s.callTool('garbage__tool', { text: `g${i}` });
      assert.equal(r.json?.result?.content?.[0]?.text, `garbage:g${i}`, r.text);
    }
    const u = await s.callTool('garbage_only');
    assert.equal(u.json?.result?.content?.[0]?.text, 'garbage:extra', u.text);
  });

  test('the garbage is logged, the server stays up and is not restarted', async () => {
    assert.ok(gw.events.some((e) => e.event === 'upstream_bad_message' && e.server === 'garbage'), 'no upstream_bad_message logged');
    assert.ok(!gw.events.some((e) => e.event === 'upstream_exited' && e.server === 'garbage'), 'garbage server was restarted');
    const r = await readyz(gw);
    assert.equal(r.body.servers.garbage.state, 'ready', r.text);
  });
});

describe('an upstream that hangs on tools/call (timeouts.total 2s)', () => {
  test('the client gets a timeout error naming the server within ~2-3 s', async () => {
    const t0 = Date.now();
    const r = await s.callTool('slow__hang', {}, { id: 'hang-1', timeout: 10000 });
    const ms = Date.now() - t0;
    assert.ok(ms >= 1500 && ms <= 3500, `answered after ${ms} ms`);
    const err = assertRpcError(r, { id: 'hang-1', message: [/slow/, /time|within|did not answer|2000|2 ?s/i] });
    assert.ok(Number.isInteger(err.code) && err.code < 0, `code ${err.code}`);
  });

  test('the server keeps serving other calls afterwards', async () => {
    const r = await s.callTool('slow__tool', { text: 'after-hang' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'slow:after-hang', r.text);
    await assertServing(gw);
  });
});

describe('an upstream killed mid-call (process.exit inside a tool)', () => {
  test('the client gets an error naming the server', async () => {
    const r = await s.callTool('slow__die', {}, { id: 'die-1', timeout: 10000 });
    const err = assertRpcError(r, { id: 'die-1', message: /slow/ });
    assert.ok(Number.isInteger(err.code) && err.code < 0);
    assert.match(err.message, /exit|went away|gone|died|closed|status 3/i, r.text);
  });

  test('the server is restarted and a later call works', async () => {
    await gw.waitForEvent((e) => e.event === 'upstream_exited' && e.server === 'slow', { timeout: 5000, what: 'slow exited' });
    await until(async () => (await readyz(gw)).body?.servers?.slow?.state === 'ready', { timeout: 10000, what: 'slow ready again' });
    const r = await s.callTool('slow__tool', { text: 'reborn' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'slow:reborn', r.text);
  });
});

describe('an HTTP upstream on a closed port', () => {
  test('/readyz says why', async () => {
    const r = await readyz(gw);
    const d = r.body.servers.deadhttp;
    assert.ok(d, r.text);
    assert.notEqual(d.state, 'ready', r.text);
    assert.match(d.why, /connect|unreachable|refused/i, r.text);
    assert.match(d.why, new RegExp(String(closedPort)), `why should name the address: ${r.text}`);
  });

  test('the aggregate keeps working', async () => {
    await assertServing(gw, { tool: { name: 'garbage__tool', args: { text: 'z' }, text: 'garbage:z' } });
    const r = await s.callTool('slow__tool', { text: 'y' });
    assert.equal(r.json?.result?.content?.[0]?.text, 'slow:y', r.text);
  });
});
