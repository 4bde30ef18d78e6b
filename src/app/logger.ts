/**
 * The process's structured log: pino, JSON lines on stderr (stdout carries only what a person reads).
 * Loops add `runId`, `scheduleId` and `delivery` to their lines. Secrets never reach it: these keys are
 * censored wherever they appear, at the top level or one object down.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

const SECRET_KEYS = [
  'url',
  'secret',
  'token',
  'password',
  'databaseUrl',
  'secretKey',
  'adminToken',
  'metricsToken',
  'webhookSecret',
  'slackToken',
];

export const REDACTED_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(level: string, destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination);
}
