// The official SDK client (v1) against Gatehouse's authorization server, unattended: the 401
// leads it to the protected-resource and authorization-server metadata, it registers by DCR,
// builds a PKCE S256 authorization URL with `resource`; the test plays the user by following
// that URL through the real login and consent pages (lib/browser.mjs), hands the code back to
// transport.finishAuth, and the SDK exchanges it; then tools/list and tools/call go through
// /mcp, and a forced refresh rotates the refresh token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser, PASSWORD, startAuthGateway } from '../integration/oauth_lib.mjs';

const REDIRECT = 'http://127.0.0.1:9/oauth/callback';

/** An OAuthClientProvider that keeps everything in memory and "redirects" by recording. */
class MemoryProvider {
  constructor() {
    this.saved = {};
    this.authorizationUrl = null;
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return { client_name: 'SDK interop', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(c) {
    this.saved.client = c;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(t) {
    this.saved.tokens = t;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(v) {
    this.saved.verifier = v;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
}

/** The user: sign in and approve; returns the callback URL's parameters. */
async function playUser(url) {
  const browser = new Browser();
  const stop = (u) => u.startsWith(REDIRECT);
  let { page, location } = await browser.follow(url.toString(), {}, stop);
  if (!location) ({ page, location } = await browser.submit(page, { username: 'alice', password: PASSWORD }, { match: '/oauth/login', stop }));
  if (!location) {
    const form = Browser.forms(page).find((f) => f.fields.decision === 'approve');
    assert.ok(form, `no consent form: ${page.status} ${page.text.slice(0, 300)}`);
    ({ location } = await browser.follow(form.action, { method: 'POST', form: form.fields }, stop));
  }
  assert.ok(location, 'never redirected back to the client');
  return new URL(location).searchParams;
}

test('SDK client: discovery from the 401, DCR, PKCE, login and consent, token, tools through /mcp, refresh', async (t) => {
  const gw = await startAuthGateway(t);
  const provider = new MemoryProvider();
  const url = new URL(gw.url);
  let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  let client = new Client({ name: 'sdk-oauth-interop', version: '1.0.0' });
  await assert.rejects(client.connect(transport), UnauthorizedError);
  assert.ok(provider.authorizationUrl, 'the SDK did not start the authorization');
  const au = provider.authorizationUrl;
  assert.equal(au.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(au.searchParams.get('resource'), gw.url);
  assert.match(provider.saved.client.client_id, /^dcr_/);

  const params = await playUser(au);
  assert.equal(params.get('iss'), gw.base);
  await transport.finishAuth(params.get('code'));
  assert.ok(provider.saved.tokens?.access_token);

  transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  client = new Client({ name: 'sdk-oauth-interop', version: '1.0.0' });
  await client.connect(transport);
  const tools = await client.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'a__tool'), JSON.stringify(tools.tools.map((x) => x.name)));
  const res = await client.callTool({ name: 'a__tool', arguments: { text: 'hi' } });
  assert.ok(!res.isError, JSON.stringify(res));
  await client.close();

  // Refresh: make the access token unusable; the SDK refreshes on the 401 and goes on.
  const oldRefresh = provider.saved.tokens.refresh_token;
  provider.saved.tokens = { ...provider.saved.tokens, access_token: 'expired.invalid.token' };
  transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
  client = new Client({ name: 'sdk-oauth-interop', version: '1.0.0' });
  await client.connect(transport);
  assert.notEqual(provider.saved.tokens.refresh_token, oldRefresh, 'the refresh token was not rotated');
  assert.ok((await client.listTools()).tools.length > 0);
  await client.close();
  assert.ok(!gw.tail(100000).includes(provider.saved.tokens.access_token), 'a token leaked into the log');
});
