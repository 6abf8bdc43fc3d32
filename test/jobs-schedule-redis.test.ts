// Recurring jobs on Redis: one private redis-server for the file, a database per test
// (FLUSHDB first), the same suite as on SQLite.
import { scheduleSuite } from './jobs-schedule-suite.js';
import { redisPerFile } from './redis-server.js';

const redis = redisPerFile();
scheduleSuite('redis', redis.freshUrl, redis.pids);
