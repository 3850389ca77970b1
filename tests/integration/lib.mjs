// Harness for the Gatehouse integration tests (Node stdlib only).
//
// startGateway(config) writes the config to a temp file (JSON is valid YAML), starts the
// binary from $GATEHOUSE_BIN (default build/gatehouse, relative to the repository root),
// waits (bounded) for the {"event":"listening"} log line, and returns a handle. Every
// gateway started here is stopped: gw.stop() sends SIGTERM and asserts exit code 0 within
// a few seconds; anything still running when the test process exits is SIGKILLed (whole
// process group, so stdio upstreams go too).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const BIN = path.resolve(REPO, process.env.GATEHOUSE_BIN ?? 'build/gatehouse');
export const MINI = path.join(HERE, 'fixtures', 'mini-server.mjs');
export const PROTOCOL = '2025-11-25';

export function requireBinary() {
  if (!fs.existsSync(BIN)) {
    throw new Error(`gateway binary not found at ${BIN}; build it (cmake --build build --target gatehouse) or set GATEHOUSE_BIN`);
  }
  fs.accessSync(BIN, fs.constants.X_OK);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after ms; clears its timer when the promise settles. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** Polls fn() until it returns a truthy value (bounded). */
export async function until(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** A stdio server entry running the mini fixture. */
export function miniServer(name, { label = name, garbage = false, hangFirstList = false, extra, ...rest } = {}) {
  const args = [MINI, '--label', label];
  if (garbage) args.push('--garbage');
  if (hangFirstList) args.push('--hang-first-list');
  if (extra) args.push('--extra', extra);
  return { name, command: process.execPath, args, ...rest };
}

/**
 * Starts the mini fixture over HTTP (`--http` plus args: `--modern`, `--label X`, …) as a child of
 * the test; resolves {url, stderr(), kill()} once it prints its port.
 */
export async function miniHttp(args) {
  const child = spawn(process.execPath, [MINI, '--http', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`fixture exited ${code}: ${err}`)));
  });
  return { url: `http://127.0.0.1:${port}/mcp`, stderr: () => err, kill: () => child.kill('SIGKILL') };
}

/** A loopback port that was free a moment ago and has nothing listening on it. */
export function closedLoopbackPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A config object with one ephemeral loopback listener. */
export function baseConfig(extra = {}) {
  return { listen: [{ address: '127.0.0.1', port: 0 }], limits: { shutdown_grace: '5s' }, ...extra };
}

// ---------------------------------------------------------------------------
// Processes

const live = new Set();
function killGroup(child, sig) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* gone */
    }
  }
}
process.on('exit', () => {
  for (const c of live) killGroup(c, 'SIGKILL');
});

export function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-int-'));
}

export function writeConfig(config, dir = tempDir()) {
  const file = path.join(dir, 'gatehouse.yaml');
  fs.writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2) + '\n');
  return file;
}

class Gateway {
  constructor(child, file) {
    this.child = child;
    this.pid = child.pid;
    this.configFile = file;
    this.lines = []; // raw stderr lines
    this.stdout = '';
    this.listeners = new Set();
    let partial = '';
    child.stderr.on('data', (chunk) => {
      partial += chunk.toString('utf8');
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (this.lines.length < 200000) this.lines.push(line);
        for (const fn of this.listeners) fn(line);
      }
    });
    child.stdout.on('data', (c) => {
      if (this.stdout.length < 1e6) this.stdout += c.toString('utf8');
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        live.delete(child);
        resolve({ code: null, signal: null, error: err });
      });
    });
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Parsed JSON log lines (non-JSON lines, like the start-up banner, are skipped). */
  get events() {
    const out = [];
    for (const l of this.lines) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l));
      } catch {
        /* not JSON */
      }
    }
    return out;
  }

  logText() {
    return this.lines.join('\n');
  }

  /** Resolves with the first log event (parsed) at index >= from matching pred (bounded). */
  waitForEvent(pred, { timeout = 5000, from = 0, what = 'log event' } = {}) {
    return until(() => this.events.slice(from).find(pred), { timeout, what: `${what}\n--- gateway log tail:\n${this.tail()}` });
  }

  tail(n = 30) {
    return this.lines.slice(-n).join('\n');
  }

  rssKiB() {
    const s = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    return m ? Number(m[1]) : NaN;
  }

  signal(sig) {
    this.child.kill(sig);
  }

  /** SIGTERM; asserts exit code 0 within timeoutMs (SIGKILLs the group otherwise). */
  async stop(timeoutMs = 6000) {
    if (!this.alive) {
      const r = await this.exited;
      assert.equal(r.code, 0, `gateway had already exited with ${JSON.stringify(r)}\n${this.tail()}`);
      return r;
    }
    const t0 = Date.now();
    this.child.kill('SIGTERM');
    let r;
    try {
      r = await withTimeout(this.exited, timeoutMs, 'gateway exit after SIGTERM');
    } catch (e) {
      killGroup(this.child, 'SIGKILL');
      await this.exited;
      throw new Error(`${e.message}\n${this.tail()}`);
    } finally {
      killGroup(this.child, 'SIGKILL'); // strays in the group
    }
    assert.equal(r.signal, null, `gateway died of ${r.signal} after SIGTERM\n${this.tail()}`);
    assert.equal(r.code, 0, `gateway exited ${r.code} after SIGTERM\n${this.tail()}`);
    r.ms = Date.now() - t0;
    return r;
  }

  /** SIGKILL without assertions (cleanup after a failure). */
  async kill() {
    killGroup(this.child, 'SIGKILL');
    await this.exited;
  }
}

