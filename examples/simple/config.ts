// The Huey instance, shared by the tasks, the producer and the consumer.
import 'reflect-metadata';
import { RedisHuey } from 'huey-ts';

export const huey = new RedisHuey('simple-example', { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
