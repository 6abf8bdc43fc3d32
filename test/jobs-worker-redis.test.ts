// `unixproc work` on Redis: one private redis-server for the file, a database per test
// (FLUSHDB first), the same behaviour suite as on SQLite.
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { workerSuite } from './jobs-worker-suite.js';
import { startRedis, type RedisServer } from './redis-server.js';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server?.destroy();
});
let db = 0;
workerSuite('redis', async () => {
  const n = db++ % 16;
  const url = `redis://127.0.0.1:${server.port}/${n}`;
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
  return url;
}, () => [server.pid]);