/** Spawns the binary with args; returns the child (tracked). */
export function spawnGatehouse(args, { cwd, stdin = 'ignore' } = {}) {
  requireBinary();
  const child = spawn(BIN, args, { cwd: cwd ?? REPO, detached: true, stdio: [stdin, 'pipe', 'pipe'] });
  live.add(child);
  return child;
}

/**
 * Starts the gateway with config (object or YAML text); resolves once it logs
 * "listening". Pass the node:test context as t to register a stop in t.after().
 */
export async function startGateway(config, { t, timeout = 20000, dir } = {}) {
  const file = writeConfig(config, dir);
  const gw = new Gateway(spawnGatehouse(['run', '-c', file]), file);
  if (t) {
    t.after(async () => {
      if (gw.alive) await gw.kill();
    });
  }
  const listening = new Promise((resolve) => {
    const check = (line) => {
      if (!line.includes('"listening"')) return;
      try {
        const ev = JSON.parse(line);
        if (ev.event === 'listening' && ev.url) resolve(ev);
      } catch {
        /* banner */
      }
    };
    gw.listeners.add(check);
  });
  const r = await withTimeout(
    Promise.race([listening, gw.exited.then((x) => ({ exitedEarly: x }))]),
    timeout,
    `gateway "listening" line\n${gw.tail()}`,
  ).catch(async (e) => {
    await gw.kill();
    throw e;
  });
  if (r.exitedEarly) throw new Error(`gateway exited before listening: ${JSON.stringify(r.exitedEarly)}\n${gw.tail()}`);
  gw.url = r.url;
  gw.base = r.url.replace(/\/mcp$/, '');
  gw.port = r.port;
  return gw;
}

/** Runs the binary to completion (bounded); resolves {code, signal, stdout, stderr}. */
export async function runGatehouse(args, { timeout = 15000, input } = {}) {
  const child = spawnGatehouse(args, { stdin: input === undefined ? 'ignore' : 'pipe' });
  if (input !== undefined) {
    child.stdin.on('error', () => {}); // EPIPE: a command that fails early need not read its input
    child.stdin.end(input);
  }
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    const r = await withTimeout(exited, timeout, `gatehouse ${args.join(' ')}`);
    return { ...r, stdout, stderr };
  } finally {
    killGroup(child, 'SIGKILL');
    live.delete(child);
  }
}

// ---------------------------------------------------------------------------
// HTTP

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/**
 * One HTTP request with exact control over headers and body (node:http; fetch would
 * refuse a custom Host header). Resolves {status, headers, text, json}.
 * body: string | Buffer | undefined. opts.headers replace the defaults when given as null.
 */
