/**
 * Parses a notebook file (docs/notebook-format.md) into cells. Every problem is reported with its
 * notebook line and cell name, and all problems are collected before failing.
 */

import MarkdownIt from 'markdown-it';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { chartSpecProblem } from '../chart-spec.ts';
import { closest, NotebookError, type NotebookProblem } from '../errors.ts';
import { MAX_NOTEBOOK_BYTES, MAX_NOTEBOOK_CELLS, MAX_TITLE_LENGTH, MAX_YAML_ALIASES } from '../limits.ts';
import { analyzeExpression, compileCodeCell } from './compile-code-cell.ts';
import { frontmatterSchema, IDENTIFIER } from './frontmatter.ts';
import {
  type AppOptions,
  type Cell,
  type ChartCell,
  EMBEDDED_CONNECTION,
  type InputSpec,
  type Notebook,
  type ProseCell,
} from './notebook.ts';
import { GLOBAL_NAMES } from './references.ts';
import { compileSqlTemplate } from './sql-template.ts';

const RESERVED = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends false finally for ' +
    'function if import in instanceof new null return super switch this throw true try typeof var void while with ' +
    'yield let static implements interface package private protected public await async almanac undefined'
  ).split(' '),
);

const LANGUAGES: Record<string, 'sql' | 'js' | 'ts' | 'chart'> = {
  sql: 'sql',
  js: 'js',
  javascript: 'js',
  ts: 'ts',
  typescript: 'ts',
  chart: 'chart',
  'vega-lite': 'chart',
};

const ATTRIBUTES: Record<'sql' | 'js' | 'ts' | 'chart', readonly string[]> = {
  sql: ['connection', 'cache'],
  js: [],
  ts: [],
  chart: [],
};

/** A placeholder for an interpolation in rendered prose: private-use characters markdown-it leaves alone. */
export const PLACEHOLDER = (index: number) => `\uE000${index}\uE001`;

const markdown = new MarkdownIt({ html: false, linkify: true, typographer: false });

export interface ParseOptions {
  /** Shown in error messages, for example `examples/sales/sales.md`. */
  file?: string;
  /** Fallback title when the frontmatter has none and there is no `# heading`. */
  defaultTitle?: string;
}

