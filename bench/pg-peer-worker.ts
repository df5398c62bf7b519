// One worker process of a PostgreSQL peer for the bench's scenario 11g, at concurrency 50:
// PEER=graphile (graphile-worker's run()) or PEER=pgboss (pg-boss's work(), batches of 50, polled every 0.5 s).
import { Logger, run } from 'graphile-worker';
import PgBoss from 'pg-boss';

const url = process.env.DATABASE_URL!;
if (process.env.PEER === 'graphile') {
  const runner = await run({
    connectionString: url,
    concurrency: 50,
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    taskList: { noop: async () => {} },
  });
  console.log('ready');
  process.on('SIGTERM', () => void runner.stop().then(() => process.exit(0)));
} else {
  const boss = new PgBoss({ connectionString: url });
  boss.on('error', () => {});
  await boss.start();
  await boss.createQueue('noop').catch(() => {});
  await boss.work('noop', { batchSize: 50, pollingIntervalSeconds: 0.5 }, async (jobs) => {
    await Promise.all(jobs.map(async () => {}));
  });
  console.log('ready');
  process.on('SIGTERM', () => void boss.stop({ graceful: false, wait: true }).then(() => process.exit(0)));
}
