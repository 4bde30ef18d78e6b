/**
 * The layering of ARCHITECTURE.md, checked on every file under src/ (issue 15, "Queries live in
 * `src/store/` only" and "imports only point down"):
 *
 *   domain ← store ← services ← scheduler | executor | notify ← http ← app ← cli
 *
 * 1. Every import points down (or stays in its layer), type-only imports included: a type import still
 *    couples a module to the layer it names, and moving a type down is how such a cycle is broken.
 * 2. Nothing outside `store/` builds a query: no Kysely import, no `sql` template, no query-builder call
 *    (`selectFrom`, `insertInto`, `updateTable`, `deleteFrom`, …) and no `.transaction()`; services
 *    group store calls with `transaction(db, fn)` from store/database.ts.
 * 3. Only services/ call the store's query modules (`store/*-store.ts`): the loops, the HTTP app, the
 *    CLI and the composition root go through a service (the worker through the run service, the
 *    notifier through the delivery service). Type imports from them are fine: they re-export the
 *    glossary's types. The store's other modules (database, migrations, wake-ups, transient errors)
 *    are plumbing the layers above may use.
 *
 * Where this differs from the brief (which draws app/ below http/ and cli/): app/ is the one
 * composition root, so it builds the HTTP app as it builds the loops, and imports http/ to do so.
 * http/ never imports app/ (it is handed what it needs), and cli/ reaches the server only over HTTP
 * (cli/api-client.ts), never by importing http/. The glossary's "Composition root" row says the same.
 *
 * Files are parsed with the TypeScript compiler's parser (a devDependency), not matched line by line,
 * so comments and strings that mention `sql` or an import do not count, and multi-line imports do.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const SRC = resolve('src');

const LAYERS = [
  'domain',
  'store',
  'services',
  'scheduler',
  'executor',
  'notify',
  'http',
  'app',
  'cli',
] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import besides itself. */
const MAY_IMPORT: Readonly<Record<Layer, readonly Layer[]>> = {
  domain: [],
  store: ['domain'],
  services: ['store', 'domain'],
  // The long-running loops sit side by side: none imports another.
  scheduler: ['services', 'store', 'domain'],
  executor: ['services', 'store', 'domain'],
  notify: ['services', 'store', 'domain'],
  http: ['scheduler', 'executor', 'notify', 'services', 'store', 'domain'],
  // The composition root builds everything, the HTTP app included (see the header).
  app: ['http', 'scheduler', 'executor', 'notify', 'services', 'store', 'domain'],
  cli: ['app', 'scheduler', 'executor', 'notify', 'services', 'store', 'domain'],
};

/** Query-builder methods of Kysely that start a query (or a transaction). */
const QUERY_METHODS = new Set([
  'selectFrom',
  'selectNoFrom',
  'insertInto',
  'replaceInto',
  'updateTable',
  'deleteFrom',
  'mergeInto',
  'transaction',
  'connection',
]);

export interface Finding {
  file: string;
  line: number;
  problem: string;
}

function layerOf(file: string): Layer | null {
  const top = relative(SRC, file).split(sep)[0];
  return (LAYERS as readonly string[]).includes(top ?? '') ? (top as Layer) : null;
}

/** Whether an import or export declaration brings in types only. */
function typeOnly(node: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return true;
    const clause = node.exportClause;
    return !!clause && ts.isNamedExports(clause) && clause.elements.every((e) => e.isTypeOnly);
  }
  const clause = node.importClause;
  if (!clause) return false; // a side-effect import runs the module
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return !!bindings && ts.isNamedImports(bindings) && bindings.elements.every((e) => e.isTypeOnly);
}

interface Import {
  specifier: string;
  line: number;
  typeOnly: boolean;
}