/** Parses a notebook or throws `NotebookError` listing every problem found. */
export async function parseNotebook(text: string, options: ParseOptions = {}): Promise<Notebook> {
  const bytes = text.length * 3 > MAX_NOTEBOOK_BYTES ? Buffer.byteLength(text, 'utf8') : 0;
  if (bytes > MAX_NOTEBOOK_BYTES) {
    // Not parsed at all: a huge text would only make a huge list of problems.
    throw new NotebookError(
      [
        {
          line: 1,
          message: `the notebook is ${bytes.toLocaleString('en-US')} bytes; at most ${MAX_NOTEBOOK_BYTES.toLocaleString('en-US')} are accepted (MAX_NOTEBOOK_BYTES): move data into project files`,
        },
      ],
      options.file,
    );
  }
  const problems: NotebookProblem[] = [];
  const normalized = text.replace(/\r\n?/g, '\n');
  const { frontmatter, bodyStartLine, body } = splitFrontmatter(normalized, problems);
  const meta = readFrontmatter(frontmatter, problems);

  const inputs = meta?.inputs ?? [];
  const connections = meta?.connections ?? [];
  const defaultConnection = connections[0] ?? EMBEDDED_CONNECTION;
  const known = new Map<string, number>(); // names in scope so far → line where they were defined
  for (const input of inputs) known.set(input.name, 1);
  const laterNames = new Map<string, number>();

  const segments = splitCells(body, bodyStartLine, problems);
  if (segments.length > MAX_NOTEBOOK_CELLS) {
    problems.push({
      line: segments[MAX_NOTEBOOK_CELLS]!.line,
      message: `the notebook has ${segments.length} cells (code, charts and prose); at most ${MAX_NOTEBOOK_CELLS} are accepted (MAX_NOTEBOOK_CELLS): split it into several projects`,
    });
    throw new NotebookError(problems, options.file);
  }
  for (const segment of segments) if (segment.kind !== 'prose') laterNames.set(segment.name, segment.line);

  const cells: Cell[] = [];
  let proseCount = 0;
  for (const segment of segments) {
    if (segment.kind !== 'prose') laterNames.delete(segment.name);
    const checkRefs = (refs: Iterable<[string, number]>, cell: string) => {
      for (const [name, line] of refs) {
        if (name === cell && segment.kind !== 'prose') {
          problems.push({
            line,
            cell,
            message: `refers to itself ('${name}'): a cell cannot read its own result; use an earlier cell or an input`,
          });
          continue;
        }
        if (known.has(name) || name === 'almanac' || GLOBAL_NAMES.has(name)) continue;
        const later = laterNames.get(name);
        if (later !== undefined) {
          problems.push({
            line,
            cell,
            message: `refers to '${name}', which is defined later (line ${later}); cells run top to bottom, so move '${name}' above this cell`,
          });
        } else {
          const hint = closest(name, known.keys());
          problems.push({
            line,
            cell,
            message: `unknown reference '${name}'${hint ? ` (did you mean '${hint}'?)` : ''}: use an input or an earlier cell's name`,
          });
        }
      }
    };
    switch (segment.kind) {
      case 'prose': {
        proseCount++;
        const name = `prose_${proseCount}`;
        const expressions: string[] = [];
        const withPlaceholders = segment.source.replace(
          /\{\{([\s\S]*?)\}\}/g,
          (_m, expression: string, offset: number) => {
            const offsetLine = segment.source.slice(0, offset).split('\n').length - 1;
            const expr = expression.trim();
            const analysis = analyzeExpression(expr);
            if ('error' in analysis) {
              problems.push({
                line: segment.line + offsetLine,
                cell: name,
                message: `in {{ ${expr} }}: ${analysis.error}`,
              });
            } else {
              checkRefs(
                analysis.references.map((r) => [r, segment.line + offsetLine] as [string, number]),
                name,
              );
            }
            expressions.push(expr);
            return PLACEHOLDER(expressions.length - 1);
          },
        );
        const unclosed = withPlaceholders.indexOf('{{');
        if (unclosed >= 0) {
          // Offsets in withPlaceholders differ from the source's, but lines do not: placeholders
          // replace whole interpolations, and one with a newline inside is closed, so not here.
          const before = withPlaceholders.slice(0, unclosed);
          const lineInCell = before.split('\n').length - 1;
          problems.push({
            line: segment.line + lineInCell,
            cell: name,
            message:
              "interpolation '{{' is not closed with '}}': close it, or write the braces as &#123;&#123;",
          });
        }
        const cell: ProseCell = {
          kind: 'prose',
          name,
          line: segment.line,
          bodyLine: segment.line,
          source: segment.source,
          html: markdown.render(withPlaceholders),
          expressions,
        };
        cells.push(cell);
        break;
      }
      case 'sql': {
        const connection = segment.attributes['connection'] ?? defaultConnection;
        if (connection !== EMBEDDED_CONNECTION && !connections.includes(connection)) {
          problems.push({
            line: segment.line,
            cell: segment.name,
            message: `unknown connection '${connection}': list it under 'connections:' in the frontmatter (the embedded database is '${EMBEDDED_CONNECTION}')`,
          });
        }
        const cache = segment.attributes['cache'] ?? 'none';
        if (cache !== 'none' && cache !== 'schedule') {
          problems.push({
            line: segment.line,
            cell: segment.name,
            message: `cache must be 'schedule' or 'none', not '${cache}'`,
          });
        }
        const compiled = compileSqlTemplate(segment.source, segment.bodyLine);
        for (const p of compiled.problems) problems.push({ ...p, cell: segment.name });
        if (compiled.statements.length === 0) {
          problems.push({
            line: segment.line,
            cell: segment.name,
            message: 'the SQL cell is empty: write a query',
          });
        }
        for (const statement of compiled.statements) {
          for (const expression of statement.params) {
            const analysis = analyzeExpression(expression);
            if ('error' in analysis) {
              problems.push({
                line: statement.line,
                cell: segment.name,
                message: `in {{ ${expression} }}: ${analysis.error}`,
              });
            } else {
              checkRefs(
                analysis.references.map((r) => [r, statement.line] as [string, number]),
                segment.name,
              );
            }
          }
        }
        cells.push({
          kind: 'sql',
          name: segment.name,
          line: segment.line,
          bodyLine: segment.bodyLine,
          source: segment.source,
          connection,
          cache: cache === 'schedule' ? 'schedule' : 'none',
          statements: compiled.statements,
        });
        break;
      }
      case 'js':
      case 'ts': {
        const inScope = (n: string) => known.has(n) || n === 'almanac';
        const compiled = compileCodeCell(
          segment.kind,
          segment.source,
          segment.bodyLine,
          segment.name,
          inScope,
        );
        if ('message' in compiled) {
          problems.push(compiled);
          break;
        }
        checkRefs(
          [...compiled.references]
            .filter(([n]) => laterNames.has(n) || n === segment.name)
            .map(([n, l]) => [n, segment.bodyLine + l - 1] as [string, number]),
          segment.name,
        );
        cells.push({
          kind: segment.kind,
          name: segment.name,
          line: segment.line,
          bodyLine: segment.bodyLine,
          source: segment.source,
          module: compiled.module,
          scope: compiled.scope,
        });
        break;
      }
      case 'chart': {
        const cell = await parseChart(segment, problems);
        if (cell) {
          checkRefs(
            cell.data.map((d) => [d, segment.line] as [string, number]),
            segment.name,
          );
          cells.push(cell);
        }
        break;
      }
    }
    if (segment.kind !== 'prose') {
      if (known.has(segment.name)) {
        const first = known.get(segment.name)!;
        problems.push({
          line: segment.line,
          cell: segment.name,
          message: inputs.some((i) => i.name === segment.name)
            ? `the name '${segment.name}' is already used by an input; rename the cell`
            : `duplicate cell name '${segment.name}' (first defined at line ${first}); rename one of them`,
        });
      } else {
        known.set(segment.name, segment.line);
      }
    }
  }

  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line);
    throw new NotebookError(problems, options.file);
  }
  const firstHeading = /^#\s+(.+)$/m.exec(body)?.[1]?.trim();
  const title = meta?.title ?? firstHeading ?? options.defaultTitle ?? 'Untitled notebook';
  return {
    // A long first heading is still a fine heading; the project's title is its first characters.
    title: title.length > MAX_TITLE_LENGTH ? `${title.slice(0, MAX_TITLE_LENGTH - 1)}…` : title,
    description: meta?.description ?? '',
    inputs,
    connections,
    app: meta?.app ?? { showLastRun: true, hideCode: true },
    cells,
  };
}

