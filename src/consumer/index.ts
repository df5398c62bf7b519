/**
 * `huey-ts/consumer`: run a Huey's workers from your own code, as the
 * `huey-consumer` command does.
 *
 * ```ts
 * import { Consumer, ConsoleLog } from 'huey-ts/consumer';
 * await new Consumer(huey, { workers: 4, workerType: 'async' }).run();
 * ```
 */
export { Consumer, type ConsumerOptions } from './consumer.js';
export { Worker, type WorkerOptions } from './worker.js';
export { QueueReader, type Source, type Take } from './queue-reader.js';
export { Scheduler, type SchedulerOptions } from './scheduler.js';
export { WORKER_TYPES, type WorkerType, type WorkerPool } from './pool.js';
export { ConsoleLog, type ConsoleLogOptions, type LogLevel } from './log.js';
export { locateHuey, loadHuey, ModuleLoadError, type HueyLocation } from './load-module.js';
