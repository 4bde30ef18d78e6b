/**
 * Fire times: presets and custom crons, offset zones, both DST transitions in New York, Berlin and
 * Sydney, day 31 in short months, jitter bounds, validation messages, and a property test.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cron } from 'croner';
import fc from 'fast-check';
import { parseCron } from '../src/domain/schedule/cron.ts';
import { fireTimesAfter, fireTimesBetween, nextFireTimes } from '../src/domain/schedule/fire-times.ts';
import {
  type Cadence,
  fireSpec,
  jitterMs,
  retryDelayMs,
  validatePolicies,
  validateTimeZone,
} from '../src/domain/schedule/schedule.ts';
import { wallTime } from '../src/domain/schedule/zoned-time.ts';

const iso = (d: Date) => d.toISOString();
const next = (cadence: Cadence, tz: string, after: string, n: number) =>
  nextFireTimes(fireSpec(cadence, tz), new Date(after), n).map((f) => iso(f.at));
const local = (d: Date, tz: string) => wallTime(d, tz).toISOString().slice(0, 16).replace('T', ' ');

describe('schedule presets and crons', () => {
  it('hourly, daily, weekly and monthly presets in a zone', () => {
    assert.deepEqual(next({ kind: 'hourly', minute: 5 }, 'UTC', '2026-01-01T10:05:00Z', 2), [
      '2026-01-01T11:05:00.000Z',
      '2026-01-01T12:05:00.000Z',
    ]);
    assert.deepEqual(next({ kind: 'daily', time: '09:00' }, 'Europe/Berlin', '2026-01-01T00:00:00Z', 2), [
      '2026-01-01T08:00:00.000Z',
      '2026-01-02T08:00:00.000Z',
    ]);
    // 2026-01-05 is a Monday.
    assert.deepEqual(
      next({ kind: 'weekly', days: ['mon', 'fri'], time: '07:30' }, 'UTC', '2026-01-04T00:00:00Z', 3),
      ['2026-01-05T07:30:00.000Z', '2026-01-09T07:30:00.000Z', '2026-01-12T07:30:00.000Z'],
    );
    assert.deepEqual(
      next({ kind: 'monthly', day: 15, time: '00:00' }, 'America/New_York', '2026-01-01T00:00:00Z', 2),
      ['2026-01-15T05:00:00.000Z', '2026-02-15T05:00:00.000Z'],
    );
  });

  it('a custom 5-field and 6-field cron', () => {
    assert.deepEqual(
      next({ kind: 'cron', expression: '*/20 9-10 * * 1-5' }, 'UTC', '2026-01-05T09:50:00Z', 3),
      ['2026-01-05T10:00:00.000Z', '2026-01-05T10:20:00.000Z', '2026-01-05T10:40:00.000Z'],
    );
    assert.deepEqual(next({ kind: 'cron', expression: '*/10 * * * * *' }, 'UTC', '2026-01-05T09:50:05Z', 2), [
      '2026-01-05T09:50:10.000Z',
      '2026-01-05T09:50:20.000Z',
    ]);
  });

  it('zones with 30- and 45-minute offsets', () => {
    assert.deepEqual(next({ kind: 'daily', time: '09:00' }, 'Asia/Kolkata', '2026-01-01T00:00:00Z', 1), [
      '2026-01-01T03:30:00.000Z',
    ]);
    assert.deepEqual(next({ kind: 'daily', time: '09:00' }, 'Asia/Kathmandu', '2026-01-01T00:00:00Z', 1), [
      '2026-01-01T03:15:00.000Z',
    ]);
    // Chatham Islands: +13:45 in its summer (January).
    assert.deepEqual(next({ kind: 'daily', time: '09:00' }, 'Pacific/Chatham', '2026-01-01T00:00:00Z', 1), [
      '2026-01-01T19:15:00.000Z',
    ]);
  });

  it('monthly on day 31: the last day of shorter months, or skip them', () => {
    const lastDay = nextFireTimes(
      fireSpec({ kind: 'monthly', day: 31, time: '09:00' }, 'UTC'),
      new Date('2026-01-01T00:00:00Z'),
      4,
    );
    assert.deepEqual(
      lastDay.map((f) => iso(f.at).slice(0, 10)),
      ['2026-01-31', '2026-02-28', '2026-03-31', '2026-04-30'],
    );
    const leap = nextFireTimes(
      fireSpec({ kind: 'monthly', day: 30, time: '09:00' }, 'UTC'),
      new Date('2028-02-01T00:00:00Z'),
      2,
    );
    assert.deepEqual(
      leap.map((f) => iso(f.at).slice(0, 10)),
      ['2028-02-29', '2028-03-30'],
    );
    const skip = next(
      { kind: 'monthly', day: 31, time: '09:00', shortMonths: 'skip' },
      'UTC',
      '2026-01-01T00:00:00Z',
      3,
    );
    assert.deepEqual(
      skip.map((s) => s.slice(0, 10)),
      ['2026-01-31', '2026-03-31', '2026-05-31'],
    );
  });
});

