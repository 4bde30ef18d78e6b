/**
 * Hostile notebooks against the embedded DuckDB (issue 14, findings 4 and 8; issue 15, bug 4.1): two
 * published projects side by side under one versions folder, one workspace database file, the real
 * executor with real child processes. Each run gets its own DuckDB instance that may read only its
 * version's files, write only its run directory, and cannot change the limits the host set.
 */

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_SQL_RESULT_ROWS } from '../src/domain/limits.ts';
import { parseNotebook } from '../src/domain/notebook/parse-notebook.ts';
import type { RunSnapshot, TableOutput } from '../src/domain/snapshot.ts';
import { Executor, type RunEvent, type RunRequest } from '../src/executor/executor.ts';
import { DuckDbEngine } from '../src/executor/sql/duckdb-engine.ts';
import { fileKey, waitingFor } from '../src/executor/sql/file-mutex.ts';
import type { SqlEngine } from '../src/executor/sql/sql-engine.ts';
import { cell, fence } from './support/harness.ts';
import { until } from './support/until.ts';

const MEMORY_MB = 64;
let root: string;
let versions: string;
let projectA: string;
let projectB: string;
let runRoot: string;
let engine: DuckDbEngine;
let executor: Executor;
let workspaceKey: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'almanac-duckdb-'));
  // Runs may start as an unprivileged user (a root server): let it reach the project folders.
  chmodSync(root, 0o755);
  versions = join(root, 'versions');
  projectA = join(versions, 'project-a', 'v1');
  projectB = join(versions, 'project-b', 'v1');
  runRoot = join(root, 'runs');
  for (const dir of [projectA, projectB, runRoot]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(projectA, 'orders.csv'), 'id,amount\n1,10\n2,20\n');
  writeFileSync(join(projectB, 'secret.csv'), 'salary\n123456\n');
  engine = await DuckDbEngine.open({
    path: join(root, 'workspace.duckdb'),
    allowedDirectories: [versions],
    limits: { memoryLimitMb: MEMORY_MB, tempLimitMb: 64, threads: 1 },
  });
  workspaceKey = fileKey(join(root, 'workspace.duckdb'));
  executor = new Executor({
    connections: new Map<string, SqlEngine>([['duckdb', engine]]),
    runRoot,
    prewarm: false,
  });
});

after(async () => {
  await executor.close();
  await engine.close();
  rmSync(root, { recursive: true, force: true });
});

async function run(
  projectDir: string,
  cells: string,
  request: Partial<Omit<RunRequest, 'notebook'>> = {},
): Promise<RunSnapshot> {
  const notebook = await parseNotebook(cells);
  return (await executor.run({ projectDir, ...request, notebook })).snapshot;
}

/** Runs one SQL cell in project A and returns its error message; fails the test if the cell succeeded. */
async function refused(sql: string): Promise<string> {
  const snapshot = await run(projectA, fence('sql attack', sql));
  const attack = cell(snapshot, 'attack');
  assert.equal(attack.status, 'failed', `expected the statement to be refused: ${sql}`);
  return attack.error!.message;
}

const rows = (snapshot: RunSnapshot, name: string) => (cell(snapshot, name).output as TableOutput).rows;
const runDirs = () => readdirSync(runRoot).filter((name) => name !== '.runtime');