interface FrontmatterParts {
  frontmatter: { text: string; line: number } | null;
  body: string;
  /** Notebook line of the body's first line. */
  bodyStartLine: number;
}

function splitFrontmatter(text: string, problems: NotebookProblem[]): FrontmatterParts {
  if (!text.startsWith('---\n')) return { frontmatter: null, body: text, bodyStartLine: 1 };
  const lines = text.split('\n');
  const close = lines.findIndex((line, i) => i > 0 && /^(---|\.\.\.)\s*$/.test(line));
  if (close < 0) {
    problems.push({ line: 1, message: "the frontmatter starts with '---' but has no closing '---' line" });
    return { frontmatter: null, body: '', bodyStartLine: lines.length };
  }
  return {
    frontmatter: { text: lines.slice(1, close).join('\n'), line: 2 },
    body: lines.slice(close + 1).join('\n'),
    bodyStartLine: close + 2,
  };
}

interface Meta {
  title: string | undefined;
  description: string | undefined;
  inputs: InputSpec[];
  connections: string[];
  app: AppOptions;
}

function readFrontmatter(
  frontmatter: FrontmatterParts['frontmatter'],
  problems: NotebookProblem[],
): Meta | null {
  if (!frontmatter) return null;
  const lineCounter = new LineCounter();
  const document = parseDocument(frontmatter.text, { lineCounter, prettyErrors: false });
  if (document.errors.length > 0) {
    for (const error of document.errors) {
      const line = frontmatter.line + (lineCounter.linePos(error.pos[0]).line - 1);
      problems.push({ line, message: `invalid YAML in the frontmatter: ${error.message.split('\n')[0]}` });
    }
    return null;
  }
  const raw = toJS(document, frontmatter.line, problems, undefined, 'the frontmatter') ?? {};
  if (raw === ALIAS_BOMB) return null;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({
      line: frontmatter.line,
      message: 'the frontmatter must be a YAML mapping (key: value lines)',
    });
    return null;
  }
  const parsed = frontmatterSchema.safeParse(raw);
  const lineOfPath = (path: readonly PropertyKey[]): number => {
    for (let n = path.length; n > 0; n--) {
      const node = document.getIn(path.slice(0, n) as unknown[], true);
      const range =
        isScalar(node) || isMap(node) ? node.range : (node as { range?: number[] } | undefined)?.range;
      if (range) return frontmatter.line + lineCounter.linePos(range[0]!).line - 1;
    }
    return frontmatter.line;
  };
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const field = issue.path.length > 0 ? issue.path.join('.') : 'frontmatter';
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`
          : issue.message;
      problems.push({ line: lineOfPath(issue.path), message: `frontmatter ${field}: ${message}` });
    }
    return null;
  }
  const data = parsed.data;
  const inputs: InputSpec[] = [];
  for (const [name, spec] of Object.entries(data.inputs)) {
    const line = lineOfPath(['inputs', name]);
    if (RESERVED.has(name)) {
      problems.push({
        line,
        message: `frontmatter inputs.${name}: '${name}' is a reserved word; rename the input`,
      });
    }
    const input: InputSpec = {
      name,
      type: spec.type,
      label: spec.label ?? humanize(name),
      default: spec.default ?? null,
      ...(spec.description ? { description: spec.description } : {}),
    };
    if (spec.type === 'select') {
      input.options = spec.options;
      input.default = spec.default ?? spec.options[0]!;
      if (!spec.options.includes(input.default as string | number)) {
        problems.push({
          line,
          message: `frontmatter inputs.${name}.default: '${input.default}' is not one of the options (${spec.options.join(', ')})`,
        });
      }
    }
    if (spec.type === 'number') {
      if (spec.min !== undefined) input.min = spec.min;
      if (spec.max !== undefined) input.max = spec.max;
      if (
        (spec.min !== undefined && spec.default < spec.min) ||
        (spec.max !== undefined && spec.default > spec.max)
      ) {
        problems.push({
          line,
          message: `frontmatter inputs.${name}.default: ${spec.default} is outside min/max`,
        });
      }
    }
    inputs.push(input);
  }
  return {
    title: data.title,
    description: data.description,
    inputs,
    connections: data.connections,
    app: { showLastRun: data.app.show_last_run, hideCode: data.app.hide_code },
  };
}

function humanize(name: string): string {
  const words = name.replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

interface CellSegment {
  kind: 'sql' | 'js' | 'ts' | 'chart';
  name: string;
  line: number;
  bodyLine: number;
  source: string;
  attributes: Record<string, string>;
}

type Segment = { kind: 'prose'; line: number; source: string } | CellSegment;

/** Splits the body into code cells (top-level fences with a cell language) and the prose between. */
function splitCells(body: string, bodyStartLine: number, problems: NotebookProblem[]): Segment[] {
  const lines = body.split('\n');
  const segments: Segment[] = [];
  let proseFrom = 0;
  const pushProse = (from: number, to: number) => {
    const source = lines.slice(from, to).join('\n');
    if (source.trim() === '') return;
    const skip = lines.slice(from, to).findIndex((l) => l.trim() !== '');
    segments.push({ kind: 'prose', line: bodyStartLine + from + skip, source: source.trim() });
  };
  for (const token of markdown.parse(body, {})) {
    if (token.type !== 'fence' || token.level !== 0 || !token.map) continue;
    const [start, end] = token.map;
    const words = token.info.trim().split(/\s+/).filter(Boolean);
    const language = LANGUAGES[words[0]?.toLowerCase() ?? ''];
    if (!language) continue; // a plain code block (```bash, ```) stays part of the prose
    const line = bodyStartLine + start;
    const fenceClosed = lines[end - 1]?.trim().startsWith(token.markup) && end - 1 > start;
    const name = words[1];
    pushProse(proseFrom, start);
    proseFrom = end;
    if (!fenceClosed) {
      problems.push({ line, cell: name, message: `the ${token.markup} fence is never closed` });
    }
    if (!name || name.includes('=')) {
      problems.push({
        line,
        message: `a ${words[0]} cell needs a name after the language, for example \`\`\`${words[0]} orders`,
      });
      continue;
    }
    if (!IDENTIFIER.test(name) || RESERVED.has(name)) {
      problems.push({
        line,
        cell: name,
        message: `'${name}' is not a valid cell name: use letters, digits and _ (not starting with a digit, not a reserved word)`,
      });
      continue;
    }
    const attributes: Record<string, string> = {};
    for (const word of words.slice(2)) {
      const match = /^([a-z_]+)=(.+)$/.exec(word);
      if (!match || !ATTRIBUTES[language].includes(match[1]!)) {
        const allowed = ATTRIBUTES[language];
        problems.push({
          line,
          cell: name,
          message: `unknown attribute '${word}' in the info string; ${language} cells accept ${allowed.length > 0 ? allowed.map((a) => `${a}=…`).join(', ') : 'no attributes'}`,
        });
        continue;
      }
      attributes[match[1]!] = match[2]!;
    }
    segments.push({
      kind: language,
      name,
      line,
      bodyLine: line + 1,
      source: token.content.replace(/\n$/, ''),
      attributes,
    });
  }
  pushProse(proseFrom, lines.length);
  return segments;
}