export function request(url, { method = 'GET', headers = {}, body, timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const h = {};
    for (const [k, v] of Object.entries(headers)) if (v !== null && v !== undefined) h[k] = v;
    if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'transfer-encoding')) {
      h['Content-Length'] = Buffer.byteLength(body);
    }
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent, setHost: !Object.keys(h).some((k) => k.toLowerCase() === 'host') },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode, headers: res.headers, text, json: parseBody(res.headers['content-type'], text) });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`HTTP ${method} ${url} timed out after ${timeout} ms`)), timeout);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** JSON body, or for an SSE body the last JSON-RPC response in it (or undefined). */
export function parseBody(type = '', text) {
  if (type.startsWith('text/event-stream')) {
    let last;
    for (const block of text.split(/\r?\n\r?\n/)) {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) continue;
      try {
        const m = JSON.parse(data);
        if (m && ('result' in m || 'error' in m)) last = m;
      } catch {
        /* ignore */
      }
    }
    return last;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const JSON_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

/** POST a JSON-RPC body (object → stringified; string/Buffer as is) with the MCP headers. */
export function post(url, body, { session, headers = {}, version = PROTOCOL, timeout } = {}) {
  const h = { ...JSON_HEADERS };
  if (session) h['Mcp-Session-Id'] = session;
  if (version) h['MCP-Protocol-Version'] = version;
  Object.assign(h, headers);
  const b = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return request(url, { method: 'POST', headers: h, body: b, timeout });
}

let nextId = 1000;

/** Opens an MCP session at url (initialize + notifications/initialized). */
export async function openSession(url) {
  const init = await post(
    url,
    { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'gatehouse-integration', version: '1' } } },
    { version: null },
  );
  assert.equal(init.status, 200, `initialize: ${init.status} ${init.text}`);
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid, 'initialize returned no Mcp-Session-Id');
  const note = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, { session: sid });
  assert.equal(note.status, 202, `notifications/initialized: ${note.status} ${note.text}`);
  return {
    url,
    id: sid,
    init: init.json,
    /** Sends a request; resolves the HTTP response (json is the JSON-RPC message). */
    rpc(method, params, { id = nextId++, timeout } = {}) {
      const msg = { jsonrpc: '2.0', id, method };
      if (params !== undefined) msg.params = params;
      return post(url, msg, { session: sid, timeout });
    },
    raw(body, opts = {}) {
      return post(url, body, { session: sid, ...opts });
    },
    callTool(name, args = {}, opts) {
      return this.rpc('tools/call', { name, arguments: args }, opts);
    },
    close() {
      return request(url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL } });
    },
  };
}

/** Asserts the gateway process is alive, /healthz answers and a fresh session can ping. */
export async function assertServing(gw, { tool } = {}) {
  assert.ok(gw.alive, `gateway process is gone\n${gw.tail()}`);
  const h = await request(`${gw.base}/healthz`);
  assert.equal(h.status, 200, `/healthz ${h.status} ${h.text}`);
  const s = await openSession(gw.url);
  const p = await s.rpc('ping', undefined, { id: 'alive-check' });
  assert.equal(p.status, 200, `ping: ${p.status} ${p.text}`);
  assert.deepEqual(p.json, { jsonrpc: '2.0', id: 'alive-check', result: {} });
  if (tool) {
    const r = await s.callTool(tool.name, tool.args ?? {});
    assert.equal(r.status, 200, `tools/call ${tool.name}: ${r.text}`);
    assert.ok(r.json?.result, `tools/call ${tool.name} gave no result: ${r.text}`);
    if (tool.text) assert.equal(r.json.result.content?.[0]?.text, tool.text);
  }
}

/** Asserts a JSON-RPC error answer: HTTP status, error code, and that the message matches re. */
export function assertRpcError(res, { status, code, message, id }) {
  const ctx = `HTTP ${res.status} ${res.headers['content-type'] ?? ''}: ${res.text.slice(0, 500)}`;
  if (status !== undefined) assert.equal(res.status, status, `status; ${ctx}`);
  assert.ok(res.json && typeof res.json === 'object', `body is not JSON-RPC; ${ctx}`);
  assert.equal(res.json.jsonrpc, '2.0', ctx);
  assert.ok(res.json.error, `no "error" member; ${ctx}`);
  assert.equal(res.json.result, undefined, `"result" alongside "error"; ${ctx}`);
  if (code !== undefined) assert.equal(res.json.error.code, code, `error code; ${ctx}`);
  assert.equal(typeof res.json.error.message, 'string', ctx);
  if (message) {
    const text = res.json.error.message + ' ' + JSON.stringify(res.json.error.data ?? '');
    for (const re of [].concat(message)) assert.match(text, re, `message should name the cause; ${ctx}`);
  }
  if (id !== undefined) assert.deepEqual(res.json.id, id, `id; ${ctx}`);
  return res.json.error;
}

/** Server state from /readyz. */
export async function readyz(gw) {
  const r = await request(`${gw.base}/readyz`);
  return { status: r.status, body: r.json, text: r.text };
}

export const TASKS_EXT = 'io.modelcontextprotocol/tasks';

/**
 * A 2026-07-28 request to gw's /mcp with the tasks extension declared (and `token` as the bearer
 * when given): the JSON-RPC answer whose id is `id`, from a JSON or an SSE response.
 */
export async function modernTasksRequest(gw, method, params, { token, id = 1 } = {}) {
  const name = method === 'tools/call' ? params.name : params.taskId;
  const res = await fetch(`${gw.base}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...(name !== undefined ? { 'mcp-name': name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': { extensions: { [TASKS_EXT]: {} } },
        },
      },
    }),
  });
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').includes('event-stream')) return JSON.parse(text);
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l.length > 6)
    .map((l) => JSON.parse(l.slice(6)))
    .find((m) => m.id === id);
}
