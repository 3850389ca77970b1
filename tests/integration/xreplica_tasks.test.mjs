// 2026-07-28 tasks across replicas (docs/architecture.md, "Redis"): two gateway processes share
// one store (and its key file) and one redis-server, with no load balancer: the test sends each
// request where a balancer without stickiness might. A 2026-07-28 client is stateless, so its
// tasks/get may land on any replica.
//   - a task created on A is named after A; tasks/get, tasks/cancel and tasks/update sent to B
//     reach A through Redis and answer as A would (the status, the cancellation, the refusal of
//     an unknown id), and B's metrics count them;
//   - an id naming B that B does not hold is the ordinary -32602, never sent anywhere;
//   - with Redis down B says so (-32603 naming Redis) and recovers when it is back;
//   - once A is gone, B answers a task of A's with -32602 naming the cause, at once;
//   - with authentication, another user holding the id gets from B the same -32602 as for an
//     unknown id, and the owner's task is unaffected;
//   - without Redis the task ids are random throughout and nothing crosses.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { MINI, baseConfig, modernTasksRequest, request, startGateway, tempDir, until, writeConfig } from './lib.mjs';
import { PASSWORD, cli, createUserClient, testStore, token } from './oauth_lib.mjs';
import { startRedis } from './redis_lib.mjs';

const ISSUER = 'http://127.0.0.1:9'; // the public URL both replicas stand behind (with auth)

