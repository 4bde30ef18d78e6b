/**
 * Signing in and getting back in (issue 16): sign-in with email and password (`/sign-in`; the server
 * keeps `/login?code=` for one-time links), accepting an invitation (`/invite?code=`), asking for a
 * password reset (`/forgot-password`) and setting a new password from its link (`/reset-password?code=`).
 * Each one signs the browser in and goes on to where the person was (`?next=`, a path on this site).
 */
import { Alert, Anchor, Button, Paper, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useMutation } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { ApiError, client, expectOk, unwrap } from '../api.ts';
import { useMe } from '../me.ts';
import { safeNext } from '../sign-in.ts';
import { Page, PageTitle } from '../ui.tsx';

/** The shortest password the server takes (domain/user.ts MIN_PASSWORD_LENGTH). */
const MIN_PASSWORD = 10;

/** A full load of `to`, so every cached answer of the signed-out visit is dropped. */
function goSignedIn(to: string): void {
  window.location.assign(to);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function AuthFrame({
  title,
  sub,
  children,
  footer,
}: {
  title: string;
  sub?: ReactNode;
  children: ReactNode;
  footer?: ReactNode;
}) {
  return (
    <Page title={[title]} ready className="auth-page">
      <div className="auth-card">
        <PageTitle sub={sub}>{title}</PageTitle>
        <Paper withBorder radius="md" p="lg">
          {children}
        </Paper>
        {footer ? (
          <Text size="sm" mt="md" component="div">
            {footer}
          </Text>
        ) : null}
      </div>
    </Page>
  );
}

export function SignInPage() {
  const [params] = useSearchParams();
  const next = safeNext(params.get('next'));
  const me = useMe();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const signIn = useMutation({
    mutationFn: async () =>
      unwrap(await client.POST('/api/auth/login', { body: { email: email.trim(), password } })),
    onSuccess: () => goSignedIn(next),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!signIn.isPending && !signIn.isSuccess) signIn.mutate();
  };
  let problem: string | null = null;
  if (signIn.error) {
    const status = signIn.error instanceof ApiError ? signIn.error.status : 0;
    // One message whether the address exists or not: the server never says, and neither do we.
    problem =
      status === 401 || status === 400
        ? 'That email and password do not match an account. Check both and try again, or reset your password.'
        : messageOf(signIn.error);
  }
  return (
    <AuthFrame
      title="Sign in"
      sub={next !== '/' ? 'Sign in to go on to the page you opened.' : 'Sign in to your Almanac workspace.'}
      footer={
        <>
          <Anchor component={Link} to="/forgot-password">
            Forgot your password?
          </Anchor>{' '}
          · Invited? Open the link in your invitation email.
        </>
      }
    >
      <form onSubmit={submit} noValidate>
        <Stack gap="md">
          {me.data ? (
            <Text size="sm" className="signed-in-as">
              You are signed in as {me.data.name}.{' '}
              <Anchor component={Link} to={next} underline="always">
                Go on
              </Anchor>
              , or sign in as someone else.
            </Text>
          ) : null}
          <TextInput
            label="Email"
            type="email"
            name="email"
            autoComplete="username"
            required
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
          />
          <PasswordInput
            label="Password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
          />
          {problem ? (
            <Alert color="red" variant="light" role="alert" title="Could not sign in">
              {problem}
            </Alert>
          ) : null}
          <Button type="submit" loading={signIn.isPending || signIn.isSuccess}>
            Sign in
          </Button>
        </Stack>
      </form>
    </AuthFrame>
  );
}

/** A new password, twice, with the mismatch said next to the second field. */
function usePasswordPair() {
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [touched, setTouched] = useState(false);
  const tooShort = password.length > 0 && password.length < MIN_PASSWORD;
  const mismatch = confirm.length > 0 && confirm !== password;
  const valid = password.length >= MIN_PASSWORD && password === confirm;
  const fields = (label: string) => (
    <>
      <PasswordInput
        label={label}
        name="new-password"
        autoComplete="new-password"
        required
        description={`At least ${MIN_PASSWORD} characters`}
        value={password}
        onChange={(e) => setPassword(e.currentTarget.value)}
        error={
          touched && (tooShort || password.length === 0) ? `Use at least ${MIN_PASSWORD} characters` : null
        }
      />
      <PasswordInput
        label="Repeat the password"
        name="confirm-password"
        autoComplete="new-password"
        required
        value={confirm}
        onChange={(e) => setConfirm(e.currentTarget.value)}
        error={
          touched && (mismatch || (confirm.length === 0 && password.length > 0))
            ? 'The two passwords differ'
            : null
        }
      />
    </>
  );
  return {
    password,
    valid,
    fields,
    touch: () => setTouched(true),
  };
}

function MissingCode({ what }: { what: string }) {
  return (
    <Alert color="red" variant="light" title={`This ${what} link is incomplete`}>
      The address has no code. Open the link from the email again, or copy all of it into the address bar.
    </Alert>
  );
}

export function AcceptInvitePage() {
  const [params] = useSearchParams();
  const code = params.get('code');
  const [name, setName] = useState('');
  const pair = usePasswordPair();
  const [nameTouched, setNameTouched] = useState(false);
  const accept = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/auth/accept-invite', {
          body: { code: code ?? '', name: name.trim(), password: pair.password },
        }),
      ),
    onSuccess: () => goSignedIn(safeNext(params.get('next'))),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    pair.touch();
    setNameTouched(true);
    if (!name.trim() || !pair.valid || accept.isPending || accept.isSuccess) return;
    accept.mutate();
  };
  return (
    <AuthFrame
      title="Accept your invitation"
      sub="Choose the name your colleagues see and a password, and you are in."
      footer={
        <>
          Already have a password?{' '}
          <Anchor component={Link} to="/sign-in">
            Sign in
          </Anchor>
        </>
      }
    >
      {code ? (
        <form onSubmit={submit} noValidate>
          <Stack gap="md">
            <TextInput
              label="Your name"
              name="name"
              autoComplete="name"
              required
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              error={nameTouched && !name.trim() ? 'Enter the name others will see' : null}
            />
            {pair.fields('Password')}
            {accept.error ? (
              <Alert color="red" variant="light" role="alert" title="Could not accept the invitation">
                {messageOf(accept.error)}. If the link has expired (after 7 days), ask an admin to invite you
                again.
              </Alert>
            ) : null}
            <Button type="submit" loading={accept.isPending || accept.isSuccess}>
              Accept and sign in
            </Button>
          </Stack>
        </form>
      ) : (
        <MissingCode what="invitation" />
      )}
    </AuthFrame>
  );
}

