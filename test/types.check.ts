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
