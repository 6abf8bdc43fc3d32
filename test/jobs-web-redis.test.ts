// The dashboard's HTTP tests (test/jobs-web-suite.ts) on Redis: a private redis-server for
// the file, flushed after each test.
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend } from '../jobs/redis.js';
import { dashboardSuite } from './jobs-web-suite.js';
import { startRedis, type RedisServer } from './redis-server.js';

let server: RedisServer;
let admin: Redis;

before(async () => {
  server = await startRedis();
  admin = new Redis(server.url);
});

after(async () => {
  admin.disconnect();
  await server.destroy();
});

dashboardSuite(
  'redis',
  async () => new RedisBackend(server.url),
  async () => {
    await admin.flushall();
  },
  () => server.url,
);
