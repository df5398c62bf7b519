import { after, before } from 'node:test';
import { PriorityRedisStorage } from '../src/index.js';
import { startRedis, type TestRedis } from './support/redis-server.js';
import { storageConformance } from './support/storage-conformance.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.close();
});

storageConformance('priority redis', async () => new PriorityRedisStorage('conformance', { url: redis.url }), { peeksWithClaims: true });
