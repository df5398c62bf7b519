import { randomUUID } from 'node:crypto';
import { SerializationError, TaskError } from './errors.js';
import type { Huey, StoredOutcome } from './huey.js';
import type { Message } from './message.js';
import { Result } from './result.js';
import { ResultGroup } from './result-group.js';
import type { ScheduleOptions, TaskWrapper } from './task.js';

/** Per-call settings a signature can carry (everything `schedule()` takes but the arguments). */
export type CallOptions = Omit<ScheduleOptions<unknown[]>, 'args'>;

/**
 * A task call written down but not yet enqueued: `add.s(1, 2)`. Chain
 * signatures into a pipeline with `then`, gather them with `group`.
 */
export class Signature<R> {
  constructor(
    readonly huey: Huey,
    readonly taskName: string,
    readonly args: readonly unknown[],
    readonly options: CallOptions = {},
  ) {}

  /** The message this call becomes, with a fresh id. */
  message(): Message {
    const definition = this.huey.definition(this.taskName);
    if (!definition) throw new Error(`task "${this.taskName}" is not registered`);
    return definition.message(this.options.id ?? randomUUID(), [...this.args], this.options);
  }

  /** Run `next` after this one, with this one's result appended to `args`. */
  then<A extends unknown[], R2>(next: TaskWrapper<[...A, R], R2>, ...args: A): Pipeline<[R, R2]> {
    return new Pipeline<[R]>(this.huey, [this]).then(next, ...args);
  }

  /** Run `handler` if this call fails for good, with its `TaskError` appended to `args`. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown>, ...args: A): Pipeline<[R]> {
    return new Pipeline<[R]>(this.huey, [this]).error(handler, ...args);
  }
}

/**
 * Steps run one after another, each receiving the previous step's result as
 * its last argument. A failed step ends the pipeline (its error handler, if
 * any, runs instead). Enqueue with `huey.enqueue(pipeline)`.
 */
export class Pipeline<Rs extends unknown[]> {
  constructor(
    readonly huey: Huey,
    readonly steps: ReadonlyArray<Signature<unknown>>,
    readonly errorHandlers: ReadonlyArray<Signature<unknown> | undefined> = [],
  ) {}

  then<A extends unknown[], R2>(next: TaskWrapper<[...A, Rs[number]], R2>, ...args: A): Pipeline<[...Rs, R2]> {
    return new Pipeline<[...Rs, R2]>(this.huey, [...this.steps, new Signature(this.huey, next.taskName, args)], this.errorHandlers);
  }

  /** Handle a failure of the last step added so far. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown>, ...args: A): Pipeline<Rs> {
    const handlers = [...this.errorHandlers];
    handlers[this.steps.length - 1] = new Signature(this.huey, handler.taskName, args);
    return new Pipeline<Rs>(this.huey, this.steps, handlers);
  }

  /** The first step's message, with each later step nested as the one before's `onComplete`. */
  messages(): Message[] {
    const messages = this.steps.map((step) => step.message());
    messages.forEach((message, i) => {
      const handler = this.errorHandlers[i];
      if (handler) message.onError = handler.message();
    });
    for (let i = messages.length - 2; i >= 0; i--) messages[i]!.onComplete = messages[i + 1]!;
    return messages;
  }
}

/** Tasks enqueued at once; with `then`, a callback that runs once with all of their results (a chord). */
export class Group<Rs extends unknown[]> {
  constructor(
    readonly huey: Huey,
    readonly members: ReadonlyArray<Signature<unknown>>,
    readonly callback?: Signature<unknown>,
  ) {}

  /**
   * Run `callback` once every member has finished, with the members' results
   * (in member order, a failure as its `TaskError`) appended to `args`.
   */
  then<A extends unknown[], R2>(callback: TaskWrapper<[...A, Array<Rs[number] | TaskError>], R2>, ...args: A): Chord<Rs, R2> {
    return new Chord<Rs, R2>(this.huey, this.members, new Signature(this.huey, callback.taskName, args));
  }

  messages(): Message[] {
    const messages = this.members.map((member) => member.message());
    if (this.callback) {
      const callback = this.callback.message();
      const chord = { id: randomUUID(), size: messages.length, callback };
      messages.forEach((message, index) => (message.chord = { ...chord, index }));
    }
    return messages;
  }
}

/** A group with a callback; its results are the members' followed by the callback's. */
export class Chord<Rs extends unknown[], R> extends Group<Rs> {
  declare readonly callback: Signature<unknown>;
  readonly resultType?: R;
}

/** The results of a tuple of signatures. */
export type ResultsOf<S extends unknown[]> = { [K in keyof S]: S[K] extends Signature<infer R> ? R : never };

/** Gather signatures to enqueue at once: `huey.enqueue(group([add.s(1, 2), add.s(3, 4)]))`. */
export function group<S extends Array<Signature<unknown>>>(signatures: [...S]): Group<ResultsOf<S>> {
  if (signatures.length === 0) throw new TypeError('a group needs at least one signature');
  return new Group(signatures[0]!.huey, signatures);
}

/** `chord([sigs], callback, ...args)`: the same as `group([sigs]).then(callback, ...args)`. */
export function chord<S extends Array<Signature<unknown>>, A extends unknown[], R>(
  signatures: [...S],
  callback: TaskWrapper<[...A, Array<ResultsOf<S>[number] | TaskError>], R>,
  ...args: A
): Chord<ResultsOf<S>, R> {
  return group(signatures).then(callback, ...args);
}

/** Handles for the messages of a pipeline or group, in order. */
export function resultsOf(huey: Huey, messages: Message[], enqueued: Promise<unknown>): ResultGroup<unknown[]> {
  return new ResultGroup(
    messages.map((message) => new Result(huey, message.id, enqueued.then(() => undefined), message)),
    enqueued,
  );
}

/**
 * Record a chord member's final outcome once (a re-run under at-least-once
 * delivery does not count twice), and let the member that completes the
 * count enqueue the callback with every member's result. A callback that
 * cannot be enqueued (the gathered results over maxPayloadSize, or not
 * serializable) fails in its own place: its result is the TaskError, its
 * error handler runs, and the member that completed the count stays settled.
 */
export async function countIntoChord(huey: Huey, message: Message, outcome: StoredOutcome<unknown>): Promise<void> {
  const { storage, serializer } = huey;
  const chord = message.chord!;
  const slot = (i: number) => `chord.${chord.id}.${i}`;
  if (!(await storage.putIfEmpty(slot(chord.index), serializer.serialize(outcome)))) return;
  if ((await storage.increment(`chord.${chord.id}`)) !== chord.size) return;
  const results: unknown[] = [];
  for (let i = 0; i < chord.size; i++) {
    const stored = serializer.deserialize((await storage.popData(slot(i))) ?? 'null') as StoredOutcome<unknown> | null;
    results.push(stored === null ? undefined : 'value' in stored ? stored.value : new TaskError(stored.error));
  }
  await storage.deleteData(`chord.${chord.id}`);
  try {
    await huey.enqueue({ ...chord.callback, args: [...chord.callback.args, results] });
  } catch (error) {
    // Not a storage failure (that is a StorageError): the data, the same on every try.
    if (!(error instanceof SerializationError)) throw error;
    const failure = new SerializationError(`the results of chord ${chord.id} cannot be passed on to its callback "${chord.callback.name}": ${error.message}`);
    huey.logger.error(`${chord.callback.name} ${chord.callback.id} failed unrun: ${failure.message}`);
    await huey.fail({ ...chord.callback, retries: 0 }, failure);
  }
}
