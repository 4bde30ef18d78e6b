/**
 * Secrets at rest (connection URLs and, later, SMTP and Slack credentials) are encrypted with
 * AES-256-GCM under the configured key. The stored form is `v1:<iv>:<tag>:<ciphertext>` in base64url,
 * so a key rotation can add `v2` later. Plaintext never reaches logs: callers hold it only in memory.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AlmanacError } from '../domain/errors.ts';

export function encryptSecret(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [
    'v1',
    iv.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
    data.toString('base64url'),
  ].join(':');
}

export function decryptSecret(key: Buffer, stored: string): string {
  const [version, iv, tag, data] = stored.split(':');
  if (version !== 'v1' || !iv || !tag || data === undefined) {
    throw new AlmanacError('internal', 'a stored secret is in an unknown format', 500);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    throw new AlmanacError(
      'internal',
      'a stored secret could not be decrypted: ALMANAC_SECRET_KEY differs from the key it was encrypted with',
      500,
    );
  }
}
