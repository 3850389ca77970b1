// The happy paths of both eras through the gateway against official servers only (the
// hand-written fixtures are for faults and for the conformance scenarios):
//   legacy  @modelcontextprotocol/server-everything over Streamable HTTP ("evh", a transport
//           mcp-client.test.mjs does not put behind the gateway) and over stdio ("evs");
//   modern  an SDK v2 server (@modelcontextprotocol/server, 2026-07-28 only: fixtures/sdk2-server.mjs)
//           over Streamable HTTP ("v2h") and over stdio ("v2s").
// Clients: the SDK v2 client pinned to 2026-07-28 (server/discover, no session) and the SDK v1
// client (legacy, initialize + session), each against all four: initialize or discover, tools/list,
// tools/call, resources/read and prompts/get, so each era is also bridged to the other.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { INTEROP_DIR, DIRECT, startGateway, startEverythingHttp, everythingStdio, httpUpstream, spawnTracked, withTimeout } from './lib/gateway.mjs';
import { connectClient, listAll, resultText, eventually } from './lib/client.mjs';

const SDK2_SERVER = path.join(INTEROP_DIR, 'fixtures', 'sdk2-server.mjs');
// A test waits on a connect (15 s) and five calls; measured well under 2 s each under ASan.
const T = { timeout: 60000 };
const SKIP = DIRECT ? { skip: 'DIRECT=1: this file is about the gateway in front of official servers' } : {};
const UPSTREAMS = { evh: 'legacy', evs: 'legacy', v2h: 'modern', v2s: 'modern' };
let gw;
let everything;
let sdk2;
const closers = [];

before(async () => {
  if (DIRECT) return;
  everything = await startEverythingHttp();
  sdk2 = spawnTracked(process.execPath, [SDK2_SERVER, '--http'], { name: 'sdk2-server(http)' });
  const port = await withTimeout(
    new Promise((resolve) => {
      const off = sdk2.onLine((l) => {
        const m = /^listening (\d+)$/.exec(l);
        if (m) {
          off();
          resolve(Number(m[1]));
        }
      });
    }),
    15000,
    'SDK v2 server port',
  );
  gw = await startGateway({
    prefix: { mode: 'always' },
    servers: [
      httpUpstream('evh', everything.url),
      everythingStdio('evs'),
      httpUpstream('v2h', `http://127.0.0.1:${port}/mcp`),
      { name: 'v2s', transport: 'stdio', command: process.execPath, args: [SDK2_SERVER] },
    ],
  });
  await eventually(() => (gw.logs().match(/speaks 2026-07-28/g) ?? []).length >= 2, { timeoutMs: 15000, what: `both SDK v2 upstreams probed as 2026-07-28\n${gw.logs().slice(-3000)}` });
});

after(async () => {
  for (const c of closers) await c().catch(() => {});
  if (gw) await gw.stop();
  if (sdk2) await sdk2.stop();
  if (everything) await everything.stop();
});

async function modernClient() {
  const client = new Client2({ name: 'gatehouse-official-modern', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  const transport = new Transport2(new URL(gw.url));
  await withTimeout(client.connect(transport), 15000, `SDK v2 connect (pinned 2026-07-28) to ${gw.url}`);
  closers.push(() => client.close());
  return client;
}

async function legacyClient() {
  const conn = await connectClient(gw.url);
  closers.push(() => conn.close());
  return conn.client;
}

/** tools/list, tools/call, resources/read, prompts/get of one upstream, as the official servers answer them. */
async function happyPath(client, server) {
  const tools = (await listAll(client, 'tools')).map((t) => t.name);
  if (UPSTREAMS[server] === 'legacy') {
    for (const n of ['echo', 'get-sum']) assert.ok(tools.includes(`${server}__${n}`), `tools/list has ${server}__${n}: ${tools.join(', ')}`);
    const r = await client.callTool({ name: `${server}__echo`, arguments: { message: `hi ${server}` } });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    assert.equal(resultText(r), `Echo: hi ${server}`);
    const sum = await client.callTool({ name: `${server}__get-sum`, arguments: { a: 19, b: 23 } });
    assert.match(resultText(sum), /\b42\b/);
    const read = await client.readResource({ uri: 'demo://resource/dynamic/text/1' });
    assert.ok(read.contents[0].text?.length > 0, `resource text: ${JSON.stringify(read)}`);
    const p = await client.getPrompt({ name: `${server}__args-prompt`, arguments: { city: 'Lisbon' } });
    assert.match(JSON.stringify(p.messages), /Lisbon/);
    return;
  }
  for (const n of ['add', 'echo']) assert.ok(tools.includes(`${server}__${n}`), `tools/list has ${server}__${n}: ${tools.join(', ')}`);
  const r = await client.callTool({ name: `${server}__add`, arguments: { a: 19, b: 23 } });
  assert.notEqual(r.isError, true, JSON.stringify(r));
  assert.equal(resultText(r), 'sum: 42');
  assert.deepEqual(r.structuredContent, { sum: 42 });
  const e = await client.callTool({ name: `${server}__echo`, arguments: { message: `hi ${server}` } });
  assert.equal(resultText(e), `echo: hi ${server}`);
  const resources = (await listAll(client, 'resources')).map((x) => x.uri);
  assert.ok(resources.includes('sdk2://greeting'), `resources/list: ${resources.join(', ')}`);
  const read = await client.readResource({ uri: 'sdk2://greeting' });
  assert.deepEqual(read.contents, [{ uri: 'sdk2://greeting', mimeType: 'text/plain', text: 'hello from the SDK v2 server' }]);
  const p = await client.getPrompt({ name: `${server}__greet`, arguments: { name: 'Ada' } });
  assert.deepEqual(p.messages, [{ role: 'user', content: { type: 'text', text: 'Say hello to Ada.' } }]);
}

describe('official servers behind the gateway, SDK v2 client pinned to 2026-07-28', SKIP, () => {
  test('server/discover: the gateway answers for all four upstreams', T, async () => {
    const client = await modernClient();
    assert.ok(client.getServerCapabilities()?.tools, `capabilities: ${JSON.stringify(client.getServerCapabilities())}`);
    assert.ok(client.getServerVersion()?.name, 'serverInfo');
  });
  for (const server of Object.keys(UPSTREAMS))
    test(`${server} (${UPSTREAMS[server]} upstream): tools/list, tools/call, resources/read, prompts/get`, T, async () => happyPath(await modernClient(), server));
});

describe('official servers behind the gateway, SDK v1 client (2025-11-25)', SKIP, () => {
  for (const server of Object.keys(UPSTREAMS))
    test(`${server} (${UPSTREAMS[server]} upstream): initialize, tools/list, tools/call, resources/read, prompts/get`, T, async () => happyPath(await legacyClient(), server));
});
