// A headless "browser" for driving real login and consent pages with plain HTTP: a cookie jar,
// manual redirects, and form submission (the first <form> of a page, or the one whose action
// matches). Enough for oidc-provider's development pages and Gatehouse's own; no JavaScript.
export class Browser {
  constructor() {
    this.cookies = new Map(); // "host|name" -> { value, path }
  }

  #cookieHeader(url) {
    const u = new URL(url);
    const out = [];
    for (const [key, c] of this.cookies) {
      const [host, name] = key.split('|');
      if (host === u.host && u.pathname.startsWith(c.path)) out.push(`${name}=${c.value}`);
    }
    return out.join('; ');
  }

  #store(url, res) {
    const u = new URL(url);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq), value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path' && v) path = v;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
      }
      const key = `${u.host}|${name}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { value, path });
    }
  }

  // One request, no redirect following. Returns { status, headers, text, url }.
  async request(url, { method = 'GET', form, headers = {} } = {}) {
    const h = { ...headers };
    const cookie = this.#cookieHeader(url);
    if (cookie) h.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      h['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
    this.#store(url, res);
    return { status: res.status, headers: res.headers, text: await res.text(), url };
  }

  // Follow redirects from `url` until a page answers (2xx/4xx/5xx) or `stop(url)` says the
  // location is the end of the journey (e.g. a client's redirect_uri, which nobody serves).
  // Returns { page, location } — location set when stopped at a redirect.
  async follow(url, opts = {}, stop = () => false) {
    let res = await this.request(url, opts);
    for (let hops = 0; hops < 20; hops++) {
      if (res.status < 300 || res.status >= 400) return { page: res };
      const next = new URL(res.headers.get('location'), res.url).toString();
      if (stop(next)) return { page: res, location: next };
      res = await this.request(next);
    }
    throw new Error(`more than 20 redirects from ${url}`);
  }

  // The forms of a page: [{ action, method, fields: {name: value} }] (inputs and buttons with a
  // name; the last value of a repeated name wins).
  static forms(page) {
    const forms = [];
    const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
    for (let m; (m = re.exec(page.text)); ) {
      const attr = (s, n) => (s.match(new RegExp(`\\b${n}\\s*=\\s*"([^"]*)"`, 'i')) || [])[1];
      const fields = {};
      const inputs = /<(input|button)\b([^>]*)>/gi;
      for (let i; (i = inputs.exec(m[2])); ) {
        const name = attr(i[2], 'name');
        if (name !== undefined) fields[decode(name)] = decode(attr(i[2], 'value') ?? '');
      }
      forms.push({
        action: new URL(decode(attr(m[1], 'action') ?? page.url), page.url).toString(),
        method: (attr(m[1], 'method') ?? 'GET').toUpperCase(),
        fields,
      });
    }
    return forms;
  }

  // Submit a form of `page` (the first, or the first whose action contains `match`) with
  // `values` overriding its fields, then follow redirects as follow() does.
  async submit(page, values = {}, { match, stop } = {}) {
    const form = Browser.forms(page).find((f) => !match || f.action.includes(match));
    if (!form) throw new Error(`no form${match ? ` matching ${match}` : ''} on ${page.url}: ${page.text.slice(0, 300)}`);
    const fields = { ...form.fields, ...values };
    if (form.method === 'GET') {
      const u = new URL(form.action);
      for (const [k, v] of Object.entries(fields)) u.searchParams.set(k, v);
      return this.follow(u.toString(), {}, stop);
    }
    return this.follow(form.action, { method: 'POST', form: fields }, stop);
  }
}

function decode(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

// Log in at oidc-provider's development pages as `account` and consent, starting from an
// authorization URL; returns the URL the IdP finally redirects to (the client's redirect_uri
// with code, state and iss).
export async function idpLogin(browser, authorizeUrl, account, isCallback) {
  let { page, location } = await browser.follow(authorizeUrl, {}, isCallback);
  for (let step = 0; !location && step < 4; step++) {
    if (page.status !== 200) throw new Error(`IdP answered ${page.status}: ${page.text.slice(0, 300)}`);
    const forms = Browser.forms(page);
    const values = 'login' in (forms[0]?.fields ?? {}) ? { login: account, password: 'x' } : {};
    ({ page, location } = await browser.submit(page, values, { stop: isCallback }));
  }
  if (!location) throw new Error(`the IdP never redirected back: ${page.status} ${page.text.slice(0, 300)}`);
  return location;
}
