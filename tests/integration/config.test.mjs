// check-config and SIGHUP reload.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { assertServing, baseConfig, miniServer, openSession, runGatehouse, sleep, startGateway, tempDir, writeConfig } from './lib.mjs';

describe('check-config', () => {
  test('an unknown key → exit 1 with file:line:column: naming the key', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'listen:\n  - address: 127.0.0.1\n    port: 0\nservers:\n  - name: a\n    comand: x\n');
    const r = await runGatehouse(['check-config', file]);
    assert.equal(r.code, 1, `exit ${r.code}\n${r.stdout}${r.stderr}`);
    const out = r.stderr + r.stdout;
    const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(out, new RegExp(`${esc}:6:5: unknown key "comand"`), out);
    assert.match(out, /expected one of: .*command/, out);
  });

  test('a bad size → exit 1 pointing at the value', async () => {
    const file = writeConfig('limits:\n  max_body: 4MB\n');
    const r = await runGatehouse(['check-config', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr + r.stdout, /:2:13: .*"4MB".*size/, r.stderr);
  });

  test('a missing file → non-zero naming the file', async () => {
    const file = path.join(tempDir(), 'nope.yaml');
    const r = await runGatehouse(['check-config', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr + r.stdout, /nope\.yaml/);
  });

  test('a valid file → exit 0', async () => {
    const file = writeConfig(baseConfig({ servers: [miniServer('a')] }));
    const r = await runGatehouse(['check-config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /ok/);
  });

  test('run with an invalid file refuses to start, exit non-zero', async () => {
    const file = writeConfig('listen: [{address: 127.0.0.1, port: 0}]\nbogus: 1\n');
    const r = await runGatehouse(['run', '-c', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /:2:1: unknown key "bogus"/);
  });
});

describe('SIGHUP reload', () => {
  test('a broken file is refused (logged), a valid log-level change is applied', async (t) => {
    const cfg = (level) => baseConfig({ log: { level }, servers: [miniServer('g', { garbage: true })] });
    const gw = await startGateway(cfg('info'), { t });
    try {
      const s = await openSession(gw.url);
      // The garbage fixture answers with an unknown id on every response: a debug-level line.
      const call = async (text) => {
        const r = await s.callTool('tool', { text });
        assert.equal(r.json?.result?.content?.[0]?.text, `g:${text}`, r.text);
      };
      await call('one');
      await sleep(200);
      assert.ok(!gw.events.some((e) => e.level === 'debug'), 'debug lines at level info');

      // 1. unknown key
      fs.writeFileSync(gw.configFile, JSON.stringify({ ...cfg('debug'), bogus_key: 1 }, null, 2));
      let mark = gw.events.length;
      gw.signal('SIGHUP');
      const refused = await gw.waitForEvent((e) => e.event === 'reload', { from: mark, what: 'reload refusal' });
      assert.equal(refused.level, 'error', JSON.stringify(refused));
      assert.match(refused.msg, /not reloaded|refused/i);
      assert.match(refused.msg, /bogus_key/);
      assert.match(refused.msg, /gatehouse\.yaml:\d+:\d+:/);
      await assertServing(gw);
      await call('two');
      await sleep(200);
      assert.ok(!gw.events.slice(mark).some((e) => e.level === 'debug'), 'the refused file changed the log level');

      // 2. not even YAML
      fs.writeFileSync(gw.configFile, 'listen: [\n');
      mark = gw.events.length;
      gw.signal('SIGHUP');
      const refused2 = await gw.waitForEvent((e) => e.event === 'reload', { from: mark, what: 'reload refusal (syntax)' });
      assert.equal(refused2.level, 'error', JSON.stringify(refused2));
      await assertServing(gw);

      // 3. valid: level debug
      fs.writeFileSync(gw.configFile, JSON.stringify(cfg('debug'), null, 2));
      mark = gw.events.length;
      gw.signal('SIGHUP');
      const ok = await gw.waitForEvent((e) => e.event === 'reload', { from: mark, what: 'reload success' });
      assert.notEqual(ok.level, 'error', JSON.stringify(ok));
      assert.match(ok.msg, /reloaded/);
      await call('three');
      await gw.waitForEvent((e) => e.level === 'debug', { from: mark, timeout: 3000, what: 'a debug line after reload to debug' });

      // 4. valid: level error (request lines, at info, must stop)
      fs.writeFileSync(gw.configFile, JSON.stringify(cfg('error'), null, 2));
      mark = gw.events.length;
      gw.signal('SIGHUP');
      await sleep(400); // the success line is info-level, so it is not written any more
      const m2 = gw.events.length;
      await call('four');
      await s.rpc('ping');
      await sleep(300);
      const after = gw.events.slice(m2);
      assert.ok(!after.some((e) => e.level === 'info' || e.level === 'debug'), `info/debug lines at level error: ${JSON.stringify(after).slice(0, 500)}`);
      await assertServing(gw);
    } finally {
      await gw.stop();
    }
  });
});
