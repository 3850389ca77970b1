// The MCP SDK client's side of an OAuth journey, shared by the interop tests: an in-memory
// OAuthClientProvider, the consent step on Gatehouse's page, and the dance around it (connect →
// 401 → the user's journey through the pages → finishAuth → connect again).

import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser } from './browser.mjs';

export const SDK_REDIRECT = 'http://127.0.0.1:9/oauth/callback';
export const isClientCallback = (u) => u.startsWith(SDK_REDIRECT);

/** An OAuthClientProvider that keeps everything in memory and "redirects" by recording.
    With clientMetadataUrl the SDK registers by Client ID Metadata Document instead of DCR;
    redirectUrl replaces SDK_REDIRECT (e.g. a loopback server a real browser can reach). */
export class MemoryProvider {
  constructor({ clientMetadataUrl, redirectUrl = SDK_REDIRECT } = {}) {
    this.saved = {};
    this.redirect = redirectUrl;
    this.authorizationUrl = null;
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return { client_name: 'SDK interop', redirect_uris: [this.redirect], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
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

/** On Gatehouse's consent page: press Allow; returns the client callback's parameters. */
export async function approve(browser, page) {
  const form = Browser.forms(page).find((f) => f.fields.decision === 'approve');
  assert.ok(form, `no consent form: ${page.status} ${page.text.slice(0, 400)}`);
  const { location } = await browser.follow(form.action, { method: 'POST', form: form.fields }, isClientCallback);
  assert.ok(location, 'never redirected back to the client');
  return new URL(location).searchParams;
}

/** A connected SDK client on `url` (a fresh transport each time, as an application restarting). */
export async function sdkConnect(url, provider) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: 'sdk-oauth-interop', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** The whole authorization as the SDK does it: the first connect fails with a 401 and hands the
    authorization URL to the provider, `playUser(url)` walks the browser part and returns the
    callback's parameters, the SDK exchanges the code; returns those parameters. */
export async function sdkAuthorize(url, provider, playUser) {
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: 'sdk-oauth-interop', version: '1.0.0' });
  await assert.rejects(client.connect(transport), UnauthorizedError);
  assert.ok(provider.authorizationUrl, 'the SDK did not start the authorization');
  const params = await playUser(provider.authorizationUrl);
  assert.ok(params.get('code'), `no code: ${params}`);
  await transport.finishAuth(params.get('code'));
  assert.ok(provider.saved.tokens?.access_token, 'the SDK holds no access token');
  return params;
}
