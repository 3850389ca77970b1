// A real browser for the page flows: Debian's Chromium driven by playwright-core. Unlike the
// scripted walk of lib/browser.mjs, Chromium decides itself which Origin and Referer a form post
// carries (under the page's Referrer-Policy), which cookies it keeps (HttpOnly, Secure, SameSite,
// the __Host- prefix) and sends, and whether a form may be posted or redirected at all (the
// page's Content-Security-Policy, form-action included).
//
// Every wait is bounded: launching (30 s), each navigation or action (STEP_MS), each callback.
// A missing Chromium is a failure that names the path, never a skip or a hang.

import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';
import { withTimeout } from './gateway.mjs';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const STEP_MS = 15000;

/** Launch Chromium headless (no sandbox: the tests may run as root); closed after the test. */
export async function launchChromium(t) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium (scripts/deps.sh test installs it) or set CHROMIUM to its path`);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 30000 });
  t.after(() => withTimeout(browser.close(), 10000, 'closing Chromium').catch(() => {}));
  return browser;
}

/** A fresh profile (its own cookie jar) with bounded waits; `posts` collects every POST request
    Chromium sent (playwright Request objects: url(), allHeaders(), postData()). */
export async function newProfile(browser, options = {}) {
  const ctx = await browser.newContext(options);
  ctx.setDefaultTimeout(STEP_MS);
  ctx.setDefaultNavigationTimeout(STEP_MS);
  ctx.posts = [];
  ctx.on('request', (r) => {
    if (r.method() === 'POST') ctx.posts.push(r);
  });
  return ctx;
}

/** The headers Chromium really sent with the last POST to a URL containing `part`. */
export async function lastPostHeaders(ctx, part) {
  const r = ctx.posts.filter((x) => x.url().includes(part)).at(-1);
  if (!r) throw new Error(`Chromium sent no POST to ${part}`);
  return r.allHeaders();
}

/** The visible text of the page (for assertions and failure messages). */
export async function text(page) {
  return (await page.locator('body').innerText({ timeout: STEP_MS }).catch(() => '')).trim();
}

/** Click `selector` and wait until the navigation it starts has finished (through redirects). */
export async function clickAndWait(page, selector) {
  const nav = page.waitForNavigation({ timeout: STEP_MS, waitUntil: 'load' });
  await page.click(selector, { timeout: STEP_MS });
  return nav;
}

/** A loopback HTTP server standing for a native application's redirect URI: it answers a small
    page and hands each callback's query parameters to next(). */
export async function startCallback(t, pathname = '/oauth/callback') {
  const got = [];
  const waiting = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname !== pathname) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Signed in</title><p>You can close this window.</p>');
    const w = waiting.shift();
    if (w) w(u.searchParams);
    else got.push(u.searchParams);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return {
    url: `http://127.0.0.1:${server.address().port}${pathname}`,
    next: () => withTimeout(new Promise((r) => (got.length ? r(got.shift()) : waiting.push(r))), STEP_MS, 'the redirect to the client callback'),
  };
}

/** Another site: a loopback server that answers `html(path)` (e.g. an attacker's page). */
export async function startSite(t, html) {
  const server = http.createServer((req, res) => {
    const body = html(new URL(req.url, 'http://127.0.0.1').pathname);
    res.writeHead(body == null ? 404 : 200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body ?? '');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}
