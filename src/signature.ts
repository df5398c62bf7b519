import { randomUUID } from 'node:crypto';
import { SerializationError, TaskError } from './errors.js';
import { checkCallOptions } from './validate.js';
import type { Huey, StoredOutcome } from './huey.js';
import type { Message } from './message.js';
import { Result } from './result.js';
import { ResultGroup } from './result-group.js';
import type { ScheduleOptions, TaskWrapper } from './task.js';

/** Per-call settings a signature can carry (everything `schedule()` takes but the arguments). */
export type CallOptions = Omit<ScheduleOptions<unknown[]>, 'args'>;

/** What a chord member, made of one or more tasks, becomes: the messages to enqueue and the handles to read. */
export interface BuiltWork {
  /** Enqueued now: the first step of each pipeline, each member of a group. */
  heads: Message[];
  /** Every task whose result the caller gets a handle on, in order. */
  handles: Message[];
  /** The task whose result is this work's result: a pipeline's last step, a chord's last callback step. */
  final: Message;
}

/** Anything that can be a member of a group or chord: a call, a pipeline, or a chord (its callback's result counts). */
export type Work = Signature<unknown> | Pipeline<unknown[]> | Chord<unknown[], unknown, unknown[]>;

/** The membership of one chord member, carried by the member's last message. */
type Membership = NonNullable<Message['chord']>;

/**
 * A task call written down but not yet enqueued: `add.s(1, 2)`, with per-call
 * settings by `with()`. Enqueue it with `huey.enqueue(signature)`, chain
 * signatures into a pipeline with `then`, gather them with `group`.
 */
export class Signature<R> {
  constructor(
    readonly huey: Huey,
    readonly taskName: string,
    readonly args: readonly unknown[],
    readonly options: CallOptions = {},
  ) {
    checkCallOptions(options);
  }

  /** This call with settings added (delay, eta, priority, expires, retries, ...), as Huey's `s()` takes them. */
  with(options: CallOptions): Signature<R> {
    return new Signature<R>(this.huey, this.taskName, this.args, { ...this.options, ...options });
  }

  /** The message this call becomes, with a fresh id. */
  message(): Message {
    const definition = this.huey.definition(this.taskName);
    if (!definition) throw new Error(`task "${this.taskName}" is not registered`);
    return definition.message(this.options.id ?? randomUUID(), [...this.args], this.options);
  }

  /**
   * Run `next` after this one, with this one's result appended to its args:
   * a task and its leading arguments, or a signature (which may carry settings).
   */
  then<R2>(next: Signature<R2>): Pipeline<[R, R2]>;
  then<A extends unknown[], R2>(next: TaskWrapper<[...A, R], R2>, ...args: A): Pipeline<[R, R2]>;
  then(next: any, ...args: any[]): any {
    return new Pipeline<[R]>(this.huey, [this]).then(next, ...args);
  }

