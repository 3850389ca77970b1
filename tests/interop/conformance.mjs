#!/usr/bin/env node
// Runs the pinned official MCP conformance suite (server side) against a URL and judges
// EVERY CHECK by its status and details in checks.json — never by the suite's own pass
// count (a server lacking a fixture tool can still print SUCCESS; see INTEROP.md).
//
//   node conformance.mjs --url http://127.0.0.1:PORT/mcp --spec 2025-11-25 --out DIR
//                        [--expect-fail FILE] [--scenario NAME]... [--timeout MS]
//                        [--warnings-pass]
//   node conformance.mjs --fixture --spec 2025-11-25 --out DIR      (starts fixtures/server.mjs --http itself)
//
// Output: DIR/<scenario>/checks.json (normalised from the suite's timestamped dirs),
// DIR/conformance.log (the suite's own output), one line per check
// (`PASS scenario/check` | `FAIL scenario/check: reason` | `XFAIL ...` for listed
// expected failures | `SUITE-SKIP ...` for SUITE_SKIPS), a line `skipped by the suite: N`, a line
// `checks: N SUCCESS, N INFO`, and a last line `N passed, N failed`.
// Exit status: 0 when every failed check is listed in the expected-failures file
// (one `scenario/check  # reason` per line; `scenario/*` matches a whole scenario) and every
// entry of that file failed: a listed check that passes (XPASS) or an entry that matched no
// failure (STALE) makes the run fail too, so the list stays exact.
// A SKIPPED check did not run, so it is a failure like any other (list it there, with the
// reason, if that is understood); INFO checks report without judging and count as passed.
// The one exception is a check the pinned suite skips by itself whatever the server does
// (SUITE_SKIPS, each with the suite's own message): it is reported `SUITE-SKIP scenario/check`,
// counted in neither passed nor failed (a line `skipped by the suite: N`), and its scenario
// needs no SUCCESS for it. Such a check that runs, or skips with another message, fails the run.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { CONFORMANCE_ENTRY, NODE22, NODE_MODULES, node22Env, startFixtureHttp, withTimeout } from './lib/gateway.mjs';

function usage(msg) {
  if (msg) process.stderr.write(`conformance.mjs: ${msg}\n`);
  process.stderr.write(
    'usage: node conformance.mjs (--url URL | --fixture) --spec 2025-11-25 --out DIR ' +
      '[--expect-fail FILE] [--scenario NAME]... [--timeout MS] [--warnings-pass]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { scenarios: [], spec: '2025-11-25', timeout: 30000, warningsPass: false, fixture: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--url') o.url = val();
    else if (a === '--spec') o.spec = val();
    else if (a === '--out') o.out = val();
    else if (a === '--expect-fail') o.expectFail = val();
    else if (a === '--scenario') o.scenarios.push(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--warnings-pass') o.warningsPass = true;
    else if (a === '--fixture') o.fixture = true;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!o.out) usage('--out is required');
  if (!o.url && !o.fixture) usage('--url or --fixture is required');
  return o;
}

