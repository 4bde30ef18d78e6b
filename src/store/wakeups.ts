/**
 * Wake-ups between the parts that create work and the loops that do it (ARCHITECTURE.md, decision 3):
 * LISTEN/NOTIFY on PostgreSQL, so a worker on another machine hears of a new run at once, and an
 * in-process signal on SQLite (one process owns the file). Loops still re-check on a long fallback
 * timer, so a lost notification only delays work, never strands it.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';

/**
 * - `run_queued`: a run can be claimed (payload: run id);
 * - `run_cancel`: a running run's cancellation was requested (run id);
 * - `run_progress`: a run changed, for live views (run id);
 * - `app_state`: an app's default state or settings changed, for caches (project id);
 * - `schedule_changed`: a schedule was created or changed, for schedulers (schedule id);
 * - `connections_changed`: a workspace's connections changed, for workers' caches (workspace id).
 */
export type WakeupTopic =
  | 'run_queued'
  | 'run_cancel'
  | 'run_progress'
  | 'app_state'
  | 'schedule_changed'
  | 'connections_changed'
  | 'delivery_queued';

export interface Wakeups {
  /** Tells every listener, in this process and (on PostgreSQL) every other, about `payload`. */
  notify(topic: WakeupTopic, payload: string): Promise<void>;
  subscribe(topic: WakeupTopic, listener: (payload: string) => void): () => void;
  close(): Promise<void>;
}

export class LocalWakeups implements Wakeups {
  readonly #emitter = new EventEmitter();

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  async notify(topic: WakeupTopic, payload: string): Promise<void> {
    this.#emitter.emit(topic, payload);
  }

  subscribe(topic: WakeupTopic, listener: (payload: string) => void): () => void {
    this.#emitter.on(topic, listener);
    return () => this.#emitter.off(topic, listener);
  }

  async close(): Promise<void> {
    this.#emitter.removeAllListeners();
  }
}

/**
 * Topics whose listeners re-read their work when told `RESYNC`: after the LISTEN connection comes back,
 * because notifications sent while it was down are lost (PostgreSQL does not queue them).
 */
export const RESYNC = '*';
const RESYNC_TOPICS: readonly WakeupTopic[] = [
  'run_queued',
  'schedule_changed',
  'delivery_queued',
  'app_state',
  'connections_changed',
  'run_cancel',
];

/** Topics that wait up to LAZY_DELAY_MS to share a statement with others (see `notify`). */
const LAZY_TOPICS: ReadonlySet<WakeupTopic> = new Set(['run_progress']);
const LAZY_DELAY_MS = 50;

interface Batch {
  messages: string[];
  /** Resolves once the batch was sent (or failed to be). */
  sent: Promise<void>;
  /** Send on the next turn of the event loop instead of waiting for LAZY_DELAY_MS. */
  hurry: () => void;
}

/**
 * One dedicated connection LISTENs on a channel named after the schema, so stores in different schemas
 * of one database (tests, several installs) do not wake each other. Notifications from this process
 * are delivered locally at once and their echo from the server is dropped.
 *
 * The connection is watched: an error, its end, or a ping that fails (every 15 s, which also finds a
 * half-open TCP connection) drops it, and it is re-opened with backoff (0.25 s doubling to 5 s) for as
 * long as the process runs. Once it is back, every loop is told to re-read (`RESYNC`).
 */
export class PostgresWakeups implements Wakeups {
  readonly #local = new LocalWakeups();
  readonly #url: string;
  readonly #origin = Math.random().toString(36).slice(2, 10);
  #client: pg.Client | null = null;
  #channel = 'almanac';
  #closed = false;
  #notifier: pg.Pool;
  #ping: NodeJS.Timeout | null = null;
  #reconnecting = false;
  /** How many times the LISTEN connection was re-opened (tests, metrics). */
  reconnects = 0;
  /** How many NOTIFY statements were sent (tests, metrics): batches, not notifications. */
  statements = 0;

  readonly #lazyDelayMs: number;

  private constructor(url: string, lazyDelayMs: number) {
    this.#url = url;
    this.#lazyDelayMs = lazyDelayMs;
    this.#notifier = new pg.Pool({ connectionString: url, max: 4, application_name: 'almanac-notify' });
    this.#notifier.on('error', () => {});
    this.#notifier.on('connect', (client) => client.on('error', () => {}));
  }

  static async open(url: string, options: { lazyDelayMs?: number } = {}): Promise<PostgresWakeups> {
    const wakeups = new PostgresWakeups(url, options.lazyDelayMs ?? LAZY_DELAY_MS);
    await wakeups.#listen();
    wakeups.#ping = setInterval(() => void wakeups.#checkAlive(), 15_000);
    wakeups.#ping.unref();
    return wakeups;
  }