/** The module specifiers a file imports or re-exports, with their lines (static, dynamic and type imports). */
function importsOf(source: ts.SourceFile): Import[] {
  const out: Import[] = [];
  const add = (node: ts.Node, literal: ts.Expression | undefined, types = false) => {
    if (literal && ts.isStringLiteralLike(literal)) {
      out.push({
        specifier: literal.text,
        line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1,
        typeOnly: types,
      });
    }
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      add(node, node.moduleSpecifier, typeOnly(node));
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal as ts.Expression, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The problems of one file, given its path (to know its layer) and its text. */
export function checkFile(file: string, text: string): Finding[] {
  const layer = layerOf(file);
  if (!layer)
    return [{ file, line: 1, problem: `is in no layer (put it under one of ${LAYERS.join(', ')})` }];
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const findings: Finding[] = [];
  const at = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart()).line + 1;
  for (const { specifier, line, typeOnly } of importsOf(source)) {
    if (layer !== 'store' && (specifier === 'kysely' || specifier.startsWith('kysely/'))) {
      findings.push({ file, line, problem: `imports '${specifier}': queries live in src/store/` });
    }
    if (!specifier.startsWith('.')) continue;
    const path = resolve(dirname(file), specifier);
    const target = layerOf(path);
    const queries = target === 'store' && /-store\.ts$/.test(path);
    if (queries && !typeOnly && layer !== 'store' && layer !== 'services') {
      findings.push({
        file,
        line,
        problem: `calls store queries ('${specifier}'): queries live in src/store/, and only services/ call them`,
      });
    }
    if (target === null) {
      findings.push({ file, line, problem: `imports '${specifier}', outside src/'s layers` });
    } else if (target !== layer && !MAY_IMPORT[layer].includes(target)) {
      findings.push({
        file,
        line,
        problem: `${layer}/ imports ${target}/ ('${specifier}'): ${layer}/ may import only ${[layer, ...MAY_IMPORT[layer]].join(', ')}`,
      });
    }
  }
  if (layer !== 'store') {
    const visit = (node: ts.Node) => {
      if (ts.isTaggedTemplateExpression(node) && ts.isIdentifier(node.tag) && node.tag.text === 'sql') {
        findings.push({ file, line: at(node), problem: 'builds SQL (sql`…`): queries live in src/store/' });
      } else if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        QUERY_METHODS.has(node.expression.name.text)
      ) {
        findings.push({
          file,
          line: at(node),
          problem: `calls .${node.expression.name.text}(): queries live in src/store/ (services use transaction(db, fn) and store functions)`,
        });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return findings;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|mts|cts|js|mjs)$/.test(entry.name) ? [path] : [];
  });
}

const report = (findings: Finding[]) =>
  findings.map((f) => `${relative(process.cwd(), f.file)}:${f.line} ${f.problem}`).join('\n');

describe('layering (issue 15)', () => {
  const files = sourceFiles(SRC);

  it('finds the files', () => {
    assert.ok(files.length > 50, `only ${files.length} files under src/`);
  });

  it('every import points down, type-only imports included', () => {
    const findings = files
      .flatMap((file) => checkFile(file, readFileSync(file, 'utf8')))
      .filter((f) => !/queries live/.test(f.problem));
    assert.equal(report(findings), '');
  });

  it('no query is built outside src/store/, nor called from above services/', () => {
    const findings = files
      .flatMap((file) => checkFile(file, readFileSync(file, 'utf8')))
      .filter((f) => /queries live/.test(f.problem));
    assert.equal(report(findings), '');
  });

  it('the check itself catches a query and an upward import, and ignores comments and strings', () => {
    const service = join(SRC, 'services', 'example.ts');
    const found = checkFile(
      service,
      [
        "import type { Kysely } from 'kysely';",
        "import type { Worker } from '../executor/worker.ts';",
        "import { createHttpApp } from '../http/server.ts';",
        '// a comment that says ctx.db.selectFrom(`runs`) and sql`select 1`',
        "const text = 'db.updateTable(x) and sql`y`';",
        'export async function f(ctx: any) {',
        "  await ctx.db.selectFrom('runs').selectAll().execute();",
        '  await sql`select 1`.execute(ctx.db);',
        '  await ctx.db.transaction().execute(async () => {});',
        "  const m = await import('../app/config.ts');",
        '}',
      ].join('\n'),
    ).map((f) => `${f.line} ${f.problem.split(':')[0]}`);
    assert.deepEqual(found, [
      "1 imports 'kysely'",
      "2 services/ imports executor/ ('../executor/worker.ts')",
      "3 services/ imports http/ ('../http/server.ts')",
      "10 services/ imports app/ ('../app/config.ts')",
      '7 calls .selectFrom()',
      '8 builds SQL (sql`…`)',
      '9 calls .transaction()',
    ]);
    // Above services/, a store query module may be imported for its types only.
    assert.deepEqual(
      checkFile(
        join(SRC, 'notify', 'example.ts'),
        [
          "import type { Delivery } from '../store/notification-store.ts';",
          "import { type Run, findRun } from '../store/run-store.ts';",
          "export { claimDeliveries } from '../store/notification-store.ts';",
          "export type { Schedule } from '../store/schedule-store.ts';",
          "import { retryTransient } from '../store/transient.ts';",
          "import * as deliveries from '../services/delivery-service.ts';",
        ].join('\n'),
      ).map((f) => `${f.line} ${f.problem.split(':')[0]}`),
      [
        "2 calls store queries ('../store/run-store.ts')",
        "3 calls store queries ('../store/notification-store.ts')",
      ],
    );
    // The same queries are the store's business.
    assert.deepEqual(
      checkFile(join(SRC, 'store', 'example.ts'), "import { sql } from 'kysely';\nsql`select 1`;"),
      [],
    );
  });
});