async function parseChart(segment: CellSegment, problems: NotebookProblem[]): Promise<ChartCell | null> {
  const lineCounter = new LineCounter();
  const document = parseDocument(segment.source, { lineCounter });
  if (document.errors.length > 0) {
    const error = document.errors[0]!;
    problems.push({
      line: segment.bodyLine + lineCounter.linePos(error.pos[0]).line - 1,
      cell: segment.name,
      message: `invalid JSON/YAML in the chart spec: ${error.message.split('\n')[0]}`,
    });
    return null;
  }
  const spec = toJS(document, segment.line, problems, segment.name, 'the chart spec');
  if (spec === ALIAS_BOMB) return null;
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) {
    problems.push({
      line: segment.line,
      cell: segment.name,
      message: 'a chart cell holds a Vega-Lite spec: a JSON or YAML object with data, mark and encoding',
    });
    return null;
  }
  const data = new Set<string>();
  collectDataNames(spec, data);
  if (data.size === 0 && !JSON.stringify(spec).includes('"values"')) {
    problems.push({
      line: segment.line,
      cell: segment.name,
      message: 'the chart has no data: add "data": { "name": "<an earlier cell>" }',
    });
  }
  const unsafe = chartSpecProblem(spec);
  if (unsafe)
    problems.push({ line: segment.line, cell: segment.name, message: `unsafe chart spec: ${unsafe}` });
  const error = unsafe ? null : await validateVegaLite(spec as Record<string, unknown>);
  if (error)
    problems.push({ line: segment.line, cell: segment.name, message: `invalid Vega-Lite spec: ${error}` });
  return {
    kind: 'chart',
    name: segment.name,
    line: segment.line,
    bodyLine: segment.bodyLine,
    source: segment.source,
    spec: spec as Record<string, unknown>,
    data: [...data],
  };
}

