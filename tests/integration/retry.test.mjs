// Idempotent list operations are retried with back-off when the server does not answer; nothing
// else is (a tools/call that timed out is reported, never sent again).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { baseConfig, miniServer, openSession, readyz, startGateway } from './lib.mjs';

let gw;
before(async () => {
  gw = await startGateway(
    baseConfig({
      servers: [miniServer('flaky', { hangFirstList: true, timeouts: { first_byte: '1s', total: '3s' } })],
    }),
  );
});
after(async () => {
  if (gw) await gw.stop();
});

test('a tools/list that timed out is fetched again, and the server becomes ready with its tools', async () => {
  const r = await readyz(gw);
  assert.equal(r.body.servers.flaky.state, 'ready', JSON.stringify(r.body));
  assert.ok(r.body.servers.flaky.tools >= 1, JSON.stringify(r.body));
  assert.match(gw.lines.join('\n'), /tools\/list failed \(server \\"flaky\\" did not answer within 1000 ms \(timeouts\.first_byte\)\); trying again in 250 ms/);
  const s = await openSession(gw.url);
  const list = await s.rpc('tools/list');
  assert.ok(list.json.result.tools.some((t) => t.name === 'tool'), JSON.stringify(list.json));
});
