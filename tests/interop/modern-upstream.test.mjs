// Real MCP clients through the gateway to MODERN (2026-07-28-only) upstreams: the mini fixture
// in its --modern mode (tests/integration/fixtures/mini-server.mjs), once over stdio (launched by
// the gateway, "ms") and once over Streamable HTTP ("mh"). Neither answers initialize, and
// neither can send a server-to-client request: sampling, elicitation and roots reach clients only
// through the gateway's MRTR bridge (legacy clients) or as relayed InputRequiredResults (modern).
//
// Clients: the SDK v1 client (@modelcontextprotocol/sdk, legacy), the SDK v2 client
// (@modelcontextprotocol/client) in legacy mode and pinned to 2026-07-28.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { startGateway, spawnTracked, withTimeout, sleep, INTEROP_DIR, DIRECT } from './lib/gateway.mjs';
import { connectClient, resultText, eventually } from './lib/client.mjs';

const MINI = path.resolve(INTEROP_DIR, '..', 'integration', 'fixtures', 'mini-server.mjs');
// A test's limit sits above the sum of the bounds it waits on (a connect of up to 15 s, calls of
// up to 25 s, a 10 s wait for progress, 5 s for the upstream to see a cancellation), so that the
// bound that names the problem fires first. Measured: each test under 2 s under ASan.
const T = { timeout: 60000 };
const SKIP = DIRECT ? { skip: 'DIRECT=1: this file needs the gateway (its upstreams speak 2026-07-28 only)' } : {};
let gw;
let mh;
const closers = [];

before(async () => {
  if (DIRECT) return;
  mh = spawnTracked(process.execPath, [MINI, '--modern', '--http', '--label', 'mh'], { name: 'mini-modern-http' });
  const port = await withTimeout(
    new Promise((resolve) => {
      const off = mh.onLine((l) => {
        const m = /^listening (\d+)$/.exec(l);
        if (m) {
          off();
          resolve(Number(m[1]));
        }
      });
    }),
    10000,
    'modern HTTP fixture port',
  );
  gw = await startGateway({
    prefix: { mode: 'always' },
    config: { limits: { sse_keepalive: '1s', shutdown_grace: '5s' } },
    servers: [
      { name: 'ms', command: process.execPath, args: [MINI, '--modern', '--label', 'ms'] },
      { name: 'mh', url: `http://127.0.0.1:${port}/mcp` },
    ],
  });
  await eventually(() => (gw.logs().match(/speaks 2026-07-28/g) ?? []).length >= 2, { timeoutMs: 10000, what: 'both upstreams probed as 2026-07-28' });
});

after(async () => {
  for (const c of closers) await c().catch(() => {});
  if (gw) await gw.stop();
  if (mh) await mh.stop();
});

async function withLogs(fn) {
  try {
    await fn();
  } catch (err) {
    if (gw) err.message += `\n--- gateway ---\n${gw.logs().slice(-5000)}`;
    throw err;
  }
}

const sample = (seen) => (req) => {
  seen.push(req.params);
  return { role: 'assistant', content: { type: 'text', text: `answer ${seen.length}` }, model: 'interop', stopReason: 'endTurn' };
};

describe('SDK v1 client (legacy) → modern upstreams', SKIP, () => {
  async function v1(opts) {
    const c = await connectClient(gw.url, opts);
    closers.push(() => c.close());
    return c.client;
  }

  test('tools, prompts and resources of both upstreams', T, () =>
    withLogs(async () => {
      const client = await v1();
      const names = (await client.listTools()).tools.map((t) => t.name);
      for (const n of ['ms__tool', 'ms__ask', 'mh__tool', 'mh__ask']) assert.ok(names.includes(n), names.join(', '));
      assert.equal(resultText(await client.callTool({ name: 'ms__tool', arguments: { text: 'v1' } })), 'ms:v1');
      assert.equal(resultText(await client.callTool({ name: 'mh__ünïcode', arguments: {} })), 'unicode ok');
      const p = await client.getPrompt({ name: 'mh__greet', arguments: { who: 'v1' } });
      assert.equal(p.messages[0].content.text, 'hello v1 from mh');
      const r = await client.readResource({ uri: 'mini://hello' });
      assert.match(r.contents[0].text, /^hello from m[sh]$/);
    }));

  test('sampling, elicitation and roots: MRTR rounds of the server become requests to the client', T, () =>
    withLogs(async () => {
      const seen = [];
      const client = await v1({
        capabilities: { sampling: {}, elicitation: { form: {} }, roots: {} },
        setup: (c) => {
          c.setRequestHandler(CreateMessageRequestSchema, sample(seen));
          c.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'ada' } }));
          c.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///v1', name: 'v1' }] }));
        },
      });
      for (const server of ['ms', 'mh']) {
        const r = await client.callTool({ name: `${server}__ask`, arguments: { times: 2 } }, undefined, { timeout: 10000 });
        assert.match(resultText(r), /"answer \d".*\|.*"answer \d"/, resultText(r));
      }
      assert.equal(seen.length, 4);
      assert.equal(seen[1].messages[0].content.text, 'question 2');
      const e = await client.callTool({ name: 'mh__ask', arguments: { kind: 'elicitation' } });
      assert.equal(resultText(e), '{"action":"accept","content":{"name":"ada"}}');
      const roots = await client.callTool({ name: 'ms__ask', arguments: { kind: 'roots' } });
      assert.equal(resultText(roots), '{"roots":[{"uri":"file:///v1","name":"v1"}]}');
    }));

  test('progress, across MRTR rounds too', T, () =>
    withLogs(async () => {
      const client = await v1({ capabilities: { sampling: {} }, setup: (c) => c.setRequestHandler(CreateMessageRequestSchema, sample([])) });
      for (const server of ['ms', 'mh']) {
        const progress = [];
        await client.callTool({ name: `${server}__progress`, arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress) });
        assert.deepEqual(progress, [1, 2]);
        const asked = [];
        await client.callTool({ name: `${server}__ask`, arguments: { times: 3 } }, undefined, { onprogress: (p) => asked.push(p.progress) });
        assert.deepEqual(asked, [1, 2, 3], `progress of the retries (${server})`);
      }
    }));

  test('cancellation: stdio gets notifications/cancelled, HTTP a closed response stream', T, () =>
    withLogs(async () => {
      const client = await v1();
      for (const server of ['ms', 'mh']) {
        const ac = new AbortController();
        const call = client.callTool({ name: `${server}__hang`, arguments: {} }, undefined, { signal: ac.signal });
        call.catch(() => {});
        await sleep(300);
        ac.abort('interop cancels');
        await assert.rejects(call);
      }
      await eventually(() => /"server":"ms","line":"mini-server: closed hang"/.test(gw.logs()), { what: 'ms saw the cancellation' });
      await eventually(() => /mini-server: closed hang/.test(mh.logs()), { what: 'mh saw its stream closed' });
      assert.ok(!/got notifications\/cancelled/.test(mh.logs()), 'no notifications/cancelled over HTTP');
    }));

  test('list changes: subscriptions/listen upstream → notifications/tools/list_changed on the GET stream', T, () =>
    withLogs(async () => {
      let changed = 0;
      const client = await v1({ setup: (c) => c.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++) });
      await sleep(300); // the GET stream
      await client.callTool({ name: 'mh__grow', arguments: {} });
      await eventually(() => changed >= 1, { what: 'tools/list_changed' });
      assert.ok((await client.listTools()).tools.some((t) => /^mh__grown-\d+$/.test(t.name)));
    }));
});

