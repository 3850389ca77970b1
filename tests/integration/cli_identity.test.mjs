// The administration CLI against a real store: users, teams, service accounts and API keys,
// per-user clients, revocation. Secrets are printed once on stdout and never land in the
// SQLite files (database and WAL are searched byte for byte, also for their base64 forms).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { BIN, requireBinary, tempDir, writeConfig } from './lib.mjs';

let dir;
let config;
let dbFile;

function gh(args, { input } = {}) {
  const r = spawnSync(BIN, [...args, '-c', config], {
    cwd: dir,
    input: input ?? '',
    encoding: 'utf8',
    timeout: 20000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

function ok(args, opts) {
  const r = gh(args, opts);
  assert.equal(r.code, 0, `gatehouse ${args.join(' ')} → ${r.code}\n${r.out}`);
  return r;
}

function refused(args, code, re, opts) {
  const r = gh(args, opts);
  assert.equal(r.code, code, `gatehouse ${args.join(' ')} → ${r.code}, expected ${code}\n${r.out}`);
  assert.match(r.stderr, re);
  return r;
}

/** Every byte the store holds on disk: the database and its WAL. */
function storeBytes() {
  return Buffer.concat(
    [dbFile, `${dbFile}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f)),
  );
}

function assertNotStored(secret) {
  const bytes = storeBytes();
  for (const form of [
    secret,
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    Buffer.from(secret).toString('hex'),
  ]) {
    assert.equal(bytes.indexOf(Buffer.from(form)), -1, `a form of the secret is in the store: ${form}`);
  }
}

before(() => {
  requireBinary();
  dir = tempDir();
  dbFile = path.join(dir, 'store.sqlite');
  config = writeConfig({ store: { sqlite: dbFile } }, dir);
});

describe('gatehouse user', () => {
  test('add --random prints the password once, stores only argon2id; the file is 0600', () => {
    const r = ok(['user', 'add', 'alice', '--random', '--admin', '--email', 'alice@example.com']);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, r.stdout);
    const pw = lines[0];
    assert.match(pw, /^[A-Za-z0-9_-]{24}$/);
    assert.match(r.stderr, /shown once/);
    assert.match(r.stderr, /user "alice" added \(id \d+, administrator\)/);
    assert.equal(fs.statSync(dbFile).mode & 0o777, 0o600);
    assertNotStored(pw);
    assert.ok(storeBytes().indexOf(Buffer.from('$argon2id$')) >= 0);
    const list = ok(['user', 'list']);
    assert.ok(!list.out.includes(pw));
  });

  test('add --password-stdin; a name taken, a bad name, a short password are refused by cause', () => {
    ok(['user', 'add', 'bob', '--password-stdin'], { input: 'correct horse battery\n' });
    assertNotStored('correct horse battery');
    refused(['user', 'add', 'bob', '--no-password'], 1, /user "bob" exists already/);
    refused(['user', 'add', 'bad name', '--no-password'], 1, /user name "bad name" is not/);
    refused(['user', 'add', 'carol', '--password-stdin'], 1, /shorter than 8/, { input: 'short\n' });
    refused(['user', 'add', 'carol', '--password-stdin'], 1, /no password on stdin/);
    refused(['user', 'add', 'carol'], 2, /no terminal to ask for the password/);
    refused(['user', 'add', 'carol', '--random', '--password-stdin'], 2, /exclude each other/);
    refused(['user', 'add'], 2, /missing NAME/);
    refused(['user', 'add', 'carol', '--frob'], 2, /unknown option "--frob"/);
    refused(['user', 'frob'], 2, /unknown command "user frob"/);
    ok(['user', 'add', 'sso-only', '--no-password']);
  });

  test('list --json; disable and enable; passwd', () => {
    let users = JSON.parse(ok(['user', 'list', '--json']).stdout);
    assert.deepEqual(users.map((u) => u.name), ['alice', 'bob', 'sso-only']);
    const alice = users[0];
    assert.equal(alice.admin, true);
    assert.equal(alice.email, 'alice@example.com');
    assert.equal(alice.disabled, false);
    assert.deepEqual(alice.teams, []);
    assert.equal(typeof alice.id, 'number');
    assert.equal(typeof alice.created_at, 'number');

    assert.match(ok(['user', 'disable', 'bob']).stdout, /"bob" disabled/);
    users = JSON.parse(ok(['user', 'list', '--json']).stdout);
    assert.equal(users.find((u) => u.name === 'bob').disabled, true);
    ok(['user', 'enable', 'bob']);
    users = JSON.parse(ok(['user', 'list', '--json']).stdout);
    assert.equal(users.find((u) => u.name === 'bob').disabled, false);
    refused(['user', 'disable', 'nobody'], 1, /no user named "nobody"/);

    const r = ok(['user', 'passwd', 'bob', '--random']);
    assertNotStored(r.stdout.trim());
    ok(['user', 'passwd', 'bob', '--password-stdin'], { input: 'another long one\n' });
    refused(['user', 'passwd', 'nobody', '--random'], 1, /no user named "nobody"/);
  });
});

describe('gatehouse team', () => {
  test('add, member add/remove, list', () => {
    ok(['team', 'add', 'eng']);
    refused(['team', 'add', 'eng'], 1, /team "eng" exists already/);
    assert.match(ok(['team', 'member', 'add', 'eng', 'alice', '--role', 'admin']).stdout, /administrator of team "eng"/);
    ok(['team', 'member', 'add', 'eng', 'bob']);
    refused(['team', 'member', 'add', 'nope', 'bob'], 1, /no team named "nope"/);
    refused(['team', 'member', 'add', 'eng', 'nobody'], 1, /no user named "nobody"/);
    refused(['team', 'member', 'add', 'eng', 'bob', '--role', 'boss'], 2, /unknown role "boss"/);
    refused(['team', 'member', 'add', 'eng'], 2, /missing USER/);
    assert.match(ok(['team', 'list']).stdout, /eng\s+2/);
    const users = JSON.parse(ok(['user', 'list', '--json']).stdout);
    assert.deepEqual(users.find((u) => u.name === 'alice').teams, [{ name: 'eng', role: 'admin' }]);
    ok(['team', 'member', 'remove', 'eng', 'bob']);
    refused(['team', 'member', 'remove', 'eng', 'bob'], 1, /"bob" is not a member of a team named "eng"/);
    assert.match(ok(['team', 'list']).stdout, /eng\s+1/);
  });
});

describe('gatehouse account and apikey', () => {
  test('the key is printed once, stored as argon2id, revocable by id', () => {
    ok(['account', 'add', 'ci-bot']);
    refused(['account', 'add', 'ci-bot'], 1, /account "ci-bot" exists already/);
    const r = ok(['apikey', 'create', '--account', 'ci-bot', '--label', 'deploys']);
    const key = r.stdout.trim();
    const m = key.match(/^ghk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/);
    assert.ok(m, key);
    assert.match(r.stderr, new RegExp(`API key ${m[1]} .*shown once`));
    assertNotStored(m[2]);
    assertNotStored(key);
    refused(['apikey', 'create', '--account', 'nope'], 1, /no service account named "nope"/);
    refused(['apikey', 'create'], 2, /--account is required/);
    assert.match(ok(['apikey', 'revoke', m[1]]).stdout, /revoked/);
    refused(['apikey', 'revoke', 'ffffffffffffffff'], 1, /no API key with id "ffffffffffffffff"/);
  });
});

describe('gatehouse client and revoke', () => {
  test('client create prints the secret once; list; revoke; revoke --user', () => {
    const r = ok(['client', 'create', '--user', 'bob', '--name', 'bob-laptop', '--redirect-uri', 'https://app.example/cb', '--redirect-uri', 'http://127.0.0.1:7777/cb']);
    const id = r.stdout.match(/^client_id: (ghc_[0-9a-f]{16})$/m)?.[1];
    const secret = r.stdout.match(/^client_secret: (ghs_[A-Za-z0-9_-]{43})$/m)?.[1];
    assert.ok(id && secret, r.stdout);
    assertNotStored(secret);
    assertNotStored(secret.slice(4));
    refused(['client', 'create', '--user', 'nobody'], 1, /no user named "nobody"/);
    refused(['client', 'create', '--user', 'bob', '--redirect-uri', 'http://evil.example/cb'], 1, /redirect URI "http:\/\/evil.example\/cb" is not https/);
    refused(['client', 'create'], 2, /--user is required/);

    const second = ok(['client', 'create', '--user', 'bob']).stdout.match(/client_id: (\S+)/)[1];
    ok(['client', 'create', '--user', 'alice']);
    let list = ok(['client', 'list', '--user', 'bob']).stdout;
    assert.ok(list.includes(id) && list.includes(second) && list.includes('bob-laptop'), list);
    assert.ok(!list.includes(secret));
    assert.equal((ok(['client', 'list']).stdout.match(/ghc_/g) || []).length, 3);

    ok(['client', 'revoke', id]);
    refused(['client', 'revoke', 'ghc_nope'], 1, /no client with client_id "ghc_nope"/);
    list = ok(['client', 'list', '--user', 'bob']).stdout;
    assert.match(list, new RegExp(`${id}\\s+user\\s+bob\\s+revoked`));
    assert.match(list, new RegExp(`${second}\\s+user\\s+bob\\s+active`));

    const rv = ok(['revoke', '--user', 'bob']);
    assert.match(rv.stdout, /everything user "bob" held is revoked/);
    list = ok(['client', 'list', '--user', 'bob']).stdout;
    assert.match(list, new RegExp(`${second}\\s+user\\s+bob\\s+revoked`));
    assert.match(ok(['client', 'list', '--user', 'alice']).stdout, /active/);
    const bob = JSON.parse(ok(['user', 'list', '--json']).stdout).find((u) => u.name === 'bob');
    assert.ok(bob.tokens_valid_after > Math.floor(Date.now() / 1000) - 5);
    refused(['revoke', '--user', 'nobody'], 1, /no user named "nobody"/);
    refused(['revoke'], 2, /--user is required/);
  });

  test('keys rotate and keys list; the master key file is created 0600', () => {
    const r = ok(['keys', 'rotate']);
    const kid = r.stdout.match(/signing key (\S+) \(ES256\) is current/)?.[1];
    assert.ok(kid, r.stdout);
    assert.equal(fs.statSync(`${dbFile}.key`).mode & 0o777, 0o600);
    const kid2 = ok(['keys', 'rotate', '--alg', 'EdDSA']).stdout.match(/signing key (\S+) \(EdDSA\)/)[1];
    const list = ok(['keys', 'list']).stdout;
    assert.match(list, new RegExp(`${kid2}\\s+EdDSA\\s+current`));
    assert.match(list, new RegExp(`${kid}\\s+ES256\\s+verifies`));
    refused(['keys', 'rotate', '--alg', 'RS256'], 2, /unknown algorithm "RS256"; expected ES256 or EdDSA/);
  });

  test('user bootstrap (make run): the first administrator once, only with auth on', () => {
    const d = tempDir();
    const db = path.join(d, 'b.sqlite');
    const cfgOff = writeConfig({ store: { sqlite: db } }, d);
    let r = spawnSync(BIN, ['user', 'bootstrap', '-c', cfgOff], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.ok(!fs.existsSync(db), 'without auth, bootstrap creates no store');
    const cfg = path.join(d, 'on.yaml');
    fs.writeFileSync(cfg, JSON.stringify({ store: { sqlite: db }, listen: [{ address: '127.0.0.1', port: 8080 }], auth: {} }));
    r = spawnSync(BIN, ['user', 'bootstrap', '-c', cfg], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const pw = r.stdout.match(/Administrator "admin" created\. Password \(shown once\): *\|\n\| (\S+) +\|\n/)?.[1];
    assert.ok(pw, r.stdout);
    assert.match(r.stdout, /^\n\+-+\+\n/, 'in a box of its own');
    assert.match(r.stdout, /http:\/\/127\.0\.0\.1:8080\/oauth\/authorize/);
    r = spawnSync(BIN, ['user', 'bootstrap', '-c', cfg], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.equal(r.stdout, ''); /* once */
    const bytes = fs.readFileSync(db);
    assert.equal(bytes.indexOf(Buffer.from(pw)), -1);
  });

  test('a store path that cannot be created is refused naming it', () => {
    const cfg = writeConfig({ store: { sqlite: '/nonexistent-dir/x.sqlite' } }, tempDir());
    const r = spawnSync(BIN, ['team', 'add', 'ops', '-c', cfg], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot open the store \/nonexistent-dir\/x\.sqlite/);
  });
});
