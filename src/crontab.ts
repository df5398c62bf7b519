/*
 * Huey's crontab, on luxon. Hand-written rather than on a cron library
 * because Huey's rules differ from classic cron's: every field must match
 * (cron ORs a restricted day-of-month with a restricted day-of-week), 0 and 7
 * are both Sunday, and a bad field must fail at definition naming the field.
 */
import { DateTime } from 'luxon';
import { ConfigurationError } from './errors.js';
import type { PeriodicSchedule } from './task.js';

/** When a periodic task runs. Each field takes `*`, `n`, `*\/n`, `a-b`, `a-b/n` and comma lists of those. */
export interface CrontabSpec {
  /** 0-59. @defaultValue '*' */
  minute?: string | number;
  /** 0-23. @defaultValue '*' */
  hour?: string | number;
  /** Day of the month, 1-31. @defaultValue '*' */
  day?: string | number;
  /** 1-12. @defaultValue '*' */
  month?: string | number;
  /** 0-7, where 0 and 7 are both Sunday. @defaultValue '*' */
  dayOfWeek?: string | number;
  /** The IANA time zone the fields are read in. @defaultValue 'UTC' */
  tz?: string;
}

type Field = 'minute' | 'hour' | 'day' | 'month' | 'dayOfWeek';

const RANGES: Record<Field, [number, number]> = {
  minute: [0, 59],
  hour: [0, 23],
  day: [1, 31],
  month: [1, 12],
  dayOfWeek: [0, 7],
};

function parseField(field: Field, spec: string | number): Set<number> {
  const [low, high] = RANGES[field];
  const text = String(spec).trim();
  const bad = (why: string): never => {
    throw new ConfigurationError(`crontab: ${field} "${text}" ${why}`);
  };
  const number = (piece: string): number => {
    if (!/^\d+$/.test(piece)) bad('is not valid');
    const n = Number(piece);
    if (n < low || n > high) bad(`is out of range ${low}-${high}`);
    return n;
  };
  const values = new Set<number>();
  for (const piece of text.split(',')) {
    const match = /^(\*|\d+|\d+-\d+)(?:\/(\d+))?$/.exec(piece.trim());
    if (!match) bad('is not valid');
    const [, range, stepText] = match!;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) bad('has a step of 0');
    let from = low;
    let to = high;
    if (range !== '*') {
      const [a, b = a] = range!.split('-') as [string, string?];
      from = number(a);
      to = number(b!);
      if (from > to) bad(`has a range that runs backwards`);
      // A bare number with a step (5/15) means "from 5 to the end, every 15", as in cron.
      if (stepText !== undefined && !range!.includes('-')) to = high;
    } else if (field === 'dayOfWeek') {
      to = 6; // * is every day once, not Sunday twice
    }
    for (let n = from; n <= to; n += step) values.add(field === 'dayOfWeek' ? n % 7 : n);
  }
  return values;
}

/**
 * A schedule for `huey.periodicTask()` in Huey's crontab syntax:
 * `crontab({ minute: '0', hour: '*\/3', dayOfWeek: '1-5', tz: 'Europe/Paris' })`.
 * Throws `ConfigurationError` naming the bad field.
 */
export function crontab(spec: CrontabSpec = {}): PeriodicSchedule & { readonly spec: Readonly<CrontabSpec> } {
  const tz = spec.tz ?? 'UTC';
  if (!DateTime.now().setZone(tz).isValid) throw new ConfigurationError(`crontab: tz "${tz}" is not a known time zone`);
  const fields = {
    minute: parseField('minute', spec.minute ?? '*'),
    hour: parseField('hour', spec.hour ?? '*'),
    day: parseField('day', spec.day ?? '*'),
    month: parseField('month', spec.month ?? '*'),
    dayOfWeek: parseField('dayOfWeek', spec.dayOfWeek ?? '*'),
  };
  const dayMatches = (local: DateTime) => fields.day.has(local.day) && fields.dayOfWeek.has(local.weekday % 7);

  const matches = (minute: DateTime): boolean => {
    const local = minute.setZone(tz);
    return fields.month.has(local.month) && dayMatches(local) && fields.hour.has(local.hour) && fields.minute.has(local.minute);
  };

  /**
   * The first whole minute after `after` that matches, or null if none in
   * five years (a 30th of February). Skips whole months, days and hours that
   * cannot match. Across a DST change a wall-clock time that does not exist
   * is skipped, and one that occurs twice matches both times.
   */
  const next = (after: DateTime): DateTime | null => {
    let at = after.setZone(tz).startOf('minute').plus({ minutes: 1 });
    const limit = at.plus({ years: 5 });
    while (at < limit) {
      if (!fields.month.has(at.month)) at = at.plus({ months: 1 }).startOf('month');
      else if (!dayMatches(at)) at = at.plus({ days: 1 }).startOf('day');
      else if (!fields.hour.has(at.hour)) at = at.plus({ hours: 1 }).startOf('hour');
      else if (!fields.minute.has(at.minute)) at = at.plus({ minutes: 1 });
      else return at;
    }
    return null;
  };

  const text = `crontab(minute=${spec.minute ?? '*'} hour=${spec.hour ?? '*'} day=${spec.day ?? '*'} month=${spec.month ?? '*'} dayOfWeek=${spec.dayOfWeek ?? '*'}${tz === 'UTC' ? '' : ` tz=${tz}`})`;
  return Object.assign(matches, { next, spec: { ...spec }, toString: () => text });
}
