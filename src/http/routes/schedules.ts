/**
 * Schedules: create, list, read with health, change, delete, pause and resume, run now, backfill,
 * and previews of fire times.
 */
import { z } from 'zod';
import { validateTimeZone } from '../../domain/schedule/schedule.ts';
import * as schedules from '../../services/schedule-service.ts';
import { instant, runJson, scheduleJson } from '../json.ts';
import type { RouteDeps } from '../route-deps.ts';
import { type AnyRoute, route } from '../routes.ts';
import * as S from '../schemas.ts';

export function scheduleRoutes(deps: RouteDeps): AnyRoute[] {
  const { ctx } = deps;
  return [
    route({
      method: 'post',
      path: '/api/projects/:project/schedules',
      action: 'schedule.manage',
      summary: 'Create a schedule: a cadence in an IANA timezone, inputs and policies',
      tag: 'schedules',
      params: S.ProjectParams,
      body: S.CreateScheduleBody,
      responses: { 201: { description: 'Created', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(scheduleJson(await schedules.createSchedule(ctx, principal, params.project, body)), 201),
    }),
    route({
      method: 'get',
      path: '/api/projects/:project/schedules',
      action: 'project.view_schedules',
      summary: "A project's schedules",
      tag: 'schedules',
      params: S.ProjectParams,
      responses: { 200: { description: 'Schedules', schema: S.Schedule.array() } },
      handler: async ({ c, principal, params }) =>
        c.json((await schedules.listSchedules(ctx, principal, params.project)).map(scheduleJson)),
    }),
    route({
      method: 'post',
      path: '/api/schedules/preview',
      action: 'schedule.preview',
      summary: 'The next fire times of a cadence, in local and UTC time, marking DST moves',
      tag: 'schedules',
      body: S.PreviewBody,
      responses: { 200: { description: 'Fire times', schema: S.PreviewEntry.array() } },
      handler: async ({ c, body }) => {
        validateTimeZone(body.timezone);
        return c.json(
          schedules.preview(
            body.cadence,
            body.timezone,
            body.count ?? 10,
            instant('from', body.from) ?? ctx.now(),
          ),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/schedules/:schedule',
      action: 'project.view_schedules',
      summary:
        'A schedule with its health: last run, next fire time, skipped and missed counts, overdue flag',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 200: { description: 'The schedule', schema: S.ScheduleWithHealth } },
      handler: async ({ c, principal, params }) => {
        const schedule = await schedules.getSchedule(ctx, principal, params.schedule);
        const health = await schedules.health(ctx, schedule);
        return c.json({
          ...scheduleJson(schedule),
          health: {
            ...health,
            lastRun: health.lastRun ? runJson(health.lastRun) : null,
            nextFireAt: health.nextFireAt?.toISOString() ?? null,
          },
        });
      },
    }),
    route({
      method: 'patch',
      path: '/api/schedules/:schedule',
      action: 'schedule.manage',
      summary: 'Change a schedule',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.UpdateScheduleBody,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(scheduleJson(await schedules.updateSchedule(ctx, principal, params.schedule, body))),
    }),
    route({
      method: 'delete',
      path: '/api/schedules/:schedule',
      action: 'schedule.manage',
      summary: 'Delete a schedule (its runs stay in the run log)',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 204: { description: 'Deleted' } },
      handler: async ({ c, principal, params }) => {
        await schedules.deleteSchedule(ctx, principal, params.schedule);
        return c.body(null, 204);
      },
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/pause',
      action: 'schedule.manage',
      summary: 'Pause, optionally until an instant (it resumes by itself), with a note',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.PauseBody,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params, body }) =>
        c.json(
          scheduleJson(
            await schedules.pauseSchedule(ctx, principal, params.schedule, {
              until: instant('until', body.until) ?? null,
              note: body.note ?? null,
            }),
          ),
        ),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/resume',
      action: 'schedule.manage',
      summary: 'Resume a paused schedule from now',
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 200: { description: 'The schedule', schema: S.Schedule } },
      handler: async ({ c, principal, params }) =>
        c.json(scheduleJson(await schedules.resumeSchedule(ctx, principal, params.schedule))),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/run',
      action: 'schedule.manage',
      summary:
        "Run now: a scheduled run started early (trigger schedule, context scheduled, the schedule's inputs); it refreshes the default state",
      tag: 'schedules',
      params: S.ScheduleParams,
      responses: { 201: { description: 'The queued run', schema: S.Run } },
      handler: async ({ c, principal, params }) =>
        c.json(runJson(await schedules.runNow(ctx, principal, params.schedule)), 201),
    }),
    route({
      method: 'post',
      path: '/api/schedules/:schedule/backfill',
      action: 'schedule.manage',
      summary: 'Create runs for the fire times in (from, to], each with its own almanac.scheduledFor',
      tag: 'schedules',
      params: S.ScheduleParams,
      body: S.BackfillBody,
      responses: {
        201: {
          description: 'The runs created',
          schema: z.object({ created: S.Run.array(), existing: z.number().int() }),
        },
      },
      handler: async ({ c, principal, params, body }) => {
        const result = await schedules.backfill(ctx, principal, params.schedule, {
          from: instant('from', body.from)!,
          to: instant('to', body.to)!,
        });
        return c.json({ created: result.created.map(runJson), existing: result.existing }, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/schedules/:schedule/preview',
      action: 'project.view_schedules',
      summary: "A schedule's next fire times, in local and UTC time, marking DST moves",
      tag: 'schedules',
      params: S.ScheduleParams,
      query: S.PreviewQuery,
      responses: { 200: { description: 'Fire times', schema: S.PreviewEntry.array() } },
      handler: async ({ c, principal, params, query }) => {
        const schedule = await schedules.getSchedule(ctx, principal, params.schedule);
        return c.json(
          schedules.preview(
            schedule.cadence,
            schedule.timezone,
            query.count ?? 10,
            instant('from', query.from) ?? ctx.now(),
          ),
        );
      },
    }),
  ];
}