  /** The backend pid of the LISTEN connection (tests cut it with pg_terminate_backend). */
  get listenPid(): number | null {
    return (this.#client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#url,
      application_name: 'almanac-listen',
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    await client.connect();
    const { rows } = await client.query<{ schema: string }>('select current_schema() as schema');
    this.#channel = `almanac_${rows[0]!.schema}`.slice(0, 63);
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || !message.payload) return;
      const [origin, topic, ...rest] = message.payload.split('|');
      if (origin === this.#origin) return;
      void this.#local.notify(topic as WakeupTopic, rest.join('|'));
    });
    await client.query(`LISTEN "${this.#channel}"`);
    this.#client = client;
  }

  async #checkAlive(): Promise<void> {
    const client = this.#client;
    if (!client || this.#closed) return;
    const timeout = new Promise<never>((_, fail) =>
      setTimeout(() => fail(new Error('ping timed out')), 5000).unref(),
    );
    try {
      await Promise.race([client.query('select 1'), timeout]);
    } catch {
      this.#lost(client);
    }
  }

  /** The LISTEN connection is gone: re-open it with backoff, then tell every loop to re-read. */
  #lost(client: pg.Client): void {
    if (this.#client !== client && this.#client !== null) return;
    this.#client = null;
    client.end().catch(() => {});
    if (this.#closed || this.#reconnecting) return;
    this.#reconnecting = true;
    void (async () => {
      for (let delay = 250; !this.#closed; delay = Math.min(delay * 2, 5000)) {
        await new Promise((r) => setTimeout(r, delay).unref());
        if (this.#closed) break;
        try {
          await this.#listen();
          this.reconnects++;
          for (const topic of RESYNC_TOPICS) await this.#local.notify(topic, RESYNC);
          break;
        } catch {
          // PostgreSQL is still down or restarting; try again.
        }
      }
      this.#reconnecting = false;
    })();
  }

  /**
   * Delivers locally at once, and to other nodes in batches: notifications raised in the same turn of
   * the event loop (a batch of claims, of completions) go out in one statement, and while one batch is
   * in flight the next one gathers. Under load this is one round trip for many wake-ups instead of one
   * each. The promise resolves once this payload has been sent.
   *
   * `run_progress` only feeds live views, so it is not urgent: it waits up to `LAZY_DELAY_MS` for other
   * notifications to share its statement, and its promise resolves at once. A run's claim, start, cells
   * and end would otherwise cost a round trip each (docs/decisions.md, "… its progress is written sparingly").
   */
  async notify(topic: WakeupTopic, payload: string): Promise<void> {
    await this.#local.notify(topic, payload);
    const batch = this.#pending ?? this.#gather();
    batch.messages.push(`${this.#origin}|${topic}|${payload}`);
    if (LAZY_TOPICS.has(topic)) return;
    batch.hurry();
    await batch.sent;
  }

  /** Starts a batch: sent on the next turn once a notification hurries it, else after LAZY_DELAY_MS. */
  #gather(): Batch {
    let release!: () => void;
    let hurry!: () => void;
    const hurried = new Promise<void>((r) => (hurry = r));
    const batch: Batch = { messages: [], sent: new Promise<void>((r) => (release = r)), hurry };
    this.#pending = batch;
    void (async () => {
      await this.#sending; // one batch in flight at a time; the next gathers meanwhile
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        hurried.then(() => new Promise((r) => setImmediate(r))),
        new Promise((r) => (timer = setTimeout(r, this.#lazyDelayMs))),
      ]);
      clearTimeout(timer);
      if (this.#pending === batch) this.#pending = null;
      this.statements++;
      this.#sending = this.#notifier
        .query('select pg_notify($1, m) from unnest($2::text[]) as m', [this.#channel, batch.messages])
        .then(
          () => {},
          () => {
            // Other nodes find the work on their fallback timer, or when their LISTEN connection resyncs.
          },
        );
      await this.#sending;
      release();
    })();
    return batch;
  }

  #pending: Batch | null = null;
  #sending: Promise<void> = Promise.resolve();

  subscribe(topic: WakeupTopic, listener: (payload: string) => void): () => void {
    return this.#local.subscribe(topic, listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#ping) clearInterval(this.#ping);
    // Progress still gathering goes out now, not after the pool has ended.
    const pending = this.#pending;
    pending?.hurry();
    await pending?.sent;
    await this.#local.close();
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => {});
    await this.#notifier.end().catch(() => {});
  }
}
