// Tasks that the server runs itself, bridged by the gateway: server-everything (SDK v1,
// 2025-11-25, over stdio) declares capabilities.tasks.requests.tools.call and registers
// simulate-research-query with execution.taskSupport "required" through the SDK's experimental
// tasks API: an ordinary tools/call of it fails ("requires task augmentation"). The gateway's task
// for a client's call asks the server for a task of its own (the `task` param) and follows it
// with tasks/result, whose elicitation (ambiguous: true) becomes the gateway task's
// input_required; tasks/cancel of the gateway task reaches the server as tasks/cancel. Clients of
// both eras: the SDK v2 client pinned to 2026-07-28 with the official tasks client
// (@modelcontextprotocol/ext-tasks), and the SDK v1 client (2025-11-25) with its `task` param.
// The clients only ever see the gateway's task ids (docs/architecture.md, "Tasks").
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateTaskResultSchema,
  GetTaskResultSchema,
  CancelTaskResultSchema,
  CallToolResultSchema,
  ElicitRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { createTaskSessionFromClient, resultFromTaskOutcome } from '@modelcontextprotocol/ext-tasks/client';
import path from 'node:path';
import { startGateway, startEverythingHttp, everythingStdio, spawnTracked, withTimeout, sleep, DIRECT, INTEROP_DIR } from './lib/gateway.mjs';
import { connectClient, resultText } from './lib/client.mjs';

const TASKS = 'io.modelcontextprotocol/tasks';
const MINI = path.resolve(INTEROP_DIR, '..', 'integration', 'fixtures', 'mini-server.mjs');
const TOOL = 'ev__simulate-research-query';
const RELATED = 'io.modelcontextprotocol/related-task';
// The tool runs 4 stages of 1 s each: a test's limit sits well above that and the connects.
const T = { timeout: 60000 };
const SKIP = DIRECT ? { skip: 'DIRECT=1: these tests are about the gateway following a server\'s task' } : {};

let gw;
let evHttp; // the same server over Streamable HTTP, as "eh"
let mth; // the mini fixture's --own-tasks over Streamable HTTP, as "mh"
const closers = [];

before(async () => {
  if (DIRECT) return;
  evHttp = await startEverythingHttp();
  mth = spawnTracked(process.execPath, [MINI, '--modern', '--own-tasks', '--http', '--label', 'mh'], { name: 'mini-own-tasks-http' });
  const port = await withTimeout(
    new Promise((resolve) => {
      const off = mth.onLine((l) => {
        const m = /^listening (\d+)$/.exec(l);
        if (m) {
          off();
          resolve(Number(m[1]));
        }
      });
    }),
    10000,
    'mini fixture (HTTP) port',
  );
  gw = await startGateway({
    prefix: { mode: 'always' },
    servers: [
      everythingStdio('ev'),
      { name: 'eh', transport: 'http', url: evHttp.url },
      // a 2026-07-28 server that runs tasks itself (the tasks extension): the mini fixture
      { name: 'mt', command: process.execPath, args: [MINI, '--modern', '--own-tasks', '--label', 'mt'] },
      { name: 'mh', transport: 'http', url: `http://127.0.0.1:${port}/mcp` },
    ],
  });
});

after(async () => {
  for (const c of closers) await c().catch(() => {});
  if (gw) await gw.stop();
  if (evHttp) await evHttp.stop();
  if (mth) await mth.stop();
});

async function withLogs(fn) {
  try {
    await fn();
  } catch (err) {
    if (gw) err.message += `\n--- gateway log ---\n${gw.logs().slice(-5000)}`;
    throw err;
  }
}

/** The SDK v2 client pinned to 2026-07-28, declaring the tasks extension, with ext-tasks over it
 * (the same host path as tasks.test.mjs: ext-tasks' rawDispatch is a POST with the revision's
 * headers), and `raw` for requests sent by hand. */
