/**
 * Where a DuckDB statement's file paths point. DuckDB's `allowed_directories` lets a run's instance
 * read and write in exactly two folders, the version's files (`projectDir`) and the run's own
 * directory (`runDir`), but it cannot tell reads from writes. This module adds that: every place a
 * statement names a file it writes (`COPY … TO`, `EXPORT DATABASE`, `ATTACH`) must be a plain string
 * literal inside the run directory (relative paths resolve there), so nothing a run writes outlives
 * it or lands in the shared version folder, and the functions that make DuckDB write logs or
 * profiles to a chosen file are refused. This is a list of known write paths: the OS does not make
 * the version folder read-only for the server, so a write path DuckDB adds later could still reach
 * this run's own version folder (never another project's: `allowed_directories` holds). Relative paths that are read resolve against the version's
 * files (or, when only there, the run directory: a file an earlier cell of this run wrote).
 */
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { type SqlToken, tokenizeSql } from '../../domain/notebook/sql-template.ts';
import { SqlExecutionError } from './sql-engine.ts';

const FILE_LITERAL = /^[^:'"]*\.(csv|tsv|txt|parquet|json|jsonl|ndjson|xlsx)(\.gz|\.zst)?$/i;
const URL_LIKE = /^[a-z][a-z0-9+.-]*:/i;
/**
 * Table functions that turn on output DuckDB writes to a file of the caller's choosing (and that
 * `lock_configuration` does not cover): `CALL enable_profiling(save_location := …)` and
 * `CALL enable_logging(storage := 'file', …)` wrote into the version folder.
 */
const HOST_ONLY = new Set(['ENABLE_LOGGING', 'ENABLE_PROFILING', 'ENABLE_PROFILE']);

export interface RunFolders {
  projectDir: string;
  runDir: string;
}

type Item =
  | { kind: 'word'; upper: string }
  | { kind: 'open' | 'close' }
  | { kind: 'literal'; token: SqlToken }
  | { kind: 'other'; text: string };

/**
 * Rewrites the statement's file paths to absolute ones inside the run's folders, and refuses a write
 * outside the run directory (a `Permission Error` naming the path and what to do instead).
 */
export function confineFilePaths(sql: string, folders: RunFolders, line: number | null = null): string {
  const tokens = tokenizeSql(sql);
  const items = itemsOf(tokens);
  const writes = new Set<SqlToken>();
  const refuse = (message: string): never => {
    throw new SqlExecutionError('Permission Error', message, line);
  };
  /** The item after `from` at the same depth that is a string literal target, or a refusal. */
  const target = (index: number, what: string): void => {
    const item = items[index];
    if (item?.kind === 'literal' && item.token.kind === 'string') {
      writes.add(item.token);
      return;
    }
    refuse(
      `${what} needs its file name as a plain quoted string ('out.csv'); it is written to this run's own directory`,
    );
  };
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (item.kind !== 'word') continue;
    if (item.upper === 'COPY') {
      // COPY <table | (query)> TO <target> | COPY <table> FROM <source> | COPY FROM DATABASE a TO b
      const next = items[i + 1];
      if (next?.kind === 'word' && next.upper === 'FROM') continue;
      let depth = 0;
      for (let j = i + 1; j < items.length; j++) {
        const it = items[j]!;
        if (it.kind === 'open') depth++;
        else if (it.kind === 'close') {
          if (--depth < 0) break;
        } else if (depth === 0 && it.kind === 'word' && (it.upper === 'TO' || it.upper === 'FROM')) {
          if (it.upper === 'TO') target(j + 1, 'COPY … TO');
          break;
        }
      }
    } else if (item.upper === 'EXPORT') {
      const next = items[i + 1];
      if (!(next?.kind === 'word' && next.upper === 'DATABASE')) continue;
      const after = items[i + 2];
      if (after?.kind === 'literal' && after.token.kind === 'identifier') {
        // EXPORT DATABASE "db" TO 'dir'
        const to = items[i + 3];
        target(to?.kind === 'word' && to.upper === 'TO' ? i + 4 : i + 3, 'EXPORT DATABASE');
      } else if (after?.kind === 'word') {
        const to = items[i + 3];
        target(to?.kind === 'word' && to.upper === 'TO' ? i + 4 : i + 3, 'EXPORT DATABASE');
      } else target(i + 2, 'EXPORT DATABASE');
    } else if (item.upper === 'ATTACH') {
      let j = i + 1;
      const word = (w: string) => {
        const it = items[j];
        if (it?.kind === 'word' && it.upper === w) {
          j++;
          return true;
        }
        return false;
      };
      word('DATABASE');
      if (word('IF')) {
        word('NOT');
        word('EXISTS');
      }
      const path = items[j];
      if (path?.kind === 'literal' && path.token.kind === 'string' && path.token.value === ':memory:')
        continue;
      target(j, 'ATTACH');
    } else if (
      item.upper === 'IMPORT_DATABASE' ||
      (item.upper === 'IMPORT' &&
        items[i + 1]?.kind === 'word' &&
        (items[i + 1] as { upper: string }).upper === 'DATABASE')
    ) {
      // It runs the statements in the folder's schema.sql and load.sql, which no check here sees.
      refuse(
        'IMPORT DATABASE runs the SQL files in its folder unchecked; read the exported data with read_csv or read_parquet instead',
      );
    } else if (HOST_ONLY.has(item.upper)) {
      refuse(`logging and profiling are set by the host; remove the ${item.upper.toLowerCase()} call`);
    }
  }

  let out = '';
  for (const token of tokens) {
    const raw = sql.slice(token.start, token.end);
    if (token.kind !== 'string') {
      out += raw;
    } else if (writes.has(token)) {
      out += quote(writeTarget(token.value, folders, refuse));
    } else if (FILE_LITERAL.test(token.value) && !isAbsolute(token.value) && !URL_LIKE.test(token.value)) {
      out += quote(readSource(token.value, folders));
    } else {
      out += raw;
    }
  }
  return out;
}

