// SIGHUP applies a changed server list: unchanged servers keep running untouched (same process),
// removed ones are stopped, new ones started; clients of the aggregate hear list_changed, and a
// session opened before the reload keeps working.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { baseConfig, miniServer, openSession, readyz, startGateway, until } from './lib.mjs';

const names = (list) => list.json.result.tools.map((t) => t.name).sort();

test('SIGHUP: kept, removed and added servers; the old session goes on', async (t) => {
  const cfg = (servers) => baseConfig({ prefix: { mode: 'always' }, servers });
  const a = miniServer('a');
  const gw = await startGateway(cfg([a, miniServer('b')]), { t });
  try {
    const s = await openSession(gw.url);
    assert.deepEqual(names(await s.rpc('tools/list')), ['a__die', 'a__hang', 'a__sleep', 'a__tool', 'b__die', 'b__hang', 'b__sleep', 'b__tool']);
    const startedA = () => gw.events.filter((e) => e.event === 'upstream_started' && e.server === 'a').length;
    assert.equal(startedA(), 1);

    fs.writeFileSync(gw.configFile, JSON.stringify(cfg([a, miniServer('c')]), null, 2));
    const mark = gw.events.length;
    gw.signal('SIGHUP');
    const done = await gw.waitForEvent((e) => e.event === 'reload_servers', { from: mark, what: 'the reload of the servers' });
    assert.match(done.msg, /1 kept, 1 started, 1 stopped/);
    await until(async () => (await readyz(gw)).status === 200, { timeout: 10000, what: 'ready after the reload' });
    const r = await readyz(gw);
    assert.deepEqual(Object.keys(r.body.servers).sort(), ['a', 'c'], JSON.stringify(r.body));
    assert.equal(startedA(), 1, 'the unchanged server was not restarted');

    assert.deepEqual(names(await s.rpc('tools/list')), ['a__die', 'a__hang', 'a__sleep', 'a__tool', 'c__die', 'c__hang', 'c__sleep', 'c__tool']);
    const call = await s.callTool('c__tool', { text: 'new' });
    assert.equal(call.json?.result?.content?.[0]?.text, 'c:new', call.text);
    const gone = await s.callTool('b__tool', { text: 'x' });
    assert.equal(gone.json?.error?.code, -32602, gone.text);
    assert.match(gone.json.error.message, /b__tool/);
  } finally {
    await gw.stop();
  }
});
