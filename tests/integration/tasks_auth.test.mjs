// Tasks with authentication on: a 2026-07-28 task is its creator's. Two users with real access
// tokens (client_credentials of their own clients); alice creates a task of a task-supporting
// tool of a 2026-07-28 server (mini fixture --modern --task-sleep); bob, holding its id, gets the
// same -32602 as for an id that does not exist, from tasks/get, tasks/update and tasks/cancel, and
// alice's task is unaffected by his tries.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MINI, modernTasksRequest, until } from './lib.mjs';
import { createUserClient, startAuthGateway, token } from './oauth_lib.mjs';

async function bearer(gw, user) {
  const { id, secret } = createUserClient(gw.configFile, user);
  const r = await token(gw, { grant_type: 'client_credentials', resource: `${gw.base}/mcp` }, { basic: [id, secret] });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.access_token;
}

const modern = (gw, token, method, params) => modernTasksRequest(gw, method, params, { token });

test('a 2026-07-28 task is reachable by the user who created it only', async (t) => {
  const gw = await startAuthGateway(t, {
    extra: { servers: [{ name: 'ms', command: process.execPath, args: [MINI, '--modern', '--task-sleep', '--label', 'ms'] }] },
  });
  const alice = await bearer(gw, 'alice');
  const bob = await bearer(gw, 'bob');
  const created = await modern(gw, alice, 'tools/call', { name: 'sleep', arguments: { ms: 3000 } });
  assert.equal(created.result?.resultType, 'task', JSON.stringify(created));
  const taskId = created.result.taskId;

  const unknown = await modern(gw, bob, 'tasks/get', { taskId: 'A'.repeat(32) });
  assert.equal(unknown.error?.code, -32602);
  for (const [method, params] of [
    ['tasks/get', { taskId }],
    ['tasks/update', { taskId, inputResponses: { q: { action: 'accept' } } }],
    ['tasks/cancel', { taskId }],
  ]) {
    const r = await modern(gw, bob, method, params);
    assert.equal(r.error?.code, -32602, `${method}: ${JSON.stringify(r)}`);
    assert.equal(r.error.message, unknown.error.message.replace('A'.repeat(32), taskId), 'the same refusal as an unknown id');
  }
  const mine = await modern(gw, alice, 'tasks/get', { taskId });
  assert.equal(mine.result?.status, 'working', JSON.stringify(mine));
  const done = await until(
    async () => {
      const r = await modern(gw, alice, 'tasks/get', { taskId });
      return r.result?.status === 'completed' ? r.result : null;
    },
    { timeout: 10000, what: 'alice\'s task completed' },
  );
  assert.equal(done.result.content[0].text, 'slept 3000');
});
