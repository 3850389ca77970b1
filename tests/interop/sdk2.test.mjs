// The official SDK v2 client (`@modelcontextprotocol/client`) through the gateway, in both
// protocol eras: `legacy` (2025-11-25, initialize + session), pinned 2026-07-28 (stateless,
// per-request _meta, server/discover) and `auto` (probe server/discover, fall back).
//
// Topology: startTopology() — the gateway fronts server-everything (stdio, launched by the
// gateway) and our fixture (Streamable HTTP). With DIRECT=1 only the legacy-era tests run,
// against the upstreams themselves (neither speaks 2026-07-28); the modern ones are skipped.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { startTopology, startGateway, fixtureStdio, withTimeout, sleep, DIRECT, gatewayBinaryOrThrow } from './lib/gateway.mjs';
import { resultText, eventually } from './lib/client.mjs';

if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

const MODERN = '2026-07-28';
const LEGACY = '2025-11-25';
// A test's limit sits above the sum of the bounds it waits on (a connect of up to 15 s, calls of
// up to 25 s, a 10 s wait for progress, 5 s for the upstream to see a cancellation), so that the
// bound that names the problem fires first. Measured: each test under 2 s under ASan.
const T = { timeout: 60000 };
const NO_GATEWAY = DIRECT ? { skip: 'DIRECT=1: the upstreams speak 2025-11-25 only' } : {};
let topo;
const open = [];

before(async () => {
  topo = await startTopology();
});

after(async () => {
  for (const c of open) await withTimeout(c.close(), 5000, 'client close').catch(() => {});
  if (topo) await topo.stop();
});

async function withLogs(fn) {
  try {
    await fn();
  } catch (err) {
    if (topo) err.message += `\n${topo.logs().slice(-6000)}`;
    throw err;
  }
}

/** A fetch that records method, headers and JSON-RPC method of every request. */
function recordingFetch() {
  const requests = [];
  const f = async (input, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    let body;
    try {
      body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    } catch {
      body = undefined;
    }
    requests.push({ method: init.method ?? 'GET', headers, body });
    return fetch(input, init);
  };
  f.requests = requests;
  return f;
}

/**
 * Connects a v2 client. mode: 'legacy' | 'auto' | {pin}; which: 'everything' | 'fixture'.
 * setup(client) runs before connect (request/notification handlers).
 */
async function connect(mode, { which = 'everything', url: urlOverride, capabilities = {}, setup, timeoutMs = 15000 } = {}) {
  const url = urlOverride ?? (which === 'fixture' ? topo.fixtureUrl : topo.everythingUrl);
  const client = new Client({ name: 'gatehouse-interop-sdk2', version: '1.0.0' }, { capabilities, versionNegotiation: { mode } });
  if (setup) setup(client);
  const fetchRec = recordingFetch();
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: fetchRec });
  await withTimeout(client.connect(transport), timeoutMs, `SDK v2 connect (${JSON.stringify(mode)}) to ${url}`);
  open.push(client);
  return { client, transport, requests: fetchRec.requests };
}

const ev = (n) => topo.name('everything', n);
const fx = (n) => topo.name('fixture', n);
const names = async (client) => {
  const out = [];
  let cursor;
  for (let i = 0; i < 50; i++) {
    const r = await client.listTools(cursor ? { cursor } : {});
    out.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
    if (!cursor) return out;
  }
  throw new Error('tools/list: more than 50 pages');
};
const sampler = (seen) => async (req) => {
  seen.push(req.params);
  return { role: 'assistant', content: { type: 'text', text: 'sampled-by-sdk2' }, model: 'sdk2-model', stopReason: 'endTurn' };
};

// Shared bodies (both eras) ----------------------------------------------------------

