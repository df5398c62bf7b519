/**
 * A promise with its settling functions kept: what the callers of one batched
 * storage step (record writes that ride on a script, results and acks settled
 * in one statement) wait on, settled when the step is.
 */
export interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}