async function modernClient({ capabilities = {} } = {}) {
  const caps = { ...capabilities, extensions: { [TASKS]: {} } };
  const info = { name: 'gatehouse-interop-server-tasks', version: '1.0.0' };
  const client = new Client2(info, { capabilities: caps, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await withTimeout(client.connect(new Transport2(new URL(gw.url))), 15000, 'SDK v2 connect');
  let n = 0;
  const rawDispatch = async (req) => {
    const request = { jsonrpc: '2.0', id: `s-${++n}`, ...req };
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
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': info, 'io.modelcontextprotocol/clientCapabilities': caps };
  const raw = async (method, params) => {
    const r = await rawDispatch({ method, params: { ...params, _meta: meta } });
    if (r.error) throw Object.assign(new Error(r.error.message), { code: r.error.code });
    return r.result;
  };
  return { session, raw };
}

async function legacyClient(options = {}) {
  const c = await connectClient(gw.url, { name: 'gatehouse-interop-server-tasks-v1', ...options });
  closers.push(() => c.close());
  return c.client;
}

async function poll(get, until, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const t = await get();
    if (until(t)) return t;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(t)} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The server's own word (its stderr, which the gateway logs) that a task of its was cancelled:
 * its research loop's next status update is refused by its task store ("from terminal status
 * "cancelled" to "working""). Counts such lines. */
function serverCancellations(logs = gw.logs()) {
  return (logs.match(/from terminal status \\?"cancelled\\?" to \\?"working/g) ?? []).length;
}

/** No id the server drew (32 hex digits, its InMemoryTaskStore's) is shown to the client. */
function assertNoServerTaskId(value) {
  assert.doesNotMatch(JSON.stringify(value), /"[0-9a-f]{32}"/, 'a server task id reached the client');
}

describe('a server that runs tasks itself (server-everything, legacy)', SKIP, () => {
  test('the tool is listed as requiring a task', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { tools } = await client.listTools();
      const tool = tools.find((t) => t.name === TOOL);
      assert.equal(tool?.execution?.taskSupport, 'required');
    }));

  test('2026-07-28 client: the call becomes a task that settles with the server\'s report', T, () =>
    withLogs(async () => {
      const { session } = await modernClient();
      const execution = await session.callTool(TOOL, { topic: 'gateways' });
      assert.equal(execution.kind, 'task', 'the call became a task');
      assert.match(execution.handle.taskId, /^[A-Za-z0-9_-]{32}$/, 'the gateway\'s own id');
      const { outcome } = await withTimeout(execution.settle(), 20000, 'task settled');
      assert.equal(outcome.status, 'completed', JSON.stringify(outcome));
      const result = resultFromTaskOutcome(outcome);
      assert.match(resultText(result), /# Research Report: gateways/);
      assert.match(resultText(result), /Stage 4: Generating report ✓/);
      assert.equal(result._meta?.[RELATED], undefined, 'the server\'s related-task is not passed on');
    }));

  test('2026-07-28 client: an ambiguous query is input_required, answered with tasks/update', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: TOOL, arguments: { topic: 'python', ambiguous: true } });
      assert.equal(t.resultType, 'task');
      const asked = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      const [key, req] = Object.entries(asked.inputRequests)[0];
      assert.equal(req.method, 'elicitation/create');
      assert.match(req.params.message, /"python" could have multiple interpretations/);
      assertNoServerTaskId(asked);
      const ack = await raw('tasks/update', { taskId: t.taskId, inputResponses: { [key]: { action: 'accept', content: { interpretation: 'snake' } } } });
      assert.deepEqual(ack, { resultType: 'complete' });
      const done = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.match(resultText(done.result), /# Research Report: python \(snake\)/);
      assertNoServerTaskId(done);
    }));

  test('the server\'s request goes to the task it names, not to a later call in flight', T, () =>
    withLogs(async () => {
      // Over stdio a server request names no call; the newest call in flight is taken for it
      // unless the request names its task (related-task): here a long call, started after the
      // task, is the newest when the server asks for the task's clarification (at ~2 s).
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: TOOL, arguments: { topic: 'python', ambiguous: true } });
      assert.equal(t.resultType, 'task');
      const v1 = await legacyClient();
      const long = v1.callTool({ name: 'ev__trigger-long-running-operation', arguments: { duration: 5, steps: 5 } }, undefined, { timeout: 30000 });
      const asked = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      const [key] = Object.keys(asked.inputRequests);
      await raw('tasks/update', { taskId: t.taskId, inputResponses: { [key]: { action: 'accept', content: { interpretation: 'comedy' } } } });
      const done = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.match(resultText(done.result), /# Research Report: python \(comedy\)/);
      assert.match(resultText(await long), /Long running operation completed/);
    }));

  test('2026-07-28 client: tasks/cancel cancels the server\'s task', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient();
      const before = serverCancellations();
      const t = await raw('tools/call', { name: TOOL, arguments: { topic: 'cancel-me' } });
      assert.equal(t.resultType, 'task');
      assert.deepEqual(await raw('tasks/cancel', { taskId: t.taskId }), { resultType: 'complete' });
      assert.equal((await raw('tasks/get', { taskId: t.taskId })).status, 'cancelled');
      await poll(async () => serverCancellations(), (n) => n > before, 'the server\'s task cancelled', 10000);
    }));

  test('2026-07-28 client: a task cancelled while it waits for input cancels the server\'s task', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: TOOL, arguments: { topic: 'python', ambiguous: true } });
      await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      assert.deepEqual(await raw('tasks/cancel', { taskId: t.taskId }), { resultType: 'complete' });
      assert.equal((await raw('tasks/get', { taskId: t.taskId })).status, 'cancelled');
      // The server answers tasks/cancel with its task's status. (Its request for input is not
      // answered: its research loop waits on it, so its stderr says nothing more here.)
      await poll(async () => /answered tasks\/cancel of its task: status cancelled/.test(gw.logs()), (x) => x, 'the server\'s task cancelled', 10000);
    }));

  test('2025-11-25 client: task param, tasks/get to the end, tasks/result with the report', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: TOOL, arguments: { topic: 'relays' }, task: { ttl: 60000 } } },
        CreateTaskResultSchema,
      );
      assert.equal(task.status, 'working');
      assert.match(task.taskId, /^[A-Za-z0-9_-]{32}$/, 'the gateway\'s own id');
      const messages = new Set();
      const done = await poll(
        () => client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema),
        (t) => {
          if (t.statusMessage) messages.add(t.statusMessage);
          return t.status !== 'working';
        },
        'task',
      );
      assert.equal(done.status, 'completed');
      // The server's own status messages (its notifications/tasks/status), one per stage.
      assert.ok(messages.has('Analyzing content...') && messages.has('Generating report...'), [...messages].join(' | '));
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
      assert.match(resultText(result), /# Research Report: relays/);
      assert.equal(result._meta?.[RELATED]?.taskId, task.taskId, 'related-task names the gateway\'s task');
    }));

  test('2025-11-25 client: the clarification is asked on tasks/result and the answer resumes it', T, () =>
    withLogs(async () => {
      const asked = [];
      const client = await legacyClient({
        capabilities: { elicitation: {} },
        setup: (c) =>
          c.setRequestHandler(ElicitRequestSchema, async (req) => {
            asked.push(req.params);
            return { action: 'accept', content: { interpretation: 'historical' } };
          }),
      });
      const { task } = await client.request(
        { method: 'tools/call', params: { name: TOOL, arguments: { topic: 'tea', ambiguous: true }, task: {} } },
        CreateTaskResultSchema,
      );
      await poll(
        () => client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema),
        (t) => t.status === 'input_required',
        'input_required',
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema, { timeout: 30000 });
      assert.match(resultText(result), /# Research Report: tea \(historical\)/);
      assert.equal(asked.length, 1);
      assert.equal(asked[0]._meta?.[RELATED]?.taskId, task.taskId, 'the request names the gateway\'s task');
      const done = await client.request({ method: 'tasks/get', params: { taskId: task.taskId } }, GetTaskResultSchema);
      assert.equal(done.status, 'completed');
    }));

  test('2025-11-25 client: tasks/cancel cancels the server\'s task', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const before = serverCancellations();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: TOOL, arguments: { topic: 'stop' }, task: {} } },
        CreateTaskResultSchema,
      );
      await sleep(200);
      const cancelled = await client.request({ method: 'tasks/cancel', params: { taskId: task.taskId } }, CancelTaskResultSchema);
      assert.equal(cancelled.status, 'cancelled');
      await poll(async () => serverCancellations(), (n) => n > before, 'the server\'s task cancelled', 10000);
    }));
});

