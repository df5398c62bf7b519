import { randomUUID } from 'node:crypto';
import { EVENT_LOG_SIZE, type ActivityEvent } from '../consumer/reporter.js';
import { HueyError } from '../errors.js';
import type { Huey } from '../huey.js';
import type { Message } from '../message.js';
import { onQueue, queueOf } from '../migrate.js';

/**
 * What the dashboard's buttons and the admin command's verbs do, by name.
 * Each takes its target (a task id, task name or lock name; none for pause
 * and resume) and returns the line that says what it did, to show and log.
 */
export const ACTIONS: Record<string, (huey: Huey, target: string) => Promise<string>> = {
  revoke: async (huey, id) => (await huey.revokeById(id), `revoked task ${id}`),
  restore: async (huey, id) => ((await huey.restoreById(id)) ? `restored task ${id}` : `task ${id} was not revoked`),
  'revoke-task': async (huey, name) => (await huey.revokeTask(name), `revoked every call of ${name}`),
  'restore-task': async (huey, name) => ((await huey.restoreTask(name)) ? `restored ${name}` : `${name} was not revoked`),
  'flush-lock': async (huey, name) => ((await huey.flushLocks(name)).length ? `flushed lock ${name}` : `lock ${name} was not held`),
  'run-periodic': async (huey, name) => {
    const definition = huey.definition(name);
    if (!definition?.periodic) throw new HueyError(`${name} is not a periodic task`);
    const message = definition.message(randomUUID(), [], {}, Date.now());
    await huey.enqueue(message);
    return `enqueued periodic task ${name} now (${message.id})`;
  },
  retry: retryTask,
  requeue: async (huey, id) => {
    if (!(await huey.requeue(id))) throw new HueyError(`task ${id} is not in the failed registry (not failed, its record lapsed, or its message was over 64 KiB)`);
    return `requeued failed task ${id}`;
  },
  pause: async (huey) => (await huey.pause(), 'paused: workers start no new tasks'),
  resume: async (huey) => ((await huey.resume()) ? 'resumed' : 'the queue was not paused'),
  'pause-queue': async (huey, queue) => (await huey.pause(knownQueue(huey, queue)), `paused queue ${queue}: workers start none of its tasks`),
  'resume-queue': async (huey, queue) => ((await huey.resume(knownQueue(huey, queue))) ? `resumed queue ${queue}` : `queue ${queue} was not paused`),
};

/** A queue the instance knows: a mistyped name would be paused for nobody. */
function knownQueue(huey: Huey, queue: string): string {
  if (!huey.queueNames.includes(queue)) throw new HueyError(`no queue ${queue}: this instance knows ${huey.queueNames.join(', ')}`);
  return queue;
}

/** Actions that need no target. */
export const UNTARGETED = new Set(['pause', 'resume']);

/**
 * Run again a task that was dead-lettered (put back as it was) or that failed
 * for good among the latest runs of the event log (enqueued again with the
 * same id, so its result replaces the stored error).
 */
async function retryTask(huey: Huey, id: string): Promise<string> {
  for (const { storage } of huey.queueSources()) {
    for (const letter of await storage.deadLetters()) {
      let message: Message;
      try {
        message = huey.deserializeMessage(letter.data);
      } catch {
        continue; // a corrupt payload has no id to match
      }
      if (message.id !== id) continue;
      // To the queue it belongs on now (its task may have moved since), and enqueued before
      // it leaves the dead letters: a crash in between leaves a copy, never nothing.
      const home = onQueue(message, queueOf(huey, message));
      const target = huey.storageOf(home);
      await target.enqueue(target === storage && home.queue === message.queue ? letter.data : huey.serializeMessage(home), message.priority);
      await storage.deleteDeadLetter(letter);
      return `retried dead-lettered task ${message.name} ${id}`;
    }
  }
  for (const text of await huey.storage.events(EVENT_LOG_SIZE)) {
    const event = JSON.parse(text) as ActivityEvent;
    if (event.id !== id || !event.message) continue;
    const message = huey.deserializeMessage(event.message);
    await huey.enqueue({ ...message, eta: null });
    return `retried failed task ${message.name} ${id}`;
  }
  throw new HueyError(`no dead-lettered task ${id}, and no failure of it among the latest ${EVENT_LOG_SIZE} runs`);
}
