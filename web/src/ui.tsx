/**
 * Small shared parts of every page: the page frame (`<main>` with its title and readiness), times,
 * status badges, and the loading, empty and error states (UI.md: every state has a design).
 */
import { Alert, Anchor, Badge, Code, Skeleton, Stack, Text, Title } from '@mantine/core';
import { useDocumentTitle } from '@mantine/hooks';
import type { ReactNode } from 'react';
import { Link, useLocation, useSearchParams } from 'react-router';
import { ApiError, type RunStatus } from './api.ts';
import { signInHref } from './sign-in.ts';

/** `?print=1`: the page as a report for screenshots, without the top bar, sidebar or controls. */
export function usePrintMode(): boolean {
  const [params] = useSearchParams();
  return params.get('print') === '1';
}

/**
 * One page's `<main>`: it names the page in the tab title ("Run log · Sales KPIs · Almanac") and says
 * `data-ready="true"` once its data (and charts) are drawn, for screenshots and tests. `data-view` is
 * the path it shows, so a ready flag never describes the previous view after an in-app navigation.
 */
export function Page({
  title,
  ready,
  children,
  className,
}: {
  /** Most specific first: ['Run log', 'Sales KPIs']. */
  title: readonly (string | null | undefined)[];
  ready: boolean;
  children: ReactNode;
  className?: string;
}) {
  const { pathname } = useLocation();
  useDocumentTitle([...title.filter(Boolean), 'Almanac'].join(' · '));
  return (
    <main
      className={className ? `page ${className}` : 'page'}
      data-ready={ready ? 'true' : 'false'}
      data-view={pathname}
    >
      {children}
    </main>
  );
}

const ABSOLUTE = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'short',
});
const ABSOLUTE_UTC = new Intl.DateTimeFormat('en-GB', {
  dateStyle: 'medium',
  timeStyle: 'short',
  timeZone: 'UTC',
});
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });

/** "2 h ago", "in 5 min": the distance from `now` in the largest unit that fits. */
export function relativeTime(at: Date, now = Date.now()): string {
  const seconds = Math.round((at.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return seconds <= 0 ? 'just now' : 'in a moment';
  const units: [Intl.RelativeTimeFormatUnit, number][] = [
    ['minute', 60],
    ['hour', 3600],
    ['day', 86400],
    ['week', 604800],
    ['month', 2629800],
    ['year', 31557600],
  ];
  let chosen: [Intl.RelativeTimeFormatUnit, number] = units[0]!;
  for (const unit of units) if (abs >= unit[1] * 0.9) chosen = unit;
  return RELATIVE.format(Math.round(seconds / chosen[1]), chosen[0]);
}

/** The absolute time in the browser's timezone, with UTC as the second line. */
export function absoluteTime(at: Date): string {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return `${ABSOLUTE.format(at)} (${zone})\n${ABSOLUTE_UTC.format(at)} UTC`;
}

/** A time: relative in lists, absolute (browser timezone, and UTC) on hover and for screen readers. */
export function Time({ iso, absolute = false }: { iso: string | null | undefined; absolute?: boolean }) {
  if (!iso)
    return (
      <Text span c="dimmed">
        —
      </Text>
    );
  const at = new Date(iso);
  return (
    <time dateTime={at.toISOString()} title={absoluteTime(at)}>
      {absolute ? ABSOLUTE.format(at) : relativeTime(at)}
    </time>
  );
}

/** One colour and one symbol per status, everywhere (UI.md). */
const STATUS: Record<RunStatus, { color: string; icon: string; label: string }> = {
  succeeded: { color: 'green', icon: '✓', label: 'succeeded' },
  failed: { color: 'red', icon: '✕', label: 'failed' },
  timed_out: { color: 'orange', icon: '⧖', label: 'timed out' },
  cancelled: { color: 'gray', icon: '⊘', label: 'cancelled' },
  running: { color: 'blue', icon: '●', label: 'running' },
  queued: { color: 'indigo', icon: '○', label: 'queued' },
  skipped: { color: 'yellow', icon: '↷', label: 'skipped' },
};

export function StatusBadge({ status }: { status: string }) {
  const known = STATUS[status as RunStatus] ?? { color: 'gray', icon: '?', label: status };
  return (
    <Badge
      color={known.color}
      variant="light"
      radius="sm"
      className={`status status-${status}`}
      leftSection={<span aria-hidden="true">{known.icon}</span>}
    >
      {known.label}
    </Badge>
  );
}

/** Rows of grey bars while a list loads: the layout does not jump when the data lands. */
export function LoadingRows({ rows = 4, label = 'Loading' }: { rows?: number; label?: string }) {
  return (
    <Stack gap="xs" aria-busy="true" aria-label={label}>
      {Array.from({ length: rows }, (_, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: placeholders have no identity
        <Skeleton key={i} height={28} radius="sm" />
      ))}
    </Stack>
  );
}

/** What to do next when a list is empty, with the command or button that does it. */
export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Stack gap={4} className="empty-state" py="lg">
      <Text fw={600}>{title}</Text>
      {children ? (
        <Text c="dimmed" size="sm" component="div">
          {children}
        </Text>
      ) : null}
    </Stack>
  );
}

/**
 * A failed load in words: what failed, the server's reason, and what to try. A missing session says
 * how to sign in (a one-time login link from `almanac login-link`).
 */
export function ErrorState({ what, error }: { what: string; error: unknown }) {
  const { pathname, search } = useLocation();
  const status = error instanceof ApiError ? error.status : 0;
  const reason = error instanceof Error ? error.message : String(error);
  let hint: ReactNode = 'Reload the page to try again.';
  if (status === 401)
    hint = (
      <>
        You are not signed in.{' '}
        <Anchor component={Link} to={signInHref(`${pathname}${search}`)} underline="always">
          Sign in
        </Anchor>{' '}
        to come back here, or open a login link: an admin prints one with <Code>almanac login-link</Code>.
      </>
    );
  else if (status === 403)
    hint =
      'You may not open this. Ask an admin or someone with Full access to the project to share it with you.';
  else if (status === 404) hint = 'Check the address, or go back to the projects list.';
  return (
    <Alert color="red" variant="light" title={`Could not load ${what}`} className="banner failed">
      <Text size="sm">{reason}</Text>
      <Text size="sm" c="dimmed" mt={4}>
        {hint}
      </Text>
    </Alert>
  );
}

export function PageTitle({ children, sub }: { children: ReactNode; sub?: ReactNode }) {
  return (
    <Stack gap={2} mb="md">
      <Title order={1} size="h2">
        {children}
      </Title>
      {sub ? (
        <Text c="dimmed" size="sm" component="div">
          {sub}
        </Text>
      ) : null}
    </Stack>
  );
}
