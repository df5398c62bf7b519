#!/usr/bin/env node
/*
 * huey-consumer MODULE.EXPORT [options]: run the workers and the scheduler of
 * the Huey exported as EXPORT by MODULE, with Huey's consumer options.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { Consumer, dividesMinute } from '../consumer/consumer.js';
import { loadHuey, locateHuey, ModuleLoadError } from '../consumer/load-module.js';
import { ConsoleLog, type LogLevel } from '../consumer/log.js';
import { WORKER_TYPES, type WorkerType } from '../consumer/pool.js';
import { HueyError } from '../errors.js';

const argv = yargs(hideBin(process.argv))
  .scriptName('huey-consumer')
  .usage('$0 MODULE.EXPORT [options]\n\nRun the consumer for the Huey exported as EXPORT by MODULE (main.huey, examples/simple/main.huey).\nTypeScript modules are loaded through tsx.')
  // A flag given twice keeps its last value, rather than becoming an array no option expects.
  .parserConfiguration({ 'boolean-negation': false, 'duplicate-arguments-array': false })
  .positional('huey', { type: 'string', describe: 'MODULE.EXPORT of the Huey instance' })
  .demandCommand(1, 'give the Huey as MODULE.EXPORT, for example main.huey')
  .options({
    workers: { alias: 'w', type: 'number', default: 1, describe: 'Number of workers' },
    queues: { alias: 'Q', type: 'string', describe: 'Comma-separated queues to serve, in strict order (each worker takes from the first that has tasks) [default: every queue the module names, the default queue first]' },
    'worker-type': { alias: 'k', choices: WORKER_TYPES, default: 'async' as WorkerType, describe: 'async: loops on one event loop (I/O-bound tasks); thread: worker_threads; process: child processes' },
    concurrency: { alias: 'j', type: 'number', default: 1, describe: 'Tasks each thread or process worker runs at once (async workers: use --workers)' },
    delay: { alias: 'd', type: 'number', default: 0.1, describe: 'Initial polling delay in seconds (storages without blocking dequeue)' },
    backoff: { alias: 'b', type: 'number', default: 1.15, describe: 'Multiply the polling delay by this after each empty poll' },
    'max-delay': { alias: 'm', type: 'number', default: 10, describe: 'Longest polling delay in seconds' },
    'prefetch-window': { type: 'number', describe: 'Seconds of work a worker may claim ahead at its recent pace (fast tasks then come many to a round trip); 0 claims one at a time [default: 0.01 for async workers, 0.05 for thread and process workers]' },
    'no-periodic': { alias: 'n', type: 'boolean', default: false, describe: 'Do not enqueue periodic tasks' },
    'scheduler-interval': { alias: 's', type: 'number', default: 1, describe: 'Seconds between checks of the schedule (at most 60)' },
    'flush-locks': { alias: 'f', type: 'boolean', default: false, describe: 'Clear every task lock at startup' },
    'extra-locks': { alias: 'L', type: 'string', describe: 'Comma-separated lock names to clear at startup' },
    'health-check-interval': { alias: 'c', type: 'number', default: 10, describe: 'Seconds between health checks of thread and process workers' },
    'disable-health-check': { alias: 'C', type: 'boolean', default: false, describe: 'Do not restart dead workers' },
    'grace-period': { alias: 'g', type: 'number', default: 30, describe: 'Seconds running tasks get to finish on SIGTERM/SIGINT before they are interrupted and requeued' },
    lease: { type: 'number', default: 30, describe: "Seconds this consumer's claimed tasks stay its own without a heartbeat; after that another consumer takes them over" },
    'max-stalls': { type: 'number', default: 5, describe: 'Times a task may be taken back unstarted from consumers that died before it fails for good' },
    dashboard: { type: 'number', describe: 'Also serve the web dashboard and /metrics on this port (0: any free one)' },
    'dashboard-host': { type: 'string', default: '127.0.0.1', describe: 'Address the dashboard binds; anything but loopback needs --dashboard-token' },
    'dashboard-token': { type: 'string', describe: 'Required on every dashboard request (?token=...)' },
    logfile: { alias: 'l', type: 'string', describe: 'Also write the log to this file' },
    verbose: { alias: 'v', type: 'boolean', default: false, describe: 'Log debug lines' },
    quiet: { alias: 'q', type: 'boolean', default: false, describe: 'Log only warnings and errors' },
    simple: { alias: 'S', type: 'boolean', default: false, describe: 'Log only the messages, without time and level' },
  })
  .check((args) => {
    if (!Number.isInteger(args.workers) || args.workers < 1) throw new Error('--workers must be a whole number of at least 1');
    if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new Error('--concurrency must be a whole number of at least 1');
    if (args.concurrency > 1 && args['worker-type'] === 'async') throw new Error('--concurrency is for thread and process workers; async workers run --workers tasks at once');
    if (!dividesMinute(args['scheduler-interval'])) {
      throw new Error(`--scheduler-interval must divide 60 seconds (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60), not ${args['scheduler-interval']}`);
    }
    if (!(args.backoff >= 1 && Number.isFinite(args.backoff))) throw new Error(`--backoff must be a number of at least 1, not ${args.backoff}`);
    if (args['prefetch-window'] !== undefined && !(args['prefetch-window'] >= 0)) throw new Error('--prefetch-window must be 0 or more seconds');
    if (!(args.lease >= 1)) throw new Error('--lease must be at least 1 second');
    if (!Number.isInteger(args['max-stalls']) || args['max-stalls'] < 0) throw new Error('--max-stalls must be a whole number of 0 or more');
    if (args.queues !== undefined && parseQueues(args.queues).length === 0) throw new Error('--queues must name at least one queue');
    if (args.verbose && args.quiet) throw new Error('--verbose and --quiet cannot be used together');
    return true;
  })
  .strict()
  .help()
  .alias('h', 'help')
  .version(false)
  .parseSync();

/** `-Q critical,default` → ['critical', 'default']; names are checked by the consumer. */
function parseQueues(text: string): string[] {
  return text.split(',').map((name) => name.trim()).filter(Boolean);
}