  /** Run `handler` if this call fails for good, with its `TaskError` appended to `args`. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown> | Signature<unknown>, ...args: A): Pipeline<[R]> {
    return new Pipeline<[R]>(this.huey, [this]).error(handler, ...args);
  }

  build(membership?: Membership): BuiltWork {
    return new Pipeline<[R]>(this.huey, [this]).build(membership);
  }
}

/** A step given as a signature, or as a task and its leading arguments. */
function signatureOf(huey: Huey, step: Signature<unknown> | TaskWrapper<any, unknown>, args: readonly unknown[]): Signature<unknown> {
  if (step instanceof Signature) {
    if (args.length > 0) throw new TypeError('pass arguments in the signature, not after it');
    return step;
  }
  return new Signature(huey, step.taskName, args);
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

  then<R2>(next: Signature<R2>): Pipeline<[...Rs, R2]>;
  then<A extends unknown[], R2>(next: TaskWrapper<[...A, Rs[number]], R2>, ...args: A): Pipeline<[...Rs, R2]>;
  then(next: any, ...args: any[]): any {
    return new Pipeline(this.huey, [...this.steps, signatureOf(this.huey, next, args)], this.errorHandlers);
  }

  /** Settings for the last step added so far (delay, priority, retries, expires, ...): `add.s(1, 2).then(add, 3).with({ retries: 2 })`. */
  with(options: CallOptions): Pipeline<Rs> {
    const steps = [...this.steps];
    steps[steps.length - 1] = steps[steps.length - 1]!.with(options);
    return new Pipeline<Rs>(this.huey, steps, this.errorHandlers);
  }

  /** Handle a failure of the last step added so far. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown> | Signature<unknown>, ...args: A): Pipeline<Rs> {
    const handlers = [...this.errorHandlers];
    handlers[this.steps.length - 1] = signatureOf(this.huey, handler, args);
    return new Pipeline<Rs>(this.huey, this.steps, handlers);
  }

  /** The same handler for every step that has none: a failure anywhere in the pipeline is handled. */
  errorEverywhere(handler: Signature<unknown>): Pipeline<Rs> {
    return new Pipeline<Rs>(this.huey, this.steps, this.steps.map((_, i) => this.errorHandlers[i] ?? handler));
  }

  /** Every step's message, each later one nested as the one before's `onComplete`; the first is the one to enqueue. */
  messages(membership?: Membership): Message[] {
    const messages = this.steps.map((step) => step.message());
    messages.forEach((message, i) => {
      const handler = this.errorHandlers[i];
      if (handler) message.onError = handler.message();
    });
    // As in Huey, only the last step carries a chord membership; an earlier step that ends the pipeline looks for it down the chain.
    if (membership) messages[messages.length - 1]!.chord = membership;
    for (let i = messages.length - 2; i >= 0; i--) messages[i]!.onComplete = messages[i + 1]!;
    return messages;
  }

  build(membership?: Membership): BuiltWork {
    const messages = this.messages(membership);
    return { heads: [messages[0]!], handles: messages, final: messages[messages.length - 1]! };
  }
}

/** Tasks enqueued at once; with `then`, a callback that runs once with all of their results (a chord). */
export class Group<Rs extends unknown[]> {
  constructor(
    readonly huey: Huey,
    readonly members: ReadonlyArray<Work>,
  ) {}

  /**
   * Run `callback` once every member has finished, with the members' results
   * (in member order; a failure as its `TaskError`, a member revoked, expired
   * or canceled before it ran as null) appended to its args.
   */
  then<R2>(callback: Signature<R2>): Chord<Rs, R2>;
  then<A extends unknown[], R2>(callback: TaskWrapper<[...A, Array<Rs[number] | TaskError | null>], R2>, ...args: A): Chord<Rs, R2>;
  then(callback: any, ...args: any[]): any {
    return new Chord(this.huey, this.members, new Pipeline(this.huey, [signatureOf(this.huey, callback, args)]));
  }

  /** Handle the failure of any member (of any step of a member), with its `TaskError` appended to `args`. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown> | Signature<unknown>, ...args: A): Group<Rs> {
    const signature = signatureOf(this.huey, handler, args);
    return new Group<Rs>(this.huey, this.members.map((member) => withErrorHandler(member, signature)));
  }

  /** The messages enqueued for this group: the first of each member. */
  messages(): Message[] {
    return this.build().heads;
  }

  build(membership?: Membership): BuiltWork {
    if (membership) throw new TypeError('a group without a callback cannot be a chord member: add one with .then() to make it a chord');
    const built = this.members.map((member) => member.build());
    return { heads: built.flatMap((b) => b.heads), handles: built.map((b) => b.final), final: built[built.length - 1]!.final };
  }
}

/**
 * A group with a callback; its results are the members' followed by those of
 * the callback and of any steps added after it with `then`. A chord can be a
 * member of another chord: its callback's result is its result there.
 */
export class Chord<Rs extends unknown[], R, Cs extends unknown[] = [R]> {
  /** Types only: the results of its members, callback and later steps, for `huey.enqueue` to infer. */
  declare readonly resultTypes?: [Rs, R, Cs];

