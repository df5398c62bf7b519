// Compile-time checks of the public types: `npm run typecheck` fails if any
// line marked @ts-expect-error compiles, or any other line does not.
import { MemoryHuey, type Result, type TaskContext } from '../src/index.js';

const huey = new MemoryHuey('types');

export const add = huey.task()(function add(a: number, b: number) {
  return a + b;
});
export const fetchName = huey.task()(async function fetchName(id: string): Promise<string> {
  return id;
});
export const withContext = huey.task({ context: true })(function withContext(n: number, task: TaskContext) {
  return `${n}:${task.id}`;
});

class Tasks {
  @huey.task()
  static async countBeans(num: number): Promise<string> {
    return `Counted ${num} beans`;
  }
}

export const checks = async () => {
  const sum: Result<number> = add(1, 2);
  const name: Result<string> = fetchName('x');
  const n: number = await sum.get({ blocking: true });
  const maybe: number | undefined = await sum.get();
  const s: string = await name.get({ blocking: true, timeout: 5 });
  const local: number = await add.callLocal(1, 2);
  const ctx: Result<string> = withContext(3);
  const beans: Result<string> = huey.taskOf(Tasks.countBeans)(3);
  add.schedule({ args: [1, 2], delay: 10 });
  add.schedule({ args: [1, 2], eta: new Date() });

  // @ts-expect-error a string where a number is declared
  add('1', 2);
  // @ts-expect-error too few arguments
  add(1);
  // @ts-expect-error schedule's args are checked too
  add.schedule({ args: ['1', 2] });
  // @ts-expect-error the context is passed by the worker, not the caller
  withContext(3, {} as TaskContext);
  // @ts-expect-error a non-blocking get may have no value yet
  const notYet: number = await sum.get();
  // @ts-expect-error the decorated method's handle keeps its argument types
  huey.taskOf(Tasks.countBeans)('three');
  return [n, maybe, s, local, ctx, beans, notYet];
};

// Pipelines, groups and chords keep their result types.
import { chord, group, type ResultGroup, type TaskError } from '../src/index.js';

export const length = huey.task()(function length(text: string) {
  return text.length;
});
export const describeCount = huey.task()(function describeCount(label: string, n: number) {
  return `${label}: ${n}`;
});
export const sum = huey.task()(function sum(values: Array<number | TaskError | null>) {
  return values.length;
});

export const compositionChecks = async () => {
  const pipe: ResultGroup<[number, string]> = huey.enqueue(length.s('abc').then(describeCount, 'chars'));
  const [n, text]: [number, string] = await pipe.get();
  const both: ResultGroup<[number, number]> = huey.enqueue(group([length.s('a'), add.s(1, 2)]));
  const withCallback: ResultGroup<[number, number, number]> = huey.enqueue(chord([length.s('a'), add.s(1, 2)], sum));
  const mapped: ResultGroup<number[]> = add.map([[1, 2], [3, 4]]);
  // @ts-expect-error the next step must take the previous result (a number) last
  length.s('abc').then(length);
  // @ts-expect-error map items are argument tuples of the task
  add.map([['1', 2]]);
  return [n, text, both, withCallback, mapped];
};
