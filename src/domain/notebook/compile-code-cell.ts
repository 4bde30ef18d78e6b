/**
 * Turns a `js`/`ts` cell into an ES module the executor can import. The cell's body runs inside
 * `export default async function ({ …names it uses }) { { body } }`, so:
 * - top-level `await` works, and `return x` at the top level returns the cell's value;
 * - `export`ed names (or `export default`) become the value when the cell has exports;
 * - otherwise a final expression statement is the value, as in other notebooks;
 * - `import` declarations keep working: imports are hoisted by the language, so they are moved after
 *   the function, where they do not shift any line.
 * Line N of the module is line N of the cell body, so stack traces map back to notebook lines.
 */
import { stripTypeScriptTypes } from 'node:module';
import { type Node, type Options, Parser } from 'acorn';
import type { NotebookProblem } from '../errors.ts';
import { freeIdentifiers } from './references.ts';

type AnyNode = Node & Record<string, any>;

export const ACORN_OPTIONS: Options = {
  ecmaVersion: 'latest',
  sourceType: 'module',
  allowReturnOutsideFunction: true,
  allowAwaitOutsideFunction: true,
  locations: true,
};

export interface CompiledCodeCell {
  module: string;
  /** Free identifiers of the cell with the body-relative line of their first use. */
  references: Map<string, number>;
  /** The free identifiers that are inputs or earlier cells: what the module's function destructures. */
  scope: string[];
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

const DEFAULT_BINDING = '__almanacDefault';

/** Compiles a cell body. Problems carry notebook lines computed from `bodyLine`. */
export function compileCodeCell(
  kind: 'js' | 'ts',
  source: string,
  bodyLine: number,
  cell: string,
  inScope: (name: string) => boolean,
): CompiledCodeCell | NotebookProblem {
  let code = source;
  if (kind === 'ts') {
    try {
      code = stripTypeScriptTypesQuietly(source);
    } catch (error) {
      const message = (error as Error).message;
      const at = /\[(\d+):\d+\]/.exec(message);
      const first = message.split('\n')[0]!.replace(/^\s*x\s*/, '');
      return {
        line: bodyLine + (at ? Number(at[1]) - 1 : 0),
        cell,
        message: `TypeScript: ${first} (cells use Node's type stripping: types are erased, so enums and namespaces are not available)`,
      };
    }
  }
  let program: AnyNode;
  try {
    program = Parser.parse(code, ACORN_OPTIONS) as AnyNode;
  } catch (error) {
    const e = error as SyntaxError & { loc?: { line: number } };
    return {
      line: bodyLine + (e.loc ? e.loc.line - 1 : 0),
      cell,
      message: `syntax error: ${e.message.replace(/ \(\d+:\d+\)$/, '')}`,
    };
  }
  const edits: Edit[] = [];
  const imports: string[] = [];
  const exported = new Map<string, string>();
  let hasDefault = false;
  for (const statement of program['body'] as AnyNode[]) {
    switch (statement.type) {
      case 'ImportDeclaration':
        imports.push(code.slice(statement.start, statement.end));
        edits.push(blank(code, statement.start, statement.end));
        break;
      case 'ExportNamedDeclaration': {
        if (statement['source']) {
          return problem(
            statement,
            're-exporting from another module is not supported in a cell; import it instead',
          );
        }
        const declaration = statement['declaration'] as AnyNode | null;
        if (declaration) {
          edits.push(blank(code, statement.start, declaration.start));
          for (const name of declaredNames(declaration)) exported.set(name, name);
        } else {
          for (const specifier of statement['specifiers'] as AnyNode[]) {
            exported.set(specifier['exported'].name ?? specifier['exported'].value, specifier['local'].name);
          }
          edits.push(blank(code, statement.start, statement.end));
        }
        break;
      }
      case 'ExportDefaultDeclaration':
        hasDefault = true;
        edits.push({
          start: statement.start,
          end: statement['declaration'].start,
          text: `${DEFAULT_BINDING} = `,
        });
        break;
      case 'ExportAllDeclaration':
        return problem(
          statement,
          're-exporting from another module is not supported in a cell; import it instead',
        );
    }
  }
  const body = program['body'] as AnyNode[];
  const last = body[body.length - 1];
  let tail = '';
  if (exported.size > 0) {
    const fields = [...exported].map(([name, local]) => `${JSON.stringify(name)}: ${local}`);
    if (hasDefault) fields.push(`default: ${DEFAULT_BINDING}`);
    tail = `return { ${fields.join(', ')} };`;
  } else if (hasDefault) {
    tail = `return ${DEFAULT_BINDING};`;
  } else if (last && last.type === 'ExpressionStatement' && !last['directive']) {
    const expression = last['expression'] as AnyNode;
    edits.push({ start: expression.start, end: expression.start, text: 'return (' });
    edits.push({ start: expression.end, end: expression.end, text: ')' });
  }
  const rewritten = applyEdits(code, edits);
  const references = new Map<string, number>();
  for (const [name, offset] of freeIdentifiers(program)) {
    references.set(name, lineOf(code, offset));
  }
  references.delete(DEFAULT_BINDING);
  const scope = [...references.keys()].filter(inScope);
  const header = `let ${DEFAULT_BINDING}; export default async function cell({ ${scope.join(', ')} }) { {`;
  const module = `${header}${rewritten}\n;${tail} } }\n${imports.join('\n')}\n`;
  return { module, references, scope };

  function problem(node: AnyNode, message: string): NotebookProblem {
    return { line: bodyLine + (node.loc?.start.line ?? 1) - 1, cell, message };
  }
}

const IMPORT_DECLARATION = /^import\s(?:[^;'"]*?\sfrom\s*)?['"][^'"\n]+['"]\s*(?:with\s*\{[^}]*\})?;?/gm;
const FUNCTION_PREFIX = 'async function __almanacCell() {';

/**
 * Strips types with Node's own `stripTypeScriptTypes`, which keeps every position. It parses a module,
 * so a cell with a top-level `return` is stripped inside a function wrapper instead, with its import
 * declarations (not allowed inside a function) stripped on their own and put back in place.
 */
export function stripTypeScriptTypesQuietly(source: string): string {
  const emit = process.emitWarning;
  process.emitWarning = () => {};
  try {
    try {
      return stripTypeScriptTypes(source, { mode: 'strip' });
    } catch (moduleError) {
      if (!/Return statement is not allowed/.test((moduleError as Error).message)) throw moduleError;
      const imports = [...source.matchAll(IMPORT_DECLARATION)];
      let blanked = source;
      for (const m of imports) {
        blanked =
          blanked.slice(0, m.index) + m[0].replace(/[^\n]/g, ' ') + blanked.slice(m.index + m[0].length);
      }
      let stripped = stripTypeScriptTypes(`${FUNCTION_PREFIX}${blanked}\n}`, { mode: 'strip' }).slice(
        FUNCTION_PREFIX.length,
        FUNCTION_PREFIX.length + source.length,
      );
      for (const m of imports) {
        const text = stripTypeScriptTypes(m[0], { mode: 'strip' });
        stripped = stripped.slice(0, m.index) + text + stripped.slice(m.index + text.length);
      }
      return stripped;
    }
  } finally {
    process.emitWarning = emit;
  }
}

function declaredNames(declaration: AnyNode): string[] {
  if (declaration.type === 'VariableDeclaration') {
    const names: string[] = [];
    for (const d of declaration['declarations'] as AnyNode[]) collectPattern(d['id'], names);
    return names;
  }
  return declaration['id'] ? [declaration['id'].name] : [];
}

function collectPattern(pattern: AnyNode | null, names: string[]): void {
  if (!pattern) return;
  if (pattern.type === 'Identifier') names.push(pattern['name']);
  else if (pattern.type === 'ObjectPattern')
    for (const p of pattern['properties'])
      collectPattern(p.type === 'RestElement' ? p['argument'] : p['value'], names);
  else if (pattern.type === 'ArrayPattern') for (const e of pattern['elements']) collectPattern(e, names);
  else if (pattern.type === 'RestElement') collectPattern(pattern['argument'], names);
  else if (pattern.type === 'AssignmentPattern') collectPattern(pattern['left'], names);
}

/** Replaces a range with spaces, keeping its newlines so later lines do not move. */
function blank(code: string, start: number, end: number): Edit {
  return { start, end, text: code.slice(start, end).replace(/[^\n]/g, ' ') };
}

function applyEdits(code: string, edits: Edit[]): string {
  let out = code;
  for (const edit of [...edits].sort((a, b) => b.start - a.start || b.end - a.end)) {
    out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  }
  return out;
}

function lineOf(code: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (code.charCodeAt(i) === 10) line++;
  return line;
}

/** Parses a `{{ expression }}` and returns its free identifiers, or a syntax error message. */
export function analyzeExpression(expression: string): { references: string[] } | { error: string } {
  try {
    const node = Parser.parseExpressionAt(expression, 0, { ...ACORN_OPTIONS, sourceType: 'script' });
    const rest = expression.slice(node.end).trim();
    if (rest !== '') return { error: `unexpected '${rest.slice(0, 20)}' after the expression` };
    return { references: [...freeIdentifiers(node).keys()] };
  } catch (error) {
    return { error: (error as Error).message.replace(/ \(\d+:\d+\)$/, '') };
  }
}