describe('the same server over Streamable HTTP', SKIP, () => {
  const HTTP_TOOL = 'eh__simulate-research-query';

  test('2026-07-28 client: an ambiguous query is input_required, answered, completed', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: HTTP_TOOL, arguments: { topic: 'python', ambiguous: true } });
      assert.equal(t.resultType, 'task');
      const asked = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      const [key, req] = Object.entries(asked.inputRequests)[0];
      assert.equal(req.method, 'elicitation/create');
      assertNoServerTaskId(asked);
      await raw('tasks/update', { taskId: t.taskId, inputResponses: { [key]: { action: 'accept', content: { interpretation: 'programming' } } } });
      const done = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.match(resultText(done.result), /# Research Report: python \(programming\)/);
    }));

  test('2025-11-25 client: tasks/result with the report; tasks/cancel reaches the server', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: HTTP_TOOL, arguments: { topic: 'http' }, task: {} } },
        CreateTaskResultSchema,
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema, { timeout: 30000 });
      assert.match(resultText(result), /# Research Report: http/);
      const before = serverCancellations(evHttp.logs());
      const { task: long } = await client.request(
        { method: 'tools/call', params: { name: HTTP_TOOL, arguments: { topic: 'stop' }, task: {} } },
        CreateTaskResultSchema,
      );
      await sleep(200);
      const cancelled = await client.request({ method: 'tasks/cancel', params: { taskId: long.taskId } }, CancelTaskResultSchema);
      assert.equal(cancelled.status, 'cancelled');
      await poll(async () => serverCancellations(evHttp.logs()), (n) => n > before, 'the server\'s task cancelled', 10000);
    }));
});

