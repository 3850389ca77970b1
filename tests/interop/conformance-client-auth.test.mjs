// The official conformance suite's auth client scenarios with Gatehouse as the client: for each
// scenario the suite starts its MCP server and authorization server (which approves at once) and
// runs conformance-auth-driver.mjs with the server's URL; the driver starts a real gateway with
// that URL as an upstream with auth.oauth and connects a user the way the user's browser would
// (the CLI's connect link, redirects followed by hand). Every check the suite writes is judged by
// conformance.mjs's judge (a WARNING fails; a SUCCESS with an error in its details fails), and
// the failures must be exactly those listed in expected-failures-client-auth.txt
// (`scenario/check  # reason`): a listed check that passes, or a stale entry, fails the test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { judge, readExpectedFailures } from './conformance.mjs';
import { CONFORMANCE_ENTRY, INTEROP_DIR, NODE22, gatewayBinaryOrThrow, node22Env, withTimeout } from './lib/gateway.mjs';

const DRIVER = path.join(INTEROP_DIR, 'conformance-auth-driver.mjs');
const EXPECTED = path.join(INTEROP_DIR, 'expected-failures-client-auth.txt');
// [scenario, the revision it is run at (the suite skips a scenario before the one it came in)]
const SCENARIOS = [
  ['auth/metadata-default', '2025-11-25'],
  ['auth/metadata-var1', '2025-11-25'],
  ['auth/metadata-var2', '2025-11-25'],
  ['auth/metadata-var3', '2025-11-25'],
  ['auth/basic-cimd', '2025-11-25'],
  ['auth/scope-from-www-authenticate', '2025-11-25'],
  ['auth/scope-from-scopes-supported', '2025-11-25'],
  ['auth/scope-omitted-when-undefined', '2025-11-25'],
  ['auth/scope-step-up', '2025-11-25'],
  ['auth/scope-retry-limit', '2025-11-25'],
  ['auth/pre-registration', '2025-11-25'],
  ['auth/resource-mismatch', '2026-07-28'],
  ['auth/offline-access-scope', '2026-07-28'],
  ['auth/offline-access-not-supported', '2026-07-28'],
  ['auth/authorization-server-migration', '2026-07-28'],
  ['auth/iss-supported', '2026-07-28'],
  ['auth/iss-not-advertised', '2026-07-28'],
  ['auth/iss-supported-missing', '2026-07-28'],
  ['auth/iss-wrong-issuer', '2026-07-28'],
  ['auth/iss-unexpected', '2026-07-28'],
  ['auth/iss-normalized', '2026-07-28'],
  ['auth/metadata-issuer-mismatch', '2026-07-28'],
];
// Per scenario: the suite's own 30 s limit on the driver, plus its servers' start and stop.
// Measured on the 2-core machine: 1 to 2 s per scenario.
const RUN_LIMIT_MS = 60000;
const SUCCESS_FLOOR = 216;

test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

/** Runs one scenario; resolves to its checks (the suite's checks.json). */
async function runScenario(scenario, spec) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-confauth-'));
  const log = fs.openSync(path.join(out, 'suite.log'), 'w');
  const child = spawn(NODE22, [CONFORMANCE_ENTRY, 'client', '--command', `${NODE22} ${DRIVER}`, '--scenario', scenario, '--spec-version', spec, '-o', path.join(out, 'res')], {
    env: node22Env(),
    cwd: out,
    stdio: ['ignore', log, log],
    detached: true,
  });
  const done = new Promise((resolve) => child.once('exit', resolve));
  await withTimeout(done, RUN_LIMIT_MS, `conformance ${scenario}`).catch((err) => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    throw err;
  });
  fs.closeSync(log);
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name === 'checks.json') files.push(path.join(d, e.name));
    }
  };
  if (fs.existsSync(path.join(out, 'res'))) walk(path.join(out, 'res'));
  assert.equal(files.length, 1, `${scenario}: one checks.json expected, found ${files.length}\n${fs.readFileSync(path.join(out, 'suite.log'), 'utf8').slice(-3000)}`);
  const checks = JSON.parse(fs.readFileSync(files[0], 'utf8'));
  fs.rmSync(out, { recursive: true, force: true });
  return checks;
}

test('auth client scenarios: exactly the listed checks fail', { timeout: SCENARIOS.length * (RUN_LIMIT_MS + 10000) }, async (t) => {
  const expected = readExpectedFailures(EXPECTED);
  const failed = new Map();
  let successes = 0;
  for (const [scenario, spec] of SCENARIOS) {
    const checks = await runScenario(scenario, spec);
    for (const c of checks) {
      if (c.status === 'INFO') continue;
      const verdict = judge(scenario, c);
      if (verdict.ok) successes++;
      else failed.set(`${scenario}/${c.id}`, verdict.reason);
    }
  }
  t.diagnostic(`${successes} checks passed, ${failed.size} failed`);
  const unexpected = [...failed].filter(([k]) => !expected.has(k)).map(([k, why]) => `${k}: ${why}`);
  const stale = [...expected.keys()].filter((k) => !failed.has(k));
  assert.deepEqual(unexpected, [], 'checks that failed and are not listed in expected-failures-client-auth.txt');
  assert.deepEqual(stale, [], 'listed checks that passed (remove them from expected-failures-client-auth.txt)');
  // A floor: checks that stop running are no pass. Measured: 216 over the 22 scenarios (28 s on the 2-core machine).
  assert.ok(successes >= SUCCESS_FLOOR, `${successes} checks passed, fewer than ${SUCCESS_FLOOR}`);
});
