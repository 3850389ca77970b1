// What a new user meets first: every command answers --help, one rule finds the configuration
// for every command, relative paths follow the configuration file, a port in use is refused
// unless shared on purpose, admin commands do not create an empty store by accident,
// check-config warns about a command that is not there, a normal start looks normal, and the
// benchmark's load generator can open a session with a real session id.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import {
  BIN, MINI, REPO, baseConfig, closedLoopbackPort, miniServer, requireBinary, spawnGatehouse, startGateway,
  tempDir, until, writeConfig,
} from './lib.mjs';

before(() => requireBinary());

/** Runs gatehouse to completion in `cwd` (default: a fresh temporary folder). */
function gh(args, { cwd = tempDir(), env = {}, input = '' } = {}) {
  const e = { ...process.env, ...env };
  delete e.GATEHOUSE_CONFIG;
  if (env.GATEHOUSE_CONFIG) e.GATEHOUSE_CONFIG = env.GATEHOUSE_CONFIG;
  const r = spawnSync(BIN, args, { cwd, env: e, input, encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  return r;
}

describe('help', () => {
  const cases = [
    ['--help'], ['-h'], ['help'], ['run', '--help'], ['check-config', '--help'], ['openapi', '--help'],
    ['openapi', 'inspect', '--help'], ['version', '--help'], ['user', '--help'], ['user', 'add', '--help'],
    ['user', 'settings', '--help'], ['team', '--help'], ['team', 'member', 'add', '--help'], ['account', 'add', '--help'],
    ['apikey', '--help'], ['client', 'create', '--help'], ['revoke', '--help'], ['keys', '--help'],
    ['keys', 'rotate', '--help'], ['help', 'user', 'add'], ['-c', 'nowhere.yaml', 'user', 'list', '--help'],
  ];
  for (const args of cases) {
    test(`gatehouse ${args.join(' ')}: usage on stdout, exit 0`, () => {
      const r = gh(args);
      assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^usage: /);
    });
  }

  test('the usage says that bare gatehouse means run, and which file it reads', () => {
    const r = gh(['--help']);
    assert.match(r.stdout, /bare `gatehouse` means run/);
    assert.match(r.stdout, /-c FILE, else \$GATEHOUSE_CONFIG, else\s+\.\/gatehouse\.yaml/);
    assert.match(gh(['run', '--help']).stdout, /--share/);
    assert.match(gh(['user', 'add', '--help']).stdout, /^usage: gatehouse user add NAME/);
    assert.match(gh(['help', 'user', 'add']).stdout, /^usage: gatehouse user add NAME/);
  });

  test('a missing subcommand or an unknown option is still a usage error on stderr', () => {
    let r = gh(['user']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing a command after "user"; the user commands are:\n {2}gatehouse user add/);
    r = gh(['team', 'member']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing a command after "team member"/);
    r = gh(['user', 'frob']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command "user frob"; the user commands are:/);
    r = gh(['run', '--bogus']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unexpected argument "--bogus" for run/);
    r = gh(['check-config', 'a.yaml', 'b.yaml']);
    assert.equal(r.status, 2);
  });
});

describe('configuration: one rule, paths relative to the file', () => {
  test('an admin command from another folder uses the store next to the configuration', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'data'));
    const cfg = writeConfig({ store: { sqlite: 'data/gh.db' } }, dir);
    const elsewhere = tempDir();
    let r = gh(['-c', cfg, 'user', 'add', 'alice', '--random'], { cwd: elsewhere });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`creating a new store at ${path.join(fs.realpathSync(dir), 'data', 'gh.db')}`));
    assert.ok(fs.existsSync(path.join(dir, 'data', 'gh.db')));
    assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing is created in the current folder');
    r = gh(['user', 'list', '-c', cfg], { cwd: tempDir() });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^alice /m);
  });

  test('an admin command that only reads refuses to create an empty store', () => {
    const dir = tempDir();
    const cfg = writeConfig({ store: { sqlite: 'none.db' } }, dir);
    for (const args of [['user', 'list'], ['team', 'list'], ['client', 'list'], ['keys', 'list'], ['user', 'disable', 'bob']]) {
      const r = gh([...args, '-c', cfg]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /there is no store at \S+none\.db \(configuration: \S+gatehouse\.yaml\)/);
    }
    assert.ok(!fs.existsSync(path.join(dir, 'none.db')));
  });

  test('without -c: $GATEHOUSE_CONFIG, else ./gatehouse.yaml, for run and admin commands alike', async (t) => {
    const dir = tempDir();
    const cfg = writeConfig({ ...baseConfig(), store: { sqlite: 'rule.db' }, servers: [miniServer('a')] }, dir);
    let r = gh(['team', 'add', 'ops'], { cwd: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /\(configuration: gatehouse\.yaml\)/);
    r = gh(['team', 'list'], { cwd: tempDir(), env: { GATEHOUSE_CONFIG: cfg } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ops /m);
    r = gh(['team', 'list'], { cwd: tempDir() });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /configuration: none \(the built-in defaults\)/);
    // run (bare gatehouse) in the same folder finds the same file and says so
    const child = spawnGatehouse([], { cwd: dir });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await until(() => /Configuration: gatehouse\.yaml/.test(out), { timeout: 15000, what: 'banner naming the file' });
    child.kill('SIGTERM');
  });

  test('a stdio server runs in the configuration folder, so its relative arguments work', async (t) => {
    const dir = tempDir();
    const rel = path.relative(dir, MINI);
    const gw = await startGateway(
      { ...baseConfig(), servers: [{ name: 'a', command: process.execPath, args: [rel, '--label', 'a'] }] },
      { t, dir },
    );
    const ready = await fetch(`${gw.base}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    await gw.stop();
  });

  test('check-config warns about a stdio command that is not there (exit 0)', () => {
    const cfg = writeConfig({ servers: [{ name: 'x', command: '/nonexistent/binary' }, { name: 'y', command: 'no-such-command-gh' }] });
    const r = gh(['check-config', cfg]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: server "x": command \/nonexistent\/binary: No such file or directory/);
    assert.match(r.stderr, /warning: server "y": command "no-such-command-gh" is not in PATH/);
    assert.match(r.stdout, /ok \(1 listener\(s\), 2 server\(s\), 2 warning\(s\) on stderr\)/);
  });

  test('without auth and key_file, run writes no key file (neither beside the file nor in the current folder)', async (t) => {
    const dir = tempDir();
    const file = writeConfig({ ...baseConfig(), servers: [miniServer('a')] }, dir);
    const child = spawnGatehouse(['run', '-c', file], { cwd: dir });
    t.after(() => child.kill('SIGKILL'));
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    await until(() => err.includes('"event":"listening"'), { timeout: 15000, what: `listening\n${err}` });
    const exited = new Promise((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    assert.deepEqual(fs.readdirSync(dir), ['gatehouse.yaml']);
  });
});

describe('listeners', () => {
  test('a second gateway on a port in use is refused with "address in use"; --share joins on purpose', async (t) => {
    const port = await closedLoopbackPort();
    const cfg = { ...baseConfig(), listen: [{ address: '127.0.0.1', port }], servers: [miniServer('a')] };
    const gw = await startGateway(cfg, { t });
    const file = writeConfig(cfg);
    const r = gh(['run', '-c', file]);
    assert.equal(r.status, 1, `second start: exit ${r.status}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address in use`));
    assert.match(r.stderr, /--share or set share: true/);
    // share: true (what --share sets) joins the running gateway's port on purpose
    const shared = await startGateway({ ...cfg, listen: [{ address: '127.0.0.1', port, share: true }] }, { t });
    assert.equal(shared.port, port);
    await shared.stop();
    await gw.stop();
  });

  test('a port held by another program (no SO_REUSEPORT) is refused', async () => {
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise((res) => srv.listen(0, '127.0.0.1', res));
    const { port } = srv.address();
    try {
      const r = gh(['run', '-c', writeConfig({ listen: [{ address: '127.0.0.1', port }] })]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}: address in use`));
    } finally {
      srv.close();
    }
  });
});