/** Scenarios a revision's requirement set runs on the server leg (scored and not scored). */
export function requiredServerScenarios(spec) {
  const file = path.join(NODE_MODULES, '@modelcontextprotocol', 'conformance', 'requirements', `${spec}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`no requirement set for ${spec} (${file})`);
  const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  const scored = doc.server ?? [];
  const notScored = (doc.not_scored ?? []).filter((e) => e.leg === 'server').map((e) => e.scenario);
  return [...new Set([...scored, ...notScored])];
}

/** Parses an expected-failures file: `scenario/check  # reason` per line. */
export function readExpectedFailures(file) {
  const map = new Map();
  if (!file) return map;
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const hash = raw.indexOf('#');
    const key = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (!key) continue;
    if (!key.includes('/')) throw new Error(`${file}: "${key}" is not of the form scenario/check`);
    map.set(key, hash >= 0 ? raw.slice(hash + 1).trim() : '');
  }
  return map;
}

export function expectedReason(map, scenario, check) {
  if (map.has(`${scenario}/${check}`)) return { key: `${scenario}/${check}`, reason: map.get(`${scenario}/${check}`) };
  if (map.has(`${scenario}/*`)) return { key: `${scenario}/*`, reason: map.get(`${scenario}/*`) };
  return null;
}

// Checks whose details legitimately carry a tool error.
const ERROR_EXPECTED = new Set(['tools-call-error/tools-call-error']);
// Checks whose details legitimately carry a JSON-RPC/HTTP rejection.
const REJECTION_EXPECTED = new Set(['dns-rebinding-protection/localhost-host-rebinding-rejected']);

// 2026-07-28 negative checks: their SUCCESS *is* a JSON-RPC error, so an error in their details
// is not a hidden failure — but only the error code the spec prescribes for that check; any
// other code still counts as one. Keyed by scenario/check id, never by a pattern: a new check
// that answers with an error stays suspicious until it is listed here with its reason.
const REJECTION_CODES = new Map([
  // basic/transports/streamable-http "Server Validation": _meta missing or incomplete → 400 -32602.
  ['server-stateless/sep-2575-request-meta-invalid-missing-meta', [-32602]],
  ['server-stateless/sep-2575-request-meta-invalid-missing-protocol-version', [-32602]],
  ['server-stateless/sep-2575-request-meta-invalid-missing-client-capabilities', [-32602]],
  ['server-stateless/sep-2575-http-server-meta-invalid-400', [-32602]],
  // Unsupported protocol version → 400 -32022 with the supported list.
  ['server-stateless/sep-2575-server-unsupported-version-error', [-32022]],
  ['server-stateless/sep-2575-http-server-unsupported-version-400', [-32022]],
  // MCP-Protocol-Version header unlike the body's _meta → 400 -32020.
  ['server-stateless/sep-2575-http-server-header-mismatch-400', [-32020]],
  // A call that needs a capability the client's _meta does not declare (test_missing_capability
  // asks for sampling) → -32021 with data.requiredCapabilities.
  ['server-stateless/sep-2575-server-rejects-undeclared-capability', [-32021]],
  ['server-stateless/sep-2575-missing-capability-http-400', [-32021]],
  // Methods removed in 2026-07-28 (initialize, ping, logging/setLevel, resources/(un)subscribe)
  // and unknown methods → 404 -32601.
  ['server-stateless/sep-2575-http-server-method-not-found-404', [-32601]],
  ['server-stateless/sep-2575-http-server-method-not-found-404-initialize', [-32601]],
  ['server-stateless/sep-2575-http-server-method-not-found-404-ping', [-32601]],
  ['server-stateless/sep-2575-http-server-method-not-found-404-logging-setlevel', [-32601]],
  ['server-stateless/sep-2575-http-server-method-not-found-404-resources-subscribe', [-32601]],
  ['server-stateless/sep-2575-http-server-method-not-found-404-resources-unsubscribe', [-32601]],
  // Mcp-Method / Mcp-Name missing or unlike the body → 400 -32020.
  ['http-header-validation/sep-2243-server-reject-invalid-headers', [-32020]],
  ['http-header-validation/sep-2243-server-reject-error-code', [-32020]],
  // Mcp-Param-* headers (x-mcp-header parameters): bad =?base64?…?= encoding, or missing while
  // the body has the value → 400 -32020. The accept checks are not listed: an error fails them.
  ['http-custom-header-server-validation/sep-2243-server-reject-invalid-param-chars', [-32020]],
  ['http-custom-header-server-validation/sep-2243-server-reject-param-mismatch', [-32020]],
  ['http-custom-header-server-validation/sep-2243-server-validate-param-match', [-32020]],
  // input_required retries whose inputResponses are malformed (an answer that is not an object;
  // inputResponses null) → -32602. The error's message is still read (below): "Unknown tool" is
  // the same code from a server without the scenario's tool, and proves nothing.
  ['input-required-result-validate-input/sep-2322-validate-input-responses', [-32602]],
  ['input-required-result-validate-input/sep-2322-error-on-protocol-error', [-32602]],
]);
// Of those, the checks whose expected code is also what a missing tool gets: their message is
// still looked at for signs of a missing tool.
const REJECTION_MESSAGE_READ = new Set([
  'input-required-result-validate-input/sep-2322-validate-input-responses',
  'input-required-result-validate-input/sep-2322-error-on-protocol-error',
]);

/** True when a JSON-RPC error in a check's details is that check's expected answer. */
export function rejectionExpected(key, code) {
  if (REJECTION_EXPECTED.has(key)) return true;
  return expectedRejectionCode(key, code);
}

/** The error is the code REJECTION_CODES prescribes for this check (its message, e.g. "Method not
    found: ping", is then the expected answer too, not a sign of a missing fixture). */
function expectedRejectionCode(key, code) {
  return REJECTION_CODES.get(key)?.includes(code) ?? false;
}

const NOT_FOUND_RE = /\b(?:tool|prompt|resource|method)\b[^\n]{0,120}?\bnot found\b|\bunknown (?:tool|prompt|resource)\b|\bnot found\b[^\n]{0,40}\b(?:tool|prompt|resource)\b/i;

/** A JSON-RPC error answer, or what the suite keeps of one (`{error: {code, message}}`, e.g.
    "Bad Request: Server not initialized" from a server that never ran the check). */
const isRpcError = (v) =>
  v.error !== null && typeof v.error === 'object' && (v.jsonrpc === '2.0' || (Number.isInteger(v.error.code) && typeof v.error.message === 'string'));

/** Looks through a check's details for signs the scenario did not really exercise the server. */
export function suspiciousDetails(scenario, check) {
  const key = `${scenario}/${check.id}`;
  const findings = [];
  const seen = new Set();
  const walk = (v, where, depth) => {
    if (v === null || v === undefined || depth > 12 || findings.length > 3) return;
    if (typeof v === 'string') {
      if (NOT_FOUND_RE.test(v)) findings.push(`${where} says "${v.length > 160 ? v.slice(0, 160) + '…' : v}"`);
      return;
    }
    if (typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (!Array.isArray(v)) {
      if (v.isError === true && !ERROR_EXPECTED.has(key)) findings.push(`${where || 'details'} has isError: true`);
      if (isRpcError(v) && !rejectionExpected(key, v.error.code)) {
        findings.push(`${where || 'details'} is a JSON-RPC error ${v.error.code}: ${v.error.message}`);
      }
    }
    for (const [k, child] of Object.entries(v)) {
      if (k === 'error' && isRpcError(v) && expectedRejectionCode(key, child?.code) && !REJECTION_MESSAGE_READ.has(key)) continue;
      walk(child, where ? `${where}.${k}` : k, depth + 1);
    }
  };
  walk(check.details, '', 0);
  return findings;
}

/** Judges one check: {ok, reason, note}. */
export function judge(scenario, check, { warningsPass = false } = {}) {
  const msg = check.errorMessage ? `: ${check.errorMessage}` : '';
  switch (check.status) {
    case 'FAILURE':
      return { ok: false, reason: `FAILURE${msg}` };
    case 'WARNING':
      if (!warningsPass) return { ok: false, reason: `WARNING${msg}` };
      break;
    case 'SKIPPED':
      return { ok: false, reason: `SKIPPED (the check did not run)${msg}` };
    case 'SUCCESS':
    case 'INFO':
      break;
    default:
      return { ok: false, reason: `unknown status ${JSON.stringify(check.status)}${msg}` };
  }
  const findings = suspiciousDetails(scenario, check);
  if (findings.length) return { ok: false, reason: `status ${check.status} but ${findings.join('; ')}` };
  const note = check.status === 'WARNING' ? ` (warning${msg})` : check.status === 'INFO' ? ` (info${msg})` : '';
  return { ok: true, note };
}

// Checks the pinned suite (0.2.0-alpha.12) SKIPs by itself, whatever the server does: their
// scenario's run() returns the SKIPPED check without contacting the server. Keyed by
// scenario/check, each with the suite's exact message; a listed check whose status or message
// differs (a newer suite that tests it) fails the run, and the entry must then be removed.
export const SUITE_SKIPS = new Map([
  [
    'tasks-status-notifications/tasks-status-notifications',
    'Skipped: SEP-2663 delivers notifications/tasks via the SEP-2575 subscriptions/listen stream, not via the ' +
      'tools/call POST SSE response that the prior harness observed. The harness needs a rewrite against the ' +
      'new channel; tracked as a follow-up.',
  ],
]);

/** A check SUITE_SKIPS lists: {skipped: true, reason} when the suite skipped it as listed, else
    {ok: false, reason} (a failure: the entry no longer matches the suite). null when not listed. */
export function suiteSkip(scenario, check, skips = SUITE_SKIPS) {
  const key = `${scenario}/${check.id}`;
  if (!skips.has(key)) return null;
  const want = skips.get(key);
  if (check.status === 'SKIPPED' && check.errorMessage === want) return { skipped: true, reason: want };
  const got = check.status === 'SKIPPED' ? `SKIPPED with another message: ${JSON.stringify(check.errorMessage)}` : `status ${check.status}`;
  return { ok: false, reason: `listed in SUITE_SKIPS as skipped by the suite, but ${got}: the suite no longer skips it as listed, remove the entry` };
}

/** scenario/check -> true when every record of it passed (a scenario may report an id more than
    once), read from a report of this script (its PASS, FAIL and XFAIL lines). */
export function checkOutcomes(report) {
  const m = new Map();
  for (const l of report.split('\n')) {
    const r = /^(PASS|FAIL|XFAIL) ([^\s:]+)/.exec(l);
    if (r) m.set(r[2], (m.get(r[2]) ?? true) && r[1] === 'PASS');
  }
  return m;
}

/** Differential judgement of one target directly and through the gateway (checkOutcomes maps):
    `unexplained` lists each check that passes directly and not through the gateway ("KEY: fails"
    or "KEY: not run"), but for those in `exceptions` (Map key -> reason) that did not run through
    it; `stale` lists the exceptions that are no such check. */
export function differential(direct, through, exceptions = new Map()) {
  const lost = [...direct].filter(([k, ok]) => ok && through.get(k) !== true).map(([k]) => k);
  const unexplained = lost
    .filter((k) => !exceptions.has(k) || through.has(k))
    .map((k) => `${k}: ${through.has(k) ? 'fails' : 'not run'} through the gateway`);
  const stale = [...exceptions.keys()].filter((k) => !lost.includes(k) || through.has(k));
  return { unexplained, stale };
}

const DIR_RE = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** Moves the suite's `server-<scenario>-<timestamp>` dirs to OUT/<scenario>/. */
function normalise(rawDir, outDir) {
  const found = new Map();
  if (!fs.existsSync(rawDir)) return found;
  for (const name of fs.readdirSync(rawDir).sort()) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const scenario = m[1];
    const src = path.join(rawDir, name, 'checks.json');
    if (!fs.existsSync(src)) continue;
    const dst = path.join(outDir, scenario);
    fs.rmSync(dst, { recursive: true, force: true });
    fs.mkdirSync(dst, { recursive: true });
    for (const f of fs.readdirSync(path.join(rawDir, name))) fs.copyFileSync(path.join(rawDir, name, f), path.join(dst, f));
    found.set(scenario, path.join(dst, 'checks.json'));
  }
  return found;
}

export function runSuite(args, logFile, timeoutMs, env = node22Env()) {
  const log = fs.openSync(logFile, 'a');
  fs.writeSync(log, `$ ${NODE22} ${CONFORMANCE_ENTRY} ${args.join(' ')}\n`);
  const child = spawn(NODE22, [CONFORMANCE_ENTRY, ...args], {
    env,
    stdio: ['ignore', log, log],
    detached: true,
  });
  const done = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => resolve({ code: null, signal: null, error: err }));
  });
  return withTimeout(done, timeoutMs, `conformance ${args.join(' ')}`)
    .catch((err) => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      return { code: null, signal: 'SIGKILL', error: err };
    })
    .finally(() => fs.closeSync(log));
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

  let fixture;
  let url = o.url;
  if (o.fixture) {
    fixture = await startFixtureHttp();
    url = fixture.url;
  }

  const wanted = o.scenarios.length ? o.scenarios : requiredServerScenarios(o.spec);
  for (const s of wanted) fs.rmSync(path.join(outDir, s), { recursive: true, force: true });
  const suiteTimeout = Math.max(60000, o.timeout * (o.scenarios.length || 10));
  const runs = [];
  try {
    if (o.scenarios.length) {
      for (const s of o.scenarios) {
        // --force: a scenario asked for by name runs even when the suite would call it not
        // applicable to the revision (an extension's scenario, e.g. tasks-*, is off its timeline).
        const args = ['server', '--url', url, '--scenario', s, '--spec-version', o.spec, '--timeout', String(o.timeout), '--force', '-o', rawDir];
        runs.push(await runSuite(args, logFile, o.timeout + 30000));
      }
    } else {
      const args = ['server', '--url', url, '--requirements', o.spec, '--timeout', String(o.timeout), '-o', rawDir];
      runs.push(await runSuite(args, logFile, suiteTimeout));
    }
  } finally {
    if (fixture) await fixture.stop();
  }

  const found = normalise(rawDir, outDir);
  let passed = 0;
  let failed = 0;
  let unexpected = 0;
  let xpassed = 0;
  const usedExpectations = new Set();
  const lines = [];
  const statuses = { SUCCESS: 0, INFO: 0 };
  let suiteSkipped = 0;
  const record = (scenario, check, res) => {
    if (res.ok) {
      passed++;
      const xp = expectedReason(expected, scenario, check);
      if (xp && xp.key === `${scenario}/${check}`) {
        xpassed++;
        lines.push(`XPASS ${scenario}/${check}: listed as expected failure (${xp.reason}) but passed`);
      }
      lines.push(`PASS ${scenario}/${check}${res.note ?? ''}`);
      return;
    }
    failed++;
    const xf = expectedReason(expected, scenario, check);
    if (xf) {
      usedExpectations.add(xf.key);
      lines.push(`XFAIL ${scenario}/${check}: ${res.reason} [expected: ${xf.reason || 'listed'}]`);
    } else {
      unexpected++;
      lines.push(`FAIL ${scenario}/${check}: ${res.reason}`);
    }
  };

  for (const r of runs) {
    if (r.error || (r.code !== 0 && r.code !== 1)) {
      lines.push(`NOTE conformance suite ended abnormally (code ${r.code}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ''}); see ${logFile}`);
    }
  }
  const scenarios = [...new Set([...wanted, ...found.keys()])];
  for (const scenario of scenarios) {
    const file = found.get(scenario);
    if (!file) {
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
    // Checks the suite skips by itself prove nothing either way: out of passed, failed and the
    // scenario's need for a SUCCESS.
    const skips = new Map(checks.map((c) => [c, suiteSkip(scenario, c)]));
    const judged = checks.filter((c) => !skips.get(c)?.skipped);
    if (judged.length > 0 && !judged.some((c) => c.status === 'SUCCESS')) {
      // A scenario must prove something: INFO/SKIPPED alone means it was not exercised.
      const why = checks.map((c) => `${c.id}=${c.status}`).join(', ');
      record(scenario, '(no-success)', { ok: false, reason: `no SUCCESS check (${why})` });
    }
    for (const check of checks) {
      const skip = skips.get(check);
      if (skip?.skipped) {
        suiteSkipped++;
        lines.push(`SUITE-SKIP ${scenario}/${check.id}: ${skip.reason}`);
        continue;
      }
      if (check.status in statuses) statuses[check.status]++;
      record(scenario, check.id ?? '(no-id)', skip ?? judge(scenario, check, o));
    }
    // A listed check its scenario no longer reports is an entry to remove too.
    for (const key of SUITE_SKIPS.keys()) {
      const [s, id] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
      if (s === scenario && !checks.some((c) => c.id === id)) {
        record(scenario, id, { ok: false, reason: 'listed in SUITE_SKIPS, but the suite no longer reports this check: remove the entry' });
      }
    }
  }
  // The list stays honest: an entry whose check passed, or that matched no failure at all, fails
  // the run like an unexpected failure (remove it from the file).
  let stale = 0;
  for (const key of expected.keys()) {
    if (!usedExpectations.has(key)) {
      stale++;
      lines.push(`STALE expected failure ${key} did not fail: remove it from ${o.expectFail}`);
    }
  }

  for (const l of lines) process.stdout.write(`${l}\n`);
  if (failed > unexpected) process.stdout.write(`(${failed - unexpected} of the failures are listed as expected in ${o.expectFail})\n`);
  // What the passes are made of: SUCCESS proved something, INFO only reported.
  process.stdout.write(`skipped by the suite: ${suiteSkipped}\n`);
  process.stdout.write(`checks: ${statuses.SUCCESS} SUCCESS, ${statuses.INFO} INFO\n`);
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return unexpected === 0 && xpassed === 0 && stale === 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('conformance.mjs')) {
  // exitCode, not exit(): exit() may cut stdout short when it is a pipe
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`conformance.mjs: ${err?.stack ?? err}\n`);
      process.exit(2);
    },
  );
}
