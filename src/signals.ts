import type { TaskContext } from './task.js';

/** Every event a task's life can emit, named as Huey names them. */
export const SIGNALS = [
  'enqueued',
  'scheduled',
  'deferred',
  'executing',
  'complete',
  'error',
  'retrying',
  'revoked',
  'expired',
  'locked',
  'canceled',
  'interrupted',
  'timeout',
  'rate-limited',
] as const;

export type SignalName = (typeof SIGNALS)[number];

export type SignalHandler = (signal: SignalName, task: TaskContext, error?: unknown) => void | Promise<void>;

/**
 * Handlers by signal. A handler connected with no names hears every signal.
 * A throwing handler is reported and never stops the task's lifecycle.
 */
export class Signals {
  private handlers = new Map<SignalHandler, Set<SignalName> | 'all'>();

  constructor(private readonly report: (error: unknown, signal: SignalName) => void) {}

  connect(handler: SignalHandler, names: readonly SignalName[]): void {
    for (const name of names) {
      if (!SIGNALS.includes(name)) throw new TypeError(`unknown signal "${name}"; known: ${SIGNALS.join(', ')}`);
    }
    this.handlers.set(handler, names.length === 0 ? 'all' : new Set(names));
  }

  /**
   * Disconnect `handler` from `names`, or from everything when no names are
   * given. True when it was connected to at least one of them.
   */
  disconnect(handler: SignalHandler, names: readonly SignalName[]): boolean {
    const current = this.handlers.get(handler);
    if (!current) return false;
    if (names.length === 0) {
      this.handlers.delete(handler);
      return true;
    }
    const remaining = new Set(current === 'all' ? SIGNALS : current);
    let removed = false;
    for (const name of names) removed = remaining.delete(name) || removed;
    if (remaining.size === 0) this.handlers.delete(handler);
    else this.handlers.set(handler, remaining);
    return removed;
  }

  /** True when some handler hears `signal`: callers skip building what no one would see. */
  hears(signal: SignalName): boolean {
    for (const names of this.handlers.values()) if (names === 'all' || names.has(signal)) return true;
    return false;
  }

  async emit(signal: SignalName, task: TaskContext, error?: unknown): Promise<void> {
    for (const [handler, names] of this.handlers) {
      if (names !== 'all' && !names.has(signal)) continue;
      try {
        await handler(signal, task, error);
      } catch (handlerError) {
        this.report(handlerError, signal);
      }
    }
  }
}
