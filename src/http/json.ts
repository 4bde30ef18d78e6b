/**
 * How the API writes the glossary's nouns as JSON: camelCase fields, ISO instants, and the shapes the
 * response schemas (`schemas.ts`) declare. Every route module serializes through these, and each one's
 * return type is its schema's, so the compiler keeps what is sent and what is documented the same.
 */
import type { z } from 'zod';
import { ValidationError } from '../domain/errors.ts';
import { summarizeInputs } from '../domain/input-summary.ts';
import type { Project, Version, VersionListing } from '../domain/project.ts';
import { latenessMs, type Run } from '../domain/run.ts';
import type { Schedule } from '../domain/schedule/schedule.ts';
import type { RunDetails } from '../services/run-service.ts';
import { describe } from '../services/schedule-service.ts';
import type * as S from './schemas.ts';

/** What a response schema says is sent. */
type Json<T extends z.ZodType> = z.output<T>;

export function projectJson(project: Project, latest: Version | null): Json<typeof S.Project> {
  return {
    id: project.id,
    slug: project.slug,
    title: project.title,
    draftUpdatedAt: project.draftUpdatedAt.toISOString(),
    createdAt: project.createdAt.toISOString(),
    latestVersion: latest?.number ?? null,
    currentVersion: latest?.number ?? null,
    appUrl: `/apps/${project.slug}`,
    visibility: project.visibility,
  };
}

export function versionJson(version: Version): Json<typeof S.Version> {
  return {
    id: version.id,
    number: version.number,
    contentHash: version.contentHash,
    createdAt: version.createdAt.toISOString(),
    message: version.message ?? null,
  };
}

export function versionListingJson(version: VersionListing): Json<typeof S.VersionListing> {
  return {
    ...versionJson(version),
    createdBy: version.createdBy,
    publishedBy: version.publishedBy,
    publishRun: version.publishRunId ? { id: version.publishRunId, status: version.publishRunStatus } : null,
    current: version.current,
  };
}

export function runJson(run: Run): Json<typeof S.Run> {
  return {
    id: run.id,
    project: run.projectId,
    versionId: run.versionId,
    trigger: run.trigger,
    context: run.context,
    status: run.status,
    private: run.private,
    inputs: run.inputs,
    createdBy: run.createdBy,
    createdAt: run.createdAt.toISOString(),
    scheduledFor: run.scheduledFor?.toISOString() ?? null,
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
    attempts: run.attempts,
    maxAttempts: run.maxAttempts,
    worker: run.worker,
    reason: run.reason,
    error: run.errorMessage ? { cell: run.errorCell, message: run.errorMessage } : null,
    scheduleId: run.scheduleId,
    jitterMs: run.jitterMs,
    latenessMs: latenessMs(run),
    retryOf: run.retryOf,
    retryNumber: run.retryNumber,
  };
}

/** A run in a list (the run log): input values shortened, so one huge value cannot bloat every page. */
export function runSummaryJson(run: Run): Json<typeof S.Run> {
  return { ...runJson(run), inputs: summarizeInputs(run.inputs) };
}

export function scheduleJson(schedule: Schedule): Json<typeof S.Schedule> {
  return {
    id: schedule.id,
    project: schedule.projectId,
    name: schedule.name,
    description: describe(schedule),
    cadence: schedule.cadence,
    timezone: schedule.timezone,
    inputs: schedule.inputs,
    policies: schedule.policies,
    enabled: schedule.enabled,
    pausedUntil: schedule.pausedUntil?.toISOString() ?? null,
    pauseNote: schedule.pauseNote,
    nextFireAt: schedule.nextFireAt?.toISOString() ?? null,
    createdAt: schedule.createdAt.toISOString(),
  };
}

/** An ISO 8601 instant from a request field, or a 400 naming it. */
export function instant(field: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw new ValidationError(field, `must be an ISO 8601 instant like 2026-03-01T09:00:00Z, not '${value}'`);
  }
  return date;
}

export function runDetailsJson(details: RunDetails): Json<typeof S.RunWithCells> {
  return {
    ...runJson(details.run),
    projectSlug: details.projectSlug,
    versionNumber: details.versionNumber,
    cells: details.cells.map((c) => ({ ...c, startedAt: c.startedAt?.toISOString() ?? null })),
  };
}