export function ForgotPasswordPage() {
  const [email, setEmail] = useState('');
  const [touched, setTouched] = useState(false);
  const request = useMutation({
    mutationFn: async () => {
      const result = await client.POST('/api/auth/password-reset', { body: { email: email.trim() } });
      // 202 has no body: unwrap would call it missing data.
      expectOk(result);
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (!email.trim() || request.isPending) return;
    request.mutate();
  };
  return (
    <AuthFrame
      title="Reset your password"
      sub="We email you a link that sets a new password. It works for one hour."
      footer={
        <Anchor component={Link} to="/sign-in">
          Back to sign-in
        </Anchor>
      }
    >
      {request.isSuccess ? (
        <Alert color="green" variant="light" role="status" title="Check your email">
          If that address has an account, we sent a link to it. Open it within an hour to set a new password.
        </Alert>
      ) : (
        <form onSubmit={submit} noValidate>
          <Stack gap="md">
            <TextInput
              label="Email"
              type="email"
              name="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              error={touched && !email.trim() ? 'Enter the address you sign in with' : null}
            />
            {request.error ? (
              <Alert color="red" variant="light" role="alert" title="Could not send the link">
                {messageOf(request.error)}
              </Alert>
            ) : null}
            <Button type="submit" loading={request.isPending}>
              Email me a link
            </Button>
          </Stack>
        </form>
      )}
    </AuthFrame>
  );
}

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const code = params.get('code');
  const pair = usePasswordPair();
  const complete = useMutation({
    mutationFn: async () =>
      unwrap(
        await client.POST('/api/auth/password-reset/complete', {
          body: { code: code ?? '', password: pair.password },
        }),
      ),
    onSuccess: () => goSignedIn('/'),
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    pair.touch();
    if (!pair.valid || complete.isPending || complete.isSuccess) return;
    complete.mutate();
  };
  return (
    <AuthFrame
      title="Set a new password"
      sub="Every other session and API token of yours stops working once it is set."
      footer={
        <Anchor component={Link} to="/forgot-password">
          Ask for a new link
        </Anchor>
      }
    >
      {code ? (
        <form onSubmit={submit} noValidate>
          <Stack gap="md">
            {pair.fields('New password')}
            {complete.error ? (
              <Alert color="red" variant="light" role="alert" title="Could not set the password">
                {messageOf(complete.error)}. A link works once, for one hour: ask for a new one if it has
                expired.
              </Alert>
            ) : null}
            <Button type="submit" loading={complete.isPending || complete.isSuccess}>
              Set the password and sign in
            </Button>
          </Stack>
        </form>
      ) : (
        <MissingCode what="password reset" />
      )}
    </AuthFrame>
  );
}
