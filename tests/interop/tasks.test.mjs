// Tasks through the gateway, with real SDK clients of both eras and servers of both eras: the
// SDK v2 client (@modelcontextprotocol/client) pinned to 2026-07-28, declaring the tasks
// extension (io.modelcontextprotocol/tasks), with the official tasks client
// (@modelcontextprotocol/ext-tasks) over it, and the SDK v1 client (@modelcontextprotocol/sdk,
// 2025-11-25) with its `task` param, tasks/get, tasks/list, tasks/result and tasks/cancel. The
// servers: the conformance fixture (legacy, SDK v1, over stdio: "fx") and the mini fixture in its
// --modern mode (2026-07-28 only, over stdio: "ms"). Neither speaks tasks: each marks tools with
// execution.taskSupport and runs them as ordinary calls; the gateway runs them as tasks
// (docs/architecture.md, "Tasks").
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  CreateTaskResultSchema,
  GetTaskResultSchema,
  ListTasksResultSchema,
  CancelTaskResultSchema,
  CallToolResultSchema,
  ElicitRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { createTaskSessionFromClient, resultFromTaskOutcome } from '@modelcontextprotocol/ext-tasks/client';
import { startGateway, FIXTURE_SERVER, withTimeout, sleep, INTEROP_DIR, DIRECT } from './lib/gateway.mjs';
import { connectClient, resultText } from './lib/client.mjs';

const MINI = path.resolve(INTEROP_DIR, '..', 'integration', 'fixtures', 'mini-server.mjs');
const TASKS = 'io.modelcontextprotocol/tasks';
// A test's limit sits above the bounds it waits on (a connect of up to 15 s, polls of up to
// 15 s). Measured: each test under 3 s.
const T = { timeout: 60000 };
const SKIP = DIRECT ? { skip: 'DIRECT=1: the tasks are the gateway\'s (its servers do not run tasks)' } : {};

let gw;
const closers = [];

before(async () => {
  if (DIRECT) return;
  gw = await startGateway({
    prefix: { mode: 'always' },
    servers: [
      { name: 'fx', command: process.execPath, args: [FIXTURE_SERVER] },
      { name: 'ms', command: process.execPath, args: [MINI, '--modern', '--task-sleep', '--label', 'ms'] },
    ],
  });
});

after(async () => {
  for (const c of closers) await c().catch(() => {});
  if (gw) await gw.stop();
});

async function withLogs(fn) {
  try {
    await fn();
  } catch (err) {
    if (gw) err.message += `\n--- gateway log ---\n${gw.logs().slice(-5000)}`;
    throw err;
  }
}

/**
 * A 2026-07-28 client of tasks: the SDK v2 client pinned to 2026-07-28 with the official tasks
 * client (@modelcontextprotocol/ext-tasks) over it. The SDK's codec refuses a CreateTaskResult,
 * so ext-tasks takes a host's raw request path for 2026-07-28 (its `rawDispatch`): here a POST
 * with the headers the revision asks for, which `raw` also serves for the requests the tests send
 * by hand. tasks: declare the extension.
 */
