// The official conformance suite (2025-11-25 server scenarios), judged check by check
// by conformance.mjs:
//  1. against the fixture directly (proves the fixture and the runner);
//  2. through the gateway, fronting the fixture over stdio with prefixing off for it
//     (per-server `prefix: never`; docs/configuration.md makes the per-server key a scalar)
//     (DIRECT=1: against the fixture over HTTP instead).
// Known gateway gaps go in expected-failures-gateway.txt (`scenario/check  # reason`).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { INTEROP_DIR, startGateway, startFixtureHttp, fixtureStdio, withTimeout, DIRECT, gatewayBinaryOrThrow } from './lib/gateway.mjs';

// Counts as a failed test (not only cancelled ones) when the binary is missing.
if (!DIRECT) test('the gatehouse binary exists', () => void gatewayBinaryOrThrow());

const RUNNER = path.join(INTEROP_DIR, 'conformance.mjs');
const EXPECTED_GATEWAY = path.join(INTEROP_DIR, 'expected-failures-gateway.txt');

function runConformance(url, extra = []) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-conformance-'));
  const child = spawn(process.execPath, [RUNNER, '--url', url, '--spec', '2025-11-25', '--out', out, '--timeout', '10000', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stdout += d));
  const done = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return withTimeout(done, 150000, 'conformance.mjs')
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
  const last = stdout.trim().split('\n').pop();
  const m = /^(\d+) passed, (\d+) failed$/.exec(last ?? '');
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : null;
}

// Report lines other than PASS, for the assertion message (without the closing count line,
// which must not be mistaken for this suite's own result).
const problems = (stdout) => stdout.split('\n').filter((l) => l && !l.startsWith('PASS ') && !/^\d+ passed, \d+ failed$/.test(l)).join('\n');

describe('conformance 2025-11-25 (server scenarios)', { timeout: 200000 }, () => {
  test('fixture, directly over HTTP: every check passes', { timeout: 120000 }, async () => {
    const fixture = await startFixtureHttp();
    try {
      const r = await runConformance(fixture.url);
      const s = summary(r.stdout);
      assert.ok(s, `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      assert.equal(r.code, 0, problems(r.stdout));
      assert.equal(s.failed, 0, problems(r.stdout));
      assert.ok(s.passed >= 80, `expected >= 80 passing checks, got ${s.passed}`);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      await fixture.stop();
    }
  });

  test('through the gateway (fixture over stdio, its prefix: never)', { timeout: 150000 }, async () => {
    let target;
    if (DIRECT) {
      target = await startFixtureHttp();
    } else {
      target = await startGateway({ servers: [fixtureStdio('fixture', { prefix: 'never' })] });
    }
    try {
      const extra = fs.existsSync(EXPECTED_GATEWAY) && !DIRECT ? ['--expect-fail', EXPECTED_GATEWAY] : [];
      const r = await runConformance(target.url, extra);
      assert.ok(summary(r.stdout), `runner printed its summary line:\n${r.stdout.slice(-2000)}`);
      assert.equal(r.code, 0, `${problems(r.stdout)}\n(results in ${r.out})\n--- target log ---\n${target.logs().slice(-4000)}`);
      fs.rmSync(r.out, { recursive: true, force: true });
    } finally {
      await target.stop();
    }
  });
});
