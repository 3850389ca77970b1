// Real MCP clients over HTTP/2: the SDK v1 client (2025-11-25, session) and the SDK v2 client
// pinned to 2026-07-28, each given a fetch from undici with HTTP/2 allowed (ALPN h2 over TLS),
// through the gateway to server-everything over stdio. The gateway's request log names the HTTP
// version of every request, so the test checks that the MCP traffic really went over HTTP/2.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { DIRECT, startGateway, everythingStdio, withTimeout } from './lib/gateway.mjs';
import { connectClient, listAll, resultText } from './lib/client.mjs';

const T = { timeout: 60000 };
const SKIP = DIRECT ? { skip: 'DIRECT=1: this file is about the gateway' } : {};
let dir;
let gw;
let agent;
let h2fetch;
const closers = [];

before(async () => {
  if (DIRECT) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-h2-'));
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15000 },
  );
  gw = await startGateway({
    prefix: { mode: 'always' },
    servers: [everythingStdio('ev')],
    config: { listen: [{ address: '127.0.0.1', port: 0, tls: { cert, key } }] },
  });
  agent = new Agent({ allowH2: true, connect: { ca: fs.readFileSync(cert) } });
  h2fetch = (url, init) => undiciFetch(url, { ...init, dispatcher: agent });
});

after(async () => {
  for (const c of closers) await c().catch(() => {});
  await agent?.close().catch(() => {});
  if (gw) await gw.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The gateway's request log lines for /mcp since `from` (an offset into its log). */
function mcpRequests(from) {
  return gw
    .logs()
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('"event":"request"') && l.includes('"path":"/mcp'))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))));
}

async function happyPath(client) {
  const tools = (await listAll(client, 'tools')).map((t) => t.name);
  assert.ok(tools.includes('ev__echo'), `tools/list: ${tools.join(', ')}`);
  const r = await client.callTool({ name: 'ev__echo', arguments: { message: 'over h2' } });
  assert.equal(resultText(r), 'Echo: over h2');
  const sum = await client.callTool({ name: 'ev__get-sum', arguments: { a: 40, b: 2 } });
  assert.match(resultText(sum), /\b42\b/);
  const read = await client.readResource({ uri: 'demo://resource/dynamic/text/1' });
  assert.ok(read.contents[0].text?.length > 0, JSON.stringify(read));
}

test('SDK v1 client over HTTP/2 (TLS, ALPN h2): initialize, tools, resources, session end', { ...T, ...SKIP }, async () => {
  const from = gw.logs().length;
  const conn = await connectClient(gw.url, { transportOptions: { fetch: h2fetch } });
  closers.push(() => conn.close());
  await happyPath(conn.client);
  await conn.close();
  const reqs = mcpRequests(from);
  assert.ok(reqs.length >= 5, `request log lines: ${reqs.length}`);
  const versions = [...new Set(reqs.map((r) => r.http_version))];
  assert.deepEqual(versions, ['2'], `HTTP versions of the MCP requests: ${JSON.stringify(reqs.map((r) => [r.http_method, r.mcp_method, r.http_version]))}`);
  assert.ok(reqs.some((r) => r.http_method === 'DELETE'), 'the session was ended over HTTP/2');
});

test('SDK v2 client pinned to 2026-07-28 over HTTP/2', { ...T, ...SKIP }, async () => {
  const from = gw.logs().length;
  const client = new Client2({ name: 'gatehouse-h2', version: '1.0.0' }, { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await withTimeout(client.connect(new Transport2(new URL(gw.url), { fetch: h2fetch })), 15000, 'SDK v2 connect over HTTP/2');
  closers.push(() => client.close());
  await happyPath(client);
  const reqs = mcpRequests(from);
  assert.ok(reqs.length >= 4, `request log lines: ${reqs.length}`);
  assert.deepEqual([...new Set(reqs.map((r) => r.http_version))], ['2']);
});
