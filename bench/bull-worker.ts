// One BullMQ worker process for the bench's scenario 4, at the concurrency its users run (50).
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const worker = new Worker('bench', async (job) => ({ ok: job.data.n }), {
  connection: new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null }),
  concurrency: 50,
});
await worker.waitUntilReady();
console.log('ready');
process.on('SIGTERM', () => void worker.close().then(() => process.exit(0)));