describe('a 2026-07-28 server that runs tasks itself (the mini fixture, tasks extension)', SKIP, () => {
  const states = async (client) => JSON.parse(resultText(await client.callTool({ name: 'mt__task-states', arguments: {} })));

  test('2026-07-28 client: the gateway polls the server\'s task to its result', T, () =>
    withLogs(async () => {
      const { session } = await modernClient();
      const execution = await session.callTool('mt__research', { ms: 800 });
      assert.equal(execution.kind, 'task');
      assert.match(execution.handle.taskId, /^[A-Za-z0-9_-]{32}$/, 'the gateway\'s own id');
      assert.doesNotMatch(execution.handle.taskId, /^mt/);
      const { outcome } = await withTimeout(execution.settle(), 15000, 'task settled');
      assert.equal(outcome.status, 'completed', JSON.stringify(outcome));
      assert.equal(resultText(resultFromTaskOutcome(outcome)), 'researched 800 ms');
    }));

  test('2025-11-25 client: task param, tasks/result; a failed server task fails the gateway\'s', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: 'mt__research', arguments: { ms: 300 }, task: {} } },
        CreateTaskResultSchema,
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
      assert.equal(resultText(result), 'researched 300 ms');
      const { task: bad } = await client.request(
        { method: 'tools/call', params: { name: 'mt__research', arguments: { ms: 100, fail: true }, task: {} } },
        CreateTaskResultSchema,
      );
      const failed = await poll(
        () => client.request({ method: 'tasks/get', params: { taskId: bad.taskId } }, GetTaskResultSchema),
        (t) => t.status !== 'working',
        'failed',
      );
      assert.equal(failed.status, 'failed');
      assert.equal(failed.statusMessage, 'research failed after 100 ms');
    }));

  test('2026-07-28 client: the server task\'s input_required is relayed, tasks/update answers it upstream', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient({ capabilities: { elicitation: {} } });
      const t = await raw('tools/call', { name: 'mt__research', arguments: { ms: 200, ask: true } });
      assert.equal(t.resultType, 'task');
      const asked = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      const [key, req] = Object.entries(asked.inputRequests)[0];
      assert.equal(req.method, 'elicitation/create');
      assert.doesNotMatch(JSON.stringify(asked), /mt[0-9a-f]{30}|gatehouse-task/, 'no server task id, no state');
      assert.deepEqual(await raw('tasks/update', { taskId: t.taskId, inputResponses: { [key]: { action: 'accept', content: { name: 'ada' } } } }), { resultType: 'complete' });
      const done = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.equal(done.status, 'completed', JSON.stringify(done));
      assert.equal(resultText(done.result), 'researched 200 ms for ada');
      assert.match(gw.logs(), /mini-server: task mt[0-9a-f]{30} answered/, 'the server took the answer (tasks/update)');
    }));

  test('2025-11-25 client: the server task\'s input is asked on tasks/result and answered', T, () =>
    withLogs(async () => {
      const client = await legacyClient({
        capabilities: { elicitation: {} },
        setup: (c) => c.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'grace' } })),
      });
      const { task } = await client.request(
        { method: 'tools/call', params: { name: 'mt__research', arguments: { ms: 100, ask: true }, task: {} } },
        CreateTaskResultSchema,
      );
      const result = await client.request({ method: 'tasks/result', params: { taskId: task.taskId } }, CallToolResultSchema);
      assert.equal(resultText(result), 'researched 100 ms for grace');
    }));

  test('tasks/cancel reaches the server: its task is cancelled', T, () =>
    withLogs(async () => {
      const { raw } = await modernClient();
      const t = await raw('tools/call', { name: 'mt__research', arguments: { ms: 60000 } });
      assert.equal(t.resultType, 'task');
      assert.deepEqual(await raw('tasks/cancel', { taskId: t.taskId }), { resultType: 'complete' });
      await poll(async () => /mini-server: task mt[0-9a-f]{30} cancelled/.test(gw.logs()), (x) => x, 'the server\'s task cancelled', 10000);
      const v1 = await legacyClient();
      assert.ok((await states(v1)).includes('cancelled'));
    }));
});

