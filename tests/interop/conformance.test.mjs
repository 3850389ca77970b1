// The official conformance suite's server scenarios, judged check by check by conformance.mjs
// (never by the suite's pass count):
//  2025-11-25  1. against the fixture directly (proves the fixture and the runner);
//              2. through the gateway, fronting the fixture over stdio with prefixing off for it
//                 (per-server `prefix: never`; docs/configuration.md makes the per-server key a
//                 scalar) (DIRECT=1: against the fixture over HTTP instead).
//  2026-07-28  through the gateway only: the fixture is a legacy (SDK v1) server, so a direct run
//              has nothing to judge (no server/discover, sessions required: every check fails);
//              the gateway is what serves 2026-07-28 in front of it.
// Known gateway gaps go in expected-failures-gateway-<revision>.txt (`scenario/check  # reason`);
// a listed check that passes, or an entry that matches no failure, fails the run (conformance.mjs).
// A SKIPPED check is a failure (but for the checks the suite skips by itself, SUITE_SKIPS in
// conformance.mjs, reported apart); each run also has a floor on SUCCESS checks.
// server-everything: both revisions directly and through the gateway, judged differentially
// (below). The last tests prove the runner's SUITE_SKIPS judgement, and that it fails on a listed
// check that passes and on a stale entry (one scenario, fixture).

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SUITE_SKIPS, suiteSkip, readExpectedFailures, checkOutcomes, differential } from './conformance.mjs';
import {
  INTEROP_DIR,
  startGateway,
  startFixtureHttp,
  startEverythingHttp,
  fixtureStdio,
  everythingStdio,
  httpUpstream,
  withTimeout,
  DIRECT,
  gatewayBinaryOrThrow,
} from './lib/gateway.mjs';

// Counts as a failed test (not only cancelled ones) when the binary is missing.
if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

const RUNNER = path.join(INTEROP_DIR, 'conformance.mjs');
// Time limits, each above the bound of what it waits for: conformance.mjs stops the suite after
// max(60 s, 10 x --timeout) = 100 s; runConformance stops conformance.mjs after RUN_LIMIT_MS; a
// test adds the start and stop of its target. Measured (2-core machine): 3 s and 4 s per test,
// 8 s and 13 s under ASan.
const RUN_LIMIT_MS = 120000;
const TEST_LIMIT = { timeout: RUN_LIMIT_MS + 60000 };
// Floors on the checks that proved something (status SUCCESS; INFO only reports), measured with
// the pinned suite (0.2.0-alpha.12): a lower count means checks stopped running, which is no
// pass. Directly: 84 SUCCESS of 91 checks. Through the gateway two of them are INFO: the
// gateway answers the three calls of server-sse-multiple-streams with JSON (SSE is optional),
// and holds a call's stream open where the fixture's test_reconnection closes it mid-call
// (server-sse-polling/server-sse-disconnect-resume), so the resumption is not exercised.
const SUCCESS_DIRECT = 84;
const SUCCESS_GATEWAY = 82;
const EXPECTED_GATEWAY = path.join(INTEROP_DIR, 'expected-failures-gateway-2025-11-25.txt');
// 2026-07-28 through the gateway: 196 SUCCESS of 198 judged checks (and 1 INFO: server-sse-multiple-
// streams, answered with JSON; 1 more skipped by the suite); the checks that fail are exactly
// those listed in EXPECTED_GATEWAY_2026 (none), which the floor does not count. Measured: 20 s per run (2-core machine;
// the tasks scenarios wait for tasks of a few seconds).
const SUCCESS_GATEWAY_2026 = 196;
const EXPECTED_GATEWAY_2026 = path.join(INTEROP_DIR, 'expected-failures-gateway-2026-07-28.txt');

function runConformance(url, extra = [], spec = '2025-11-25') {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-conformance-'));
  const child = spawn(process.execPath, [RUNNER, '--url', url, '--spec', spec, '--out', out, '--timeout', '10000', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stdout += d));
  // 'close', not 'exit': the runner's output may still be in the pipe when it exits
  const done = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  return withTimeout(done, RUN_LIMIT_MS, 'conformance.mjs')
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
  const k = /^skipped by the suite: (\d+)$/.exec(lines.at(-3) ?? '');
  return m && c && k
    ? { passed: Number(m[1]), failed: Number(m[2]), success: Number(c[1]), info: Number(c[2]), suiteSkipped: Number(k[1]) }
    : null;
}

