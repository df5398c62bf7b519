/**
 * Every error huey-ts throws on purpose descends from `HueyError`, so callers
 * can tell the queue's own complaints from their tasks' failures.
 */
export class HueyError extends Error {
  override name = 'HueyError';
}

/** A setting or a task definition that cannot work (bad option, duplicate name). */
export class ConfigurationError extends HueyError {
  override name = 'ConfigurationError';
}

/** A value that cannot be turned into data (a function, a cycle) or data that cannot be read back. */
export class SerializationError extends HueyError {
  override name = 'SerializationError';
}

/** A message names a task that this process has not registered. */
export class UnknownTaskError extends HueyError {
  override name = 'UnknownTaskError';
  constructor(readonly taskName: string) {
    super(`unknown task "${taskName}": it is not registered in this process (is the module that defines it imported?)`);
  }
}

/** What a failed task left behind: enough to show the user where it went wrong. */
export interface RemoteError {
  name: string;
  message: string;
  stack?: string;
  /** Retries that were left when the task failed for the last time (0 when all were used). */
  retries?: number;
  taskName?: string;
  taskId?: string;
}

/** `Result.get()` rejects with this when the task itself failed. */
export class TaskError extends HueyError {
  override name = 'TaskError';
  constructor(readonly remote: RemoteError) {
    super(`task ${remote.taskName ?? ''}${remote.taskId ? ` (${remote.taskId})` : ''} failed: ${remote.name}: ${remote.message}`.replace('task  ', 'task '));
  }
}

/** A blocking `Result.get()` gave up waiting. */
export class ResultTimeout extends HueyError {
  override name = 'ResultTimeout';
}

/**
 * Thrown by a task to ask for another run without using up one of its retries.
 * `delay` (seconds) or `eta` put the new run in the schedule.
 */
export class RetryTask extends HueyError {
  override name = 'RetryTask';
  readonly delay?: number;
  readonly eta?: Date;
  constructor(message = 'retry requested', options: { delay?: number; eta?: Date } = {}) {
    super(message);
    this.delay = options.delay;
    this.eta = options.eta;
  }
}

/**
 * Thrown by a pre-execute hook or a task to stop this run. With `retry: true`
 * the task is retried (using a retry); `false` never retries; left undefined,
 * it retries only if the task has retries left, as Huey does.
 */
export class CancelExecution extends HueyError {
  override name = 'CancelExecution';
  readonly retry?: boolean;
  constructor(message = 'execution canceled', options: { retry?: boolean } = {}) {
    super(message);
    this.retry = options.retry;
  }
}

/** A task lock is held by someone else. */
export class TaskLockedError extends HueyError {
  override name = 'TaskLockedError';
  constructor(readonly lockName: string) {
    super(`lock "${lockName}" is held`);
  }
}

/** A rate limit's window is full; `retryAt` is when the next window opens. */
export class RateLimitExceeded extends HueyError {
  override name = 'RateLimitExceeded';
  constructor(
    readonly limitName: string,
    readonly retryAt: Date,
    /** Run again at `retryAt` without using a retry (the default); false lets the run fail as any error does. */
    readonly retry = true,
  ) {
    super(`rate limit "${limitName}" is exceeded until ${retryAt.toISOString()}`);
  }
}

/** A task ran past its `timeout`. */
export class TaskTimeout extends HueyError {
  override name = 'TaskTimeout';
}

/** The thread or process running a task died (killed, crashed, out of memory) before the task settled. */
export class WorkerDiedError extends HueyError {
  override name = 'WorkerDiedError';
}

/** A task was not run because a task it depends on failed for good, was revoked, or is unknown. */
export class DependencyError extends HueyError {
  override name = 'DependencyError';
}

/** The storage could not be reached or refused the command. */
export class StorageError extends HueyError {
  override name = 'StorageError';
}

/** Describe anything a task threw, Error or not, as data the caller can read. */
export function toRemoteError(error: unknown, task: { retries: number; name: string; id: string }): RemoteError {
  const base = { retries: task.retries, taskName: task.name, taskId: task.id };
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack, ...base };
  let text: string;
  try {
    text = typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    text = String(error);
  }
  return { name: 'NonErrorThrown', message: `the task threw a non-Error value: ${text}`, ...base };
}
