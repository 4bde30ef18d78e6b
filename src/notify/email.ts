/**
 * Email through nodemailer. With a workspace's SMTP settings it sends over SMTP (one pooled transport per
 * settings); with none, it writes each message as an `.eml` file to the outbox folder under the data
 * dir, so the embedded default needs nothing set up and the UI and API can list what would have gone.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type { SmtpSettings } from '../domain/notification/integrations.ts';
import type { Attachment } from '../domain/notification/message.ts';
import { DeliveryError } from './delivery-error.ts';

export interface Email {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  attachments: (Attachment & { cid?: string })[];
}

export interface SentEmail {
  messageId: string;
  /** The file it was written to, when no SMTP server is configured. */
  outboxFile: string | null;
}

export interface OutboxEntry {
  file: string;
  size: number;
  createdAt: Date;
}

export class EmailChannel {
  readonly #outboxDir: string;
  readonly #transports = new Map<string, nodemailer.Transporter<SMTPPool.SentMessageInfo>>();
  /** Renders messages to bytes for the outbox folder. */
  readonly #render = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' });

  constructor(options: { outboxDir: string }) {
    this.#outboxDir = options.outboxDir;
  }

  get outboxDir(): string {
    return this.#outboxDir;
  }

  #transport(smtp: SmtpSettings) {
    const key = createHash('sha256').update(JSON.stringify(smtp)).digest('hex');
    const cached = this.#transports.get(key);
    if (cached) return cached;
    const transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      pool: true,
      maxConnections: 4,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
      ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
      tls: { rejectUnauthorized: !smtp.allowSelfSigned },
    });
    this.#transports.set(key, transport);
    return transport;
  }

  async send(smtp: SmtpSettings | null, email: Email, name: string): Promise<SentEmail> {
    const message = {
      from: email.from,
      to: email.to,
      subject: email.subject,
      text: email.text,
      html: email.html,
      attachments: email.attachments.map((a) => ({
        filename: a.filename,
        content: a.content,
        contentType: a.contentType,
        ...(a.cid ? { cid: a.cid } : {}),
      })),
    };
    if (!smtp) {
      const info = await this.#render.sendMail(message);
      await mkdir(this.#outboxDir, { recursive: true });
      const file = join(this.#outboxDir, `${name}.eml`);
      await writeFile(file, info.message as Buffer, { mode: 0o600 });
      return { messageId: info.messageId, outboxFile: file };
    }
    try {
      const info = await this.#transport(smtp).sendMail(message);
      return { messageId: info.messageId, outboxFile: null };
    } catch (error) {
      throw classify(error, smtp);
    }
  }

  /** Messages in the outbox folder, newest first. */
  async listOutbox(): Promise<OutboxEntry[]> {
    let names: string[];
    try {
      names = (await readdir(this.#outboxDir)).filter((n) => n.endsWith('.eml'));
    } catch {
      return [];
    }
    const entries = await Promise.all(
      names.map(async (file) => {
        const s = await stat(join(this.#outboxDir, file));
        return { file, size: s.size, createdAt: s.mtime };
      }),
    );
    return entries.sort(
      (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.file < b.file ? 1 : -1),
    );
  }

  async readOutbox(file: string): Promise<Buffer> {
    if (!/^[\w.-]+\.eml$/.test(file)) throw new DeliveryError(`'${file}' is not an outbox message`, false);
    return readFile(join(this.#outboxDir, file));
  }

  close(): void {
    for (const transport of this.#transports.values()) transport.close();
    this.#transports.clear();
  }
}

/** SMTP 5xx replies are final; connection trouble and 4xx replies are worth another attempt. */
function classify(error: unknown, smtp: SmtpSettings): DeliveryError {
  const e = error as { responseCode?: number; code?: string; message?: string };
  const where = `SMTP ${smtp.host}:${smtp.port}`;
  if (typeof e.responseCode === 'number') {
    return new DeliveryError(`${where} refused the message: ${e.message}`, e.responseCode < 500);
  }
  if (e.code === 'EAUTH') return new DeliveryError(`${where} rejected the login: ${e.message}`, false);
  return new DeliveryError(`${where}: ${e.message ?? String(error)}`, true);
}
