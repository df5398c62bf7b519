// The tasks. Both ways of defining one are shown: the wrapper and the decorator.
import { setTimeout as sleep } from 'node:timers/promises';
import { crontab, type TaskContext } from 'huey-ts';
import { huey } from './config.js';

export const add = huey.task()(function add(a: number, b: number) {
  return a + b;
});

/** Takes its time: try stopping the consumer (Ctrl-C) while it runs. */
export const slowAdd = huey.task()(async function slowAdd(a: number, b: number, seconds: number) {
  await sleep(seconds * 1000);
  return a + b;
});

/** Fails twice, then succeeds: shows retries, and the context a task can ask for. */
export const flaky = huey.task({ retries: 3, retryDelay: 1, context: true })(function flaky(key: string, task: TaskContext) {
  const attempt = 4 - task.retries;
  if (attempt < 3) throw new Error(`try ${attempt} of ${key} failed`);
  return `${key} worked on try ${attempt}`;
});

export class Beans {
  @huey.task({ retries: 2 })
  static async countBeans(num: number): Promise<string> {
    return `Counted ${num} beans`;
  }
}

/** Runs by itself every five minutes while a consumer runs. */
export const heartbeat = huey.periodicTask(crontab({ minute: '*/5' }))(function heartbeat() {
  console.log(`heartbeat at ${new Date().toISOString()}`);
});

/** The typed handle of the decorated method. */
export const countBeans = huey.taskOf(Beans.countBeans);
