/**
 * The email outbox: messages Almanac wrote to the outbox folder because no SMTP server is configured,
 * newest first, each shown with its text, its screenshot and its other attachments.
 */
import { useEffect, useState } from 'react';
import { api, type OutboxEntry, type OutboxMessage } from './api.ts';
import { HomeLink } from './HomeLink.tsx';

export function Outbox({ file, navigate }: { file: string | null; navigate: (to: string) => void }) {
  const [entries, setEntries] = useState<OutboxEntry[] | null>(null);
  const [message, setMessage] = useState<OutboxMessage | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.outbox().then(setEntries, (e: Error) => setError(e.message));
  }, []);
  useEffect(() => {
    setMessage(null);
    if (file) api.outboxMessage(file).then(setMessage, (e: Error) => setError(e.message));
  }, [file]);
  const ready = entries !== null && (!file || message !== null || error !== null);
  return (
    <main
      className="page"
      data-ready={ready ? 'true' : 'false'}
      data-view={file ? `/outbox/${file}` : '/outbox'}
    >
      <header>
        <HomeLink navigate={navigate} /> › Outbox
      </header>
      <p className="hint">
        Email goes here while no SMTP server is configured (<code>PUT /api/integrations</code> or{' '}
        <code>almanac notify integrations --smtp host:port</code>).
      </p>
      {error ? <div className="banner failed">{error}</div> : null}
      <div className="outbox">
        <ul className="outbox-list">
          {entries?.length === 0 ? <li>The outbox is empty.</li> : null}
          {entries?.map((e) => (
            <li key={e.file} className={e.file === file ? 'selected' : ''}>
              <a
                href={`/outbox/${encodeURIComponent(e.file)}`}
                onClick={(ev) => {
                  ev.preventDefault();
                  navigate(`/outbox/${encodeURIComponent(e.file)}`);
                }}
              >
                {new Date(e.createdAt).toISOString().replace('T', ' ').slice(0, 19)} UTC
              </a>{' '}
              <span className="meta">{Math.round(e.size / 1024)} KiB</span>
            </li>
          ))}
        </ul>
        {message ? (
          <article className="mail">
            <h2>{message.subject}</h2>
            <p className="meta">
              From {message.from} to {message.to}
              {message.date ? ` · ${message.date}` : ''}
            </p>
            <pre className="mail-text">{message.text}</pre>
            {message.attachments.map((a) =>
              a.contentType.startsWith('image/') ? (
                <figure key={a.url}>
                  <img src={a.url} alt={a.filename} className="mail-image" />
                  <figcaption>{a.filename}</figcaption>
                </figure>
              ) : (
                <p key={a.url}>
                  <a href={a.url}>{a.filename}</a>{' '}
                  <span className="meta">
                    ({a.contentType}, {a.size} B)
                  </span>
                </p>
              ),
            )}
          </article>
        ) : null}
      </div>
    </main>
  );
}