describe('DST rules', () => {
  it('New York, spring forward: 02:30 does not exist and fires once at 03:00 EDT', () => {
    const fires = nextFireTimes(
      fireSpec({ kind: 'daily', time: '02:30' }, 'America/New_York'),
      new Date('2026-03-07T12:00:00Z'),
      2,
    );
    assert.equal(iso(fires[0]!.at), '2026-03-08T07:00:00.000Z');
    assert.equal(local(fires[0]!.at, 'America/New_York'), '2026-03-08 03:00');
    assert.equal(fires[0]!.dst, 'gap');
    assert.equal(iso(fires[1]!.at), '2026-03-09T06:30:00.000Z');
  });

  it('New York, fall back: 01:30 occurs twice and fires once, at the first', () => {
    const fires = nextFireTimes(
      fireSpec({ kind: 'daily', time: '01:30' }, 'America/New_York'),
      new Date('2026-10-31T12:00:00Z'),
      2,
    );
    assert.deepEqual(
      fires.map((f) => iso(f.at)),
      ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'],
    );
    assert.equal(fires[0]!.dst, 'repeat');
  });

  it('Berlin, both transitions', () => {
    const spring = next({ kind: 'daily', time: '02:15' }, 'Europe/Berlin', '2026-03-28T12:00:00Z', 2);
    assert.deepEqual(spring, ['2026-03-29T01:00:00.000Z', '2026-03-30T00:15:00.000Z']); // 03:00 CEST, then 02:15 CEST
    const autumn = next({ kind: 'daily', time: '02:15' }, 'Europe/Berlin', '2026-10-24T12:00:00Z', 2);
    assert.deepEqual(autumn, ['2026-10-25T00:15:00.000Z', '2026-10-26T01:15:00.000Z']);
  });

  it('Sydney (southern hemisphere): spring forward in October, fall back in April', () => {
    const spring = nextFireTimes(
      fireSpec({ kind: 'daily', time: '02:30' }, 'Australia/Sydney'),
      new Date('2026-10-03T00:00:00Z'),
      1,
    );
    assert.equal(local(spring[0]!.at, 'Australia/Sydney'), '2026-10-04 03:00');
    const autumn = next({ kind: 'daily', time: '02:30' }, 'Australia/Sydney', '2026-04-04T00:00:00Z', 2);
    assert.deepEqual(autumn, ['2026-04-04T15:30:00.000Z', '2026-04-05T16:30:00.000Z']);
  });

  it('interval crons keep real-time spacing through both changes', () => {
    const spec = fireSpec({ kind: 'cron', expression: '*/15 * * * *' }, 'America/New_York');
    const autumn = fireTimesBetween(
      spec,
      new Date('2026-11-01T04:50:00Z'),
      new Date('2026-11-01T07:20:00Z'),
      100,
    );
    const gaps = autumn.slice(1).map((f, i) => f.at.getTime() - autumn[i]!.at.getTime());
    assert.ok(
      gaps.every((g) => g === 15 * 60_000),
      'every 15 real minutes through the repeated hour',
    );
    assert.equal(autumn.length, 10);
    const spring = fireTimesBetween(
      spec,
      new Date('2026-03-08T06:20:00Z'),
      new Date('2026-03-08T07:20:00Z'),
      100,
    );
    assert.deepEqual(
      spring.map((f) => local(f.at, 'America/New_York').slice(11)),
      ['01:30', '01:45', '03:00', '03:15'],
    );
  });

  it('recomputing from inside a repeated hour never yields a fire time twice', () => {
    const spec = fireSpec({ kind: 'daily', time: '01:30' }, 'America/New_York');
    // A scheduler that fired at 01:30 EDT and restarts at 01:40 EST (second copy of the hour).
    const after = nextFireTimes(spec, new Date('2026-11-01T05:30:00Z'), 1);
    assert.equal(iso(after[0]!.at), '2026-11-02T06:30:00.000Z');
    const restarted = nextFireTimes(spec, new Date('2026-11-01T06:40:00Z'), 1);
    assert.equal(iso(restarted[0]!.at), '2026-11-02T06:30:00.000Z');
  });
});

