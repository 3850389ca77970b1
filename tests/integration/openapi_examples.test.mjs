// Single-feature documents of @readme/oas-examples (issue 5, Tests): each converted by the real
// `gatehouse openapi inspect --json` and compared with its expected catalog,
// tests/openapi/expected/<name>.json (tool names, operations, annotations, descriptions, input
// schemas, what was dropped and why, the notes; no token counts). The golden files were reviewed
// by hand against their documents. `UPDATE_GOLDEN=1` rewrites them (review the diff before
// committing it). Every document is also checked for credentials exposed as arguments: no tool
// of either mapping may have an argument named like an apiKey scheme of its location, or an
// Authorization header.
//
// The package is pinned in tests/interop/package.json (installed by scripts/deps.sh test).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO, requireBinary, runGatehouse } from './lib.mjs';

const PKG = path.join(REPO, 'tests/interop/node_modules/@readme/oas-examples');
const EXPECTED = path.join(REPO, 'tests/openapi/expected');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

// [golden name, document under PKG, what it covers]
const DOCS = [
  ['2.0-petstore', '2.0/json/petstore.json', 'formData + file upload, api_key header parameter, oauth2, csv/multi arrays'],
  ['2.0-schema-circular', '2.0/json/schema-circular.json', 'circular definitions in Swagger 2.0'],
  ['3.0-circular', '3.0/json/circular.json', 'circular component schemas'],
  ['3.0-circular-request-bodies', '3.0/json/circular-request-bodies.json', 'circular request bodies'],
  ['3.0-schema-circular', '3.0/yaml/schema-circular.yaml', 'self and mutual references (YAML)'],
  ['3.0-discriminators', '3.0/json/discriminators.json', 'discriminator with and without mapping'],
  ['3.0-polymorphism', '3.0/json/polymorphism.json', 'oneOf / anyOf / allOf'],
  ['3.0-file-uploads', '3.0/json/file-uploads.json', 'multipart, binary bodies'],
  ['3.0-form-data', '3.0/json/form-data.json', 'application/x-www-form-urlencoded'],
  ['3.0-parameters-style', '3.0/json/parameters-style.json', 'path/query/header/cookie style + explode'],
  ['3.0-parameters-cookies', '3.0/json/parameters-cookies.json', 'cookie parameters'],
  ['3.0-parameters-common', '3.0/json/parameters-common.json', 'path-level parameters and overrides'],
  ['3.0-security', '3.0/json/security.json', 'apiKey (query, cookie, header), basic, bearer, oauth2, openIdConnect'],
  ['3.0-security-multiple', '3.0/json/security-multiple.json', 'AND / OR security requirements'],
  ['3.0-petstore', '3.0/json/petstore.json', 'api_key header parameter hidden, deletePet, uploadFile'],
  ['3.0-schema-visibility', '3.0/json/schema-visibility.json', 'readOnly / writeOnly properties'],
  ['3.0-callbacks', '3.0/json/callbacks.json', 'callbacks are not operations'],
  ['3.0-server-variables', '3.0/json/server-variables.json', 'server URL variables'],
  ['3.1-parameters-style', '3.1/json/parameters-style.json', 'style + explode in 3.1'],
  ['3.1-security', '3.1/json/security.json', 'security schemes in 3.1 (mutualTLS)'],
  ['3.1-schema-types', '3.1/json/schema-types.json', '3.1 type arrays, null, const'],
  ['3.1-webhooks', '3.1/json/webhooks.json', 'webhooks are not operations'],
];

/** The catalog, normalised: what a client sees and why, without token counts that may drift. */
function normalise(out) {
  const noTokens = (s) => s.replace(/\b\d+ (estimated )?tokens?\b/g, 'N tokens');
  const { document: d } = out;
  return {
    document: { format: d.format, spec_version: d.spec_version, operations: d.operations, server: d.server },
    tools: out.tools.map((t) => ({
      name: t.name,
      operation: t.operation,
      description: t.description,
      annotations: t.annotations,
      inputSchema: t.inputSchema,
    })),
    naive_tools: out.naive.tools.map((t) => t.name),
    dropped: out.dropped,
    notes: out.notes.map((n) => ({ ...n, detail: n.detail === undefined ? undefined : noTokens(n.detail) })),
    warnings: out.warnings,
  };
}

/** The credential arguments a document declares: apiKey schemes by location, plus Authorization. */
function credentialNames(doc) {
  const schemes = { ...(doc.securityDefinitions ?? {}), ...(doc.components?.securitySchemes ?? {}) };
  const names = new Set(['authorization']);
  for (const s of Object.values(schemes)) if (s.type === 'apiKey' && s.name) names.add(s.name.toLowerCase());
  return names;
}

test('the examples package is installed', () => {
  assert.ok(fs.existsSync(path.join(PKG, 'package.json')),
    `${path.relative(REPO, PKG)} is absent: install the test packages (scripts/deps.sh test, or cd tests/interop && npm ci)`);
});

for (const [name, rel, covers] of DOCS) {
  test(`${name}: ${covers}`, async () => {
    requireBinary();
    const file = path.join(PKG, rel);
    const r = await runGatehouse(['openapi', 'inspect', file, '--json']);
    assert.equal(r.code, 0, `inspect ${rel} failed: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    const got = normalise(out);

    // No credential is ever an argument (the golden files are checked for it too, independently).
    const text = fs.readFileSync(file, 'utf8');
    if (rel.endsWith('.json')) {
      const creds = credentialNames(JSON.parse(text));
      for (const t of [...out.tools, ...out.naive.tools])
        for (const arg of Object.keys(t.inputSchema.properties ?? {}))
          assert.ok(!creds.has(arg.toLowerCase()), `${name}: tool ${t.name} exposes the credential ${arg}`);
    }

    const golden = path.join(EXPECTED, `${name}.json`);
    const json = JSON.stringify(got, null, 2) + '\n';
    if (UPDATE) {
      fs.mkdirSync(EXPECTED, { recursive: true });
      fs.writeFileSync(golden, json);
      return;
    }
    assert.ok(fs.existsSync(golden), `${path.relative(REPO, golden)} is missing (UPDATE_GOLDEN=1 writes it)`);
    assert.deepEqual(JSON.parse(json), JSON.parse(fs.readFileSync(golden, 'utf8')),
      `${name}: the catalog differs from ${path.relative(REPO, golden)} (UPDATE_GOLDEN=1 rewrites it; review the diff)`);
  });
}
