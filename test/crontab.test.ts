import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { ConfigurationError, crontab, MemoryHuey } from '../src/index.js';

const utc = (iso: string) => DateTime.fromISO(iso, { zone: 'utc' });

describe('crontab', () => {
  it('reads each form of a field', () => {
    const every15 = crontab({ minute: '*/15' });
    assert.ok(every15(utc('2026-01-01T10:45:00')));
    assert.ok(!every15(utc('2026-01-01T10:46:00')));
    const list = crontab({ minute: '0,30', hour: '9-17' });
    assert.ok(list(utc('2026-01-01T09:30:00')));
    assert.ok(list(utc('2026-01-01T17:00:00')));
    assert.ok(!list(utc('2026-01-01T18:00:00')));
    const steppedRange = crontab({ hour: '8-20/4', minute: 0 });
    assert.deepEqual([8, 12, 16, 20].map((h) => steppedRange(utc(`2026-01-01T${String(h).padStart(2, '0')}:00:00`))), [true, true, true, true]);
    assert.ok(!steppedRange(utc('2026-01-01T10:00:00')));
    const oddDays = crontab({ day: '*/2', minute: 0, hour: 0 });
    assert.ok(oddDays(utc('2026-01-01T00:00:00')));
    assert.ok(!oddDays(utc('2026-01-02T00:00:00')));
  });

  it('takes 0 and 7 both for Sunday', () => {
    // 2026-01-04 is a Sunday.
    for (const dayOfWeek of ['0', '7', 0, 7, '6-7']) assert.ok(crontab({ dayOfWeek })(utc('2026-01-04T12:00:00')), String(dayOfWeek));
    assert.ok(!crontab({ dayOfWeek: '1-5' })(utc('2026-01-04T12:00:00')));
    assert.ok(crontab({ dayOfWeek: '1-5' })(utc('2026-01-05T12:00:00')));
  });

  it('needs every field to match, as Huey does (not cron\'s OR of the two day fields)', () => {
    const fridayThe13th = crontab({ day: 13, dayOfWeek: 5, minute: 0, hour: 0 });
    assert.ok(fridayThe13th(utc('2026-02-13T00:00:00'))); // a Friday
    assert.ok(!fridayThe13th(utc('2026-01-13T00:00:00'))); // a Tuesday
    assert.ok(!fridayThe13th(utc('2026-01-16T00:00:00'))); // a Friday, not the 13th
  });

  it('reads the fields in its time zone', () => {
    const nineInParis = crontab({ minute: 0, hour: 9, tz: 'Europe/Paris' });
    assert.ok(nineInParis(utc('2026-01-15T08:00:00')), 'winter: UTC+1');
    assert.ok(nineInParis(utc('2026-07-15T07:00:00')), 'summer: UTC+2');
    assert.ok(!nineInParis(utc('2026-01-15T09:00:00')));
  });

  it('refuses a bad field, naming it', () => {
    const fails = (spec: Parameters<typeof crontab>[0], pattern: RegExp) =>
      assert.throws(() => crontab(spec), (error: unknown) => error instanceof ConfigurationError && pattern.test(error.message));
    fails({ minute: '61' }, /crontab: minute "61" is out of range 0-59/);
    fails({ hour: 'x' }, /crontab: hour "x" is not valid/);
    fails({ day: '0' }, /crontab: day "0" is out of range 1-31/);
    fails({ month: '13' }, /crontab: month "13" is out of range 1-12/);
    fails({ dayOfWeek: '8' }, /crontab: dayOfWeek "8" is out of range 0-7/);
    fails({ minute: '*/0' }, /crontab: minute "\*\/0" has a step of 0/);
    fails({ hour: '5-2' }, /runs backwards/);
    fails({ minute: '1,,2' }, /is not valid/);
    fails({ tz: 'Mars/Olympus' }, /tz "Mars\/Olympus" is not a known time zone/);
  });

  it('finds the next run, across months, years and leap days', () => {
    const nextOf = (spec: Parameters<typeof crontab>[0], after: string) => crontab(spec).next!(utc(after))?.toUTC().toISO({ suppressMilliseconds: true });
    assert.equal(nextOf({ minute: '*/15' }, '2026-01-01T10:44:30Z'), '2026-01-01T10:45:00Z');
    assert.equal(nextOf({ minute: '*/15' }, '2026-01-01T10:45:00Z'), '2026-01-01T11:00:00Z', 'strictly after');
    assert.equal(nextOf({ minute: 0, hour: 0, day: 1 }, '2026-12-15T00:00:00Z'), '2027-01-01T00:00:00Z');
    assert.equal(nextOf({ minute: 0, hour: 12, day: 29, month: 2 }, '2026-03-01T00:00:00Z'), '2028-02-29T12:00:00Z');
    assert.equal(nextOf({ day: 30, month: 2 }, '2026-01-01T00:00:00Z'), undefined);
    assert.equal(nextOf({ minute: 0, hour: 9, tz: 'Europe/Paris' }, '2026-07-15T07:30:00Z'), '2026-07-16T07:00:00Z');
  });

  it('serves as the schedule of a periodic task, and shows itself in a banner', () => {
    const huey = new MemoryHuey('crontab-periodic');
    huey.periodicTask(crontab({ minute: '*/5' }))(function everyFive() {
      return 1;
    });
    const [task] = huey.periodicTasks();
    assert.equal(task?.name, 'everyFive');
    assert.equal(task?.periodic!(utc('2026-01-01T00:10:00')), true);
    assert.equal(task?.periodic!(utc('2026-01-01T00:11:00')), false);
    assert.equal(String(crontab({ minute: '*/5', tz: 'Asia/Tokyo' })), 'crontab(minute=*/5 hour=* day=* month=* dayOfWeek=* tz=Asia/Tokyo)');
  });
});