describe('validation, jitter and backoff', () => {
  it('names the field and the rule', () => {
    const cases: [() => unknown, string, RegExp][] = [
      [
        () => fireSpec({ kind: 'cron', expression: '61 * * * *' }, 'UTC'),
        'cadence.expression',
        /^cadence\.expression: cron '61 \* \* \* \*': minute must be 0-59, not 61$/,
      ],
      [
        () => fireSpec({ kind: 'cron', expression: '* * *' }, 'UTC'),
        'cadence.expression',
        /has 3 field\(s\)/,
      ],
      [
        () => fireSpec({ kind: 'cron', expression: '0 0 31 2 *' }, 'UTC'),
        'cadence.expression',
        /never fires/,
      ],
      [() => fireSpec({ kind: 'cron', expression: '*/0 * * * *' }, 'UTC'), 'cadence.expression', /step/],
      [() => fireSpec({ kind: 'daily', time: '25:00' }, 'UTC'), 'cadence.time', /HH:MM/],
      [
        () => fireSpec({ kind: 'weekly', days: ['funday' as never], time: '09:00' }, 'UTC'),
        'cadence.days.0',
        /not a day/,
      ],
      [() => fireSpec({ kind: 'monthly', day: 32, time: '09:00' }, 'UTC'), 'cadence.day', /1-31/],
      [() => validateTimeZone('Mars/Base'), 'timezone', /^timezone: 'Mars\/Base' is not an IANA zone/],
      [
        () => validatePolicies({ overlap: 'queue' as never }),
        'overlap',
        /skip, buffer_one, allow, cancel_previous/,
      ],
      [() => validatePolicies({ maxAttempts: 0 }), 'maxAttempts', /1-10/],
    ];
    for (const [call, field, message] of cases) {
      assert.throws(call, (error: { field?: string; message: string }) => {
        assert.equal(error.field, field);
        assert.match(error.message, message);
        return true;
      });
    }
  });

  it('jitter is deterministic and within 0..J seconds', () => {
    for (let i = 0; i < 500; i++) {
      const j = jitterMs(`schedule-${i}`, 30);
      assert.ok(j >= 0 && j <= 30_000);
      assert.equal(j, jitterMs(`schedule-${i}`, 30));
    }
    assert.equal(jitterMs('x', 0), 0);
    assert.deepEqual(
      [1, 2, 3].map((r) => retryDelayMs(1000, r)),
      [1000, 2000, 4000],
    );
  });

  it('property: fire times strictly increase and each matches the cron in local time', () => {
    const zones = [
      'UTC',
      'America/New_York',
      'Europe/Berlin',
      'Australia/Sydney',
      'Asia/Kathmandu',
      'America/Sao_Paulo',
    ];
    const field = (max: number) =>
      fc.oneof(
        fc.constant('*'),
        fc.integer({ min: 0, max }).map(String),
        fc.integer({ min: 2, max: 15 }).map((s) => `*/${s}`),
      );
    fc.assert(
      fc.property(
        field(59),
        field(23),
        fc.constantFrom(...zones),
        fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2028, 0, 1) }),
        (minute, hour, zone, start) => {
          const expression = `${minute} ${hour} * * *`;
          const spec = fireSpec({ kind: 'cron', expression }, zone);
          const matcher = new Cron(parseCron(expression).pattern, { timezone: 'UTC', paused: true });
          let previous = start;
          let count = 0;
          for (const fire of fireTimesAfter(spec, new Date(start))) {
            assert.ok(fire.at.getTime() > previous, 'strictly increasing');
            previous = fire.at.getTime();
            if (fire.dst !== 'gap') {
              assert.ok(
                matcher.match(wallTime(fire.at, zone)),
                `${expression} matches ${iso(fire.at)} in ${zone}`,
              );
            }
            if (++count >= 30) break;
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