async function modernClient({ tasks = true, capabilities = {} } = {}) {
  const caps = { ...capabilities, ...(tasks ? { extensions: { [TASKS]: {} } } : {}) };
  const info = { name: 'gatehouse-interop-tasks', version: '1.0.0' };
  const client = new Client2(info, { capabilities: caps, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await withTimeout(client.connect(new Transport2(new URL(gw.url))), 15000, 'SDK v2 connect');
  let n = 0;
  const rawDispatch = async (req) => {
    const request = { jsonrpc: '2.0', id: `t-${++n}`, ...req };
    const p = request.params ?? {};
    const name = request.method === 'tools/call' ? p.name : p.taskId;
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': request.method,
      ...(name !== undefined ? { 'mcp-name': name } : {}),
    };
    const res = await fetch(gw.url, { method: 'POST', headers, body: JSON.stringify(request) });
    const text = await res.text();
    if (!(res.headers.get('content-type') ?? '').includes('event-stream')) return JSON.parse(text);
    const events = text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6)));
    return events.find((m) => m.id === request.id);
  };
  const framing = { protocolVersion: '2026-07-28', clientInfo: info, clientCapabilities: caps };
  const session = createTaskSessionFromClient(client, { endpointId: 'gatehouse', rawDispatch, v2RequestFraming: framing });
  closers.push(() => withTimeout(session.close(), 5000, 'close'));
  /** One request through the same path, with the framing: its result, or a thrown {code}. */
  const raw = async (method, params) => {
    const r = await rawDispatch({ method, params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': info, 'io.modelcontextprotocol/clientCapabilities': caps } } });
    if (r.error) throw Object.assign(new Error(r.error.message), { code: r.error.code });
    return r.result;
  };
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': info, 'io.modelcontextprotocol/clientCapabilities': caps };
  return { client, session, raw, framing: meta };
}

/** The SDK v1 client (2025-11-25). */
async function legacyClient(options = {}) {
  const c = await connectClient(gw.url, { name: 'gatehouse-interop-tasks-v1', ...options });
  closers.push(() => c.close());
  return c.client;
}

async function poll(get, until, what, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const t = await get();
    if (until(t)) return t;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(t)} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('a 2026-07-28 client (SDK v2 + ext-tasks, tasks extension)', SKIP, () => {
  for (const [server, tool, args, text] of [
    ['a legacy server', 'fx__slow_compute', { seconds: 1, label: 'v2' }, /computed v2 after 1s/],
    ['a 2026-07-28 server', 'ms__sleep', { ms: 800 }, /slept 800/],
  ]) {
    test(`creates a task of ${server} and polls it to its result`, T, () =>
      withLogs(async () => {
        const { session } = await modernClient();
        const execution = await session.callTool(tool, args);
        assert.equal(execution.kind, 'task', 'the call became a task');
        assert.match(execution.handle.taskId, /^[A-Za-z0-9_-]{32}$/);
        const { outcome } = await withTimeout(execution.settle(), 15000, 'task settled');
        assert.equal(outcome.status, 'completed', JSON.stringify(outcome));
        assert.match(resultText(resultFromTaskOutcome(outcome)), text);
      }));
  }

  test('cancels a running task; input asked during a task is answered with tasks/update', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: 'fx__slow_compute', arguments: { seconds: 60 } });
      assert.equal(t.resultType, 'task');
      assert.deepEqual(await raw('tasks/cancel', { taskId: t.taskId }), { resultType: 'complete' });
      assert.equal((await raw('tasks/get', { taskId: t.taskId })).status, 'cancelled');

      const c = await raw('tools/call', { name: 'fx__confirm_delete', arguments: { filename: 'a.txt' } });
      const asked = await poll(() => raw('tasks/get', { taskId: c.taskId }), (x) => x.status === 'input_required', 'input_required');
      assert.equal(asked.inputRequests.confirm_delete.method, 'elicitation/create');
      const ack = await raw('tasks/update', { taskId: c.taskId, inputResponses: { confirm_delete: { action: 'accept', content: { confirm: true } } } });
      assert.deepEqual(ack, { resultType: 'complete' });
      const done = await poll(() => raw('tasks/get', { taskId: c.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.equal(resultText(done.result), 'deleted a.txt');
    }));

  test('a subscriptions/listen stream that names the task gets notifications/tasks to its end', T, () =>
    withLogs(async () => {
      const { raw, framing } = await modernClient();
      const t = await raw('tools/call', { name: 'fx__slow_compute', arguments: { seconds: 1, label: 'listen' } });
      const ac = new AbortController();
      const res = await fetch(gw.url, {
        method: 'POST',
        signal: ac.signal,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 'sub-1',
          method: 'subscriptions/listen',
          params: { notifications: { taskIds: [t.taskId, 'A'.repeat(32)] }, _meta: framing },
        }),
      });
      const seen = [];
      const decoder = new TextDecoder();
      let buf = '';
      try {
        await withTimeout(
          (async () => {
            for await (const chunk of res.body) {
              buf += decoder.decode(chunk, { stream: true });
              let i;
              while ((i = buf.indexOf('\n\n')) >= 0) {
                const ev = buf.slice(0, i);
                buf = buf.slice(i + 2);
                const data = ev.split('\n').find((l) => l.startsWith('data: ') && l.length > 6);
                if (data) seen.push(JSON.parse(data.slice(6)));
              }
              if (seen.some((m) => m.method === 'notifications/tasks' && m.params.status === 'completed')) return;
            }
          })(),
          10000,
          'notifications/tasks with the task completed',
        );
      } finally {
        ac.abort();
      }
      const ack = seen.find((m) => m.method === 'notifications/subscriptions/acknowledged');
      assert.deepEqual(ack.params.notifications.taskIds, [t.taskId], 'only the caller\'s own task is honoured');
      const done = seen.find((m) => m.method === 'notifications/tasks' && m.params.status === 'completed');
      assert.equal(done.params.taskId, t.taskId);
      assert.equal(done.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
      assert.match(resultText(done.params.result), /computed listen after 1s/);
    }));

  test('without the extension: the same tool runs as an ordinary call, tasks/get is -32021', T, () =>
    withLogs(async () => {
      const { client, raw } = await modernClient({ tasks: false });
      const r = await client.callTool({ name: 'fx__slow_compute', arguments: { seconds: 0.3 } });
      assert.match(resultText(r), /computed/);
      await assert.rejects(raw('tasks/get', { taskId: 'x'.repeat(32) }), (e) => e.code === -32021);
    }));
});