/** How many expected failures a file lists (`scenario/check  # reason` lines). */
const readExpected = (file) => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.replace(/#.*/, '').trim()).length;

// Report lines other than PASS, for the assertion message (without the closing count line,
// which must not be mistaken for this suite's own result).
const problems = (stdout) =>
  stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('PASS ') && !l.startsWith('SUITE-SKIP ') && !/^\d+ passed, \d+ failed$/.test(l))
    .join('\n');
const infos = (stdout) => stdout.split('\n').filter((l) => /^PASS .* \(info/.test(l)).join('\n');

describe('conformance 2025-11-25 (server scenarios)', { timeout: 2 * TEST_LIMIT.timeout + 30000 }, () => {
  test('fixture, directly over HTTP: every check passes', TEST_LIMIT, async () => {
    const fixture = await startFixtureHttp();
    try {
      const r = await runConformance(fixture.url);
      const s = summary(r.stdout);
      assert.ok(s, `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      assert.equal(r.code, 0, problems(r.stdout));
      assert.equal(s.failed, 0, problems(r.stdout));
      assert.ok(s.success >= SUCCESS_DIRECT, `expected >= ${SUCCESS_DIRECT} SUCCESS checks, got ${s.success}:\n${infos(r.stdout)}`);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      await fixture.stop();
    }
  });

  test('through the gateway (fixture over stdio, its prefix: never)', TEST_LIMIT, async () => {
    let target;
    if (DIRECT) {
      target = await startFixtureHttp();
    } else {
      target = await startGateway({ servers: [fixtureStdio('fixture', { prefix: 'never' })] });
    }
    try {
      const extra = fs.existsSync(EXPECTED_GATEWAY) && !DIRECT ? ['--expect-fail', EXPECTED_GATEWAY] : [];
      const r = await runConformance(target.url, extra);
      const s = summary(r.stdout);
      assert.ok(s, `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      assert.equal(r.code, 0, `${problems(r.stdout)}\n(results in ${r.out})\n--- target log ---\n${target.logs().slice(-4000)}`);
      // The floor, less the checks listed as expected failures.
      const floor = (DIRECT ? SUCCESS_DIRECT : SUCCESS_GATEWAY) - (extra.length ? readExpected(EXPECTED_GATEWAY) : 0);
      assert.ok(s.success >= floor, `expected >= ${floor} SUCCESS checks, got ${s.success}:\n${infos(r.stdout)}`);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      await target.stop();
    }
  });
});

describe('conformance 2026-07-28 (server scenarios)', { timeout: TEST_LIMIT.timeout + 30000 }, () => {
  test('through the gateway (fixture over stdio, its prefix: never)', { ...TEST_LIMIT, skip: DIRECT && 'the fixture alone is legacy (SDK v1): nothing to judge directly' }, async () => {
    const target = await startGateway({ servers: [fixtureStdio('fixture', { prefix: 'never' })] });
    try {
      const r = await runConformance(target.url, ['--expect-fail', EXPECTED_GATEWAY_2026], '2026-07-28');
      const s = summary(r.stdout);
      assert.ok(s, `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      // Non-zero: an unlisted failure, a listed check that passed (XPASS) or a stale entry.
      assert.equal(r.code, 0, `${problems(r.stdout).split('\n').filter((l) => !l.startsWith('XFAIL ')).join('\n')}\n(results in ${r.out})\n--- target log ---\n${target.logs().slice(-4000)}`);
      assert.equal(s.failed, readExpected(EXPECTED_GATEWAY_2026), `every listed check failed, and only those:\n${problems(r.stdout)}`);
      // tasks-status-notifications' one check, which the pinned suite skips whatever the server
      // does (SUITE_SKIPS); our own test of that feature is tasks.test.mjs.
      assert.equal(s.suiteSkipped, SUITE_SKIPS.size, r.stdout.split('\n').filter((l) => l.startsWith('SUITE-SKIP ')).join('\n'));
      assert.ok(s.success >= SUCCESS_GATEWAY_2026, `expected >= ${SUCCESS_GATEWAY_2026} SUCCESS checks, got ${s.success}:\n${infos(r.stdout)}`);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      await target.stop();
    }
  });
});

// server-everything (@modelcontextprotocol/server-everything, a reference server that has none
// of the suite's test_* tools, prompts and test:// resources), judged differentially, check by
// check: the suite runs directly against its own Streamable HTTP transport and through the gateway
// in front of it (over stdio and over HTTP, prefix: never). Through the gateway, the checks that fail are
// exactly those in expected-failures-everything-<revision>.txt, each of which fails directly too;
// every check that passes directly passes through the gateway (it loses nothing), but for the
// exact list below. A check's outcome is PASS when every record of it passed (a scenario may
// report an id more than once). Measured (2-core machine): 2025-11-25 3 s directly and 1 s
// through each gateway; 2026-07-28 1 s and 7 s.
const EXPECTED_EVERYTHING = (rev) => path.join(INTEROP_DIR, `expected-failures-everything-${rev}.txt`);
// Floors on the SUCCESS checks through the gateway (measured: 45 and 110).
const SUCCESS_EVERYTHING = { '2025-11-25': 45, '2026-07-28': 110 };
// Checks that pass directly and do not run through the gateway, each with its reason; exact: a
// listed check that runs through the gateway, or does not pass directly, fails the test.
const SSE_NOT_RUN =
  'server-everything has no test_reconnection and answers the call at once, on an SSE stream; the gateway ' +
  'answers an immediate result with JSON (SSE is optional), so the suite has no stream to judge. The ' +
  'fixture, which has the tool, runs these checks through the gateway (2025-11-25 above).';
const NOT_RUN_THROUGH_GATEWAY = {
  '2025-11-25': new Map([
    ['server-sse-polling/server-sse-priming-event', SSE_NOT_RUN],
    ['server-sse-polling/stream-closed', SSE_NOT_RUN],
    ['server-sse-polling/server-sse-disconnect-resume', SSE_NOT_RUN],
  ]),
  '2026-07-28': new Map(),
};

describe('conformance against server-everything, directly and through the gateway', { skip: DIRECT && 'needs the gateway', timeout: 4 * TEST_LIMIT.timeout }, () => {
  let everything;
  const gateways = {};
  const direct = {};
  before(async () => {
    everything = await startEverythingHttp();
    gateways.stdio = await startGateway({ servers: [everythingStdio('everything', { prefix: 'never' })] });
    gateways.http = await startGateway({ servers: [httpUpstream('everything', everything.url, { prefix: 'never' })] });
  });
  after(async () => {
    await gateways.stdio?.stop();
    await gateways.http?.stop();
    await everything?.stop();
    for (const r of Object.values(direct)) fs.rmSync(r.out, { recursive: true, force: true });
  });
  for (const [rev, transport] of [
    ['2025-11-25', 'stdio'],
    ['2025-11-25', 'http'],
    ['2026-07-28', 'stdio'],
    ['2026-07-28', 'http'],
  ]) {
    test(`${rev}, the gateway to server-everything over ${transport}: every check passing directly passes through it; what fails is listed`, TEST_LIMIT, async () => {
      const gateway = gateways[transport];
      direct[rev] ??= await runConformance(everything.url, [], rev);
      const ds = summary(direct[rev].stdout);
      assert.ok(ds, `runner printed its summary line:\n${direct[rev].stdout.slice(-2000)}`);
      const through = await runConformance(gateway.url, ['--expect-fail', EXPECTED_EVERYTHING(rev)], rev);
      const gs = summary(through.stdout);
      assert.ok(gs, `runner printed its summary line:\n${through.stdout.slice(-2000)}`);
      const log = `(results in ${direct[rev].out} and ${through.out})\n--- gateway log ---\n${gateway.logs().slice(-4000)}`;
      assert.equal(through.code, 0, `${problems(through.stdout).split('\n').filter((l) => !l.startsWith('XFAIL ')).join('\n')}\n${log}`);
      assert.equal(gs.failed, readExpected(EXPECTED_EVERYTHING(rev)), `every listed check failed, and only those:\n${problems(through.stdout)}`);
      assert.ok(gs.success >= SUCCESS_EVERYTHING[rev], `expected >= ${SUCCESS_EVERYTHING[rev]} SUCCESS checks, got ${gs.success}`);
      const d = checkOutcomes(direct[rev].stdout);
      const g = checkOutcomes(through.stdout);
      const { unexplained, stale } = differential(d, g, NOT_RUN_THROUGH_GATEWAY[rev]);
      assert.deepEqual(unexplained, [], `checks that pass directly but not through the gateway (a gateway bug):\n${unexplained.join('\n')}\n${log}`);
      assert.deepEqual(stale, [], 'NOT_RUN_THROUGH_GATEWAY entries that run through the gateway or do not pass directly: remove them');
      // What fails through the gateway fails directly too (missing test tools, not the gateway).
      const passesDirectly = [...readExpectedFailures(EXPECTED_EVERYTHING(rev)).keys()].filter((k) => d.get(k) === true);
      assert.deepEqual(passesDirectly, [], 'listed as failing through the gateway, but passing directly (a gateway bug)');
      const passed = (m) => [...m.values()].filter(Boolean).length;
      process.stdout.write(
        `# server-everything ${rev} (gateway over ${transport}): directly ${ds.passed} passed, ${ds.failed} failed (${passed(d)} of ${d.size} checks pass); ` +
          `through the gateway ${gs.passed} passed, ${gs.failed} failed (${passed(g)} of ${g.size})\n`,
      );
      fs.rmSync(through.out, { recursive: true, force: true });
    });
  }
});

describe('conformance.mjs keeps its list of checks the suite skips exact', () => {
  // Judged on the suite's own record of the check (checks.json), as a newer suite would write it.
  const [key, message] = [...SUITE_SKIPS][0];
  const [scenario, id] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
  test('the check skipped with the listed message is set apart', () => {
    assert.deepEqual(suiteSkip(scenario, { id, status: 'SKIPPED', errorMessage: message }), { skipped: true, reason: message });
    assert.equal(suiteSkip(scenario, { id: 'another-check', status: 'SKIPPED', errorMessage: message }), null);
  });
  test('the check run (any status) or skipped with another message fails', () => {
    for (const status of ['SUCCESS', 'FAILURE', 'INFO', 'WARNING']) {
      const r = suiteSkip(scenario, { id, status });
      assert.equal(r.ok, false, status);
      assert.match(r.reason, new RegExp(`but status ${status}: .*remove the entry`));
    }
    const r = suiteSkip(scenario, { id, status: 'SKIPPED', errorMessage: 'Skipped: not supported by this server' });
    assert.equal(r.ok, false);
    assert.match(r.reason, /SKIPPED with another message/);
  });
});

test('the differential judgement: a check passing directly must pass through the gateway, exceptions exact', () => {
  const report = (lines) => checkOutcomes(lines.join('\n'));
  const direct = report(['PASS a/one', 'PASS a/two', 'PASS a/two (info)', 'PASS b/sse', 'FAIL c/x: FAILURE', 'PASS d/dup', 'FAIL d/dup: FAILURE']);
  assert.deepEqual([...direct], [['a/one', true], ['a/two', true], ['b/sse', true], ['c/x', false], ['d/dup', false]]);
  const through = report(['PASS a/one', 'FAIL a/two: FAILURE', 'XFAIL c/x: FAILURE [expected: missing tool]', 'PASS d/dup']);
  assert.deepEqual(differential(direct, through), { unexplained: ['a/two: fails through the gateway', 'b/sse: not run through the gateway'], stale: [] });
  assert.deepEqual(differential(direct, through, new Map([['b/sse', 'no stream'], ['a/one', 'passes']])), {
    unexplained: ['a/two: fails through the gateway'],
    stale: ['a/one'],
  });
  // An exception covers a check that did not run, never one that fails through the gateway.
  assert.deepEqual(differential(direct, through, new Map([['a/two', 'fails']])).unexplained, ['a/two: fails through the gateway', 'b/sse: not run through the gateway']);
});

describe('conformance.mjs keeps an expected-failures list exact', { timeout: TEST_LIMIT.timeout + 30000 }, () => {
  test('a listed check that passes (XPASS) and an entry that matches no failure (STALE) fail the run', TEST_LIMIT, async () => {
    const fixture = await startFixtureHttp();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-expected-'));
    try {
      const list = path.join(dir, 'expected.txt');
      fs.writeFileSync(list, 'tools-list/tools-list  # listed, but it passes\n');
      let r = await runConformance(fixture.url, ['--scenario', 'tools-list', '--expect-fail', list]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^XPASS tools-list\/tools-list: /m);
      fs.rmSync(r.out, { recursive: true, force: true });
      fs.writeFileSync(list, 'tools-list/no-such-check  # matches nothing\n');
      r = await runConformance(fixture.url, ['--scenario', 'tools-list', '--expect-fail', list]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, /^STALE expected failure tools-list\/no-such-check /m);
      fs.rmSync(r.out, { recursive: true, force: true });
      fs.writeFileSync(list, '# nothing expected\n');
      r = await runConformance(fixture.url, ['--scenario', 'tools-list', '--expect-fail', list]);
      assert.equal(r.code, 0, r.stdout);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      await fixture.stop();
    }
  });
});