async function toolsBody(mode) {
  const { client } = await connect(mode);
  const all = await names(client);
  for (const n of [ev('echo'), ev('get-structured-content')]) assert.ok(all.includes(n), `tools/list has ${n}`);
  const r = await client.callTool({ name: ev('echo'), arguments: { message: 'hello sdk2' } });
  assert.equal(resultText(r), 'Echo: hello sdk2');
  assert.notEqual(r.isError, true);
  const s = await client.callTool({ name: ev('get-structured-content'), arguments: { location: 'Chicago' } });
  assert.equal(typeof s.structuredContent?.temperature, 'number');
  assert.equal(typeof s.structuredContent?.conditions, 'string');
  assert.deepEqual(JSON.parse(resultText(s)), s.structuredContent);
  const { client: f } = await connect(mode, { which: 'fixture' });
  const fxAll = await names(f);
  for (const n of [fx('test_simple_text'), fx('test_echo')]) assert.ok(fxAll.includes(n), `tools/list has ${n}`);
  const e = await f.callTool({ name: fx('test_echo'), arguments: { message: 'm2' } });
  assert.deepEqual(e.structuredContent, { echo: 'm2' });
  const err = await f.callTool({ name: fx('test_error_handling'), arguments: {} });
  assert.equal(err.isError, true);
  assert.match(resultText(err), /intentionally returns an error/);
  return { client, f };
}

async function resourcesPromptsBody(mode) {
  const { client: f } = await connect(mode, { which: 'fixture' });
  const t = await f.readResource({ uri: 'test://static-text' });
  assert.deepEqual(t.contents, [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }]);
  const tmpl = await f.readResource({ uri: 'test://template/88/data' });
  assert.deepEqual(JSON.parse(tmpl.contents[0].text), { id: '88', templateTest: true, data: 'Data for ID: 88' });
  const bin = await f.readResource({ uri: 'test://static-binary' });
  assert.equal(Buffer.from(bin.contents[0].blob, 'base64').subarray(1, 4).toString(), 'PNG');
  const listed = (await f.listResources()).resources.map((r) => r.uri);
  assert.ok(listed.includes('test://static-text'), `resources/list: ${listed.join(', ')}`);
  await assert.rejects(f.readResource({ uri: 'test://no-such-resource' }), /-3260[2]|-32002|not found/i);
  const p = await f.getPrompt({ name: fx('test_prompt_with_arguments'), arguments: { arg1: 'A1', arg2: 'B2' } });
  assert.equal(p.messages[0].content.text, "Prompt with arguments: arg1='A1', arg2='B2'");
  const { client: a } = await connect(mode);
  const args = await a.getPrompt({ name: ev('args-prompt'), arguments: { city: 'Lisbon' } });
  assert.match(JSON.stringify(args.messages), /Lisbon/);
}

async function progressBody(mode) {
  const { client } = await connect(mode);
  const progress = [];
  const r = await client.callTool(
    { name: ev('trigger-long-running-operation'), arguments: { duration: 1, steps: 4 } },
    { onprogress: (p) => progress.push(p), timeout: 20000 },
  );
  assert.match(resultText(r), /Long running operation completed/);
  assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3, 4]);
  assert.ok(progress.every((p) => p.total === 4));
}

async function cancellationBody(mode, url) {
  const { client } = await connect(mode, { which: 'fixture', url });
  const count = async () => (await client.callTool({ name: fx('test_cancelled_count'), arguments: {} })).structuredContent.cancelled;
  const before = await count();
  const ac = new AbortController();
  let firstProgress;
  const gotProgress = new Promise((resolve) => (firstProgress = resolve));
  const call = client.callTool({ name: fx('test_long_running'), arguments: { seconds: 20 } }, { signal: ac.signal, onprogress: () => firstProgress(), timeout: 25000 });
  call.catch(() => {});
  await withTimeout(gotProgress, 10000, 'first progress notification');
  const t0 = Date.now();
  ac.abort('sdk2 interop test cancels');
  await assert.rejects(call, (err) => /abort|cancel/i.test(String(err?.name) + String(err?.message) + String(err)));
  assert.ok(Date.now() - t0 < 2000, 'the call rejected promptly');
  await eventually(async () => (await count()) > before, { timeoutMs: 5000, what: 'the upstream (fixture) to see the cancellation' });
  const r = await client.callTool({ name: fx('test_simple_text'), arguments: {} });
  assert.equal(resultText(r), 'This is a simple text response for testing.');
}

