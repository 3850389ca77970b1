// CORS from a real browser: a page served on another origin (another port of 127.0.0.1) uses
// fetch() to initialize an MCP session at the gateway's /mcp with a bearer token, reads
// Mcp-Session-Id from the answer (readable from script only because the gateway exposes it),
// and lists tools. Chromium itself sends the preflight (Authorization and Mcp-* are not simple
// headers) and enforces the answers. The same script on an origin not in allowed_origins fails
// in the browser, though that origin is on an allowed host and passes the rebinding check.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fullFlow, startAuthGateway } from '../integration/oauth_lib.mjs';
import { launchChromium, newProfile, startSite } from './lib/chromium.mjs';

const PAGE = '<!doctype html><title>MCP web client</title><p>client</p>';

/* Runs in the page: initialize, notifications/initialized, tools/list; resolves what script saw. */
async function clientScript({ url, token }) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` };
  try {
    const init = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'web', version: '1' } } }),
    });
    const sid = init.headers.get('mcp-session-id');
    if (!sid) return { error: `initialize ${init.status}: Mcp-Session-Id not readable` };
    const more = { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const note = await fetch(url, { method: 'POST', headers: more, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) });
    const list = await fetch(url, { method: 'POST', headers: more, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    const body = await list.json();
    return { sid, note: note.status, tools: body.result.tools.map((x) => x.name) };
  } catch (e) {
    return { error: String(e) };
  }
}

test('a page on an allowed origin talks MCP with fetch(); an unlisted origin cannot', async (t) => {
  const allowed = await startSite(t, (p) => (p === '/' ? PAGE : null));
  const other = await startSite(t, (p) => (p === '/' ? PAGE : null));
  const gw = await startAuthGateway(t, { extra: { allowed_origins: [allowed] }, workers: 1 });
  const { access_token: token } = await fullFlow(gw);

  const browser = await launchChromium(t);
  const ctx = await newProfile(browser);
  const page = await ctx.newPage();
  await page.goto(`${allowed}/`);
  const ok = await page.evaluate(clientScript, { url: gw.url, token });
  assert.ok(!ok.error, ok.error);
  assert.match(ok.sid, /\S/);
  assert.equal(ok.note, 202);
  assert.ok(ok.tools.length > 0, JSON.stringify(ok));

  const page2 = await ctx.newPage();
  await page2.goto(`${other}/`);
  const refused = await page2.evaluate(clientScript, { url: gw.url, token });
  assert.match(refused.error ?? '', /TypeError: Failed to fetch/, JSON.stringify(refused));
  await gw.stop();
});