describe('DuckDB: files', () => {
  it("a run cannot list or read another project's version files", async () => {
    // Guards finding 4: allowed_directories covered all of versions/, so project A could list every
    // project's folder and read project B's (restricted) data; each of these succeeded before.
    const own = await run(
      projectA,
      fence('sql own', "select sum(amount) as total from read_csv('orders.csv')"),
    );
    assert.equal(own.status, 'succeeded', own.message ?? '');
    assert.deepEqual(rows(own, 'own'), [['30']]);
    const attacks = [
      `select * from glob('${versions}/*')`,
      `select * from glob('${versions}/project-b/v1/*')`,
      `select * from read_csv('${join(projectB, 'secret.csv')}')`,
      "select * from read_csv('../../project-b/v1/secret.csv')",
      "select * from read_text('/etc/passwd')",
      `attach '${join(projectB, 'b.db')}' as b`,
    ];
    for (const sql of attacks) {
      const message = await refused(sql);
      assert.doesNotMatch(message, /123456/);
      assert.match(message, /Cannot access|outside this run's directory/, sql);
    }
    assert.deepEqual(readdirSync(projectB), ['secret.csv']);
  });

  it('COPY TO a relative path lands in the run dir and is gone for the next run', async () => {
    // Guards finding 4: relative COPY targets were rewritten into the shared version folder, and an
    // absolute path into it was allowed, so one run's output was the next run's input.
    const first = await run(
      projectA,
      fence('sql write', "copy (select 42 as answer) to 'x.csv'") +
        fence(
          'js seen',
          "import { existsSync, readFileSync } from 'node:fs';\nreturn { here: existsSync('x.csv'), text: readFileSync('x.csv', 'utf8') };",
        ) +
        fence('sql back', "select answer from 'x.csv'"),
    );
    assert.equal(first.status, 'succeeded', first.message ?? '');
    assert.deepEqual((cell(first, 'seen').output as { value: unknown }).value, {
      here: true,
      text: 'answer\n42\n',
    });
    assert.deepEqual(rows(first, 'back'), [['42']], 'the same run reads back what it wrote');
    assert.equal(existsSync(join(projectA, 'x.csv')), false, 'nothing lands in the version folder');
    const second = await run(projectA, fence('sql again', "select * from 'x.csv'"));
    assert.equal(second.status, 'failed', 'the next run must not see the file');
    assert.match(cell(second, 'again').error!.message, /No files found|does not exist|No such file/);

    for (const sql of [
      `copy (select 1) to '${join(projectA, 'y.csv')}'`,
      `copy (select 1) to $$${join(projectA, 'y.csv')}$$`,
      `copy (select 1) to '${join(projectB, 'y.csv')}'`,
      `export database '${join(projectA, 'export')}'`,
      `attach '${join(projectA, 'y.db')}' as y`,
      `copy (select 1) to '${join(root, 'workspace.duckdb')}'`,
      `attach '${join(root, 'workspace.duckdb')}' as again`,
      `prepare p as copy (select 1) to '${join(projectA, 'y.csv')}'`,
      `call enable_logging(storage='file', storage_path='${join(projectA, 'logs')}')`,
      `call enable_profiling(format := 'json', save_location := '${join(projectA, 'profile.json')}')`,
      "import database 'exported'",
      "pragma import_database('exported')",
    ]) {
      assert.match(
        await refused(sql),
        /outside this run's directory|plain quoted string|set by the host|unchecked/,
      );
    }
    assert.deepEqual(readdirSync(projectA), ['orders.csv']);
    assert.deepEqual(readdirSync(projectB), ['secret.csv']);
    assert.deepEqual(runDirs(), [], 'run directories and DuckDB temp folders are removed');
  });

  it('IMPORT DATABASE cannot run SQL the run wrote', async () => {
    // Guards the write checks against a bypass: IMPORT DATABASE executes the folder's schema.sql
    // unchecked, so a cell could write a COPY into the version folder there and import it.
    const snapshot = await run(
      projectA,
      fence(
        'js plant',
        `import { mkdirSync, writeFileSync } from 'node:fs';
mkdirSync('exported');
writeFileSync('exported/schema.sql', ${JSON.stringify(`COPY (SELECT 1 AS a) TO '${join(projectA, 'planted.csv')}';`)});
writeFileSync('exported/load.sql', '');`,
      ) + fence('sql load', "import database 'exported'"),
    );
    assert.equal(snapshot.status, 'failed');
    assert.match(cell(snapshot, 'load').error!.message, /unchecked/);
    assert.deepEqual(readdirSync(projectA), ['orders.csv']);
  });

  it('Files written by SQL cells persist between runs', async () => {
    // Regression for issue 15, bug 4.1: `COPY … TO 'report.csv'` wrote into the version folder, so a
    // scheduled run (or a viewer's re-run) read the file a previous run left behind instead of failing.
    const first = await run(
      projectA,
      fence('sql report', "copy (select 'from run 1' as note) to 'report.csv'"),
    );
    assert.equal(first.status, 'succeeded', first.message ?? '');
    const second = await run(projectA, fence('sql read', "select note from read_csv('report.csv')"), {
      context: 'scheduled',
    });
    assert.equal(second.status, 'failed');
    assert.doesNotMatch(JSON.stringify(second), /from run 1/);
    assert.equal(existsSync(join(projectA, 'report.csv')), false);
  });

  it('a symbolic link in the run dir cannot point SQL at another project', async () => {
    // Guards the run directory, which user code writes: a link there must not lend SQL (running in
    // the server process) a path the run may not read or write.
    const snapshot = await run(
      projectA,
      fence(
        'js link',
        `import { symlinkSync, mkdirSync } from 'node:fs';
const made = [];
for (const [target, name] of [[${JSON.stringify(join(projectB, 'secret.csv'))}, 'link.csv'], [${JSON.stringify(projectA)}, 'dir']]) {
  try { symlinkSync(target, name); made.push(name); } catch (e) { made.push(e.code); }
}
return made;`,
      ) +
        fence(
          'js probe',
          `const out = {};
for (const sql of ["select * from read_csv('link.csv')", "copy (select 1) to 'dir/z.csv'"]) {
  try { out[sql] = await almanac.sql(sql); } catch (e) { out[sql] = 'refused'; }
}
return out;`,
        ),
    );
    assert.doesNotMatch(JSON.stringify(snapshot), /123456/);
    assert.equal(existsSync(join(projectA, 'z.csv')), false);
    assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    assert.deepEqual(Object.values((cell(snapshot, 'probe').output as { value: object }).value), [
      'refused',
      'refused',
    ]);
  });
});

describe('DuckDB: settings and limits', () => {
  it("SET GLOBAL memory_limit in one notebook does not change another's", async () => {
    // Guards finding 8: one shared instance meant `SET GLOBAL memory_limit` (or threads) in one
    // notebook changed every project's setting until restart.
    for (const sql of [
      "set global memory_limit = '10GB'",
      "set memory_limit = '10GB'",
      "set session memory_limit = '10GB'",
      "pragma memory_limit = '10GB'",
      'reset memory_limit',
      'set global threads = 64',
    ]) {
      assert.match(await refused(sql), /configuration has been locked.*fixed by the host/);
    }
    const other = await run(
      projectB,
      fence(
        'sql limits',
        "select current_setting('memory_limit') as memory, current_setting('threads') as threads",
      ),
    );
    assert.equal(other.status, 'succeeded', other.message ?? '');
    const [memory, threads] = rows(other, 'limits')[0] as [string, string];
    assert.ok(Number.parseFloat(memory) <= MEMORY_MB, `memory_limit is the host's: ${memory}`);
    assert.equal(String(threads), '1');
  });

  it('lock_configuration cannot be set by user SQL', async () => {
    // Guards finding 8: `SET lock_configuration = true` froze the shared instance for every project,
    // and `SET enable_external_access`/`allowed_directories` opened it; all of these are refused now.
    for (const sql of [
      'set lock_configuration = true',
      'set lock_configuration = false',
      'reset lock_configuration',
      'set enable_external_access = true',
      "set allowed_directories = ['/']",
      "set global allowed_directories = ['/']",
      "set temp_directory = '/tmp'",
      "set max_temp_directory_size = '1TB'",
      'set allow_community_extensions = true',
    ]) {
      assert.match(await refused(sql), /configuration has been locked/, sql);
    }
    for (const sql of [
      'install httpfs',
      'load httpfs',
      `load '${join(projectA, 'evil.duckdb_extension')}'`,
    ]) {
      assert.match(await refused(sql), /disabled|Cannot access/, sql);
    }
    const other = await run(
      projectB,
      fence(
        'sql ok',
        "select current_setting('lock_configuration') as locked, count(*) as n from read_csv('secret.csv')",
      ),
    );
    assert.equal(other.status, 'succeeded', other.message ?? '');
    assert.deepEqual(rows(other, 'ok'), [[true, '1']]);
  });

  it("a query over the memory limit fails with a clear error, the server's RSS stays bounded", async () => {
    // Guards finding 8: DuckDB had no memory limit, and one query took the server from 255 MiB to
    // 4.2 GiB. This query holds ~3 GiB of distinct strings: with 64 MiB of memory and 64 MiB of temp
    // files it must fail, saying which limit and what to do.
    const before = process.memoryUsage().rss;
    const snapshot = await run(
      projectA,
      fence(
        'sql huge',
        "select count(distinct s) from (select repeat('x', 100) || range as s from range(30000000))",
      ),
    );
    const grown = process.memoryUsage().rss - before;
    assert.equal(snapshot.status, 'failed');
    const message = cell(snapshot, 'huge').error!.message;
    assert.match(message, /memory|temp/i);
    assert.match(message, /ALMANAC_DUCKDB_MEMORY_MB/);
    assert.ok(grown < 512 * 1048576, `the server grew by ${Math.round(grown / 1048576)} MiB`);
  });

  it('a result larger than MAX_SQL_RESULT_ROWS is refused, not materialized in the server', async () => {
    // Guards finding 8's other half: the server read every row of a result into JavaScript objects
    // (the DuckDB memory limit does not cover them), so `select * from range(1e9)` filled the server.
    // Results are now read into JavaScript no further than the limit; inserts still report their rows.
    const snapshot = await run(
      projectA,
      [
        fence('sql many', `select range as n from range(${MAX_SQL_RESULT_ROWS + 10})`),
        fence('sql fits', `select count(*) as n from range(${MAX_SQL_RESULT_ROWS + 10})`),
      ].join('\n'),
    );
    const error = cell(snapshot, 'many').error!;
    assert.equal(error.name, 'Result Too Large');
    assert.match(error.message, /more than 500,000 rows .*LIMIT/);
    const inserted = await run(
      projectA,
      [
        fence('sql setup', 'create or replace temp table t as select 1 as a'),
        fence('sql add', 'insert into t select range from range(3)'),
        fence('sql all', 'select count(*) as n from t'),
      ].join('\n'),
    );
    assert.equal(inserted.status, 'succeeded', JSON.stringify(inserted.cells.map((c) => c.error)));
    assert.equal((cell(inserted, 'add').output as TableOutput).rowsChanged, 3);
    assert.deepEqual(rows(inserted, 'all'), [['4']]);
  });
});

describe('DuckDB: the workspace database', () => {
  it('write-backs persist across runs', async () => {
    // Guards the feature the per-run instance must keep: tables written to the workspace file are
    // there for the next run, of any project, including runs that use it at the same time.
    const setup = await run(
      projectA,
      fence('sql setup', 'create or replace table history (project text, n int)'),
    );
    assert.equal(setup.status, 'succeeded', setup.message ?? '');
    const writes = await Promise.all(
      [projectA, projectB, projectA, projectB].map((dir, i) =>
        run(
          dir,
          fence('sql chained', `select ${i} as n`) +
            fence(
              'sql write',
              `insert into history select '${dir.includes('project-a') ? 'a' : 'b'}', n from chained`,
            ),
        ),
      ),
    );
    for (const snapshot of writes) assert.equal(snapshot.status, 'succeeded', snapshot.message ?? '');
    const read = await run(
      projectB,
      fence('sql totals', 'select project, count(*) as runs from history group by all order by 1'),
    );
    assert.deepEqual(rows(read, 'totals'), [
      ['a', '2'],
      ['b', '2'],
    ]);
  });

  it('a run gives the workspace database back once its last SQL cell has finished', async () => {
    // Runs on the embedded database hold its file one at a time; a run that kept it through its
    // remaining (non-SQL) cells made every other run wait for them. Here run A's last cell waits until
    // run B has finished its SQL: with the file held to the end, B could never start, and A times out.
    const marker = join(projectA, 'b-finished');
    rmSync(marker, { force: true });
    const a = run(
      projectA,
      fence('sql first', 'select 1 as x') +
        fence(
          'js wait',
          `const fs = process.getBuiltinModule('node:fs');
for (let i = 0; i < 200; i++) {
  if (fs.existsSync(${JSON.stringify(marker)})) return 'b ran while a was still running';
  await new Promise((r) => setTimeout(r, 50));
}
throw new Error('run B never got the database');`,
        ),
      { limits: { timeoutMs: 30_000 } },
    );
    // B starts once A holds the file (A's SQL cell has run), then lets A finish.
    await new Promise((r) => setTimeout(r, 300));
    const b = await run(projectB, fence('sql other', 'select 2 as y'));
    assert.equal(b.status, 'succeeded', b.message ?? '');
    writeFileSync(marker, 'done');
    const finished = await a;
    assert.equal(finished.status, 'succeeded', finished.message ?? '');
    rmSync(marker, { force: true });
  });

  it('a run waiting for the workspace database still stops when cancelled', async () => {
    // Guards the per-file mutex: a run queued behind another run's instance must not wait for it to
    // end before honouring its own cancel (or timeout).
    const holder = new AbortController();
    let sqlDone: () => void = () => {};
    const holding = new Promise<void>((done) => {
      sqlDone = done;
    });
    let holderEnded = false;
    const first = run(
      projectA,
      // The code cell uses `almanac` (it could query), so the run keeps the file until it ends.
      fence('sql hold', 'select 1 as one') +
        fence('js wait', 'void almanac.runId;\nawait new Promise(() => {});'),
      {
        signal: holder.signal,
        onEvent: (event: RunEvent) => {
          if (event.type === 'cell_finished' && event.result.name === 'hold') sqlDone();
        },
      },
    ).finally(() => {
      holderEnded = true;
    });
    await holding;
    const waiter = new AbortController();
    const second = run(projectB, fence('sql blocked', 'select 2 as two'), { signal: waiter.signal });
    await until('the second run to wait for the workspace file', () => waitingFor(workspaceKey) === 1);
    waiter.abort();
    assert.equal((await second).status, 'cancelled');
    assert.equal(holderEnded, false, 'the cancelled run did not wait for the holder');
    holder.abort();
    assert.equal((await first).status, 'cancelled');
    const after = await run(projectB, fence('sql free', 'select 3 as three'));
    assert.equal(after.status, 'succeeded', 'the file is free again after both runs');
  });

  it('a SQL request that arrives after its run ended does not hold the workspace file', async () => {
    // Guards the per-file mutex against a leak: a child killed right after sending a request (its
    // messages can overtake its exit) made a session after the run's sessions were closed; nobody
    // would close it, so it would have held the workspace file and stalled every later DuckDB run.
    const gone = join(runRoot, 'run-already-removed');
    const late = await engine.openSession({ projectDir: projectA, runDir: gone });
    await assert.rejects(
      late.query({ statements: [{ text: 'select 1', params: [], line: 1 }], chainAs: null, rowLimit: 10 }),
      /the run has ended/,
    );
    assert.equal(existsSync(`${gone}.duckdb-tmp`), false);
    const next = await run(projectB, fence('sql free', 'select 4 as four'));
    assert.equal(next.status, 'succeeded', next.message ?? '');
    await late.close();
  });
});
