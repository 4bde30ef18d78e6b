/**
 * A production install works (issue 15): every package that `src/` imports at run time is in
 * package.json `dependencies`, so `npm install --omit=dev` leaves nothing out. Before, `mailparser`
 * was a devDependency imported by `src/http/notification-routes.ts`, and a production install failed
 * on start with ERR_MODULE_NOT_FOUND.
 *
 * `web/src` is different: Vite bundles it at build time (`npm run build:web`), and the server serves the
 * bundle, never web/src's packages. Its packages may be in either list, as long as they are listed: a
 * production install serves a bundle built beforehand (docs/dependencies.md).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin, stripTypeScriptTypes } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import type * as acorn from 'acorn';
import { parse } from 'acorn';
import { full } from 'acorn-walk';

const ROOT = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

function filesUnder(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => pattern.test(name) && !name.split('/').includes('node_modules'))
    .map((name) => join(dir, name));
}

/** The package a bare specifier names: `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
export function packageOf(specifier: string): string | null {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('#')) return null;
  if (specifier.startsWith('node:') || isBuiltin(specifier)) return null;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/**
 * The specifiers a TypeScript module loads at run time: static imports and re-exports, `import()` and
 * `require()` of a string. Types are stripped first, so `import type` and `import { type X }` (erased
 * by Node too) count for nothing.
 */
export function runtimeSpecifiers(source: string): string[] {
  const code = stripTypeScriptTypes(source, { mode: 'strip' });
  const ast = parse(code, { ecmaVersion: 'latest', sourceType: 'module', allowHashBang: true });
  const found: string[] = [];
  const literal = (node: unknown) => {
    const n = node as { type: string; value?: unknown } | null | undefined;
    if (n?.type === 'Literal' && typeof n.value === 'string') found.push(n.value);
  };
  full(ast, (node) => {
    switch (node.type) {
      case 'ImportDeclaration':
      case 'ExportNamedDeclaration':
      case 'ExportAllDeclaration':
      case 'ImportExpression':
        literal((node as { source?: unknown }).source);
        break;
      case 'CallExpression': {
        const call = node as acorn.CallExpression;
        if (call.callee.type === 'Identifier' && call.callee.name === 'require') literal(call.arguments[0]);
        break;
      }
    }
  });
  return found;
}

describe('package.json lists what the code imports', () => {
  it('every package src/ imports at run time is in dependencies', () => {
    const files = filesUnder(join(ROOT, 'src'), /\.ts$/).filter((f) => !f.endsWith('.d.ts'));
    assert.ok(files.length > 50, 'found the sources');
    const missing: string[] = [];
    const used = new Set<string>();
    for (const file of files) {
      for (const specifier of runtimeSpecifiers(readFileSync(file, 'utf8'))) {
        const name = packageOf(specifier);
        if (!name) continue;
        used.add(name);
        if (!(name in pkg.dependencies)) missing.push(`${relative(ROOT, file)} imports '${specifier}'`);
      }
    }
    assert.deepEqual(missing, [], 'move these packages to dependencies');
    assert.ok(used.has('mailparser') && used.has('commander'), 'the scan sees imports');
  });

  it('every package web/src imports is in dependencies or devDependencies (bundled at build time)', () => {
    const files = filesUnder(join(ROOT, 'web', 'src'), /\.(ts|tsx)$/);
    const missing: string[] = [];
    // TSX is not plain TypeScript for the type stripper: read import specifiers with a pattern.
    const pattern =
      /(?:^|[;\s])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(?\s*['"]([^'"]+)['"]/g;
    for (const file of files) {
      for (const match of readFileSync(file, 'utf8').matchAll(pattern)) {
        const name = packageOf(match[1] ?? match[2]!);
        if (name && !(name in pkg.dependencies) && !(name in pkg.devDependencies))
          missing.push(`${relative(ROOT, file)} imports '${name}'`);
      }
    }
    assert.deepEqual(missing, [], 'add these packages to package.json');
  });

  it('maps specifiers to packages', () => {
    assert.equal(packageOf('@duckdb/node-api/lib'), '@duckdb/node-api');
    assert.equal(packageOf('react-dom/client'), 'react-dom');
    assert.equal(packageOf('node:fs'), null);
    assert.equal(packageOf('fs'), null);
    assert.equal(packageOf('./x.ts'), null);
    assert.deepEqual(
      runtimeSpecifiers(
        "import type { A } from 'types-only';\nimport { type B, c } from 'mixed';\nexport * from 'again';\nconst d = await import('lazy');\n",
      ),
      ['mixed', 'again', 'lazy'],
    );
  });
});
