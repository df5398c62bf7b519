export type { Claim, ClaimPeek, DeadLetter, Storage } from './storage.js';
export { MemoryStorage } from './memory.js';
export { RedisStorage, RedisKeys, type RedisStorageOptions } from './redis/redis-storage.js';
export type { RedisConnection, RedisClusterConnectionOptions, RedisSentinelConnectionOptions } from './redis/connection.js';
export { PriorityRedisStorage } from './redis/priority-redis-storage.js';
export { SqliteStorage, type SqliteStorageOptions } from './sqlite/sqlite-storage.js';
export { PostgresStorage, type PostgresStorageOptions, type Queryable } from './postgres/postgres-storage.js';
