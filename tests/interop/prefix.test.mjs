// Tool-name prefixing by the gateway: `prefix: {mode: always}` names tools
// `<server>__<tool>`; calls by the prefixed name reach the right upstream.
// Needs the gateway (fails if the binary is missing); skipped only with DIRECT=1.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startTopology, DIRECT, gatewayBinaryOrThrow } from './lib/gateway.mjs';
import { connectClient, listAll, resultText } from './lib/client.mjs';

// Counts as a failed test (not only cancelled ones) when the binary is missing.
if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

// The suite's limit allows its start-up and each test's own 20 s limit in full.
describe('gateway prefix mode always', { skip: DIRECT && 'DIRECT=1: needs the gateway', timeout: 4 * 20000 + 60000 }, () => {
  let topo;
  let conn;
  before(async () => {
    topo = await startTopology({ prefix: { mode: 'always' } });
    conn = await connectClient(topo.everythingUrl);
  });
  after(async () => {
    if (conn) await conn.close();
    if (topo) await topo.stop();
  });

  test('tools/list: every tool is <server>__<tool>', { timeout: 20000 }, async () => {
    const names = (await listAll(conn.client, 'tools')).map((t) => t.name);
    assert.ok(names.includes('everything__echo'), names.join(', '));
    assert.ok(names.includes('fixture__test_simple_text'), names.join(', '));
    assert.ok(!names.includes('echo'), 'no unprefixed echo');
    assert.ok(names.every((n) => /^(everything|fixture)__/.test(n)), names.join(', '));
    assert.ok(names.every((n) => /^[A-Za-z0-9_.-]{1,128}$/.test(n)), 'prefixed names still follow the spec tool-name rules');
  });

  test('tools/call by prefixed name reaches the right upstream', { timeout: 20000 }, async () => {
    const r = await conn.client.callTool({ name: 'everything__echo', arguments: { message: 'pfx' } });
    assert.equal(resultText(r), 'Echo: pfx');
    const f = await conn.client.callTool({ name: 'fixture__test_simple_text', arguments: {} });
    assert.equal(resultText(f), 'This is a simple text response for testing.');
  });

  test('an unprefixed name is not routed', { timeout: 20000 }, async () => {
    const r = await conn.client.callTool({ name: 'echo', arguments: { message: 'x' } }).catch((e) => ({ thrown: e }));
    assert.ok(r.thrown || r.isError === true, 'unprefixed echo rejected');
  });

  test('SIGTERM stops the gateway and its stdio upstreams', { timeout: 20000 }, async () => {
    await conn.close();
    conn = undefined;
    const r = await topo.gateway.stop();
    assert.equal(r.signal, null, `gateway exited by itself on SIGTERM (not SIGKILLed): ${JSON.stringify(r)}`);
    assert.equal(r.code, 0, `gateway exit code: ${JSON.stringify(r)}\n${topo.gateway.logs().slice(-3000)}`);
    assert.deepEqual(r.leaked, [], 'no upstream process left running after the gateway exited');
  });

});
