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
 * One dedicated connection LISTENs on a channel named after the schema, so stores in different schemas
 * of one database (tests, several installs) do not wake each other. Notifications from this process
 * are delivered locally at once and their echo from the server is dropped.
 */
export class PostgresWakeups implements Wakeups {
  readonly #local = new LocalWakeups();
  readonly #url: string;
  readonly #origin = Math.random().toString(36).slice(2, 10);
  #client: pg.Client | null = null;
  #channel = 'almanac';
  #closed = false;
  #notifier: pg.Pool;

  private constructor(url: string) {
    this.#url = url;
    this.#notifier = new pg.Pool({ connectionString: url, max: 4, application_name: 'almanac-notify' });
    this.#notifier.on('error', () => {});
  }

  static async open(url: string): Promise<PostgresWakeups> {
    const wakeups = new PostgresWakeups(url);
    await wakeups.#listen();
    return wakeups;
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url, application_name: 'almanac-listen' });
    await client.connect();
    const { rows } = await client.query<{ schema: string }>('select current_schema() as schema');
    this.#channel = `almanac_${rows[0]!.schema}`.slice(0, 63);
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || !message.payload) return;
      const [origin, topic, ...rest] = message.payload.split('|');
      if (origin === this.#origin) return;
      void this.#local.notify(topic as WakeupTopic, rest.join('|'));
    });
    client.on('error', () => {
      // Reconnect after a lost connection; work is still found by the loops' fallback timers.
      this.#client = null;
      if (!this.#closed) setTimeout(() => void this.#listen().catch(() => {}), 1000).unref();
    });
    await client.query(`LISTEN "${this.#channel}"`);
    this.#client = client;
  }

  async notify(topic: WakeupTopic, payload: string): Promise<void> {
    await this.#local.notify(topic, payload);
    try {
      await this.#notifier.query('select pg_notify($1, $2)', [
        this.#channel,
        `${this.#origin}|${topic}|${payload}`,
      ]);
    } catch {
      // Other nodes find the work on their fallback timer.
    }
  }

  subscribe(topic: WakeupTopic, listener: (payload: string) => void): () => void {
    return this.#local.subscribe(topic, listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#local.close();
    await this.#client?.end().catch(() => {});
    await this.#notifier.end().catch(() => {});
  }
}
