/**
 * A delivery (glossary "Delivery"): one notification to one destination, with its attempts and status.
 * It sits in the outbox (`deliveries` table), which notifiers claim like the run queue.
 */
import { z } from 'zod';

export const DELIVERY_CHANNELS = ['email', 'slack', 'webhook'] as const;
export type DeliveryChannel = (typeof DELIVERY_CHANNELS)[number];

/** pending (waiting for its next attempt) → sending (claimed) → sent | failed (attempts spent). */
export const DELIVERY_STATUSES = ['pending', 'sending', 'sent', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** What a delivery sends, fixed when the run finishes. */
export const deliveryContentSchema = z.object({
  subject: z.string().nullable(),
  body: z.string().nullable(),
  screenshot: z.enum(['png', 'pdf']).nullable(),
  csvCells: z.array(z.string()),
  /** Why the rule fired, in words. */
  because: z.string(),
  /** For `email`: the address; `slack`: a channel name or id, or the user's email for a DM; `webhook`: the URL. */
  target: z.string(),
  /** For Slack: a DM to the user with this email. */
  dm: z.boolean().optional(),
  /** The user the screenshot is taken as (the recipient, or the rule's author for channels). */
  viewAs: z.string().nullable().optional(),
});
export type DeliveryContent = z.infer<typeof deliveryContentSchema>;

export const deliverySchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  runId: z.string(),
  ruleId: z.string().nullable(),
  /** The rule's name when the delivery was made (the rule may change or go later). */
  ruleName: z.string(),
  channel: z.enum(DELIVERY_CHANNELS),
  /** Where it goes, as shown to people: an address, a channel, a URL. */
  destination: z.string(),
  content: deliveryContentSchema,
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  nextAttemptAt: z.date(),
  worker: z.string().nullable(),
  leaseExpiresAt: z.date().nullable(),
  /** The last attempt's error. */
  error: z.string().nullable(),
  note: z.string().nullable(),
  createdAt: z.date(),
  sentAt: z.date().nullable(),
});
export type Delivery = z.infer<typeof deliverySchema>;
