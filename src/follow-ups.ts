import type { Message } from './message.js';

/**
 * The fields of a message that name work to enqueue after its run: a
 * pipeline's next step, an error handler, a chord membership (whose callback
 * runs once every member has finished).
 */
export type FollowUpField = 'onComplete' | 'onError' | 'chord';

const FIELDS: readonly FollowUpField[] = ['onComplete', 'onError', 'chord'];

/** One follow-up field of a message that could never be enqueued, and why. */
export interface FollowUpProblem {
  /** The field of the message itself that is at fault (a problem deep inside it counts against it). */
  field: FollowUpField;
  /** What is wrong, with the path to it: `onComplete.onError is a number, not a task message`. */
  reason: string;
}

/**
 * Check a message's follow-ups, nested ones too (a pipeline's later steps,
 * their error handlers, a chord's callback), for what reading the message
 * cannot know: that each names a task `isTask` knows in this process. The
 * shape of every field is checked as the message is read (`checkMessage`);
 * this walk only makes sure of what it relies on (an object with a name and
 * an args array, a chord with an id, size, index and callback), so a
 * message that was never read from a payload cannot make it throw either.
 * Absent (undefined or null) fields are fine. Iterative, so a long pipeline
 * cannot overflow the stack.
 */
export function followUpProblems(message: Message, isTask: (name: string) => boolean): FollowUpProblem[] {
  const problems: FollowUpProblem[] = [];
  for (const field of FIELDS) {
    const value = fieldOf(message, field);
    if (value === undefined || value === null) continue; // the common case: nothing to follow
    const reason = problemIn(field, value, isTask);
    if (reason !== undefined) problems.push({ field, reason });
  }
  return problems;
}

/** The message without the follow-up fields that have problems: what can still be settled safely. */
export function withoutFollowUps(message: Message, problems: readonly FollowUpProblem[]): Message {
  if (problems.length === 0) return message;
  const sound: Message = { ...message };
  for (const { field } of problems) delete sound[field];
  return sound;
}

/** The problems as one sentence: `its onComplete is a number, not a task message; its chord ...`. */
export function describeProblems(problems: readonly FollowUpProblem[]): string {
  return problems.map((problem) => `its ${problem.reason}`).join('; ');
}

function fieldOf(owner: object, field: FollowUpField): unknown {
  return (owner as Record<string, unknown>)[field];
}

/** The first problem within one follow-up field's value, or undefined when it is sound (or absent). */
function problemIn(field: FollowUpField, value: unknown, isTask: (name: string) => boolean): string | undefined {
  const pending: Array<{ field: FollowUpField; value: unknown; path: string }> = [{ field, value, path: field }];
  while (pending.length > 0) {
    const { field: kind, value: current, path: where } = pending.pop()!;
    if (current === undefined || current === null) continue;
    let target: unknown = current;
    let targetPath = where;
    if (kind === 'chord') {
      const chord = current as { id?: unknown; index?: unknown; size?: unknown; callback?: unknown };
      if (typeof chord !== 'object' || Array.isArray(chord)) return `${where} is ${describe(current)}, not a chord membership`;
      if (typeof chord.id !== 'string') return `${where} has no id`;
      if (!Number.isInteger(chord.size) || (chord.size as number) < 1) return `${where} has no size of at least 1`;
      if (!Number.isInteger(chord.index) || (chord.index as number) < 0 || (chord.index as number) >= (chord.size as number)) {
        return `${where} has no index within its size`;
      }
      target = chord.callback;
      targetPath = `${where}.callback`;
      if (target === undefined || target === null) return `${targetPath} is missing`;
    }
    if (!looksLikeMessage(target)) return `${targetPath} is ${describe(target)}, not a task message`;
    if (!isTask(target.name)) return `${targetPath} names an unknown task "${target.name}"`;
    for (const next of FIELDS) pending.push({ field: next, value: fieldOf(target, next), path: `${targetPath}.${next}` });
  }
  return undefined;
}

function looksLikeMessage(value: unknown): value is Message {
  const message = value as Message;
  return typeof message === 'object' && message !== null && !Array.isArray(message) && typeof message.id === 'string' && typeof message.name === 'string' && Array.isArray(message.args);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return 'an object without a string id and name and an args array';
    case 'string':
      return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)})`;
    case 'number':
      return `a number (${value})`;
    case 'undefined':
      return 'missing';
    default:
      return `a ${typeof value}`;
  }
}
