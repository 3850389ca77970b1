// Faults on the path of one call: U+0000 in arguments and answers, an answer that cannot be read
// (it fails its call at once, naming the cause, and its bytes never reach the log), calls whose
// clients went away while a saturated server made them wait (/readyz says so), hostile paths, and
// method and tool names that must not mint metric series.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { assertRpcError, baseConfig, miniHttp, miniServer, openSession, readyz, request, startGateway, until } from './lib.mjs';

const faulty = (name, extra = {}) => {
  const s = miniServer(name, extra);
  s.args.push('--fault-tools');
  return s;
};
const text = (r) => r.json?.result?.content?.[0]?.text;
const SECRET = 'sk-live-CALLPATH-4f1d9c';

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
    // The server is still served.
    assert.equal(text(await s.callTool('tool', { text: 'after' })), 'b:after');
  });
}
