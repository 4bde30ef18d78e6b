/**
 * A workspace (glossary "Workspace"), its users, settings and connections (glossary "Connection").
 * These schemas are the one definition of each: the store's rows map to them, and the API's bodies and
 * the OpenAPI document derive from them. (Processes have roles too: those are `ProcessRole`,
 * app/create-server.ts.)
 */
import { z } from 'zod';

/**
 * A user's role in their workspace (domain/access-policy.ts says what each may do): `admin` everything,
 * people and integrations included; `editor` also creates projects; `member` sees the projects shared
 * with the workspace; `guest` sees only what is shared with them by name. (Stores from before
 * migration 0012 held `viewer`, which became `member`.)
 */
export const WORKSPACE_ROLES = ['admin', 'editor', 'member', 'guest'] as const;
export type WorkspaceRole = (typeof WORKSPACE_ROLES)[number];

export const userSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  email: z.string(),
  name: z.string(),
  role: z.enum(WORKSPACE_ROLES),
});
export type User = z.infer<typeof userSchema>;

export const workspaceSettingsSchema = z
  .object({
    /** May cells reach the network? @default true */
    cellNetwork: z
      .boolean()
      .describe(
        'May cells reach the network? false runs them in a network namespace (needs bubblewrap on workers)',
      ),
  })
  .meta({ id: 'WorkspaceSettings' });
export type WorkspaceSettings = z.infer<typeof workspaceSettingsSchema>;

/** The kinds of connection a workspace can add (the embedded DuckDB needs none). */
export const CONNECTION_KINDS = ['postgres'] as const;
export type ConnectionKind = (typeof CONNECTION_KINDS)[number];

/** A connection as everyone may see it: never its credentials. */
export const connectionSchema = z.object({
  id: z.string(),
  workspaceId: z.string(),
  name: z.string().describe('The id SQL cells use: ```sql name connection=<name>'),
  kind: z.enum(CONNECTION_KINDS),
  createdAt: z.date(),
});
export type Connection = z.infer<typeof connectionSchema>;
