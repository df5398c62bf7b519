/**
 * What travels through the storage for one run of a task. Everything in it
 * is data; the function is found again by `name` in the receiving registry.
 * A message read back is checked field by field by `checkMessage` (validate.ts).
 */
export interface Message {
  /** Unique per task call; a retry keeps the id so its result lands in the same place. */
  id: string;
  /** The registered task name. */
  name: string;
  args: unknown[];
  /** Retries left after this run. */
  retries: number;
  /** Seconds to wait before a retry. */
  retryDelay: number;
  /** Each retry multiplies `retryDelay` by this. */
  retryBackoff: number;
  /** Higher runs first where the storage orders by priority. */
  priority: number;
  /** Not before this time (ms since the epoch), or null to run at once. */
  eta: number | null;
  /** Not after this time (ms since the epoch), or null for no expiry. */
  expires: number | null;
  /**
   * An expiry given in seconds: it counts from when the task falls due (its
   * eta, or its enqueue), and starts again for each retry, as in Huey.
   * `expires` holds the time it works out to for the current run.
   */
  expiresIn?: number | null;
  /** Seconds a run may take before it fails with TaskTimeout, or null for no limit. */
  timeout?: number | null;
  /** The named queue it runs on; absent for the default queue. */
  queue?: string;
  /** A pipeline's next step: enqueued with this run's result appended to its args. */
  onComplete?: Message;
  /** Enqueued, with the TaskError appended to its args, when this run fails for good. */
  onError?: Message;
  /**
   * Set at enqueue by `onEnqueue` hooks and handed to the run as
   * `task.headers`: trace context (W3C `traceparent`), a request id.
   */
  headers?: Record<string, string>;
  /**
   * A call made with a key (see dedupe.ts): while this task is enqueued,
   * scheduled or running, calls with the same key join it; `debounce` lets a
   * later call replace it while it waits in the schedule; `ttl` (seconds)
   * releases the key even if the task never ends.
   */
  dedupe?: { key: string; debounce?: boolean; ttl?: number };
  /**
   * Tasks that must complete before this one runs (their ids, and queues
   * where not the default). Until then it is `deferred`: each time it comes
   * up it looks at their records and waits again, longer each time.
   */
  dependsOn?: Array<{ id: string; queue?: string }>;
  /** Run even when a task it depends on failed for good or was revoked (otherwise it fails, naming that task). */
  runOnParentFailure?: boolean;
  /** How many times it has waited for the tasks it depends on: its next wait grows with it. */
  deferrals?: number;
  /** Membership of a chord: when all `size` members have finished, `callback` runs once with their results. */
  chord?: { id: string; index: number; size: number; callback: Message };
}
