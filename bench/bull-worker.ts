// One BullMQ worker process for the bench's scenarios 4 and 7, at the concurrency its users run (50), or BULL_CONCURRENCY.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const worker = new Worker('bench', async (job) => ({ ok: job.data.n }), {
  connection: new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null }),
  concurrency: Number(process.env.BULL_CONCURRENCY ?? 50),
});
await worker.waitUntilReady();
console.log('ready');
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