describe('SDK v2 client → modern upstreams', SKIP, () => {
  async function v2(mode, { capabilities = {}, setup } = {}) {
    const client = new Client2({ name: 'gatehouse-interop-sdk2', version: '1.0.0' }, { capabilities, versionNegotiation: { mode } });
    if (setup) setup(client);
    await withTimeout(client.connect(new Transport2(new URL(gw.url))), 15000, `SDK v2 connect ${JSON.stringify(mode)}`);
    closers.push(() => client.close());
    return client;
  }
  const PIN = { pin: '2026-07-28' };

  for (const mode of ['legacy', PIN]) {
    const label = mode === 'legacy' ? 'legacy' : '2026-07-28';
    test(`${label}: tools, prompts, resources, sampling and elicitation`, T, () =>
      withLogs(async () => {
        const seen = [];
        const client = await v2(mode, {
          capabilities: { sampling: {}, elicitation: { form: {} } },
          setup: (c) => {
            c.setRequestHandler('sampling/createMessage', sample(seen));
            c.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { name: 'grace' } }));
          },
        });
        assert.equal(client.getProtocolEra(), mode === 'legacy' ? 'legacy' : 'modern');
        assert.equal(resultText(await client.callTool({ name: 'mh__tool', arguments: { text: label } })), `mh:${label}`);
        assert.equal((await client.getPrompt({ name: 'ms__greet', arguments: {} })).messages[0].content.text, 'hello you from ms');
        assert.match((await client.readResource({ uri: 'mini://hello' })).contents[0].text, /^hello from m[sh]$/);
        for (const server of ['ms', 'mh']) {
          const r = await client.callTool({ name: `${server}__ask`, arguments: { times: 2 } }, { timeout: 10000 });
          assert.match(resultText(r), /"answer \d".*\|.*"answer \d"/, resultText(r));
          const e = await client.callTool({ name: `${server}__ask`, arguments: { kind: 'elicitation' } }, { timeout: 10000 });
          assert.equal(resultText(e), '{"action":"accept","content":{"name":"grace"}}');
        }
        assert.equal(seen.length, 4);
      }));

    test(`${label}: progress and cancellation`, T, () =>
      withLogs(async () => {
        const client = await v2(mode);
        const progress = [];
        await client.callTool({ name: 'ms__progress', arguments: {} }, { onprogress: (p) => progress.push(p.progress) });
        assert.deepEqual(progress, [1, 2]);
        const before = (mh.logs().match(/closed hang/g) ?? []).length;
        const ac = new AbortController();
        const call = client.callTool({ name: 'mh__hang', arguments: {} }, { signal: ac.signal });
        call.catch(() => {});
        await sleep(300);
        ac.abort('sdk2 cancels');
        await assert.rejects(call);
        await eventually(() => (mh.logs().match(/closed hang/g) ?? []).length > before, { what: 'mh saw the cancellation' });
      }));
  }

  test('2026-07-28: subscriptions/listen at the gateway hears a modern upstream\'s list change', T, () =>
    withLogs(async () => {
      let changed = 0;
      const client = await v2(PIN, { setup: (c) => c.setNotificationHandler('notifications/tools/list_changed', () => void changed++) });
      const sub = await withTimeout(client.listen({ toolsListChanged: true }), 10000, 'listen acknowledgement');
      try {
        await client.callTool({ name: 'ms__grow', arguments: {} });
        await eventually(() => changed >= 1, { what: 'tools/list_changed on the listen stream' });
      } finally {
        await sub.close();
      }
    }));
});
