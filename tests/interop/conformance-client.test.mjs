// The official conformance suite's CLIENT scenarios with Gatehouse as the client of the suite's
// test server: conformance-client.mjs runs each scenario with conformance-client-driver.mjs as the
// client command (it starts gatehouse with the suite's server as its HTTP upstream and drives an
// SDK client through it), and judges every check in checks.json like conformance.mjs does for the
// server scenarios. Each revision runs the client scenarios its requirement set lists that have a
// driver (the auth/* ones with Gatehouse as the OAuth client of the suite's server); known gaps go in
// expected-failures-client-<revision>.txt, and a listed check that passes or a stale entry fails
// the run. Floors on the SUCCESS checks catch checks that stopped running.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DIRECT, INTEROP_DIR, withTimeout, gatewayBinaryOrThrow } from './lib/gateway.mjs';
import { checkKeys, probeRefusal } from './conformance-client.mjs';

// The gateway is the client under test: DIRECT=1 (no gateway) has nothing to judge here, so the
// whole file is skipped (run the drivers alone with DIRECT=1 node conformance-client.mjs ...).
const SKIP = DIRECT && 'the gateway is the client under test';
if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

const RUNNER = path.join(INTEROP_DIR, 'conformance-client.mjs');
// conformance-client.mjs gives the suite --timeout + 30 s per scenario. Measured (2-core machine,
// normal build): 30 s for 2025-11-25 (19 scenarios), 35 s for 2026-07-28 (33 scenarios).
const RUN_LIMIT_MS = 240000;
const TEST_LIMIT = { timeout: RUN_LIMIT_MS + 30000 };

// The auth/* scenarios both revisions run (the requirement sets list more in 2026-07-28).
const AUTH_COMMON = [
  'auth/basic-cimd',
  'auth/metadata-default',
  'auth/metadata-var1',
  'auth/metadata-var2',
  'auth/metadata-var3',
  'auth/pre-registration',
  'auth/scope-from-scopes-supported',
  'auth/scope-from-www-authenticate',
  'auth/scope-omitted-when-undefined',
  'auth/scope-retry-limit',
  'auth/scope-step-up',
  'auth/token-endpoint-auth-basic',
  'auth/token-endpoint-auth-none',
  'auth/token-endpoint-auth-post',
];
// The scenarios each revision runs (its requirement set's client leg, scored and not scored,
// less the extension ones without a driver: client credentials, DPoP, WIF and enterprise-managed
// authorization towards a server, which Gatehouse does not do). A scenario that stops running
// fails here.
const SCENARIOS = {
  '2025-11-25': ['initialize', 'tools_call', 'elicitation-sep1034-client-defaults', 'sse-retry', 'json-schema-2020-12-preservation', ...AUTH_COMMON],
  '2026-07-28': [
    ...AUTH_COMMON,
    'auth/authorization-server-migration',
    'auth/iss-normalized',
    'auth/iss-not-advertised',
    'auth/iss-supported',
    'auth/iss-supported-missing',
    'auth/iss-unexpected',
    'auth/iss-wrong-issuer',
    'auth/metadata-issuer-mismatch',
    'auth/offline-access-not-supported',
    'auth/offline-access-scope',
    'auth/resource-mismatch',
    'tools_call',
    'request-metadata',
    'sep-2322-client-request-state',
    'http-standard-headers',
    'http-custom-headers',
    'http-invalid-tool-headers',
    'json-schema-ref-no-deref',
    'json-schema-2020-12-preservation',
  ],
};
// SUCCESS checks measured with the pinned suite (0.2.0-alpha.12): 213 for 2025-11-25 and 354 for
// 2026-07-28 (the others are the suite's INFO records of the traffic, and the expected failures).
const SUCCESS_FLOOR = { '2025-11-25': 213, '2026-07-28': 354 };
const expectedFile = (spec) => path.join(INTEROP_DIR, `expected-failures-client-${spec}.txt`);

function runClient(spec, extra = []) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-conformance-client-'));
  const child = spawn(process.execPath, [RUNNER, '--spec', spec, '--out', out, '--timeout', '30000', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stdout += d));
  // 'close', not 'exit': the runner's output may still be in the pipe when it exits
  const done = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  return withTimeout(done, RUN_LIMIT_MS, 'conformance-client.mjs')
    .catch((err) => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      throw err;
    })
    .then((code) => ({ code, stdout, out }));
}

