/**
 * The web app: providers (Mantine, TanStack Query), and the routes (UI.md's information architecture).
 * Unknown paths get a real 404 page, inside the frame so the way back is one click away.
 */
import { type CSSVariablesResolver, createTheme, MantineProvider } from '@mantine/core';
import { Notifications } from '@mantine/notifications';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { ApiError } from './api.ts';
import { AppPage } from './pages/AppPage.tsx';
import { AuditPage } from './pages/AuditPage.tsx';
import { AcceptInvitePage, ForgotPasswordPage, ResetPasswordPage, SignInPage } from './pages/AuthPages.tsx';
import { Home } from './pages/Home.tsx';
import { NotFound } from './pages/NotFound.tsx';
import { OutboxPage } from './pages/OutboxPage.tsx';
import { PeoplePage } from './pages/PeoplePage.tsx';
import { PlanPage } from './pages/PlanPage.tsx';
import { ProfilePage } from './pages/ProfilePage.tsx';
import { RunLogPage } from './pages/RunLogPage.tsx';
import { SchedulesPage } from './pages/SchedulesPage.tsx';
import { SettingsPage } from './pages/SettingsPage.tsx';
import { VersionsPage } from './pages/VersionsPage.tsx';
import { Shell } from './Shell.tsx';

const theme = createTheme({
  primaryColor: 'indigo',
  // Shade 8 on white passes WCAG AA for small text (shade 6, Mantine's default, does not).
  primaryShade: { light: 8, dark: 5 },
  // The sidebar folds under 900 px (UI.md): Mantine's `md` is that width here.
  breakpoints: { xs: '30em', sm: '40em', md: '56.25em', lg: '75em', xl: '88em' },
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
});

/** Dimmed text dark enough for AA contrast on white and on light tints (axe: color-contrast). */
const cssVariablesResolver: CSSVariablesResolver = () => ({
  variables: {},
  light: { '--mantine-color-dimmed': '#545c69' },
  dark: {},
});

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not change by asking again; a network blip or a 503 may.
      retry: (failures, error) =>
        failures < 2 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
      refetchOnWindowFocus: false,
      staleTime: 10_000,
    },
  },
});

export const router = createBrowserRouter([
  {
    element: <Shell />,
    children: [
      { index: true, element: <Home /> },
      { path: 'sign-in', element: <SignInPage /> },
      { path: 'invite', element: <AcceptInvitePage /> },
      { path: 'forgot-password', element: <ForgotPasswordPage /> },
      { path: 'reset-password', element: <ResetPasswordPage /> },
      { path: 'settings/profile', element: <ProfilePage /> },
      { path: 'settings/people', element: <PeoplePage /> },
      { path: 'settings/plan', element: <PlanPage /> },
      { path: 'settings/audit', element: <AuditPage /> },
      { path: 'outbox', element: <OutboxPage /> },
      { path: 'outbox/:file', element: <OutboxPage /> },
      {
        path: 'apps/:project',
        children: [
          { index: true, element: <AppPage /> },
          { path: 'runs', element: <RunLogPage /> },
          { path: 'runs/:run', element: <AppPage /> },
          { path: 'schedules', element: <SchedulesPage /> },
          { path: 'versions', element: <VersionsPage /> },
          { path: 'settings', element: <SettingsPage /> },
          { path: '*', element: <NotFound /> },
        ],
      },
      { path: '*', element: <NotFound /> },
    ],
  },
]);

export function App() {
  return (
    <MantineProvider theme={theme} defaultColorScheme="light" cssVariablesResolver={cssVariablesResolver}>
      <QueryClientProvider client={queryClient}>
        <Notifications position="bottom-right" />
        <RouterProvider router={router} />
      </QueryClientProvider>
    </MantineProvider>
  );
}
