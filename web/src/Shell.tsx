/**
 * The frame around every page: a top bar (workspace, search, user menu) and, inside a project, a left
 * sidebar with its tabs (App · Scheduled runs · Run log · Versions · Settings). The sidebar folds
 * behind a burger under 900 px. `?print=1` drops the frame: the page alone, as a report.
 */
import {
  Anchor,
  AppShell,
  Burger,
  Button,
  Group,
  Kbd,
  NavLink as MantineNavLink,
  Menu,
  Text,
  UnstyledButton,
  VisuallyHidden,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { Spotlight, type SpotlightActionData, spotlight } from '@mantine/spotlight';
import { useMutation, useQuery } from '@tanstack/react-query';
import { useEffect } from 'react';
import { Link, NavLink, Outlet, useLocation, useMatch, useNavigate } from 'react-router';
import { type AccessLevel, atLeast, useProjectAccess } from './access.ts';
import { client, unwrap } from './api.ts';
import { useMe } from './me.ts';
import { ShareDialog } from './ShareDialog.tsx';
import { signInHref } from './sign-in.ts';
import { usePrintMode } from './ui.tsx';

/** The tabs of a project, in sidebar order. `path` is relative to /apps/:project. */
export const PROJECT_TABS = [
  { path: '', label: 'App', min: 'app_only' },
  { path: 'schedules', label: 'Scheduled runs', min: 'can_view' },
  { path: 'runs', label: 'Run log', min: 'can_view' },
  { path: 'versions', label: 'Versions', min: 'can_view' },
  { path: 'settings', label: 'Settings', min: 'full_access' },
] as const satisfies readonly { path: string; label: string; min: AccessLevel }[];

/** Kept here too for the pages that import it from the shell. */
export { useMe };

export function useProjects() {
  return useQuery({
    queryKey: ['projects'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/projects', { signal })),
  });
}

/** The workspace's name from `/api/me`; until it loads, nothing rather than a made-up label. */
function WorkspaceName() {
  const me = useMe();
  const name = me.data?.workspaceName;
  if (!name) return null;
  return (
    <Text size="sm" c="dimmed" visibleFrom="xs" className="workspace">
      {name}
    </Text>
  );
}

function UserMenu() {
  const me = useMe();
  const { pathname, search } = useLocation();
  const signOut = useMutation({
    mutationFn: async () => unwrap(await client.POST('/api/auth/logout')),
    onSettled: () => window.location.assign('/sign-in'),
  });
  if (!me.data) {
    if (me.isPending) return <span className="user-menu" />;
    // On the sign-in pages themselves the link would go nowhere new.
    if (/^\/(sign-in|invite|forgot-password|reset-password)$/.test(pathname)) return null;
    return (
      <Anchor component={Link} to={signInHref(`${pathname}${search}`)} size="sm" className="user-menu">
        Sign in
      </Anchor>
    );
  }
  return (
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <UnstyledButton className="user-menu" aria-label={`Account: ${me.data.name}`}>
          <Text size="sm" fw={500} truncate maw={160}>
            {me.data.name}
          </Text>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>
          {me.data.name} · {me.data.role}
        </Menu.Label>
        <Menu.Item component={Link} to="/settings/profile">
          Profile and API tokens
        </Menu.Item>
        {me.data.role === 'admin' ? (
          <>
            <Menu.Item component={Link} to="/settings/people">
              People
            </Menu.Item>
            <Menu.Item component={Link} to="/settings/audit">
              Audit log
            </Menu.Item>
          </>
        ) : null}
        <Menu.Item component={Link} to="/settings/plan">
          Plan
        </Menu.Item>
        <Menu.Item component={Link} to="/outbox">
          Email outbox
        </Menu.Item>
        <Menu.Divider />
        <Menu.Item color="red" disabled={signOut.isPending} onClick={() => signOut.mutate()}>
          Sign out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}

/** ⌘K / Ctrl+K: projects and their pages, and the outbox. */
function CommandPalette() {
  const navigate = useNavigate();
  const me = useMe();
  const projects = useQuery({
    queryKey: ['projects'],
    queryFn: async ({ signal }) => unwrap(await client.GET('/api/projects', { signal })),
    enabled: me.isSuccess,
  });
  const actions: SpotlightActionData[] = [
    { id: 'home', label: 'Projects', description: 'All projects', onClick: () => navigate('/') },
    {
      id: 'outbox',
      label: 'Email outbox',
      description: 'Mail waiting for SMTP',
      onClick: () => navigate('/outbox'),
    },
  ];
  actions.push({
    id: 'profile',
    label: 'Profile',
    description: 'Your password, notification preference and API tokens',
    onClick: () => navigate('/settings/profile'),
  });
  if (me.data?.role === 'admin')
    actions.push({
      id: 'people',
      label: 'People',
      description: 'Users, invitations and roles',
      onClick: () => navigate('/settings/people'),
    });
  for (const p of projects.data ?? []) {
    for (const tab of PROJECT_TABS) {
      const to = `/apps/${encodeURIComponent(p.slug)}${tab.path ? `/${tab.path}` : ''}`;
      actions.push({
        id: `${p.slug}:${tab.path}`,
        label: tab.path ? `${p.title}: ${tab.label}` : p.title,
        description: tab.path ? to : `App · ${to}`,
        onClick: () => navigate(to),
      });
    }
  }
  return (
    <Spotlight
      actions={actions}
      shortcut={['mod + K']}
      nothingFound="No project or page by that name"
      highlightQuery
      limit={12}
      searchProps={{ placeholder: 'Go to a project or page…', 'aria-label': 'Search projects and pages' }}
    />
  );
}

function ProjectNav({ project, onNavigate }: { project: string; onNavigate: () => void }) {
  const base = `/apps/${encodeURIComponent(project)}`;
  const { pathname } = useLocation();
  const access = useProjectAccess(project);
  const projects = useProjects();
  const [sharing, share] = useDisclosure(false);
  const title = projects.data?.find((p) => p.slug === project)?.title ?? project;
  // Until the access is known only the App tab shows: a tab never appears and then vanishes.
  const tabs = PROJECT_TABS.filter((tab) => atLeast(access ?? 'app_only', tab.min));
  return (
    <nav aria-label="Project">
      {tabs.map((tab) => {
        const to = tab.path ? `${base}/${tab.path}` : base;
        // "App" is also active on a past run's page (/runs/:run), which shows the app; "Run log" only
        // on the list itself.
        const active = tab.path
          ? pathname === to || (tab.path !== 'runs' && pathname.startsWith(`${to}/`))
          : pathname === base || (/\/runs\/[^/]+$/.test(pathname) && pathname.startsWith(`${base}/runs/`));
        return (
          <MantineNavLink
            key={tab.path}
            component={NavLink}
            to={to}
            end
            label={tab.label}
            active={active}
            aria-current={active ? 'page' : undefined}
            onClick={onNavigate}
            data-tab={tab.path || 'app'}
          />
        );
      })}
      {access === 'full_access' ? (
        <>
          <Button variant="light" size="xs" mt="sm" mx="xs" onClick={share.open} className="share-button">
            Share
          </Button>
          <ShareDialog project={project} title={title} opened={sharing} onClose={share.close} />
        </>
      ) : null}
    </nav>
  );
}

export function Shell() {
  const print = usePrintMode();
  const match = useMatch('/apps/:project/*');
  const project = match?.params.project ?? null;
  const [opened, { toggle, close }] = useDisclosure(false);
  const { pathname } = useLocation();
  // A new page closes the folded sidebar.
  // biome-ignore lint/correctness/useExhaustiveDependencies: per page
  useEffect(close, [pathname]);
  if (print) {
    return (
      <div className="print-mode">
        <Outlet />
      </div>
    );
  }
  return (
    <AppShell
      header={{ height: 52 }}
      navbar={project ? { width: 220, breakpoint: 'md', collapsed: { mobile: !opened } } : undefined}
      padding={0}
    >
      <AppShell.Header className="topbar">
        <Group h="100%" px="md" justify="space-between" wrap="nowrap" gap="sm">
          <Group gap="sm" wrap="nowrap">
            {project ? (
              <Burger
                opened={opened}
                onClick={toggle}
                hiddenFrom="md"
                size="sm"
                aria-label={opened ? 'Close the project menu' : 'Open the project menu'}
              />
            ) : null}
            <Link to="/" className="home">
              Almanac
            </Link>
            <WorkspaceName />
          </Group>
          <Group gap="sm" wrap="nowrap">
            <UnstyledButton className="search-button" onClick={() => spotlight.open()}>
              <Text size="sm" c="dimmed" span>
                Search
              </Text>
              <VisuallyHidden> projects and pages</VisuallyHidden>{' '}
              <Kbd size="xs" visibleFrom="xs">
                Ctrl K
              </Kbd>
            </UnstyledButton>
            <UserMenu />
          </Group>
        </Group>
      </AppShell.Header>
      {project ? (
        <AppShell.Navbar p="xs" className="sidebar">
          <ProjectNav project={project} onNavigate={close} />
        </AppShell.Navbar>
      ) : null}
      <div className="shell-main">
        <Outlet />
      </div>
      <CommandPalette />
    </AppShell>
  );
}