function summary(stdout) {
  const lines = stdout.trim().split('\n');
  const m = /^(\d+) passed, (\d+) failed$/.exec(lines.at(-1) ?? '');
  const c = /^checks: (\d+) SUCCESS, (\d+) INFO$/.exec(lines.at(-2) ?? '');
  return m && c ? { passed: Number(m[1]), failed: Number(m[2]), success: Number(c[1]), info: Number(c[2]) } : null;
}

const problems = (stdout) => stdout.split('\n').filter((l) => l && !l.startsWith('PASS ') && !l.startsWith('NOTE not run') && !/^\d+ passed, \d+ failed$/.test(l)).join('\n');
const scenariosRun = (stdout) => [...new Set([...stdout.matchAll(/^(?:PASS|FAIL|XFAIL) ([^ ]+)\/[^/ ]+?(?::| \(|$)/gm)].map((m) => m[1]))];

for (const spec of Object.keys(SCENARIOS)) {
  describe(`conformance ${spec} (client scenarios, Gatehouse as the client)`, { timeout: TEST_LIMIT.timeout + 10000, skip: SKIP }, () => {
    test('every check passes or is listed as expected, and only those fail', TEST_LIMIT, async () => {
      const list = expectedFile(spec);
      const r = await runClient(spec, ['--expect-fail', list]);
      const s = summary(r.stdout);
      assert.ok(s, `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      assert.equal(r.code, 0, `${problems(r.stdout).split('\n').filter((l) => !l.startsWith('XFAIL ')).join('\n')}\n(results in ${r.out})`);
      // the runner's exit status says every failure is listed and every entry failed (an entry
      // `scenario/*` covers a scenario's failures); here: each failure is one it listed
      assert.equal((r.stdout.match(/^XFAIL /gm) ?? []).length, s.failed, `every failure is an expected one:\n${problems(r.stdout)}`);
      assert.ok(s.success >= SUCCESS_FLOOR[spec], `expected >= ${SUCCESS_FLOOR[spec]} SUCCESS checks, got ${s.success}`);
      assert.deepEqual(scenariosRun(r.stdout).sort(), [...SCENARIOS[spec]].sort(), 'the scenarios that ran');
      fs.rmSync(r.out, { recursive: true, force: true });
    });
  });
}

describe('conformance-client.mjs keeps an expected-failures list exact', { timeout: TEST_LIMIT.timeout + 10000, skip: SKIP }, () => {
  test('a listed check that passes (XPASS) and an entry that matches no failure (STALE) fail the run', TEST_LIMIT, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-expected-client-'));
    try {
      const list = path.join(dir, 'expected.txt');
      fs.writeFileSync(list, 'tools_call/tool-add-numbers  # listed, but it passes\ntools_call/no-such-check  # matches nothing\n');
      let r = await runClient('2025-11-25', ['--scenario', 'tools_call', '--expect-fail', list]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^XPASS tools_call\/tool-add-numbers: /m);
      assert.match(r.stdout, /^STALE expected failure tools_call\/no-such-check /m);
      fs.rmSync(r.out, { recursive: true, force: true });
      fs.writeFileSync(list, '# nothing expected\n');
      r = await runClient('2025-11-25', ['--scenario', 'tools_call', '--expect-fail', list]);
      assert.equal(r.code, 0, r.stdout);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('check keys are unique per scenario; only a refused era probe is judged by status alone', () => {
    const checks = [
      { id: 'a', name: 'A' },
      { id: 'h', name: 'H_initialize' },
      { id: 'h', name: 'H_tools_list' },
    ];
    assert.deepEqual(checkKeys(checks), ['a', 'h[H_initialize]', 'h[H_tools_list]']);
    const refused = { id: 'outgoing-response', status: 'INFO', details: { mcpMethod: 'server/discover', body: { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Invalid or missing session ID' } } } };
    assert.equal(probeRefusal(refused), true);
    assert.equal(probeRefusal({ ...refused, details: { ...refused.details, mcpMethod: 'tools/call' } }), false, 'an error to any other method stays suspicious');
    assert.equal(probeRefusal({ ...refused, status: 'SUCCESS' }), false, 'only the INFO record of the traffic');
    assert.equal(probeRefusal({ ...refused, id: 'tool-add-numbers' }), false);
  });
});
