/** A real 404: the address names no page, and the way back. */
import { Anchor, Text } from '@mantine/core';
import { Link, useLocation } from 'react-router';
import { Page, PageTitle } from '../ui.tsx';

export function NotFound() {
  const { pathname } = useLocation();
  return (
    <Page title={['Page not found']} ready className="not-found">
      <PageTitle>Page not found</PageTitle>
      <Text>
        There is no page at <code>{pathname}</code>. It may have moved, or the link may be mistyped.
      </Text>
      <Text mt="sm">
        <Anchor component={Link} to="/">
          Go to the projects list
        </Anchor>{' '}
        or press Ctrl K to search.
      </Text>
    </Page>
  );
}
