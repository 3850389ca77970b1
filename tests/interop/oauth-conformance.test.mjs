// The official conformance suite's authorization-server scenarios against Gatehouse's own
// authorization server: `conformance authorization` reads the RFC 8414 metadata, then runs an
// authorization-code grant with PKCE for a pre-registered client. The suite prints the
// authorization URL and waits for its callback on 127.0.0.1:<port>/callback; this test plays
// the user through the real login and consent pages (lib/browser.mjs) and delivers the final
// redirect to the suite, which exchanges the code itself. Every check is judged by its status
// in checks.json.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Browser, PASSWORD, startAuthGateway } from '../integration/oauth_lib.mjs';
import { tempDir } from '../integration/lib.mjs';
import { CONFORMANCE_ENTRY, NODE22, freePort, node22Env, withTimeout } from './lib/gateway.mjs';

/** Run `conformance authorization`, playing the user when it prints the authorization URL. */
async function runAuthorization(gw, { port, out }) {
  const args = [CONFORMANCE_ENTRY, 'authorization', '--url', gw.base, '--client-id', 'conformance',
    '--resource', gw.url, '--port', String(port), '-o', out];
  const child = spawn(NODE22, args, { env: node22Env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let played = null;
  const callback = `http://127.0.0.1:${port}/callback`;
  child.stdout.on('data', (d) => {
    output += d;
    const m = output.match(new RegExp(`^(${gw.base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/oauth/authorize\\?\\S+)$`, 'm'));
    if (m && !played) played = playUser(m[1], callback);
  });
  child.stderr.on('data', (d) => { output += d; });
  const code = await withTimeout(new Promise((r) => child.on('exit', r)), 90000, 'conformance authorization');
  if (played) await played;
  return { code, output };
}

/** Sign in as alice, approve, and deliver the redirect to the suite's callback server. */
async function playUser(url, callback) {
  const browser = new Browser();
  const stop = (u) => u.startsWith(callback);
  let { page, location } = await browser.follow(url, {}, stop);
  if (!location) ({ page, location } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login', stop }));
  if (!location) {
    const form = Browser.forms(page).find((f) => f.fields.decision === 'approve');
    assert.ok(form, `no consent form: ${page.status} ${page.text.slice(0, 300)}`);
    ({ location } = await browser.follow(form.action, { method: 'POST', form: form.fields }, stop));
  }
  assert.ok(location, 'the gateway never redirected to the suite');
  const res = await fetch(location);
  await res.text();
}

/** Every checks.json under dir, flattened. */
function readChecks(dir) {
  const checks = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'checks.json') checks.push(...JSON.parse(fs.readFileSync(p, 'utf8')));
    }
  };
  walk(dir);
  return checks;
}

test('conformance suite: authorization-server metadata and the authorization code grant', async (t) => {
  const port = await freePort('127.0.0.1');
  const gw = await startAuthGateway(t, {
    auth: { clients: [{ client_id: 'conformance', name: 'MCP conformance suite', redirect_uris: [`http://127.0.0.1:${port}/callback`] }] },
  });
  const out = tempDir();
  const { output } = await runAuthorization(gw, { port, out });
  const checks = readChecks(out);
  const byId = new Map(checks.map((c) => [c.id, c]));
  for (const id of ['authorization-server-metadata', 'authorization-server-metadata-cimd', 'authorization-code-grant'])
    assert.ok(byId.has(id), `the suite produced no ${id} check:\n${output.slice(-2000)}`);
  const bad = checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO');
  assert.deepEqual(bad.map((c) => `${c.id}: ${c.status} ${c.errorMessage ?? ''}`), [], output.slice(-2000));
  assert.ok(!gw.tail(1_000_000).includes(PASSWORD), 'the password reached the log');
});
