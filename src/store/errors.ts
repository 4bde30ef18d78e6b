/**
 * Store errors recognized by their codes, never by message text: messages differ between the two
 * databases, their versions and locales, while codes are part of each driver's contract.
 */

/** PostgreSQL's SQLSTATE for unique_violation (a unique index or a primary key). */
export const PG_UNIQUE_VIOLATION = '23505';

/**
 * SQLite's extended result codes for a unique key that already holds the value: SQLITE_CONSTRAINT_UNIQUE
 * (2067) and SQLITE_CONSTRAINT_PRIMARYKEY (1555). `node:sqlite` reports them as `errcode`.
 */
export const SQLITE_UNIQUE_ERRCODES: ReadonlySet<number> = new Set([2067, 1555]);

/** The same codes by name, as other SQLite drivers (better-sqlite3) report them in `code`. */
const SQLITE_UNIQUE_CODES: ReadonlySet<string> = new Set([
  'SQLITE_CONSTRAINT_UNIQUE',
  'SQLITE_CONSTRAINT_PRIMARYKEY',
]);

/**
 * True when `error` (or an error it wraps as `cause`) says an insert or update hit a unique key: another
 * row already has the value. Services turn it into a message that names the field.
 */
export function isUniqueViolation(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const { code, errcode, cause } = e as { code?: unknown; errcode?: unknown; cause?: unknown };
    if (code === PG_UNIQUE_VIOLATION) return true;
    if (typeof errcode === 'number' && SQLITE_UNIQUE_ERRCODES.has(errcode)) return true;
    if (typeof code === 'string' && SQLITE_UNIQUE_CODES.has(code)) return true;
    if (cause === e) break;
    e = cause;
  }
  return false;
}