  constructor(
    readonly huey: Huey,
    readonly members: ReadonlyArray<Work>,
    /** The callback and the steps after it. */
    readonly callback: Pipeline<Cs>,
  ) {}

  /** Run `next` after the callback (Huey's `chord.then`), with the callback's result appended to its args. */
  then<R2>(next: Signature<R2>): Chord<Rs, R2, [...Cs, R2]>;
  then<A extends unknown[], R2>(next: TaskWrapper<[...A, R], R2>, ...args: A): Chord<Rs, R2, [...Cs, R2]>;
  then(next: any, ...args: any[]): any {
    return new Chord(this.huey, this.members, this.callback.then(next, ...args));
  }

  /** Handle a failure of the callback (of its last step so far), as Huey's `chord.error`. */
  error<A extends unknown[]>(handler: TaskWrapper<[...A, TaskError], unknown> | Signature<unknown>, ...args: A): Chord<Rs, R, Cs> {
    return new Chord(this.huey, this.members, this.callback.error(handler, ...args));
  }

  /** The messages enqueued for this chord: the first of each member. */
  messages(): Message[] {
    return this.build().heads;
  }

  build(membership?: Membership): BuiltWork {
    // The callback's last step carries the outer membership, when this chord is a member itself.
    const callback = this.callback.messages(membership);
    const id = randomUUID();
    const size = this.members.length;
    const built = this.members.map((member, index) => member.build({ id, index, size, callback: callback[0]! }));
    return { heads: built.flatMap((b) => b.heads), handles: [...built.map((b) => b.final), ...callback], final: callback[callback.length - 1]! };
  }
}

function withErrorHandler(member: Work, handler: Signature<unknown>): Work {
  if (member instanceof Signature) return new Pipeline(member.huey, [member]).errorEverywhere(handler);
  if (member instanceof Pipeline) return member.errorEverywhere(handler);
  return new Chord(member.huey, member.members.map((inner) => withErrorHandler(inner, handler)), member.callback.errorEverywhere(handler));
}

/** The result of a piece of work: a call's, a pipeline's last step's, a chord's last callback step's. */
export type ResultOf<W> = W extends Signature<infer R> ? R : W extends Chord<unknown[], infer R, unknown[]> ? R : W extends Pipeline<[...unknown[], infer R]> ? R : unknown;

/** The results of a tuple of signatures, pipelines and chords. */
export type ResultsOf<S extends unknown[]> = { [K in keyof S]: ResultOf<S[K]> };

/** Gather work to enqueue at once: `huey.enqueue(group([add.s(1, 2), add.s(3, 4)]))`. */
export function group<S extends Work[]>(members: [...S]): Group<ResultsOf<S>> {
  if (members.length === 0) throw new TypeError('a group needs at least one member');
  return new Group(members[0]!.huey, members);
}

/** `chord([members], callback, ...args)`: the same as `group([members]).then(callback, ...args)`. */
export function chord<S extends Work[], R>(members: [...S], callback: Signature<R>): Chord<ResultsOf<S>, R>;
export function chord<S extends Work[], A extends unknown[], R>(
  members: [...S],
  callback: TaskWrapper<[...A, Array<ResultsOf<S>[number] | TaskError | null>], R>,
  ...args: A
): Chord<ResultsOf<S>, R>;
export function chord(members: Work[], callback: any, ...args: any[]): any {
  return group(members).then(callback, ...args);
}

/** The message of a pipeline's steps, from `message` on, that carries the chord membership: a failed step's pipeline ends there. */
export function chordMemberOf(message: Message): Message | undefined {
  for (let step: Message | undefined = message; step; step = step.onComplete) if (step.chord) return step;
  return undefined;
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
  await storage.deleteCounter(`chord.${chord.id}`);
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
