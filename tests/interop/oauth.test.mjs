// The official SDK client (v1) against Gatehouse's authorization server, unattended: the 401
// leads it to the protected-resource and authorization-server metadata, it registers by DCR,
// builds a PKCE S256 authorization URL with `resource`; the test plays the user by following
// that URL through the real login and consent pages (lib/browser.mjs), hands the code back to
// transport.finishAuth, and the SDK exchanges it; then tools/list and tools/call go through
// /mcp, and a forced refresh rotates the refresh token. Then the same with registration by a
// Client ID Metadata Document (the SDK insists on an https URL: a loopback https server with a
// test CA the gateway trusts through outbound.ca_file).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Browser, PASSWORD, startAuthGateway } from '../integration/oauth_lib.mjs';
import { MemoryProvider, SDK_REDIRECT, approve, isClientCallback, sdkAuthorize, sdkConnect } from './lib/oauth.mjs';

/** The user: sign in with the local password form and approve; returns the callback's parameters. */
async function playUser(url) {
  const browser = new Browser();
  let { page, location } = await browser.follow(url.toString(), {}, isClientCallback);
  if (!location) ({ page, location } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login', stop: isClientCallback }));
  return location ? new URL(location).searchParams : approve(browser, page);
}

test('SDK client: discovery from the 401, DCR, PKCE, login and consent, token, tools through /mcp, refresh', async (t) => {
  const gw = await startAuthGateway(t);
  const provider = new MemoryProvider();
  const params = await sdkAuthorize(gw.url, provider, async (au) => {
    assert.equal(au.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(au.searchParams.get('resource'), gw.url);
    assert.match(provider.saved.client.client_id, /^dcr_/);
    return playUser(au);
  });
  assert.equal(params.get('iss'), gw.base);

  let client = await sdkConnect(gw.url, provider);
  const tools = await client.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'a__tool'), JSON.stringify(tools.tools.map((x) => x.name)));
  const res = await client.callTool({ name: 'a__tool', arguments: { text: 'hi' } });
  assert.ok(!res.isError, JSON.stringify(res));
  await client.close();

  // Refresh: make the access token unusable; the SDK refreshes on the 401 and goes on.
  const oldRefresh = provider.saved.tokens.refresh_token;
  provider.saved.tokens = { ...provider.saved.tokens, access_token: 'expired.invalid.token' };
  client = await sdkConnect(gw.url, provider);
  assert.notEqual(provider.saved.tokens.refresh_token, oldRefresh, 'the refresh token was not rotated');
  assert.ok((await client.listTools()).tools.length > 0);
  await client.close();
  assert.ok(!gw.tail(100000).includes(provider.saved.tokens.access_token), 'a token leaked into the log');
});

/** A test CA and a certificate for 127.0.0.1 it signed (openssl CLI); returns the file names. */
function testCa(dir) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=Gatehouse test CA');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '1', '-extfile', 'san.ext');
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'srv.pem'), key: path.join(dir, 'srv.key') };
}

test('SDK client: registration by Client ID Metadata Document served over https (test CA in outbound.ca_file)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cimd-'));
  const { ca, cert, key } = testCa(dir);
  let fetched = 0;
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    fetched++;
    const url = `https://127.0.0.1:${server.address().port}/client.json`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ client_id: url, client_name: 'SDK via CIMD', redirect_uris: [SDK_REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const url = `https://127.0.0.1:${server.address().port}/client.json`;

  // Without the CA the document's certificate is not trusted: refused, with the cause.
  const plain = await startAuthGateway(t, { auth: { registration: { cimd_allow_private: true } } });
  const refused = await new Browser().follow(`${plain.base}/oauth/authorize?${new URLSearchParams({ client_id: url, response_type: 'code' })}`);
  assert.equal(refused.page.status, 400);
  assert.match(refused.page.text, /could not be used: .*(certificate|TLS|SSL)/i);

  const gw = await startAuthGateway(t, { auth: { registration: { cimd_allow_private: true } }, extra: { outbound: { ca_file: ca } } });
  const provider = new MemoryProvider({ clientMetadataUrl: url });
  await sdkAuthorize(gw.url, provider, async (au) => {
    assert.equal(au.searchParams.get('client_id'), url);
    const browser = new Browser();
    let { page } = await browser.follow(au.toString(), {}, isClientCallback);
    ({ page } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login', stop: isClientCallback }));
    assert.match(page.text, /SDK via CIMD/);
    assert.match(page.text, /described by <strong>127\.0\.0\.1<\/strong>/);
    return approve(browser, page);
  });
  assert.equal(provider.saved.client.client_id, url);
  assert.ok(fetched >= 1);
  const client = await sdkConnect(gw.url, provider);
  assert.ok((await client.listTools()).tools.some((x) => x.name === 'a__tool'));
  await client.close();
});