function collectDataNames(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectDataNames(item, into);
  } else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'data' && value && typeof value === 'object' && typeof (value as any).name === 'string') {
        into.add((value as any).name);
      } else {
        collectDataNames(value, into);
      }
    }
  }
}

let vegaLite: Promise<typeof import('vega-lite')> | undefined;

/** Compiles the spec with Vega-Lite itself, so a spec that would not render is caught at parse time. */
async function validateVegaLite(spec: Record<string, unknown>): Promise<string | null> {
  vegaLite ??= import('vega-lite');
  const vl = await vegaLite;
  const mark = spec['mark'];
  const markType = typeof mark === 'string' ? mark : (mark as { type?: unknown } | undefined)?.type;
  if (markType !== undefined && !isKnownMark(markType)) {
    return `unknown mark '${String(markType)}' (use one of ${KNOWN_MARKS.join(', ')})`;
  }
  const errors: string[] = [];
  const logger = {
    level() {
      return logger;
    },
    warn() {
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
    error(...args: unknown[]) {
      errors.push(args.join(' '));
      return logger;
    },
  };
  try {
    vl.compile(spec as never, { logger: logger as never });
  } catch (error) {
    return (error as Error).message;
  }
  return errors[0] ?? null;
}

const KNOWN_MARKS = [
  'arc',
  'area',
  'bar',
  'boxplot',
  'circle',
  'errorband',
  'errorbar',
  'geoshape',
  'image',
  'line',
  'point',
  'rect',
  'rule',
  'square',
  'text',
  'tick',
  'trail',
];

function isKnownMark(mark: unknown): boolean {
  return typeof mark === 'string' && KNOWN_MARKS.includes(mark);
}

const ALIAS_BOMB = Symbol('alias bomb');

/**
 * The document as plain data, resolving at most MAX_YAML_ALIASES aliases: a "billion laughs" of nested
 * aliases is a notebook problem, not a process that expands it until memory runs out (issue 14).
 */
function toJS(
  document: ReturnType<typeof parseDocument>,
  line: number,
  problems: NotebookProblem[],
  cell: string | undefined,
  what: string,
): unknown {
  try {
    return document.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    problems.push({
      line,
      ...(cell ? { cell } : {}),
      message: `${what} uses YAML aliases (*name) too many times (at most ${MAX_YAML_ALIASES}, MAX_YAML_ALIASES): write the values out`,
    });
    return ALIAS_BOMB;
  }
}