describe('the same 2026-07-28 server over Streamable HTTP', SKIP, () => {
  test('2026-07-28 client: polled to its result; its input answered with tasks/update upstream', T, () =>
    withLogs(async () => {
      const { session, raw } = await modernClient({ capabilities: { elicitation: {} } });
      const execution = await session.callTool('mh__research', { ms: 300 });
      assert.equal(execution.kind, 'task');
      const { outcome } = await withTimeout(execution.settle(), 15000, 'task settled');
      assert.equal(resultText(resultFromTaskOutcome(outcome)), 'researched 300 ms');
      const t = await raw('tools/call', { name: 'mh__research', arguments: { ms: 100, ask: true } });
      const asked = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'input_required', 'input_required');
      const [key] = Object.keys(asked.inputRequests);
      await raw('tasks/update', { taskId: t.taskId, inputResponses: { [key]: { action: 'accept', content: { name: 'lin' } } } });
      const done = await poll(() => raw('tasks/get', { taskId: t.taskId }), (x) => x.status === 'completed' || x.status === 'failed', 'completed');
      assert.equal(resultText(done.result), 'researched 100 ms for lin', JSON.stringify(done));
    }));

  test('2025-11-25 client: tasks/cancel reaches the server over HTTP', T, () =>
    withLogs(async () => {
      const client = await legacyClient();
      const { task } = await client.request(
        { method: 'tools/call', params: { name: 'mh__research', arguments: { ms: 60000 }, task: {} } },
        CreateTaskResultSchema,
      );
      await sleep(300);
      const cancelled = await client.request({ method: 'tasks/cancel', params: { taskId: task.taskId } }, CancelTaskResultSchema);
      assert.equal(cancelled.status, 'cancelled');
      await poll(async () => /mini-server: task mt[0-9a-f]{30} cancelled/.test(mth.logs()), (x) => x, 'the server\'s task cancelled', 10000);
    }));
});
