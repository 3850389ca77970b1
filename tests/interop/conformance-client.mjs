#!/usr/bin/env node
// Runs the pinned official MCP conformance suite's CLIENT scenarios with Gatehouse as the client
// of the suite's test server, and judges EVERY CHECK by its status and details in checks.json
// (conformance.mjs's judge, the same rules as for the server scenarios).
//
//   node conformance-client.mjs --spec 2025-11-25 --out DIR [--expect-fail FILE]
//                               [--scenario NAME]... [--timeout MS] [--warnings-pass]
//
// For each scenario: `conformance client --command "node conformance-client-driver.mjs"
// --scenario NAME --spec-version REV`. The driver starts gatehouse with the suite's server as its
// HTTP upstream and drives an MCP client through it (see conformance-client-driver.mjs, whose
// DRIVERS table says which scenarios can run). Without --scenario, the scenarios are those the
// revision's requirement set lists for the client leg (scored and not scored) that have a driver;
// the others are named in a `NOTE not run` line. Scenarios that cannot apply to a gateway
// (NOT_APPLICABLE in the driver) are named with the reason instead of run.
//
// Output: DIR/<scenario>/checks.json (+ stdout.txt, stderr.txt: the driver's output with the
// gateway's log), DIR/conformance.log, one line per check (`PASS`, `FAIL`, `XFAIL`, `XPASS`),
// `checks: N SUCCESS, N INFO` and last `N passed, N failed`. Exit status as conformance.mjs: 0
// when every failure is listed in the expected-failures file and every entry there failed.
//
// Check keys. A check is `scenario/check-id`; where a scenario emits several checks under one id
// (http-standard-headers has one id for every method it checks), each is
// `scenario/check-id[check-name]`, so that an entry names exactly one check. A driver that fails
// (its action threw, or it exited non-zero) is the failed check `scenario/(driver)`.

import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { expectedReason, judge, readExpectedFailures, runSuite } from './conformance.mjs';
import { DRIVERS, NOT_APPLICABLE } from './conformance-client-driver.mjs';
import { INTEROP_DIR, NODE_MODULES, node22Env } from './lib/gateway.mjs';

const DRIVER = path.join(INTEROP_DIR, 'conformance-client-driver.mjs');

