import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigurationError, Huey, MemoryHuey, SerializationError, TaskError, type TaskContext } from '../src/index.js';

describe('immediate mode', () => {
  const huey = new MemoryHuey('immediate-test', { immediate: true });
  const add = huey.task()(function add(a: number, b: number) {
    return a + b;
  });
  const fail = huey.task()(async function fail(reason: string): Promise<never> {
    throw new RangeError(reason);
  });

  class Tasks {
    static calls = 0;

    @huey.task({ retries: 2, retryDelay: 0 })
    static async countBeans(num: number): Promise<string> {
      Tasks.calls++;
      return `Counted ${num} beans`;
    }

    @huey.task({ name: 'greet' })
    async greet(who: string): Promise<string> {
      return `hello ${who}`;
    }
  }

  it('runs a called task at once and resolves its result', async () => {
    const result = add(1, 2);
    assert.equal(await result.get(), 3);
    // A result read once stays on the handle.
    assert.equal(await result.get(), 3);
  });

  it('leaves a decorated method callable and gives its typed handle', async () => {
    assert.equal(await Tasks.countBeans(3), 'Counted 3 beans');
    const countBeans = huey.taskOf(Tasks.countBeans);
    assert.equal(countBeans.taskName, 'Tasks.countBeans');
    assert.deepEqual(countBeans.options, { retries: 2, retryDelay: 0 });
    assert.deepEqual(Huey.taskOptions(Tasks, 'countBeans'), { retries: 2, retryDelay: 0 });
    assert.equal(await countBeans(10).get(), 'Counted 10 beans');
    assert.equal(await huey.taskOf(Tasks.prototype.greet)('bob').get(), 'hello bob');
  });

  it('rejects get() with TaskError carrying the remote error', async () => {
    await assert.rejects(fail('too far').get(), (error: unknown) => {
      assert.ok(error instanceof TaskError);
      assert.equal(error.remote.name, 'RangeError');
      assert.equal(error.remote.message, 'too far');
      assert.match(error.remote.stack ?? '', /RangeError: too far/);
      return true;
    });
  });

  it('runs callLocal without the queue', async () => {
    assert.equal(await add.callLocal(2, 3), 5);
    assert.equal(await huey.pendingCount(), 0);
  });

  it('passes the context as the last argument when asked', async () => {
    const whoAmI = huey.task({ context: true, retries: 3 })(function whoAmI(greeting: string, task: TaskContext) {
      return `${greeting} ${task.name} ${task.retries}`;
    });
    const result = whoAmI('hi');
    assert.equal(await result.get(), 'hi whoAmI 3');
  });

  it('puts a delayed call in the schedule instead of running it', async () => {
    const before = await huey.scheduledCount();
    const result = add.schedule({ args: [1, 1], delay: 60 });
    await result.enqueued;
    assert.equal(await huey.scheduledCount(), before + 1);
    assert.equal(await result.get(), undefined);
    const [message] = (await huey.scheduled()).filter((m) => m.id === result.id);
    assert.deepEqual(message?.args, [1, 1]);
  });

  it('fails at the call, naming the task and argument, for data that cannot be sent', () => {
    const echo = huey.task()(function echo(value: unknown) {
      return value;
    });
    assert.throws(() => echo(() => 1), (error: unknown) => {
      assert.ok(error instanceof SerializationError);
      assert.match(error.message, /task "echo": args\[0\] is a function/);
      return true;
    });
  });

  it('refuses a duplicate or nameless task', () => {
    assert.throws(() => huey.task()(function add() {}), ConfigurationError);
    assert.throws(() => huey.task()(() => 1), /needs a name/);
  });

  it('can be switched on for any Huey', async () => {
    const other = new Huey('switch');
    const double = other.task()(function double(n: number) {
      return n * 2;
    });
    other.immediate = true;
    assert.equal(await double(21).get(), 42);
  });
});
