/**
 * The web app's API types are generated from the OpenAPI document (scripts/gen-api.ts). This fails
 * when a route's schema changed and `web/src/api/schema.d.ts` (or the document beside it) was not
 * regenerated, so the client can never drift from the server unnoticed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DOCUMENT_PATH, generate, SCHEMA_PATH } from '../scripts/gen-api.ts';

describe('generated API types', () => {
  it('web/src/api/schema.d.ts and openapi.json match the server (else: run npm run gen:api)', async () => {
    const fresh = await generate();
    // Written to a temporary directory first, so a failure leaves the fresh files to compare by hand.
    const dir = mkdtempSync(join(tmpdir(), 'almanac-api-types-'));
    try {
      writeFileSync(join(dir, 'schema.d.ts'), fresh.schema);
      writeFileSync(join(dir, 'openapi.json'), fresh.document);
      for (const [committed, name] of [
        [SCHEMA_PATH, 'schema.d.ts'],
        [DOCUMENT_PATH, 'openapi.json'],
      ] as const) {
        const now = readFileSync(join(dir, name), 'utf8');
        let before = '';
        try {
          before = readFileSync(committed, 'utf8');
        } catch {
          assert.fail(`${committed} is missing: run npm run gen:api`);
        }
        assert.ok(
          before === now,
          `${committed} is stale (the API changed since it was generated): run npm run gen:api`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('references resolve: every $ref points at a schema in components', async () => {
    const document = JSON.parse(readFileSync(DOCUMENT_PATH, 'utf8')) as Record<string, any>;
    const names = new Set(Object.keys(document['components']?.['schemas'] ?? {}));
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(refs.length > 0);
    for (const ref of refs) {
      assert.match(ref, /^#\/components\/schemas\//);
      assert.ok(names.has(ref.slice('#/components/schemas/'.length)), `${ref} resolves`);
    }
  });
});