function writeTarget(value: string, { runDir }: RunFolders, refuse: (message: string) => never): string {
  if (URL_LIKE.test(value) && !isAbsolute(value)) {
    refuse(`'${value}' is not a file in this run's directory; SQL may write files only there`);
  }
  const root = resolve(runDir);
  const path = resolve(root, value);
  const inside = relative(root, path);
  if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    refuse(
      `'${value}' is outside this run's directory; SQL may write files only there (use a relative path such as 'out.csv', which is removed with the run)`,
    );
  }
  // A symbolic link inside the run directory could point the write anywhere the instance may write.
  let walked = root;
  for (const part of inside.split(sep).filter(Boolean)) {
    walked = join(walked, part);
    let link = false;
    try {
      link = lstatSync(walked).isSymbolicLink();
    } catch {
      break;
    }
    if (link) refuse(`'${value}' goes through a symbolic link; write to a plain path in the run's directory`);
  }
  // `COPY … TO 'out/x.csv'`: the folders a run writes into start empty, so make them.
  if (dirname(path) !== root) mkdirSync(dirname(path), { recursive: true });
  return path;
}

function readSource(value: string, { projectDir, runDir }: RunFolders): string {
  // For a glob ('out/*/*.parquet'), where its fixed part ('out') is.
  const parts = value.split('/');
  const glob = parts.findIndex((part) => /[*?[{]/.test(part));
  const fixed = glob < 0 ? value : parts.slice(0, glob).join('/');
  if (fixed === '' || existsSync(join(projectDir, fixed))) return join(projectDir, value);
  return existsSync(join(runDir, fixed)) ? join(runDir, value) : join(projectDir, value);
}

function quote(path: string): string {
  return `'${path.replace(/'/g, "''")}'`;
}

/** Words, parentheses and literals of a statement, without comments. */
function itemsOf(tokens: readonly SqlToken[]): Item[] {
  const items: Item[] = [];
  for (const token of tokens) {
    if (token.kind === 'comment') continue;
    if (token.kind !== 'code') {
      items.push({ kind: 'literal', token });
      continue;
    }
    for (const match of token.value.matchAll(/[A-Za-z_][A-Za-z0-9_$]*|[()]|\S/g)) {
      const text = match[0];
      if (text === '(') items.push({ kind: 'open' });
      else if (text === ')') items.push({ kind: 'close' });
      else if (/^[A-Za-z_]/.test(text)) items.push({ kind: 'word', upper: text.toUpperCase() });
      else items.push({ kind: 'other', text });
    }
  }
  return items;
}
