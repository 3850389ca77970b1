// The official SDK client (v1) against Gatehouse's authorization server, unattended: the 401
// leads it to the protected-resource and authorization-server metadata, it registers by DCR,
// builds a PKCE S256 authorization URL with `resource`; the test plays the user by following
// that URL through the real login and consent pages (lib/browser.mjs), hands the code back to
// transport.finishAuth, and the SDK exchanges it; then tools/list and tools/call go through
// /mcp, and a forced refresh rotates the refresh token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Browser, PASSWORD, startAuthGateway } from '../integration/oauth_lib.mjs';
import { MemoryProvider, approve, isClientCallback, sdkAuthorize, sdkConnect } from './lib/oauth.mjs';

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