describe('a normal start looks normal', () => {
  test('"listening" is logged at info, and a legacy server is not reported as a failure', async (t) => {
    const gw = await startGateway({ ...baseConfig(), servers: [miniServer('a')] }, { t });
    const ev = gw.events.find((e) => e.event === 'listening');
    assert.equal(ev.level, 'info');
    await gw.waitForEvent((e) => e.event === 'upstream_era', { timeout: 10000 });
    const era = gw.events.filter((e) => e.event === 'upstream_era').map((e) => e.msg).join('\n');
    assert.doesNotMatch(era, /answered -32601/);
    assert.match(era, /legacy/);
    const loud = gw.events.filter((e) => e.level === 'warn' || e.level === 'error');
    assert.deepEqual(loud, [], 'no warning or error at a normal start');
    await gw.stop();
  });

  const everything = path.join(REPO, 'tests/interop/node_modules/.bin/mcp-server-everything');
  test('the reference server asks for roots at start and gets an answer, not an error', { skip: !fs.existsSync(everything) && 'tests/interop/node_modules not installed' }, async (t) => {
    const gw = await startGateway({ ...baseConfig(), servers: [{ name: 'everything', command: everything, args: ['stdio'] }] }, { t, timeout: 30000 });
    await until(async () => (await fetch(`${gw.base}/readyz`)).status === 200, { timeout: 20000, what: 'ready' });
    await new Promise((r) => setTimeout(r, 1000)); // the server asks for roots just after initialized
    assert.doesNotMatch(gw.logText(), /Failed to request roots/);
    await gw.stop();
  });
});

describe('benchmark', () => {
  const loadgen = path.join(path.dirname(BIN), 'loadgen');
  test('loadgen --init-only opens a session whose id is longer than 160 characters', { skip: !fs.existsSync(loadgen) && 'loadgen not built' }, async (t) => {
    const gw = await startGateway({ ...baseConfig(), servers: [miniServer('a')] }, { t });
    const r = spawnSync(loadgen, ['--url', gw.url, '--init-only'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const sid = /session_id=(\S+)/.exec(r.stdout)?.[1];
    assert.ok(sid && sid.length > 160, `session id ${sid?.length} characters: ${r.stdout}`);
    await gw.stop();
  });
});