/** Two replicas on one store and one Redis (db 3); with `auth`, users alice and bob exist. */
async function replicas(t, redis, { auth = false } = {}) {
  const dir = tempDir();
  const store = { ...testStore(dir), key_file: path.join(dir, 'master.key') };
  const servers = [{ name: 'ms', command: process.execPath, args: [MINI, '--modern', '--task-sleep', '--label', 'ms'] }];
  const cfg = baseConfig({
    workers: 2,
    servers,
    store,
    ...(redis ? { redis: { url: redis.url(3) } } : {}),
    ...(auth ? { auth: { enabled: true, issuer: ISSUER } } : {}),
  });
  const file = writeConfig(cfg, dir);
  if (auth) for (const u of ['alice', 'bob']) cli(file, ['user', 'add', u, '--password-stdin'], { input: `${PASSWORD}\n` });
  const a = await startGateway(cfg, { t, dir: tempDir() });
  const b = await startGateway(cfg, { t, dir: tempDir() });
  const tok = async (user) => {
    const { id, secret } = createUserClient(file, user);
    const r = await token(a, { grant_type: 'client_credentials', resource: `${ISSUER}/mcp` }, { basic: [id, secret] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.access_token;
  };
  return { a, b, tok };
}

const modern = (gw, method, params, id = 1, tok = undefined) => modernTasksRequest(gw, method, params, { id, token: tok });

/** This replica's name, from its start-up line. */
function replicaName(gw) {
  const m = gw.lines.join('\n').match(/crosses replicas through Redis \(replica ([A-Za-z0-9_-]{16})\)/);
  assert.ok(m, 'the replica names itself in its log');
  return m[1];
}

async function xrCount(gw, kind, outcome) {
  const text = (await request(`${gw.base}/metrics`)).text;
  const m = text.match(new RegExp(`^gatehouse_xreplica_messages_total\\{kind="${kind}",outcome="${outcome}"\\} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

async function createTask(gw, ms) {
  const created = await modern(gw, 'tools/call', { name: 'sleep', arguments: { ms } });
  assert.equal(created?.result?.resultType, 'task', JSON.stringify(created));
  return created.result.taskId;
}

test('across replicas: a task created on A is read, cancelled and updated through B', async (t) => {
  const redis = await startRedis(t);
  const { a, b } = await replicas(t, redis);
  await until(() => a.lines.some((l) => /crosses replicas/.test(l)) && b.lines.some((l) => /crosses replicas/.test(l)), { what: 'both replicas on Redis' });
  const nameA = replicaName(a);
  assert.notEqual(nameA, replicaName(b));

  const taskId = await createTask(a, 4000);
  assert.ok(taskId.startsWith(nameA), `${taskId} names replica A (${nameA})`);

  const got = await modern(b, 'tasks/get', { taskId }, 7);
  assert.equal(got.id, 7, 'the answer carries the id the client sent to B');
  assert.equal(got.result?.status, 'working', JSON.stringify(got));
  assert.equal(got.result.taskId, taskId);
  assert.equal(got.result.resultType, 'complete');

  // tasks/update with an answer the task did not ask for: acked, as A itself would.
  const upd = await modern(b, 'tasks/update', { taskId, inputResponses: { nothing: { action: 'accept' } } });
  assert.equal(upd.result?.resultType, 'complete', JSON.stringify(upd));
  // ...and a malformed one is refused on B before anything crosses
  const bad = await modern(b, 'tasks/update', { taskId, inputResponses: 'yes' });
  assert.equal(bad.error?.code, -32602, JSON.stringify(bad));

  const cancel = await modern(b, 'tasks/cancel', { taskId });
  assert.equal(cancel.result?.resultType, 'complete', JSON.stringify(cancel));
  const after = await modern(a, 'tasks/get', { taskId });
  assert.equal(after.result?.status, 'cancelled', 'the cancellation sent to B reached the task on A');
  const viaB = await modern(b, 'tasks/get', { taskId });
  assert.equal(viaB.result?.status, 'cancelled');

  // An id naming A that A does not hold: A's own refusal, relayed.
  const unknown = `${nameA}${'Q'.repeat(16)}`;
  const u = await modern(b, 'tasks/get', { taskId: unknown });
  assert.equal(u.error?.code, -32602, JSON.stringify(u));
  assert.match(u.error.message, /no task .* \(unknown, expired, or not yours\)/);

  assert.ok((await xrCount(b, 'task', 'sent')) >= 5, 'B counts the requests it sent');
  assert.ok((await xrCount(a, 'task', 'received')) >= 5, 'A counts the requests it answered');

  // A task created on B, read on A: the other direction.
  const other = await createTask(b, 300);
  await until(async () => (await modern(a, 'tasks/get', { taskId: other })).result?.status === 'completed', { what: "B's task completed, seen from A" });
  const done = await modern(a, 'tasks/get', { taskId: other });
  assert.equal(done.result.result?.content?.[0]?.text ?? done.result.content?.[0]?.text, 'slept 300', JSON.stringify(done));

  // Redis down: B names it, at once, and serves again once Redis is back.
  await redis.stop();
  const down = await modern(b, 'tasks/get', { taskId });
  assert.equal(down.error?.code, -32603, JSON.stringify(down));
  assert.match(down.error.message, /held by another replica, which cannot be reached now \(Redis is not reachable\); retry shortly/);
  await redis.start();
  await until(async () => (await modern(b, 'tasks/get', { taskId })).result?.status === 'cancelled', { timeout: 15000, what: 'B reaches A again once Redis is back' });

  // A is gone: B says so at once for A's task (nobody listens on A's channel).
  await a.stop();
  const started = Date.now();
  const gone = await modern(b, 'tasks/get', { taskId });
  assert.equal(gone.error?.code, -32602, JSON.stringify(gone));
  assert.match(gone.error.message, /the replica that ran it is gone/);
  assert.ok(Date.now() - started < 3000, 'answered without waiting for the timeout');
  assert.ok((await xrCount(b, 'task', 'gone')) >= 1);
  await b.stop();
});

test("across replicas with authentication: another user's try through B is an unknown id", async (t) => {
  const redis = await startRedis(t);
  const { a, b, tok } = await replicas(t, redis, { auth: true });
  await until(() => b.lines.some((l) => /crosses replicas/.test(l)), { what: 'B on Redis' });
  const alice = await tok('alice');
  const bob = await tok('bob');
  const created = await modern(a, 'tools/call', { name: 'sleep', arguments: { ms: 2000 } }, 1, alice);
  assert.equal(created?.result?.resultType, 'task', JSON.stringify(created));
  const taskId = created.result.taskId;
  const unknown = await modern(b, 'tasks/get', { taskId: `${taskId.slice(0, 16)}${'Z'.repeat(16)}` }, 1, bob);
  assert.equal(unknown.error?.code, -32602);
  for (const [method, params] of [
    ['tasks/get', { taskId }],
    ['tasks/update', { taskId, inputResponses: { q: { action: 'accept' } } }],
    ['tasks/cancel', { taskId }],
  ]) {
    const r = await modern(b, method, params, 1, bob);
    assert.equal(r.error?.code, -32602, `${method}: ${JSON.stringify(r)}`);
    assert.equal(r.error.message, unknown.error.message.replace(/no task \S+/, `no task ${taskId}`), 'the same refusal as an unknown id');
  }
  const mine = await modern(b, 'tasks/get', { taskId }, 1, alice);
  assert.equal(mine.result?.status, 'working', JSON.stringify(mine));
  await until(async () => (await modern(b, 'tasks/get', { taskId }, 1, alice)).result?.status === 'completed', { timeout: 10000, what: "alice's task completed, through B" });
  await a.stop();
  await b.stop();
});

test('without Redis a task id names no replica and nothing crosses', async (t) => {
  const { a, b } = await replicas(t, null);
  const one = await createTask(a, 200);
  const two = await createTask(a, 200);
  assert.notEqual(one.slice(0, 16), two.slice(0, 16), 'the whole id is random');
  const r = await modern(b, 'tasks/get', { taskId: one });
  assert.equal(r.error?.code, -32602, 'another replica does not know it');
  await a.stop();
  await b.stop();
});