// `huey-consumer ... 2>&1 | tee log` stopped with Ctrl-C closes the pipe while the consumer
// still finishes its tasks: a line that cannot be written is lost, not the consumer.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

const level: LogLevel = argv.verbose ? 'debug' : argv.quiet ? 'warn' : 'info';
const log = new ConsoleLog({ level, logfile: argv.logfile, simple: argv.simple });
const spec = String(argv._[0]);

async function main(): Promise<number> {
  const huey = await loadHuey(locateHuey(spec));
  huey.logger = log;
  const consumer = new Consumer(huey, {
    module: spec,
    workers: argv.workers,
    queues: argv.queues === undefined ? undefined : parseQueues(argv.queues),
    workerType: argv['worker-type'],
    concurrency: argv.concurrency,
    delay: argv.delay,
    backoff: argv.backoff,
    maxDelay: argv['max-delay'],
    prefetchWindow: argv['prefetch-window'],
    periodic: !argv['no-periodic'],
    schedulerInterval: argv['scheduler-interval'],
    flushLocks: argv['flush-locks'],
    extraLocks: argv['extra-locks']?.split(',').map((name) => name.trim()).filter(Boolean),
    healthCheck: !argv['disable-health-check'],
    healthCheckInterval: argv['health-check-interval'],
    gracePeriod: argv['grace-period'],
    lease: argv.lease,
    maxStalls: argv['max-stalls'],
    logLevel: level,
    workerLog: (lineLevel, message, workerId) => log.write(lineLevel, message, workerId),
  });
  if (argv.dashboard === undefined) return consumer.run();
  // Loaded only when asked for: the dashboard and its metrics library cost every start otherwise.
  const { startDashboard } = await import('../dashboard/server.js');
  const dashboard = await startDashboard(huey, { port: argv.dashboard, host: argv['dashboard-host'], token: argv['dashboard-token'] });
  // The token never goes to the log: whoever reads logs is not always whoever may use the page.
  log.info(`dashboard at ${dashboard.url}${argv['dashboard-token'] ? ' (add ?token= with the --dashboard-token given)' : ''}`);
  try {
    return await consumer.run();
  } finally {
    await dashboard.close();
  }
}

main().then(
  async (code) => {
    await log.close();
    process.exit(code);
  },
  async (error: unknown) => {
    // Expected failures are one line; anything else keeps its stack for the bug report.
    const text = error instanceof ModuleLoadError || error instanceof HueyError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`huey-consumer: ${text}\n`);
    await log.close();
    process.exit(1);
  },
);
