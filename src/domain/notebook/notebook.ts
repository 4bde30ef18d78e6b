/**
 * The parsed form of a notebook (docs/notebook-format.md). A notebook is a project's *logic*: inputs,
 * connections, app options and an ordered list of cells. Parsing is pure; running is the executor's job.
 */
import type { InputValue } from '../run-context.ts';

export const INPUT_TYPES = ['select', 'text', 'number', 'date', 'checkbox'] as const;
export type InputType = (typeof INPUT_TYPES)[number];

/** An app parameter with a default (glossary "Input"). */
export interface InputSpec {
  name: string;
  type: InputType;
  label: string;
  default: InputValue;
  /** For `select`: the allowed values. */
  options?: readonly (string | number)[];
  /** For `number`: inclusive bounds. */
  min?: number;
  max?: number;
  description?: string;
}

/** App options from the frontmatter `app:` block. */
export interface AppOptions {
  /** Show the results of the last scheduled run or publish instead of running on open. @default true */
  showLastRun: boolean;
  /** Hide code cells in the app view; only outputs and prose are shown. @default true */
  hideCode: boolean;
}

interface CellBase {
  /** Unique within the notebook. Later cells, prose and SQL refer to the result by this name. */
  name: string;
  /** Line of the opening fence (or of the first prose line), 1-based. */
  line: number;
  /** Line of the first line of the cell body, 1-based. Errors inside the cell are reported from here. */
  bodyLine: number;
  /** The cell body exactly as written. */
  source: string;
}

/** One SQL statement with `{{ expr }}` replaced by `$n` placeholders. */
export interface SqlStatement {
  text: string;
  /** The expression bound to `$1`, `$2`, … in order. */
  params: readonly string[];
  /** Line (1-based, in the notebook) where the statement starts. */
  line: number;
}

export interface SqlCell extends CellBase {
  kind: 'sql';
  connection: string;
  statements: readonly SqlStatement[];
  /** `cache=schedule`: app runs reuse the last scheduled or publish run's result. */
  cache: 'none' | 'schedule';
}

export interface CodeCell extends CellBase {
  kind: 'js' | 'ts';
  /**
   * The cell compiled into an ES module whose default export is `async (scope) => value`. Types are
   * stripped and line numbers are preserved, so line N of the module is line N of the cell body.
   */
  module: string;
  /** Names from the scope that the module's function destructures. */
  scope: readonly string[];
}

export interface ChartCell extends CellBase {
  kind: 'chart';
  /** The Vega-Lite spec, with named data sources left as names. */
  spec: Record<string, unknown>;
  /** Earlier results the spec refers to through `data: { name }`. */
  data: readonly string[];
}

export interface ProseCell extends CellBase {
  kind: 'prose';
  /** Rendered HTML in which each interpolation is a placeholder `\uE000N\uE001`. */
  html: string;
  /** The `{{ expression }}` sources, in placeholder order. */
  expressions: readonly string[];
}

export type Cell = SqlCell | CodeCell | ChartCell | ProseCell;

export interface Notebook {
  title: string;
  description: string;
  inputs: readonly InputSpec[];
  /** Connection ids the notebook uses. `duckdb` (the embedded workspace database) is always present. */
  connections: readonly string[];
  app: AppOptions;
  cells: readonly Cell[];
}

/** The id of the embedded workspace DuckDB connection, always available. */
export const EMBEDDED_CONNECTION = 'duckdb';
