/**
 * Writes the API's OpenAPI document and the web app's client types from it, without a running server:
 * the server is built in-process on a throwaway SQLite store (no port, no loops), asked for
 * `/api/openapi.json`, and stopped. `npm run gen:api` runs it; test/api-types.test.ts fails when the
 * committed files differ from what this produces.
 *
 *   web/src/api/openapi.json   the document, as the server serves it (formatted)
 *   web/src/api/schema.d.ts    openapi-typescript's types for openapi-fetch
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { resolveConfig } from '../src/app/config.ts';
import { createServer } from '../src/app/create-server.ts';

const ROOT = join(import.meta.dirname, '..');
export const DOCUMENT_PATH = join(ROOT, 'web', 'src', 'api', 'openapi.json');
export const SCHEMA_PATH = join(ROOT, 'web', 'src', 'api', 'schema.d.ts');

/** The OpenAPI document, from a server built in this process on a fresh SQLite file. */
export async function openApiDocument(): Promise<unknown> {
  const dataDir = mkdtempSync(join(tmpdir(), 'almanac-gen-api-'));
  try {
    const config = resolveConfig(
      { dataDir, port: 0 },
      {
        DATABASE_URL: join(dataDir, 'almanac.sqlite'),
        ALMANAC_SECRET_KEY: 'gen-api',
        ALMANAC_LOG_LEVEL: 'silent',
        ALMANAC_PREWARM: 'false',
      },
    );
    const server = await createServer(config, { webDir: null, listen: false, autostart: false });
    try {
      const response = await server.http.app.request('/api/openapi.json');
      if (!response.ok) throw new Error(`gen:api: GET /api/openapi.json answered ${response.status}`);
      return await response.json();
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Moves every schema's local `$defs` into `components.schemas` and points its `#/$defs/X` references
 * there. The served document embeds zod's `$defs` inside each operation's schema, but its references
 * (`#/$defs/X`) resolve against the document's root, where there are none, so openapi-typescript (and
 * any validator) cannot follow them. A name that two schemas define differently (a request's input and
 * a response's output shape of one concept) gets a numbered name, so neither is lost.
 */
export function bundleDefs(document: Record<string, Json>): Record<string, Json> {
  const components = { ...(document['components'] as Record<string, Json> | undefined) };
  const schemas = { ...(components['schemas'] as Record<string, Json> | undefined) };
  const visit = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== 'object') return node;
    const defs = node['$defs'] as Record<string, Json> | undefined;
    const renames = new Map<string, string>();
    if (defs && typeof defs === 'object') {
      for (const [name, def] of Object.entries(defs)) {
        // Compared as it will read once its own references point at components.
        const text = JSON.stringify(def).replaceAll('"#/$defs/', '"#/components/schemas/');
        let target = name;
        for (let n = 2; schemas[target] !== undefined && JSON.stringify(schemas[target]) !== text; n++) {
          target = `${name}${n}`;
        }
        renames.set(name, target);
      }
    }
    const rewrite = (inner: Json): Json => {
      if (Array.isArray(inner)) return inner.map(rewrite);
      if (inner === null || typeof inner !== 'object') return inner;
      const out: Record<string, Json> = {};
      for (const [key, value] of Object.entries(inner)) {
        if (key === '$ref' && typeof value === 'string' && value.startsWith('#/$defs/')) {
          const name = value.slice('#/$defs/'.length);
          out[key] = `#/components/schemas/${renames.get(name) ?? name}`;
        } else out[key] = rewrite(value);
      }
      return out;
    };
    const rewritten = renames.size > 0 ? (rewrite(node) as Record<string, Json>) : node;
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(rewritten)) {
      if (key === '$defs' && renames.size > 0) {
        for (const [name, def] of Object.entries(value as Record<string, Json>)) {
          schemas[renames.get(name)!] = visit(def);
        }
      } else out[key] = visit(value);
    }
    return out;
  };
  const paths = visit(document['paths'] ?? {});
  return { ...document, components: { ...components, schemas: sortKeys(schemas) }, paths };
}

function sortKeys(record: Record<string, Json>): Record<string, Json> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

/** Formats `text` as Biome formats the file at `path` (the files are committed, and linted). */
function biomeFormat(text: string, path: string): string {
  const biome = join(ROOT, 'node_modules', '.bin', 'biome');
  const result = spawnSync(biome, ['format', `--stdin-file-path=${relative(ROOT, path)}`], {
    cwd: ROOT,
    input: text,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`gen:api: biome could not format ${path}: ${result.stderr}`);
  return result.stdout;
}

const HEADER = `/**
 * The API's types, generated from /api/openapi.json by \`npm run gen:api\` (scripts/gen-api.ts).
 * Do not edit: change the route's schema in src/http/ and regenerate.
 */
/** biome-ignore-all lint: generated by openapi-typescript */
`;

/** The two files' contents, as `npm run gen:api` writes them. */
export async function generate(): Promise<{ document: string; schema: string }> {
  const document = bundleDefs((await openApiDocument()) as Record<string, Json>);
  const ast = await openapiTS(document as unknown as Parameters<typeof openapiTS>[0]);
  return {
    document: biomeFormat(`${JSON.stringify(document, null, 2)}\n`, DOCUMENT_PATH),
    schema: biomeFormat(HEADER + astToString(ast), SCHEMA_PATH),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { document, schema } = await generate();
  writeFileSync(DOCUMENT_PATH, document);
  writeFileSync(SCHEMA_PATH, schema);
  console.log(`wrote ${relative(ROOT, DOCUMENT_PATH)} and ${relative(ROOT, SCHEMA_PATH)}`);
}
