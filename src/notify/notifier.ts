/**
 * The notifier loop (ARCHITECTURE.md, decisions 3 and 6): claims due deliveries from the outbox with a
 * lease, renders the message once per delivery (with a screenshot of the run's app page and CSV files
 * when the rule asks), sends it through its channel, and records the outcome. Failures that may pass
 * are retried with exponential backoff; others end the delivery as failed at once. A notifier that dies
 * mid-send leaves a lease that expires; the delivery is then claimed again, and the (run, destination)
 * key means it never multiplies.
 */

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  type Attachment,
  buildMessage,
  type Message,
  type MessageFacts,
  messageHtml,
} from '../domain/notification/message.ts';
import { crashPoint } from '../services/crash-points.ts';
import type { Delivery, DeliveryOutcome, Integrations } from '../services/delivery-service.ts';
import * as deliveries from '../services/delivery-service.ts';
import { type LoopLog, QUIET_LOG } from '../services/loop-log.ts';
import { type Metrics, storeRetries } from '../services/metrics.ts';
import type { ServiceContext } from '../services/service-context.ts';
import { type RetryOptions, retryTransient } from '../store/transient.ts';
import { DeliveryError } from './delivery-error.ts';
import type { EmailChannel } from './email.ts';
import { postWebhook } from './webhook.ts';

/** Takes a picture of a page (notify/screenshots.ts); absent when no Chromium is available. */
export interface ScreenshotSource {
  /** Renders an app page as the holder of `ticket` (a view ticket) sees it. */
  take(path: string, format: 'png' | 'pdf', ticket: string, viewer: string): Promise<Buffer>;
}

/** Posts to Slack (notify/slack.ts). */
export interface SlackSender {
  post(
    token: string,
    message: { channel: string; dm: boolean; message: Message; files: Attachment[] },
  ): Promise<string | null>;
}

export interface NotifierOptions {
  ctx: ServiceContext;
  email: EmailChannel;
  /** Where people open the app: links in messages. */
  publicUrl: string;
  screenshots?: ScreenshotSource | null;
  slack?: SlackSender | null;
  /** Deliveries sent at once. @default 4 */
  concurrency?: number;
  /** @default 120000 */
  leaseMs?: number;
  /** First retry delay, doubling per attempt (at most an hour). @default 30000 */
  retryBaseMs?: number;
  log?: LoopLog;
  id?: string;
  /** Delivery attempts and screenshot times go here. */
  metrics?: Metrics | null;
  /** How long a webhook receiver may take to answer. @default 10000 */
  webhookTimeoutMs?: number;
}

/**
 * Results kept for a minute, so the deliveries of one run (often sent together) read the run and take a
 * screenshot once. Failures are not kept: the next attempt tries again.
 */
class Recent {
  readonly #entries = new Map<string, { until: number; value: Promise<unknown> }>();
  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.#entries.get(key);
    if (hit && hit.until > now) return hit.value as Promise<T>;
    if (this.#entries.size > 200) {
      for (const [k, e] of this.#entries) if (e.until <= now) this.#entries.delete(k);
    }
    const value = load();
    this.#entries.set(key, { until: now + 60_000, value });
    value.catch(() => this.#entries.delete(key));
    return value;
  }
}

export class Notifier {
  readonly id: string;
  readonly #o: NotifierOptions;
  readonly #log: LoopLog;
  readonly #retry: RetryOptions;
  readonly #active = new Set<Promise<void>>();
  readonly #recent = new Recent();
  #timer: NodeJS.Timeout | null = null;
  #off: (() => void) | null = null;
  #running = false;
  #ticking: Promise<number> | null = null;

  constructor(options: NotifierOptions) {
    this.#o = options;
    this.id = options.id ?? `${hostname()}:${process.pid}:notify:${randomUUID().slice(0, 8)}`;
    this.#log = options.log ?? QUIET_LOG;
    this.#retry = storeRetries(options.metrics, this.#log);
  }

  get #concurrency(): number {
    return this.#o.concurrency ?? 4;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#off = this.#o.ctx.wakeups.subscribe('delivery_queued', () => this.#wake());
    this.#wake();
  }