describe('a 2025-11-25 client (SDK v1, task param)', SKIP, () => {
  for (const [server, tool, args, text] of [
    ['a legacy server', 'fx__slow_compute', { seconds: 1, label: 'v1' }, /computed v1 after 1s/],
    ['a 2026-07-28 server', 'ms__sleep', { ms: 800 }, /slept 800/],
  ]) {
    test(`creates a task of ${server}, lists it, polls it and gets its result`, T, () =>
      withLogs(async () => {
        const client = await legacyClient();
        assert.ok(client.getServerCapabilities().tasks?.requests?.tools?.call, 'the gateway announces tasks for tools/call');
        const { task } = await client.request(
          { method: 'tools/call', params: { name: tool, arguments: args, task: { ttl: 60000 } } },
          CreateTaskResultSchema,
        );
        assert.equal(task.status, 'working');
        const { tasks } = await client.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
        assert.deepEqual(tasks.map((t) => t.taskId), [task.taskId], 'a session lists its own tasks');
        const done = await poll(
          () => client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema),
          (t) => t.status !== 'working',
          'task',
        );
        assert.equal(done.status, 'completed');
        const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
        assert.match(resultText(result), text);
        assert.equal(result._meta?.['io.modelcontextprotocol/related-task']?.taskId, task.taskId);
      }));
  }

  test('tasks/result waits for the end; tasks/cancel cancels; a terminal task is not cancelled again', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: 'fx__slow_compute', arguments: { seconds: 1, label: 'wait' }, task: {} } },
        CreateTaskResultSchema,
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
      assert.match(resultText(result), /computed wait after 1s/);
      const { task: long } = await client.request(
        { method: 'tools/call', params: { name: 'fx__slow_compute', arguments: { seconds: 60 }, task: {} } },
        CreateTaskResultSchema,
      );
      const cancelled = await client.request({ method: 'tasks/cancel', params: { taskId: long.taskId } }, CancelTaskResultSchema);
      assert.equal(cancelled.status, 'cancelled');
      await assert.rejects(
        client.request({ method: 'tasks/cancel', params: { taskId: long.taskId } }, CancelTaskResultSchema),
        (e) => e.code === -32602,
      );
    }));

  test('input a task waits for is asked on tasks/result, and the answer resumes it', T, () =>
    withLogs(async () => {
      const asked = [];
      const client = await legacyClient({
        capabilities: { elicitation: {} },
        setup: (c) =>
          c.setRequestHandler(ElicitRequestSchema, async (req) => {
            asked.push(req.params);
            return { action: 'accept', content: { confirm: true } };
          }),
      });
      const { task } = await client.request(
        { method: 'tools/call', params: { name: 'fx__confirm_delete', arguments: { filename: 'b.txt' }, task: {} } },
        CreateTaskResultSchema,
      );
      await poll(
        () => client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema),
        (t) => t.status === 'input_required',
        'input_required',
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
      assert.equal(resultText(result), 'deleted b.txt');
      assert.equal(asked.length, 1);
      assert.equal(asked[0]._meta?.['io.modelcontextprotocol/related-task']?.taskId, task.taskId);
      const done = await client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema);
      assert.equal(done.status, 'completed');
    }));

  test('a session holds at most 256 tasks; another session is not held back by it', T, () =>
    withLogs(async () => {
      const a = await legacyClient();
      const create = (c) =>
        c.request({ method: 'tools/call', params: { name: 'fx__slow_compute', arguments: { seconds: 0 }, task: {} } }, CreateTaskResultSchema);
      for (let i = 0; i < 256; i += 32) await Promise.all(Array.from({ length: 32 }, () => create(a)));
      await assert.rejects(create(a), (e) => e.code === -32003 && /256 tasks \(the limit per session\)/.test(e.message));
      const b = await legacyClient();
      const { task } = await create(b);
      assert.match(task.taskId, /^[A-Za-z0-9_-]{32}$/);
    }));

  test('a task is its session\'s: another session, and a 2026-07-28 client, get -32602', T, () =>
    withLogs(async () => {
      const a = await legacyClient();
      const b = await legacyClient();
      const { task } = await a.request(
        { method: 'tools/call', params: { name: 'fx__slow_compute', arguments: { seconds: 5 }, task: {} } },
        CreateTaskResultSchema,
      );
      await assert.rejects(b.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema), (e) => e.code === -32602);
      await assert.rejects(b.request({ method: 'tasks/cancel', params: { taskId: task.taskId } }, CancelTaskResultSchema), (e) => e.code === -32602);
      const { tasks } = await b.request({ method: 'tasks/list', params: {} }, ListTasksResultSchema);
      assert.deepEqual(tasks, []);
      const m = await modernClient();
      await assert.rejects(m.raw('tasks/get', { taskId: task.taskId }), (e) => e.code === -32602);
      const still = await a.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema);
      assert.equal(still.status, 'working');
      await a.request({ method: 'tasks/cancel', params: { taskId: task.taskId } }, CancelTaskResultSchema);
    }));
});