// Legacy era ---------------------------------------------------------------------------

describe('SDK v2 client, era legacy (2025-11-25)', () => {
  test('connect: initialize, session id, no server/discover probe', T, () =>
    withLogs(async () => {
      const { client, transport, requests } = await connect('legacy');
      assert.equal(client.getProtocolEra(), 'legacy');
      assert.equal(client.getNegotiatedProtocolVersion(), LEGACY);
      assert.equal(client.getDiscoverResult(), undefined);
      assert.ok(transport.sessionId, 'a legacy session has an Mcp-Session-Id');
      const methods = requests.map((r) => r.body?.method).filter(Boolean);
      assert.equal(methods[0], 'initialize');
      assert.ok(!methods.includes('server/discover'), `no probe in legacy mode: ${methods.join(', ')}`);
      if (!DIRECT) assert.equal(client.getServerVersion()?.name, 'gatehouse');
    }));

  test('tools/list, tools/call echo and structured content', T, () => withLogs(() => toolsBody('legacy')));
  test('resources/read and prompts/get', T, () => withLogs(() => resourcesPromptsBody('legacy')));
  test('progress: onprogress in order', T, () => withLogs(() => progressBody('legacy')));
  test('cancellation: AbortSignal rejects the call and cancels it upstream', T, () => withLogs(() => cancellationBody('legacy')));

  test('sampling: server-to-client sampling/createMessage reaches the client handler', T, () =>
    withLogs(async () => {
      const seen = [];
      const { client } = await connect('legacy', {
        capabilities: { sampling: {} },
        setup: (c) => c.setRequestHandler('sampling/createMessage', sampler(seen)),
      });
      const r = await client.callTool({ name: ev('trigger-sampling-request'), arguments: { prompt: 'Say hi from sdk2', maxTokens: 12 } }, { timeout: 10000 });
      assert.equal(seen.length, 1, 'exactly one sampling request reached the client');
      assert.match(JSON.stringify(seen[0].messages), /Say hi from sdk2/);
      assert.match(resultText(r), /sampled-by-sdk2/);
    }));

  test('elicitation: server-to-client elicitation/create (form) from both upstreams', T, () =>
    withLogs(async () => {
      const seen = [];
      const content = { username: 'ada', email: 'ada@example.org', name: 'Ada Lovelace', check: true, integer: 7 };
      const opts = {
        capabilities: { elicitation: { form: {} } },
        setup: (c) =>
          c.setRequestHandler('elicitation/create', async (req) => {
            seen.push(req.params);
            return { action: 'accept', content };
          }),
      };
      const { client } = await connect('legacy', opts);
      const r = await client.callTool({ name: ev('trigger-elicitation-request'), arguments: {} }, { timeout: 10000 });
      assert.match(resultText(r), /Favorite Integer: 7/);
      const { client: f } = await connect('legacy', { ...opts, which: 'fixture' });
      const e = await f.callTool({ name: fx('test_elicitation'), arguments: { message: 'who?' } }, { timeout: 10000 });
      assert.match(resultText(e), /action=accept/);
      assert.match(resultText(e), /ada@example\.org/);
      assert.equal(seen.length, 2);
    }));
});

// Modern era (pinned) ------------------------------------------------------------------

const PIN = { pin: MODERN };