function usage(msg) {
  if (msg) process.stderr.write(`conformance-client.mjs: ${msg}\n`);
  process.stderr.write('usage: node conformance-client.mjs --spec 2025-11-25 --out DIR [--expect-fail FILE] [--scenario NAME]... [--timeout MS] [--warnings-pass]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { scenarios: [], spec: '2025-11-25', timeout: 30000, warningsPass: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--spec') o.spec = val();
    else if (a === '--out') o.out = val();
    else if (a === '--expect-fail') o.expectFail = val();
    else if (a === '--scenario') o.scenarios.push(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--warnings-pass') o.warningsPass = true;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!o.out) usage('--out is required');
  return o;
}

/** Client scenarios a revision's requirement set lists (scored and not scored). */
export function requiredClientScenarios(spec) {
  const file = path.join(NODE_MODULES, '@modelcontextprotocol', 'conformance', 'requirements', `${spec}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`no requirement set for ${spec} (${file})`);
  const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  const notScored = (doc.not_scored ?? []).filter((e) => e.leg === 'client').map((e) => e.scenario);
  return [...new Set([...(doc.client ?? []), ...notScored])];
}

/** The suite's result dir for one client scenario: RAW/<scenario>-<timestamp>/ (a scenario named
    auth/x lands in RAW/auth/x-<timestamp>/). */
function findResult(rawDir, scenario) {
  const dir = path.join(rawDir, path.dirname(scenario));
  const base = path.basename(scenario);
  if (!fs.existsSync(dir)) return null;
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z$`);
  const hits = fs.readdirSync(dir).filter((n) => re.test(n)).sort();
  return hits.length ? path.join(dir, hits.at(-1)) : null;
}

/**
 * The suite's INFO record of its own server answering the gateway's era probe (server/discover)
 * with an error: a legacy server's refusal, after which the gateway uses initialize. That error is
 * the server's, not a sign of a client failure, so the record is judged by its status alone.
 * Nothing else is exempt: a JSON-RPC error anywhere else in a check's details still fails it.
 */
export function probeRefusal(check) {
  const d = check.details;
  return check.status === 'INFO' && check.id === 'outgoing-response' && d?.mcpMethod === 'server/discover' && d?.body?.error !== undefined && d?.body?.result === undefined;
}

/** Check keys, made unique within a scenario (see the header). */
export function checkKeys(checks) {
  const count = new Map();
  for (const c of checks) count.set(c.id, (count.get(c.id) ?? 0) + 1);
  return checks.map((c) => (count.get(c.id) > 1 ? `${c.id ?? '(no-id)'}[${c.name ?? '?'}]` : (c.id ?? '(no-id)')));
}

export async function main(argv = process.argv.slice(2)) {
  const o = parseArgs(argv);
  const outDir = path.resolve(o.out);
  fs.mkdirSync(outDir, { recursive: true });
  const rawDir = path.join(outDir, 'raw');
  fs.rmSync(rawDir, { recursive: true, force: true });
  const logFile = path.join(outDir, 'conformance.log');
  fs.writeFileSync(logFile, '');
  const expected = readExpectedFailures(o.expectFail);
  const lines = [];

  let wanted = o.scenarios.filter((s) => {
    if (!NOT_APPLICABLE[s]) return true;
    lines.push(`NOTE not applicable to a gateway, not run: ${s}: ${NOT_APPLICABLE[s]}`);
    return false;
  });
  if (!o.scenarios.length) {
    const required = requiredClientScenarios(o.spec);
    wanted = required.filter((s) => DRIVERS[s]);
    const without = required.filter((s) => !DRIVERS[s]);
    if (without.length) lines.push(`NOTE not run (no driver in conformance-client-driver.mjs): ${without.join(', ')}`);
  }

  let passed = 0;
  let failed = 0;
  let unexpected = 0;
  let xpassed = 0;
  const used = new Set();
  const statuses = { SUCCESS: 0, INFO: 0 };
  const record = (scenario, key, res) => {
    const xf = expectedReason(expected, scenario, key);
    if (res.ok) {
      passed++;
      if (xf && xf.key === `${scenario}/${key}`) {
        xpassed++;
        lines.push(`XPASS ${scenario}/${key}: listed as expected failure (${xf.reason}) but passed`);
      }
      lines.push(`PASS ${scenario}/${key}${res.note ?? ''}`);
      return;
    }
    failed++;
    if (xf) {
      used.add(xf.key);
      lines.push(`XFAIL ${scenario}/${key}: ${res.reason} [expected: ${xf.reason || 'listed'}]`);
    } else {
      unexpected++;
      lines.push(`FAIL ${scenario}/${key}: ${res.reason}`);
    }
  };

  for (const scenario of wanted) {
    const statusFile = path.join(outDir, `driver-${scenario.replace(/\//g, '_')}.json`);
    fs.rmSync(statusFile, { force: true });
    const args = ['client', '--command', `${process.execPath} ${DRIVER}`, '--scenario', scenario, '--spec-version', o.spec, '--timeout', String(o.timeout), '-o', rawDir];
    const r = await runSuite(args, logFile, o.timeout + 30000, node22Env({ GATEHOUSE_DRIVER_STATUS: statusFile }));
    if (r.error || (r.code !== 0 && r.code !== 1)) {
      lines.push(`NOTE conformance suite ended abnormally for ${scenario} (code ${r.code}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ''}); see ${logFile}`);
    }
    const src = findResult(rawDir, scenario);
    const dst = path.join(outDir, scenario);
    fs.rmSync(dst, { recursive: true, force: true });
    if (src) {
      fs.mkdirSync(dst, { recursive: true });
      for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
    }
    // The driver's own outcome: what it did must have worked, whatever the suite concluded.
    let driver;
    try {
      driver = JSON.parse(fs.readFileSync(statusFile, 'utf8'));
    } catch {
      driver = { ok: false, error: 'the driver wrote no status (it did not run, or was killed)' };
    }
    if (!driver.ok) record(scenario, '(driver)', { ok: false, reason: `driver failed: ${driver.error}` });

    const file = src && path.join(dst, 'checks.json');
    if (!file || !fs.existsSync(file)) {
      record(scenario, '(missing)', { ok: false, reason: `no checks.json produced (see ${logFile})` });
      continue;
    }
    let checks;
    try {
      checks = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      record(scenario, '(unreadable)', { ok: false, reason: `${file}: ${err.message}` });
      continue;
    }
    if (!Array.isArray(checks) || checks.length === 0) {
      record(scenario, '(no-checks)', { ok: false, reason: 'checks.json holds no checks' });
      continue;
    }
    if (!checks.some((c) => c.status === 'SUCCESS')) {
      record(scenario, '(no-success)', { ok: false, reason: `no SUCCESS check (${checks.map((c) => `${c.id}=${c.status}`).join(', ')})` });
    }
    const keys = checkKeys(checks);
    checks.forEach((check, i) => {
      if (check.status in statuses) statuses[check.status]++;
      if (probeRefusal(check)) {
        const res = judge(scenario, { ...check, details: undefined }, o);
        record(scenario, keys[i], res.ok ? { ...res, note: `${res.note ?? ''} (a legacy server refusing the era probe)` } : res);
      } else {
        record(scenario, keys[i], judge(scenario, check, o));
      }
    });
  }
  let stale = 0;
  for (const key of expected.keys()) {
    if (!used.has(key)) {
      stale++;
      lines.push(`STALE expected failure ${key} did not fail: remove it from ${o.expectFail}`);
    }
  }
  for (const l of lines) process.stdout.write(`${l}\n`);
  if (failed > unexpected) process.stdout.write(`(${failed - unexpected} of the failures are listed as expected in ${o.expectFail})\n`);
  process.stdout.write(`checks: ${statuses.SUCCESS} SUCCESS, ${statuses.INFO} INFO\n`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return unexpected === 0 && xpassed === 0 && stale === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('conformance-client.mjs')) {
  // exitCode, not exit(): exit() may cut stdout short when it is a pipe
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`conformance-client.mjs: ${err?.stack ?? err}\n`);
      process.exit(2);
    },
  );
}
