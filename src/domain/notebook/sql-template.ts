/**
 * SQL cells may interpolate values with `{{ expression }}`. Interpolations are never spliced into the
 * SQL text: each becomes a positional parameter (`$1`, `$2`, …) and the value is bound by the driver.
 * This module tokenizes SQL just enough to do that safely: it knows string literals, quoted
 * identifiers, dollar-quoted strings and comments, and splits a cell into statements on top-level `;`.
 */
import type { NotebookProblem } from '../errors.ts';
import type { SqlStatement } from './notebook.ts';

export type SqlTokenKind =
  | 'code'
  | 'string'
  | 'identifier'
  | 'comment'
  | 'dollar'
  | 'interpolation'
  | 'semicolon';

export interface SqlToken {
  kind: SqlTokenKind;
  /** Offsets into the source, end exclusive. */
  start: number;
  end: number;
  /** For `interpolation`: the expression; for `string`: the unescaped content. */
  value: string;
}

/** Splits SQL into tokens. Unterminated strings and comments run to the end of the input. */
export function tokenizeSql(source: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let i = 0;
  let codeStart = 0;
  const flushCode = (end: number) => {
    if (end > codeStart)
      tokens.push({ kind: 'code', start: codeStart, end, value: source.slice(codeStart, end) });
  };
  const push = (kind: SqlTokenKind, start: number, end: number, value: string) => {
    flushCode(start);
    tokens.push({ kind, start, end, value });
    codeStart = end;
  };
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '-' && next === '-') {
      const end = indexOrEnd(source, '\n', i);
      push('comment', i, end, source.slice(i, end));
      i = end;
    } else if (c === '/' && next === '*') {
      const close = source.indexOf('*/', i + 2);
      const end = close < 0 ? source.length : close + 2;
      push('comment', i, end, source.slice(i, end));
      i = end;
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'" && !isWordChar(source[i - 1]))) {
      const quote = c === "'" ? i : i + 1;
      const backslashEscapes = quote !== i;
      let j = quote + 1;
      let value = '';
      while (j < source.length) {
        const ch = source[j]!;
        if (backslashEscapes && ch === '\\' && j + 1 < source.length) {
          value += source[j + 1];
          j += 2;
        } else if (ch === "'" && source[j + 1] === "'") {
          value += "'";
          j += 2;
        } else if (ch === "'") {
          j++;
          break;
        } else {
          value += ch;
          j++;
        }
      }
      push('string', i, j, value);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < source.length && !(source[j] === '"' && source[j + 1] !== '"'))
        j += source[j] === '"' ? 2 : 1;
      push('identifier', i, Math.min(j + 1, source.length), source.slice(i + 1, j));
      i = j + 1;
    } else if (c === '$' && !isWordChar(source[i - 1])) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(source.slice(i));
      if (tag) {
        const close = source.indexOf(tag[0], i + tag[0].length);
        const end = close < 0 ? source.length : close + tag[0].length;
        push('dollar', i, end, source.slice(i + tag[0].length, close < 0 ? end : close));
        i = end;
      } else {
        i++;
      }
    } else if (c === '{' && next === '{') {
      const close = source.indexOf('}}', i + 2);
      const end = close < 0 ? source.length : close + 2;
      push('interpolation', i, end, source.slice(i + 2, close < 0 ? end : close).trim());
      i = end;
    } else if (c === ';') {
      push('semicolon', i, i + 1, ';');
      i++;
    } else {
      i++;
    }
  }
  flushCode(source.length);
  return tokens;
}

/**
 * Compiles a SQL cell body into statements with positional parameters. `bodyLine` is the notebook
 * line of the body's first line, so problems and statements carry notebook line numbers.
 */
export function compileSqlTemplate(
  source: string,
  bodyLine: number,
): { statements: SqlStatement[]; problems: NotebookProblem[] } {
  const problems: NotebookProblem[] = [];
  const statements: SqlStatement[] = [];
  const lineAt = (offset: number) => bodyLine + countNewlines(source, 0, offset);
  let text = '';
  let params: string[] = [];
  let startOffset = -1;
  const finish = () => {
    if (text.trim() !== '' && startOffset >= 0) {
      statements.push({ text: text.trim(), params, line: lineAt(startOffset) });
    }
    text = '';
    params = [];
    startOffset = -1;
  };
  const bind = (expression: string, offset: number): string => {
    if (expression === '') {
      problems.push({
        line: lineAt(offset),
        message: 'empty interpolation {{ }}: put an input or cell name inside',
      });
      return 'NULL';
    }
    let index = params.indexOf(expression);
    if (index < 0) {
      params.push(expression);
      index = params.length - 1;
    }
    return `$${index + 1}`;
  };
  for (const token of tokenizeSql(source)) {
    const raw = source.slice(token.start, token.end);
    if (startOffset < 0 && token.kind !== 'semicolon' && raw.trim() !== '' && token.kind !== 'comment') {
      startOffset = token.start + (raw.length - raw.trimStart().length);
    }
    switch (token.kind) {
      case 'semicolon':
        finish();
        break;
      case 'interpolation':
        if (!raw.endsWith('}}')) {
          problems.push({ line: lineAt(token.start), message: "interpolation '{{' is not closed with '}}'" });
        }
        text += bind(token.value, token.start);
        break;
      case 'string': {
        const whole = /^\s*\{\{([\s\S]*)\}\}\s*$/.exec(token.value);
        if (whole && !whole[1]!.includes('}}')) {
          // '{{ region }}' is read as "the value of region", bound as a parameter like {{ region }}.
          text += bind(whole[1]!.trim(), token.start);
        } else if (token.value.includes('{{')) {
          problems.push({
            line: lineAt(token.start),
            message:
              `interpolation inside a string literal (${raw.length > 40 ? `${raw.slice(0, 37)}...` : raw}) ` +
              "cannot be bound as a parameter; concatenate instead, for example '%' || {{ term }} || '%'",
          });
          text += raw;
        } else {
          text += raw;
        }
        break;
      }
      default:
        text += raw;
    }
  }
  finish();
  return { statements, problems };
}

function indexOrEnd(source: string, needle: string, from: number): number {
  const index = source.indexOf(needle, from);
  return index < 0 ? source.length : index;
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_]/.test(c);
}

export function countNewlines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}