describe('SDK v2 client, pinned 2026-07-28', NO_GATEWAY, () => {
  test('connect: server/discover negotiation, stateless requests with the modern headers', T, () =>
    withLogs(async () => {
      const { client, transport, requests } = await connect(PIN);
      assert.equal(client.getProtocolEra(), 'modern');
      assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
      const d = client.getDiscoverResult();
      assert.ok(d, 'a DiscoverResult was recorded');
      assert.ok(d.supportedVersions.includes(MODERN) && d.supportedVersions.includes(LEGACY), `supportedVersions: ${d.supportedVersions}`);
      assert.equal(d._meta?.['io.modelcontextprotocol/serverInfo']?.name, 'gatehouse');
      assert.ok(d.capabilities?.tools && d.capabilities?.prompts && d.capabilities?.resources, JSON.stringify(d.capabilities));
      assert.equal(d.resultType, 'complete');
      const methods = requests.map((r) => r.body?.method).filter(Boolean);
      assert.ok(!methods.includes('initialize'), `no initialize: ${methods.join(', ')}`);
      assert.equal(methods[0], 'server/discover');
      assert.equal(transport.sessionId, undefined, 'no Mcp-Session-Id in the stateless era');
      const n0 = requests.length;
      await client.callTool({ name: ev('echo'), arguments: { message: 'hdr' } });
      const call = requests.slice(n0).find((r) => r.body?.method === 'tools/call');
      assert.equal(call.headers.get('mcp-protocol-version'), MODERN);
      assert.equal(call.headers.get('mcp-method'), 'tools/call');
      assert.equal(call.headers.get('mcp-name'), ev('echo'));
      assert.equal(call.headers.get('mcp-session-id'), null);
      assert.equal(call.body.params._meta?.['io.modelcontextprotocol/protocolVersion'], MODERN);
    }));

  test('tools/list (private, ttlMs 0), tools/call echo and structured content', T, () =>
    withLogs(async () => {
      const { client } = await toolsBody(PIN);
      const page = await client.listTools();
      assert.equal(page.cacheScope, 'private');
      assert.equal(page.ttlMs, 0);
    }));
  test('resources/read and prompts/get', T, () => withLogs(() => resourcesPromptsBody(PIN)));
  test('progress: onprogress in order', T, () => withLogs(() => progressBody(PIN)));
  test('cancellation: AbortSignal rejects the call and the gateway cancels it upstream', T, () => withLogs(() => cancellationBody(PIN)));
  test('cancellation with a stdio upstream: the closed stream becomes notifications/cancelled on the pipe', T, () =>
    withLogs(async () => {
      const gw = await startGateway({ servers: [fixtureStdio('fixture')], prefix: { mode: 'when-needed' } });
      try {
        await cancellationBody(PIN, gw.url);
      } catch (err) {
        err.message += `\n--- gatehouse (fixture over stdio) ---\n${gw.logs().slice(-4000)}`;
        throw err;
      } finally {
        const r = await gw.stop();
        assert.deepEqual(r.leaked, [], 'the gateway stopped its stdio upstream');
      }
    }));

  test('subscriptions/listen: acknowledged filter, tools/list_changed from test_dynamic_tool', T, () =>
    withLogs(async () => {
      let changed = 0;
      const { client } = await connect(PIN, { setup: (c) => c.setNotificationHandler('notifications/tools/list_changed', () => void changed++) });
      const sub = await withTimeout(client.listen({ toolsListChanged: true }), 10000, 'subscriptions/listen acknowledgement');
      assert.deepEqual(sub.honoredFilter, { toolsListChanged: true });
      try {
        assert.ok(!(await names(client)).includes(fx('test_dynamic_added')));
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: true } });
        await eventually(() => changed >= 1, { what: 'notifications/tools/list_changed on the listen stream (enable)' });
        assert.ok((await names(client)).includes(fx('test_dynamic_added')));
        assert.equal(resultText(await client.callTool({ name: fx('test_dynamic_added'), arguments: {} })), 'Dynamic tool called');
        const before = changed;
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: false } });
        await eventually(() => changed > before, { what: 'notifications/tools/list_changed on the listen stream (disable)' });
        assert.ok(!(await names(client)).includes(fx('test_dynamic_added')));
      } finally {
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: false } }).catch(() => {});
        await sub.close();
      }
      assert.equal(await withTimeout(sub.closed, 5000, 'subscription closed'), 'local');
    }));

  // A legacy server's sampling/elicitation request during a modern call reaches the v2 client as an
  // InputRequiredResult (MRTR); the SDK runs its handler and retries, and the call completes.
  test('MRTR: sampling/elicitation during a modern call reach the client as input_required and complete', T, () =>
    withLogs(async () => {
      const seen = [];
      const elicited = [];
      const { client } = await connect(PIN, {
        capabilities: { sampling: {}, elicitation: { form: {} } },
        setup: (c) => {
          c.setRequestHandler('sampling/createMessage', sampler(seen));
          c.setRequestHandler('elicitation/create', async (req) => {
            elicited.push(req.params);
            return { action: 'accept', content: { username: 'ada', email: 'ada@example.org' } };
          });
        },
      });
      const r = await client.callTool({ name: ev('trigger-sampling-request'), arguments: { prompt: 'mrtr', maxTokens: 5 } }, { timeout: 10000 });
      assert.equal(seen.length, 1);
      assert.match(resultText(r), /sampled-by-sdk2/);
      const e = await client.callTool({ name: fx('test_elicitation'), arguments: { message: 'who?' } }, { timeout: 10000 });
      assert.equal(elicited.length, 1);
      assert.match(resultText(e), /ada@example\.org/);
    }));
});