  #wake(delayMs = 0): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#loop(), Math.max(0, Math.min(delayMs, 30_000)));
    this.#timer.unref();
  }

  async #loop(): Promise<void> {
    await this.tick();
    const next = await deliveries.nextDeliveryDue(this.#o.ctx).catch(() => null);
    this.#wake(next ? next.getTime() - this.#o.ctx.now().getTime() : 30_000);
  }

  /** Claims what capacity allows and starts sending it. Returns how many it claimed. */
  async tick(): Promise<number> {
    if (this.#ticking) return this.#ticking;
    this.#ticking = (async () => {
      const free = this.#concurrency - this.#active.size;
      if (free <= 0) return 0;
      let claimed: Delivery[] = [];
      try {
        claimed = await retryTransient(
          'claim deliveries',
          () =>
            deliveries.claimDueDeliveries(this.#o.ctx, {
              notifier: this.id,
              limit: free,
              leaseMs: this.#o.leaseMs ?? 120_000,
            }),
          this.#retry,
        );
      } catch (error) {
        this.#log.error({ err: error }, 'claiming deliveries failed');
      }
      for (const delivery of claimed) {
        const done: Promise<void> = this.#deliver(delivery)
          .catch((error) => this.#log.error({ err: error, delivery: delivery.id }, 'delivery crashed'))
          .finally(() => {
            this.#active.delete(done);
            this.#wake();
          });
        this.#active.add(done);
      }
      return claimed.length;
    })();
    try {
      return await this.#ticking;
    } finally {
      this.#ticking = null;
    }
  }

  /** Sends until nothing is due now. For tests and benchmarks. */
  async drain(): Promise<void> {
    for (;;) {
      const claimed = await this.tick();
      if (this.#active.size > 0) {
        await Promise.race(this.#active);
        continue;
      }
      if (claimed === 0) return;
    }
  }

  async #deliver(delivery: Delivery): Promise<void> {
    const ctx = this.#o.ctx;
    let note: string | null = null;
    try {
      const integrations = await deliveries.integrationsFor(ctx, delivery);
      const { message, snapshotPath } = await this.#message(delivery);
      const files = [...message.attachments];
      let picture: Attachment | null = null;
      if (delivery.content.screenshot) {
        const format = delivery.content.screenshot;
        if (!this.#o.screenshots) {
          note =
            'screenshot unavailable: no Chromium on the server (install chromium or set ALMANAC_CHROMIUM)';
        } else if (!delivery.content.viewAs) {
          note = 'screenshot unavailable: no user to take it as';
        } else {
          try {
            const viewAs = delivery.content.viewAs;
            const screenshots = this.#o.screenshots;
            // Recipients who see the app alike (channels and webhooks of one rule author) share one shot.
            const content = await this.#recent.get(
              `shot\0${snapshotPath}\0${format}\0${viewAs}`,
              async () => {
                const started = performance.now();
                const shot = await screenshots.take(
                  snapshotPath,
                  format,
                  await deliveries.screenshotTicket(ctx, delivery, viewAs),
                  viewAs,
                );
                this.#o.metrics?.screenshotSeconds.observe({ format }, (performance.now() - started) / 1000);
                return shot;
              },
            );
            picture = {
              filename: `app.${format}`,
              contentType: format === 'png' ? 'image/png' : 'application/pdf',
              content,
            };
          } catch (error) {
            note = `screenshot unavailable: ${(error as Error).message}`;
          }
        }
      }
      if (picture) files.unshift(picture);
      // From here the message may arrive: a notifier that dies now must not send it again.
      if (
        !(await retryTransient(
          'hand off delivery',
          () => deliveries.markHandedOff(ctx, delivery, this.id),
          this.#retry,
        ))
      ) {
        this.#log.warn({ delivery: delivery.id }, 'lost the lease on a delivery before sending it');
        return;
      }
      const sendNote = await this.#send(delivery, integrations, message, files, picture, note);
      crashPoint('after_send');
      if (sendNote) note = note ? `${note}; ${sendNote}` : sendNote;
      await this.#finish(delivery, { status: 'sent', at: ctx.now(), note });
      this.#log.info({ delivery: delivery.id, destination: delivery.destination }, 'notification sent');
    } catch (error) {
      const retryable = error instanceof DeliveryError ? error.retryable : true;
      const message = (error as Error).message;
      const last = delivery.attempts >= delivery.maxAttempts;
      if (retryable && !last) {
        const base = this.#o.retryBaseMs ?? 30_000;
        // The receiver's Retry-After wins over our backoff (bounded to an hour either way).
        const asked = error instanceof DeliveryError ? error.retryAfterMs : null;
        const delay = Math.min(asked ?? base * 2 ** (delivery.attempts - 1), 3_600_000);
        await this.#finish(delivery, {
          status: 'pending',
          error: message,
          retryAt: new Date(ctx.now().getTime() + delay),
          note,
        });
      } else {
        await this.#finish(delivery, { status: 'failed', error: message, note });
      }
      this.#log.warn(
        { delivery: delivery.id, destination: delivery.destination, attempt: delivery.attempts, retryable },
        'notification not sent',
      );
    }
  }

  /**
   * Records an attempt's outcome (and counts it in metrics). Retried on transient store errors: a
   * delivery left 'sending' after its hand-off would end as an uncertain failure.
   */
  async #finish(delivery: Delivery, outcome: DeliveryOutcome): Promise<void> {
    await retryTransient(
      'finish delivery',
      () => deliveries.finishDelivery(this.#o.ctx, delivery, this.id, outcome),
      this.#retry,
    );
    const counted = outcome.status === 'pending' ? 'retry' : outcome.status;
    this.#o.metrics?.deliveryAttempts.inc({ channel: delivery.channel, outcome: counted });
  }

  /** What every delivery of a run says about it; read once for all of the run's deliveries. */
  #runFacts(runId: string): Promise<{ facts: MessageFacts; snapshotPath: string }> {
    return this.#recent.get(`run\0${runId}`, async () => {
      const found = await deliveries.runFacts(this.#o.ctx, runId);
      if (!found) throw new DeliveryError(`run ${runId} no longer exists`, false);
      const { run, project, scheduleName, snapshot } = found;
      const snapshotPath = `/apps/${project.slug}/runs/${run.id}`;
      const facts: MessageFacts = {
        appTitle: project.title,
        appSlug: project.slug,
        runUrl: `${this.#o.publicUrl.replace(/\/+$/, '')}${snapshotPath}`,
        runId: run.id,
        status: run.status,
        trigger: run.trigger,
        scheduleName,
        scheduledFor: run.scheduledFor,
        finishedAt: run.finishedAt,
        errorCell: run.errorCell,
        errorMessage: run.errorMessage,
        snapshot,
      };
      return { facts, snapshotPath };
    });
  }

  async #message(delivery: Delivery): Promise<{ message: Message; snapshotPath: string }> {
    const { facts, snapshotPath } = await this.#runFacts(delivery.runId);
    const message = buildMessage(
      facts,
      {
        subject: delivery.content.subject,
        body: delivery.content.body,
        screenshot: delivery.content.screenshot,
        csvCells: delivery.content.csvCells,
      },
      delivery.content.because,
    );
    return { message, snapshotPath };
  }

  async #send(
    delivery: Delivery,
    integrations: Integrations,
    message: Message,
    files: Attachment[],
    picture: Attachment | null,
    note: string | null,
  ): Promise<string | null> {
    switch (delivery.channel) {
      case 'email': {
        const inline = picture?.contentType === 'image/png';
        const html = messageHtml(message, { inlineImageCid: inline ? 'app-screenshot' : null, note });
        await this.#o.email.send(
          integrations.smtp,
          {
            from: integrations.emailFrom,
            to: delivery.content.target,
            subject: message.subject,
            text: note ? `${message.text}\n\n(${note})` : message.text,
            html,
            attachments: files.map((f) => (f === picture && inline ? { ...f, cid: 'app-screenshot' } : f)),
          },
          `${ctxStamp(this.#o.ctx.now())}-${randomUUID().slice(0, 8)}-${delivery.id}`,
        );
        return null;
      }
      case 'slack': {
        if (!this.#o.slack || !integrations.slackToken) {
          throw new DeliveryError('Slack is not set up: an admin adds a bot token under integrations', false);
        }
        return this.#o.slack.post(integrations.slackToken, {
          channel: delivery.content.target,
          dm: delivery.content.dm === true,
          message: note ? { ...message, text: `${message.text}\n\n_${note}_` } : message,
          files,
        });
      }
      case 'webhook': {
        await postWebhook({
          url: delivery.content.target,
          key: integrations.webhookSecret,
          allowPrivate: integrations.allowPrivateWebhooks,
          now: this.#o.ctx.now(),
          ...(this.#o.webhookTimeoutMs ? { timeoutMs: this.#o.webhookTimeoutMs } : {}),
          body: {
            type: `run.${message.status}`,
            deliveryId: delivery.id,
            runId: delivery.runId,
            subject: message.subject,
            text: message.text,
            url: message.runUrl,
            failure: message.failure,
            rule: delivery.ruleName,
            because: delivery.content.because,
            note,
          },
        });
        return null;
      }
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#off?.();
    if (this.#timer) clearTimeout(this.#timer);
    await this.#ticking;
    await Promise.all(this.#active);
  }
}

function ctxStamp(now: Date): string {
  return now.toISOString().replace(/[-:.]/g, '').replace('T', '-').slice(0, 15);
}