// auto negotiation ---------------------------------------------------------------------

describe('SDK v2 client, versionNegotiation auto', NO_GATEWAY, () => {
  test('auto picks 2026-07-28 against the gateway and works', T, () =>
    withLogs(async () => {
      const { client, transport, requests } = await connect('auto');
      assert.equal(client.getProtocolEra(), 'modern');
      assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
      assert.ok(client.getDiscoverResult()?.supportedVersions.includes(MODERN));
      const methods = requests.map((r) => r.body?.method).filter(Boolean);
      assert.equal(methods[0], 'server/discover');
      assert.ok(!methods.includes('initialize'), `no fallback to initialize: ${methods.join(', ')}`);
      assert.equal(transport.sessionId, undefined);
      assert.equal(resultText(await client.callTool({ name: ev('echo'), arguments: { message: 'auto' } })), 'Echo: auto');
    }));

  test('auto + ClientOptions.listChanged: the SDK opens subscriptions/listen itself and refreshes tools', T, () =>
    withLogs(async () => {
      const url = topo.everythingUrl;
      const seen = [];
      const client = new Client(
        { name: 'gatehouse-interop-sdk2', version: '1.0.0' },
        { versionNegotiation: { mode: 'auto' }, listChanged: { tools: { onChanged: (err, tools) => seen.push(err ? `error: ${err.message}` : tools.map((t) => t.name)) } } },
      );
      const fetchRec = recordingFetch();
      await withTimeout(client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: fetchRec })), 15000, 'auto connect');
      open.push(client);
      assert.equal(client.getProtocolEra(), 'modern');
      await eventually(() => fetchRec.requests.some((r) => r.body?.method === 'subscriptions/listen'), { what: 'the SDK to open subscriptions/listen' });
      await sleep(300); // the acknowledgement
      try {
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: true } });
        await eventually(() => seen.some((s) => Array.isArray(s) && s.includes(fx('test_dynamic_added'))), { what: `refreshed tool list with test_dynamic_added: ${JSON.stringify(seen.map((s) => s.length ?? s))}` });
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: false } });
        await eventually(() => Array.isArray(seen.at(-1)) && !seen.at(-1).includes(fx('test_dynamic_added')), { what: 'refreshed tool list without test_dynamic_added' });
      } finally {
        await client.callTool({ name: fx('test_dynamic_tool'), arguments: { enable: false } }).catch(() => {});
      }
      assert.ok(seen.every((s) => Array.isArray(s)), `no refresh error: ${JSON.stringify(seen.filter((s) => !Array.isArray(s)))}`);
    }));
});
