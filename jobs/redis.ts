// RedisBackend: the job store on Redis, in Resque's own layout, so Ruby's Resque (its
// workers, resque-web, Resque.info, Resque::Failure) and node-resque share the queues,
// the worker list, the stats and the failures with `unixproc work`.
//
// Redis layout (the namespace is "resque" unless the URL says ?namespace=NAME; W is a
// worker id, Resque's "host:pid:queue1,queue2"; Q a queue; ID a job id):
//
//   Resque's keys, written as Resque writes them:
//   resque:queues                 set of queue names
//   resque:queue:Q                list of job payloads, RPUSHed, taken from the left:
//                                 {"class":"Archive","args":[1,"x"]}; ours add a key Resque
//                                 ignores: "unixproc":{"id","attempt","attempts","backoff",
//                                 "timeout","unique","enqueuedAt","runAt"}
//   resque:workers                set of worker ids
//   resque:worker:W               what W runs, as Resque's working_on writes it:
//                                 {"queue","run_at":ISO 8601,"payload":{...}} plus
//                                 "worker":"host:pid", which node-resque's allWorkingOn keys
//                                 on; with several children, the newest claim; absent when idle
//   resque:worker:W:started       Ruby's Time#to_s: "2024-01-02 13:04:05 +0000"
//   resque:workers:heartbeat      hash W -> ISO 8601 time of the last heartbeat
//   resque:stat:processed, resque:stat:processed:W   attempts that ended (done or failed)
//   resque:stat:failed, resque:stat:failed:W         attempts that failed
//   resque:failed                 list of failures, oldest first: {"failed_at":
//                                 "2024/01/02 13:04:05 UTC","payload","exception","error",
//                                 "backtrace","worker","queue"} plus "unixproc":{"failure":
//                                 failure id,"failedAt":ms,"job":job id} (or "raw": the text
//                                 of a payload that was not a job); entries others wrote have
//                                 the SHA-1 of their text as id
//
//   What Resque has no place for, under resque:unixproc:
//   next-id                       counter for job and failure ids
//   job:ID                        hash: state (pending|delayed|running|done|failed), queue,
//                                 payload (as pushed), worker (while running), unique,
//                                 failure (its failure id); a done job's expires after a day
//   delayed                       sorted set of job ids by run-at time (ms); claim() (and
//                                 stats()) move the due ones to the tail of their queue
//   unique                        hash unique key -> id of the job pending or running under it
//   processing:W                  hash ID -> {"queue","payload","since","run_at"}: W's claims.
//                                 A claim moves a payload from resque:queue:Q into it in one
//                                 script, so a worker killed after claiming loses nothing.
//   running:W                     hash ID -> {"since","childPid","rss"} from W's last heartbeat
//   heartbeats                    sorted set W -> ms of its last heartbeat: the lease of all
//                                 of W's claims, which recoverLapsed() works from
//   worker:W                      hash host, pid, queues (JSON), startedAt (ms), rss (bytes, from
//                                 the last heartbeat)
//   minutes, minute-counts        sorted set of minutes (ms) with ended attempts, and a hash
//                                 "<minute>:done" / "<minute>:failed" -> count; 7 days kept
//   wake                          pub/sub channel: a queue name when jobs became ready there,
//                                 "@<ms>" when a delayed job was added
//   schedules                     set of the names of published recurring schedules
//   schedule:NAME                 hash cron, timezone ('' for local time), job, args (JSON), queue,
//                                 firstPublishedAt, updatedAt (ms), and once a tick has been
//                                 enqueued lastTick (ms), lastJobId, tickToken (the enqueueTick
//                                 call that took it, so a resent call gets its id back)
//   claim-token:T, enqueue-token:T  a claim's or an enqueue's result for 10 minutes, so a
//                                 command ioredis resends after a reconnect (its reply was
//                                 lost) does not take or push twice
//
// Decisions:
// - Every write is one Lua script: atomic, safe with any number of concurrent callers, and
//   a single command that ioredis queues while Redis is down and sends when it is back.
//   MULTI is avoided because ioredis rejects a transaction cut by a disconnect.
// - Time is the calling process's clock (ms), as in the other backends; the lapse of a
//   worker on another host is as good as the hosts' clocks.
// - A payload that is not a job (unparseable JSON, or no "class"), pushed by hand or by a
//   bug elsewhere, is recorded by claim() itself as a failed attempt whose entry keeps the
//   raw text (exception Resque::Helpers::DecodeException or Resque::NoClassError, as
//   Resque would raise; job name '' and args []), and claim() moves on: never a crash,
//   never dropped silently, and no child is forked for it. retry() puts the text back as it was.
// - A complete() or fail() whose claim is gone (recovered as lapsed meanwhile) counts the
//   attempt and leaves the job as it is now, as the SQLite store does.
// - waitForWork: enqueues PUBLISH the queue on resque:unixproc:wake, and each backend keeps
//   one subscriber connection, so every waiter on that queue wakes within milliseconds
//   (they race to claim; the losers wait again). Pub/sub rather than a wake-up list that
//   one BLPOP would consume, waking one worker maybe for a queue another serves. A message
//   between the caller's claim and its wait counts (a sequence number per queue). Once
//   subscribed, a wait looks once (peek: a job in one of its queues, or a delayed one due),
//   which covers what was enqueued before the subscription and jobs Ruby's Resque pushes,
//   which publish nothing; the wait is bounded by the earliest delayed job, and brought
//   forward by "@<ms>" messages. After a reconnect, every waiter looks again.
// - Reconnecting: ioredis reconnects with backoff (50 ms doubling to 2 s), and with
//   maxRetriesPerRequest null and the offline queue on, a call made while Redis is away
//   waits for it instead of failing; one in flight when the connection dropped is sent
//   again (hence the tokens). waitForWork keeps its timeout meanwhile.
// - fork(2): sockets are never shared. A backend records the pid that opened its
//   connections; in a child (unixproc's onForkChild, and process.pid as a backstop) the
//   parent's connections are frozen and forgotten, and the child opens its own on first use.
//   Freezing closes the child's copy of each fd without shutdown(2) (the parent's socket
//   stays up: no QUIT, no FIN) before the child's event loop can read from it, since a
//   reply read there would be lost to the parent and would settle the parent's promise in
//   the child, running the parent's code there; waits pending at fork never settle in the child.
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import { onForkChild } from '../src/index.js';
import type { Backend, EnqueueSpec, FailureRecord, JobRecord, MinuteCount, ScheduleRecord, Stats, WorkerInfo } from './backend.js';

export interface RedisBackendOptions {
  /** Resque's namespace (default "resque", or ?namespace= in the URL). */
  namespace?: string;
  /** How long job(id) still finds a done job, in seconds (default 86400). */
  keepDone?: number;
}

type JobState = 'pending' | 'delayed' | 'running' | 'done' | 'failed';

// Lua shared by the scripts (raw: backslashes are Lua's). ARGV[1] is always the key prefix ("resque:").
const PRELUDE = String.raw`
local P = ARGV[1]
local U = P .. 'unixproc:'
local function jk(id) return U .. 'job:' .. id end
-- A JSON string exactly as JSON.stringify writes it (cjson escapes '/', which would make
-- node-resque's removeFailed, an LREM of the re-encoded entry, miss it).
local esc = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
local function js(s)
  return '"' .. string.gsub(s, '[%z\1-\31"\\]', function(c) return esc[c] or string.format('\\u%04x', string.byte(c)) end) .. '"'
end
local function count(w, kind)
  redis.call('INCR', P .. 'stat:' .. kind)
  redis.call('INCR', P .. 'stat:' .. kind .. ':' .. w)
end
-- One ended attempt: Resque's counters (processed counts failed attempts too, as Resque's
-- do) and this minute's (kept 7 days).
local function tally(w, failed, now)
  count(w, 'processed')
  if failed then count(w, 'failed') end
  local minute = now - (now % 60000)
  local mk = string.format('%.0f', minute)
  redis.call('ZADD', U .. 'minutes', minute, mk)
  redis.call('HINCRBY', U .. 'minute-counts', mk .. (failed and ':failed' or ':done'), 1)
  local oldest = redis.call('ZRANGE', U .. 'minutes', 0, 0)
  if oldest[1] and tonumber(oldest[1]) < now - 7 * 86400000 then
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', U .. 'minutes', '-inf', now - 7 * 86400000)) do
      redis.call('HDEL', U .. 'minute-counts', m .. ':done', m .. ':failed')
      redis.call('ZREM', U .. 'minutes', m)
    end
  end
end
-- The queues to look in, in order, from ARGV[n] (their count) and the names after it:
-- '*' and other globs stand for the matching queues of resque:queues, by name.
local function expand(n)
  local list, seen, all = {}, {}, nil
  for i = 1, tonumber(ARGV[n]) do
    local q = ARGV[n + i]
    if string.find(q, '*', 1, true) then
      if not all then
        all = redis.call('SMEMBERS', P .. 'queues')
        table.sort(all)
      end
      local pat = '^' .. (string.gsub((string.gsub(q, '[%^%$%(%)%%%.%[%]%+%-%?]', '%%%0')), '%*', '.*')) .. '$'
      for _, name in ipairs(all) do
        if not seen[name] and string.find(name, pat) then
          seen[name] = true
          list[#list + 1] = name
        end
      end
    elseif not seen[q] then
      seen[q] = true
      list[#list + 1] = q
    end
  end
  return list
end
-- Delayed jobs now due go to the tail of their queues. Waiters are told at the end of the
-- script (wakeMoved), about the queues that still hold jobs then: a claim that promotes a
-- job and takes it at once wakes nobody for nothing.
local moved = {}
local function promote(now)
  local due = redis.call('ZRANGEBYSCORE', U .. 'delayed', '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    redis.call('ZREM', U .. 'delayed', id)
    local f = redis.call('HMGET', jk(id), 'queue', 'payload')
    if f[1] and f[2] then
      redis.call('HSET', jk(id), 'state', 'pending')
      redis.call('SADD', P .. 'queues', f[1])
      redis.call('RPUSH', P .. 'queue:' .. f[1], f[2])
      moved[f[1]] = true
    end
  end
end
local function wakeMoved()
  for q, _ in pairs(moved) do
    if redis.call('LLEN', P .. 'queue:' .. q) > 0 then redis.call('PUBLISH', U .. 'wake', q) end
  end
end
-- Resque's "what the worker is doing" shows the newest of W's claims.
local function show(w)
  local all = redis.call('HGETALL', U .. 'processing:' .. w)
  local best, bestSince = nil, -1
  for i = 1, #all, 2 do
    local ok, c = pcall(cjson.decode, all[i + 1])
    if ok and type(c) == 'table' and tonumber(c['since']) and tonumber(c['since']) > bestSince then
      best = c
      bestSince = tonumber(c['since'])
    end
  end
  if not best then
    redis.call('DEL', P .. 'worker:' .. w)
    return
  end
  local name = string.match(w, '^[^:]*:[^:]*') or w
  redis.call('SET', P .. 'worker:' .. w, '{"queue":' .. js(best['queue']) .. ',"run_at":' ..
    js(best['run_at']) .. ',"payload":' .. best['payload'] .. ',"worker":' .. js(name) .. '}')
end
local function forgetUnique(id)
  local uq = redis.call('HGET', jk(id), 'unique')
  if uq and uq ~= '' and redis.call('HGET', U .. 'unique', uq) == id then redis.call('HDEL', U .. 'unique', uq) end
end
local function finished(id, state, keep)
  forgetUnique(id)
  redis.call('HSET', jk(id), 'state', state)
  redis.call('HDEL', jk(id), 'worker')
  if keep then redis.call('EXPIRE', jk(id), keep) end
end
local function ready(q, payload, front)
  redis.call('SADD', P .. 'queues', q)
  if front then redis.call('LPUSH', P .. 'queue:' .. q, payload) else redis.call('RPUSH', P .. 'queue:' .. q, payload) end
  redis.call('PUBLISH', U .. 'wake', q)
end
local function requeue(id, q, payload, at, now)
  local k = jk(id)
  redis.call('HSET', k, 'queue', q, 'payload', payload)
  redis.call('HDEL', k, 'worker')
  if at <= now then
    redis.call('HSET', k, 'state', 'pending')
    ready(q, payload, false)
  else
    redis.call('HSET', k, 'state', 'delayed')
    redis.call('SADD', P .. 'queues', q)
    redis.call('ZADD', U .. 'delayed', at, id)
    redis.call('PUBLISH', U .. 'wake', '@' .. string.format('%.0f', at))
  end
end
local function recordFailure(id, w, q, payload, frag, failedAt, nowStr)
  local fid = tostring(redis.call('INCR', U .. 'next-id'))
  redis.call('RPUSH', P .. 'failed', '{"failed_at":' .. js(failedAt) .. ',"payload":' .. payload .. frag ..
    ',"worker":' .. js(w) .. ',"queue":' .. js(q) .. ',"unixproc":{"failure":"' .. fid ..
    '","failedAt":' .. nowStr .. ',"job":' .. js(id) .. '}}')
  return fid
end
-- {queue, length, ...} of Resque's queues by name, and the total.
local function queueLengths()
  local qs = redis.call('SMEMBERS', P .. 'queues')
  table.sort(qs)
  local out, total = {}, 0
  for _, q in ipairs(qs) do
    local n = redis.call('LLEN', P .. 'queue:' .. q)
    total = total + n
    out[#out + 1] = q
    out[#out + 1] = n
  end
  return out, total
end
-- Stores one job (payload = head .. id .. tail): pending in its queue, or delayed. A live
-- job holding the unique key uq ('' for none) is returned instead. Returns the id, and
-- whether it was added pending (then its queue wants a wake-up) or delayed.
local function pushJob(q, runAt, uq, head, tail, now)
  if uq ~= '' then
    local e = redis.call('HGET', U .. 'unique', uq)
    if e then
      local st = redis.call('HGET', jk(e), 'state')
      if st == 'pending' or st == 'delayed' or st == 'running' then return e, nil end
    end
  end
  local id = tostring(redis.call('INCR', U .. 'next-id'))
  local payload = head .. id .. tail
  if uq ~= '' then redis.call('HSET', U .. 'unique', uq, id) end
  redis.call('SADD', P .. 'queues', q)
  local state = 'pending'
  if runAt <= now then
    redis.call('RPUSH', P .. 'queue:' .. q, payload)
  else
    state = 'delayed'
    redis.call('ZADD', U .. 'delayed', runAt, id)
  end
  redis.call('HSET', jk(id), 'state', state, 'queue', q, 'payload', payload, 'unique', uq)
  return id, state
end
local function removeWorker(w)
  redis.call('SREM', P .. 'workers', w)
  redis.call('DEL', P .. 'worker:' .. w, P .. 'worker:' .. w .. ':started', P .. 'stat:processed:' .. w, P .. 'stat:failed:' .. w,
    U .. 'worker:' .. w, U .. 'running:' .. w, U .. 'processing:' .. w)
  redis.call('HDEL', P .. 'workers:heartbeat', w)
  redis.call('ZREM', U .. 'heartbeats', w)
end
`;

const SCRIPTS = {
  // ARGV: P, now, token, n, then per job: queue, runAt, unique, head, tail (payload = head .. id .. tail)
  enqueue: `
local now = tonumber(ARGV[2])
local tk = U .. 'enqueue-token:' .. ARGV[3]
local prev = redis.call('GET', tk)
if prev then return cjson.decode(prev) end
local ids, woke, earliest = {}, {}, nil
for i = 0, tonumber(ARGV[4]) - 1 do
  local b = 5 + i * 5
  local q, runAt = ARGV[b], tonumber(ARGV[b + 1])
  local id, state = pushJob(q, runAt, ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], now)
  if state == 'pending' then woke[q] = true end
  if state == 'delayed' and (not earliest or runAt < earliest) then earliest = runAt end
  ids[#ids + 1] = id
end
for q, _ in pairs(woke) do redis.call('PUBLISH', U .. 'wake', q) end
if earliest then redis.call('PUBLISH', U .. 'wake', '@' .. string.format('%.0f', earliest)) end
redis.call('SET', tk, cjson.encode(ids), 'EX', 600)
return ids
`,
  // ARGV: P, now, w, run_at ISO, failed_at, token, n, queues...
  // Returns {id, queue, payload}, {} when a batch of non-jobs was recorded (call again), or false.
  claim: `
local now, w, iso, failedAt, token = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local pk = U .. 'processing:' .. w
local tk = U .. 'claim-token:' .. token
local prev = redis.call('HMGET', tk, 'id', 'queue')
if prev[1] then
  local v = redis.call('HGET', pk, prev[1])
  if v then return {prev[1], prev[2], cjson.decode(v)['payload']} end
end
-- A worker that claims without registering still gets a lease, so its claims can lapse.
redis.call('ZADD', U .. 'heartbeats', 'NX', now, w)
promote(now)
local function take()
local list = expand(7)
local bad = 0
for _, q in ipairs(list) do
  local qk = P .. 'queue:' .. q
  while true do
    local raw = redis.call('LPOP', qk)
    if not raw then break end
    local ok, job = pcall(cjson.decode, raw)
    local exc, why = nil, nil
    if not ok then
      exc, why = 'Resque::Helpers::DecodeException', 'unparseable job payload (' .. tostring(job) .. ')'
    elseif type(job) ~= 'table' or type(job['class']) ~= 'string' or job['class'] == '' then
      exc, why = 'Resque::NoClassError', 'job payload has no class'
    end
    if exc then
      local excerpt = raw
      if #excerpt > 200 then excerpt = string.sub(raw, 1, 200) .. '...' end
      local fid = tostring(redis.call('INCR', U .. 'next-id'))
      redis.call('RPUSH', P .. 'failed', '{"failed_at":' .. js(failedAt) .. ',"payload":{"class":"","args":[]},"exception":' ..
        js(exc) .. ',"error":' .. js(why .. ' in queue ' .. q .. ': ' .. excerpt) .. ',"backtrace":[],"worker":' ..
        js(w) .. ',"queue":' .. js(q) .. ',"unixproc":{"failure":"' .. fid .. '","failedAt":' .. ARGV[2] ..
        ',"raw":' .. js(raw) .. '}}')
      tally(w, true, now)
      bad = bad + 1
      if bad >= 100 then return {} end
    else
      local meta, id = job['unixproc'], nil
      if type(meta) == 'table' and type(meta['id']) == 'string' and meta['id'] ~= '' then
        id = meta['id']
      else
        id = tostring(redis.call('INCR', U .. 'next-id'))
      end
      redis.call('HSET', jk(id), 'state', 'running', 'worker', w, 'queue', q, 'payload', raw)
      redis.call('HSET', pk, id, cjson.encode({queue = q, payload = raw, since = now, run_at = iso}))
      show(w)
      redis.call('HSET', tk, 'id', id, 'queue', q)
      redis.call('EXPIRE', tk, 600)
      return {id, q, raw}
    end
  end
end
return false
end
local r = take()
wakeMoved()
return r
`,
  // ARGV: P, w, id, keep (s), now. A claim lost meanwhile (recovered as lapsed) leaves the
  // job as it is now; the attempt still counts. 1: done; 0: the claim was not held.
  complete: `
local w, id, keep, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local pk = U .. 'processing:' .. w
tally(w, false, now)
if redis.call('HDEL', pk, id) == 0 then return 0 end
redis.call('HDEL', U .. 'running:' .. w, id)
finished(id, 'done', keep)
show(w)
return 1
`,
  // ARGV: P, w, id, now, failed_at, fragment (exception, error, backtrace), payload (attempt counted),
  //       retryAt ('' to keep it failed), lapse cutoff ('' unless recovering)
  fail: `
local w, id, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
if ARGV[9] ~= '' then
  local s = redis.call('ZSCORE', U .. 'heartbeats', w)
  if s and tonumber(s) > tonumber(ARGV[9]) then return 0 end
end
local pk = U .. 'processing:' .. w
local v = redis.call('HGET', pk, id)
if not v then
  -- As complete: the attempt counts, the job is left as it is now.
  if ARGV[9] == '' then tally(w, true, now) end
  return 0
end
redis.call('HDEL', pk, id)
redis.call('HDEL', U .. 'running:' .. w, id)
local c = cjson.decode(v)
tally(w, true, now)
if ARGV[8] ~= '' then
  requeue(id, c['queue'], ARGV[7], tonumber(ARGV[8]), now)
else
  local fid = recordFailure(id, w, c['queue'], ARGV[7], ARGV[6], ARGV[5], ARGV[4])
  redis.call('HSET', jk(id), 'failure', fid, 'payload', ARGV[7], 'queue', c['queue'])
  finished(id, 'failed', nil)
end
show(w)
return 1
`,
  // ARGV: P, w, id
  release: `
local w, id = ARGV[2], ARGV[3]
local pk = U .. 'processing:' .. w
local v = redis.call('HGET', pk, id)
if not v then return 0 end
redis.call('HDEL', pk, id)
redis.call('HDEL', U .. 'running:' .. w, id)
local c = cjson.decode(v)
redis.call('HSET', jk(id), 'state', 'pending')
redis.call('HDEL', jk(id), 'worker')
ready(c['queue'], c['payload'], true)
show(w)
return 1
`,
  // ARGV: P, w, now, heartbeat ISO, started (Ruby's Time#to_s), host, pid, queues JSON
  register: `
local w = ARGV[2]
redis.call('SADD', P .. 'workers', w)
redis.call('SET', P .. 'worker:' .. w .. ':started', ARGV[5], 'NX')
redis.call('HSET', P .. 'workers:heartbeat', w, ARGV[4])
redis.call('ZADD', U .. 'heartbeats', ARGV[3], w)
redis.call('HSET', U .. 'worker:' .. w, 'host', ARGV[6], 'pid', ARGV[7], 'queues', ARGV[8])
redis.call('HSETNX', U .. 'worker:' .. w, 'startedAt', ARGV[3])
return 1
`,
  // ARGV: P, w. Claims still held go back to the front of their queues, unattempted.
  unregister: `
local w = ARGV[2]
local all = redis.call('HGETALL', U .. 'processing:' .. w)
for i = 1, #all, 2 do
  local c = cjson.decode(all[i + 1])
  redis.call('HSET', jk(all[i]), 'state', 'pending')
  redis.call('HDEL', jk(all[i]), 'worker')
  ready(c['queue'], c['payload'], true)
end
removeWorker(w)
return #all / 2
`,
  // ARGV: P, w, now, ISO, master rss ('' when not reported), n, then per running job: id, {"since","childPid","rss"}
  heartbeat: `
local w = ARGV[2]
redis.call('ZADD', U .. 'heartbeats', ARGV[3], w)
redis.call('HSET', P .. 'workers:heartbeat', w, ARGV[4])
redis.call('SADD', P .. 'workers', w)
-- Only into a registered worker's hash: one made here would pass a worker for Ruby's.
if redis.call('EXISTS', U .. 'worker:' .. w) == 1 then
  if ARGV[5] ~= '' then redis.call('HSET', U .. 'worker:' .. w, 'rss', ARGV[5]) else redis.call('HDEL', U .. 'worker:' .. w, 'rss') end
end
local rk = U .. 'running:' .. w
redis.call('DEL', rk)
for i = 0, tonumber(ARGV[6]) - 1 do redis.call('HSET', rk, ARGV[7 + i * 2], ARGV[8 + i * 2]) end
return 1
`,
  // ARGV: P, w, cutoff. Removes a lapsed worker once it holds nothing.
  prune: `
local w = ARGV[2]
local s = redis.call('ZSCORE', U .. 'heartbeats', w)
if not s or tonumber(s) > tonumber(ARGV[3]) then return 0 end
if redis.call('HLEN', U .. 'processing:' .. w) > 0 then return 0 end
removeWorker(w)
return 1
`,
  // ARGV: P, cutoff. Lapsed workers and their claims: {w, {id, value, ...}}, ...
  lapsed: `
local out = {}
for _, w in ipairs(redis.call('ZRANGEBYSCORE', U .. 'heartbeats', '-inf', ARGV[2])) do
  out[#out + 1] = {w, redis.call('HGETALL', U .. 'processing:' .. w)}
end
return out
`,
  // ARGV: P, queue
  clear: `
local q = ARGV[2]
local qk = P .. 'queue:' .. q
local function forget(id)
  forgetUnique(id)
  redis.call('DEL', jk(id))
end
local items = redis.call('LRANGE', qk, 0, -1)
for _, raw in ipairs(items) do
  local ok, j = pcall(cjson.decode, raw)
  if ok and type(j) == 'table' and type(j['unixproc']) == 'table' and type(j['unixproc']['id']) == 'string' then
    local id = j['unixproc']['id']
    if redis.call('HGET', jk(id), 'state') == 'pending' then forget(id) end
  end
end
redis.call('DEL', qk)
local n = #items
for _, id in ipairs(redis.call('ZRANGE', U .. 'delayed', 0, -1)) do
  if redis.call('HGET', jk(id), 'queue') == q then
    redis.call('ZREM', U .. 'delayed', id)
    forget(id)
    n = n + 1
  end
end
return n
`,
  // ARGV: P, failure id. The entry whose unixproc.failure is the id, or whose SHA-1 is (entries
  // Resque or node-resque wrote); false when none.
  findFailure: `
local fid = ARGV[2]
local marker = '"failure":"' .. fid .. '"'
for _, e in ipairs(redis.call('LRANGE', P .. 'failed', 0, -1)) do
  if string.find(e, marker, 1, true) then
    local ok, j = pcall(cjson.decode, e)
    if ok and type(j) == 'table' and type(j['unixproc']) == 'table' and j['unixproc']['failure'] == fid then return e end
  end
  if redis.sha1hex(e) == fid then return e end
end
return false
`,
  // ARGV: P, now, n, then per failure: entry, failure id, mode (retry|remove), queue, payload, job id, unique.
  // Each entry is taken only if still there (LREM), so two callers never requeue one failure twice.
  takeFailures: `
local taken = 0
for i = 0, tonumber(ARGV[3]) - 1 do
  local b = 4 + i * 7
  local entry, fid, mode, q, payload, id, uq = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  if redis.call('LREM', P .. 'failed', 1, entry) == 1 then
    taken = taken + 1
    if mode == 'remove' then
      if id ~= '' and redis.call('HGET', jk(id), 'failure') == fid then redis.call('DEL', jk(id)) end
    else
      local holder = uq ~= '' and redis.call('HGET', U .. 'unique', uq)
      local st = holder and holder ~= id and redis.call('HGET', jk(holder), 'state')
      if st == 'pending' or st == 'delayed' or st == 'running' then
        -- A live job holding the unique key already does this job's work.
        if id ~= '' then redis.call('DEL', jk(id)) end
      else
        ready(q, payload, false)
        if id ~= '' then
          redis.call('HSET', jk(id), 'state', 'pending', 'queue', q, 'payload', payload, 'unique', uq)
          redis.call('HDEL', jk(id), 'failure', 'worker')
          redis.call('PERSIST', jk(id))
          if uq ~= '' then redis.call('HSET', U .. 'unique', uq, id) end
        end
      end
    end
  end
end
return taken
`,
  // ARGV: P, now. {processed, failed, pending, delayed, running, failedKept, workers, queue, length, ...}
  stats: `
promote(tonumber(ARGV[2]))
wakeMoved()
local lens, pending = queueLengths()
local running, workers, seen = 0, 0, {}
for _, w in ipairs(redis.call('ZRANGE', U .. 'heartbeats', 0, -1)) do
  running = running + redis.call('HLEN', U .. 'processing:' .. w)
  seen[w] = true
  workers = workers + 1
end
for _, w in ipairs(redis.call('SMEMBERS', P .. 'workers')) do
  if not seen[w] then workers = workers + 1 end
end
local out = {tonumber(redis.call('GET', P .. 'stat:processed') or '0'), tonumber(redis.call('GET', P .. 'stat:failed') or '0'),
  pending, redis.call('ZCARD', U .. 'delayed'), running, redis.call('LLEN', P .. 'failed'), workers}
for _, x in ipairs(lens) do out[#out + 1] = x end
return out
`,
  // ARGV: P. Per worker (Resque's set and ours): {w, meta (flat hash), lease ms, heartbeat ISO,
  // started, processing (flat hash), running (flat hash), working_on JSON, processed, failed}
  workers: `
local ids, seen = {}, {}
for _, w in ipairs(redis.call('SMEMBERS', P .. 'workers')) do
  if not seen[w] then seen[w] = true; ids[#ids + 1] = w end
end
for _, w in ipairs(redis.call('ZRANGE', U .. 'heartbeats', 0, -1)) do
  if not seen[w] then seen[w] = true; ids[#ids + 1] = w end
end
table.sort(ids)
local out = {}
for _, w in ipairs(ids) do
  out[#out + 1] = {w, redis.call('HGETALL', U .. 'worker:' .. w), redis.call('ZSCORE', U .. 'heartbeats', w) or '',
    redis.call('HGET', P .. 'workers:heartbeat', w) or '', redis.call('GET', P .. 'worker:' .. w .. ':started') or '',
    redis.call('HGETALL', U .. 'processing:' .. w), redis.call('HGETALL', U .. 'running:' .. w),
    redis.call('GET', P .. 'worker:' .. w) or '', redis.call('GET', P .. 'stat:processed:' .. w) or '0',
    redis.call('GET', P .. 'stat:failed:' .. w) or '0'}
end
return out
`,
  // ARGV: P, now. {queue, length, ...} of Resque's queues, by name.
  queues: `
promote(tonumber(ARGV[2]))
wakeMoved()
return (queueLengths())
`,
  // ARGV: P, now, n, queues... {1 when one of these queues has a job or a delayed job is due
  // (else 0), the earliest delayed job's run-at ('' when none)}. Read-only.
  peek: `
local now = tonumber(ARGV[2])
local ready = 0
local first = redis.call('ZRANGE', U .. 'delayed', 0, 0, 'WITHSCORES')
if first[2] and tonumber(first[2]) <= now then ready = 1 end
if ready == 0 then
  for _, q in ipairs(expand(3)) do
    if redis.call('LLEN', P .. 'queue:' .. q) > 0 then
      ready = 1
      break
    end
  end
end
return {ready, first[2] or ''}
`,
  // ARGV: P, now, offset, limit. {id, queue, payload, ...} of delayed jobs still ahead, soonest first.
  delayed: `
local out = {}
local ids = redis.call('ZRANGEBYSCORE', U .. 'delayed', '(' .. ARGV[2], '+inf', 'LIMIT', tonumber(ARGV[3]), tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', jk(id), 'queue', 'payload')
  if f[1] and f[2] then
    out[#out + 1] = id
    out[#out + 1] = f[1]
    out[#out + 1] = f[2]
  end
end
return out
`,
  // ARGV: P, now, n, then per schedule: name, cron, timezone, job, args JSON, queue. lastTick and
  // lastJobId are left as they are; firstPublishedAt is set once.
  publishSchedules: `
local now = ARGV[2]
for i = 0, tonumber(ARGV[3]) - 1 do
  local b = 4 + i * 6
  local k = U .. 'schedule:' .. ARGV[b]
  redis.call('HSET', k, 'cron', ARGV[b + 1], 'timezone', ARGV[b + 2], 'job', ARGV[b + 3], 'args', ARGV[b + 4], 'queue', ARGV[b + 5], 'updatedAt', now)
  redis.call('HSETNX', k, 'firstPublishedAt', now)
  redis.call('SADD', U .. 'schedules', ARGV[b])
end
return 1
`,
  // ARGV: P, now, name, tick, token, queue, runAt, unique, head, tail. The new job's id, false
  // when the tick is not later than lastTick; the id again for a resent call (same token).
  enqueueTick: `
local now, name, tick, token = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local k = U .. 'schedule:' .. name
local s = redis.call('HMGET', k, 'cron', 'lastTick', 'lastJobId', 'tickToken')
if not s[1] then return redis.error_reply('NOSCHEDULE no schedule "' .. name .. '" is published') end
if s[4] == token then return s[3] end
if s[2] and tonumber(s[2]) >= tick then return false end
local q, runAt = ARGV[6], tonumber(ARGV[7])
local id, state = pushJob(q, runAt, ARGV[8], ARGV[9], ARGV[10], now)
redis.call('HSET', k, 'lastTick', ARGV[4], 'lastJobId', id, 'tickToken', token)
if state == 'pending' then redis.call('PUBLISH', U .. 'wake', q) end
if state == 'delayed' then redis.call('PUBLISH', U .. 'wake', '@' .. string.format('%.0f', runAt)) end
return id
`,
  // ARGV: P. Per published schedule, by name: {name, flat hash}.
  schedules: `
local names = redis.call('SMEMBERS', U .. 'schedules')
table.sort(names)
local out = {}
for _, name in ipairs(names) do
  local h = redis.call('HGETALL', U .. 'schedule:' .. name)
  if #h > 0 then out[#out + 1] = {name, h} end
end
return out
`,
  // ARGV: P, since (ms). {minute, done, failed, ...} from the minute holding since on.
  minutes: `
local since = tonumber(ARGV[2])
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', U .. 'minutes', since - (since % 60000), '+inf')) do
  local c = redis.call('HMGET', U .. 'minute-counts', m .. ':done', m .. ':failed')
  out[#out + 1] = m
  out[#out + 1] = tonumber(c[1] or '0')
  out[#out + 1] = tonumber(c[2] or '0')
end
return out
`,
} as const;

type ScriptName = keyof typeof SCRIPTS;

/** What a claim's payload says, in Resque's terms and ours. */
interface Meta {
  id?: unknown;
  attempt?: unknown;
  attempts?: unknown;
  backoff?: unknown;
  timeout?: unknown;
  unique?: unknown;
  enqueuedAt?: unknown;
  runAt?: unknown;
}

// A job pushed by Resque has no backoff of ours: the Queue's default.
const FOREIGN_BACKOFF = 1000;

/** Resque's Time#iso8601 (whole seconds, UTC). */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function parts(ms: number): string[] {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return [String(d.getUTCFullYear()), p(d.getUTCMonth() + 1), p(d.getUTCDate()), p(d.getUTCHours()), p(d.getUTCMinutes()), p(d.getUTCSeconds())];
}

/** Ruby's Time#to_s, as Resque writes worker:W:started. */
export function rubyTime(ms: number): string {
  const [y, mo, d, h, mi, s] = parts(ms);
  return `${y}-${mo}-${d} ${h}:${mi}:${s} +0000`;
}

/** Resque's failed_at: strftime("%Y/%m/%d %H:%M:%S %Z"). */
export function failedAtTime(ms: number): string {
  const [y, mo, d, h, mi, s] = parts(ms);
  return `${y}/${mo}/${d} ${h}:${mi}:${s} UTC`;
}

const num = (v: unknown, dflt: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : dflt);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A Resque payload (ours or anyone's) as a JobRecord; defaults where the payload is Resque's alone. */
function jobFromPayload(raw: string, queue: string, fallbackId: string, now: number): JobRecord {
  const p = parseJson(raw);
  const obj = p && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
  const meta: Meta = obj.unixproc && typeof obj.unixproc === 'object' ? (obj.unixproc as Meta) : {};
  // Resque's perform: `args || []`, splatted, so a lone value is one argument.
  const args = obj.args === undefined || obj.args === null ? [] : Array.isArray(obj.args) ? obj.args : [obj.args];
  const enqueuedAt = num(meta.enqueuedAt, now);
  return {
    id: typeof meta.id === 'string' && meta.id !== '' ? meta.id : fallbackId,
    name: typeof obj.class === 'string' ? obj.class : '',
    args,
    queue,
    attempt: num(meta.attempt, 0),
    attempts: num(meta.attempts, 1),
    backoff: num(meta.backoff, FOREIGN_BACKOFF),
    timeout: typeof meta.timeout === 'number' ? meta.timeout : null,
    unique: typeof meta.unique === 'string' ? meta.unique : null,
    enqueuedAt,
    runAt: num(meta.runAt, enqueuedAt),
  };
}

function metaOf(job: Omit<JobRecord, 'name' | 'args' | 'queue' | 'id'>): string {
  return JSON.stringify({
    attempt: job.attempt,
    attempts: job.attempts,
    backoff: job.backoff,
    timeout: job.timeout,
    unique: job.unique,
    enqueuedAt: job.enqueuedAt,
    runAt: job.runAt,
  }).slice(1);
}

/** Our payload: Resque's class and args, and our fields under "unixproc". */
function encodePayload(job: JobRecord): string {
  const head = JSON.stringify({ class: job.name, args: job.args }).slice(0, -1);
  return `${head},"unixproc":{"id":${JSON.stringify(job.id)},${metaOf(job)}}`;
}

/** Splits a payload around its id, which the enqueue script allocates. */
function payloadAround(spec: EnqueueSpec, now: number): [string, string] {
  const head = JSON.stringify({ class: spec.name, args: spec.args }).slice(0, -1) + ',"unixproc":{"id":"';
  const tail = '",' + metaOf({ ...spec, attempt: 0, enqueuedAt: now, runAt: Math.max(spec.runAt, now) }) + '}';
  return [head, tail];
}

function pageArgs(offset: unknown, limit: unknown, what: string): void {
  if (!Number.isInteger(offset) || (offset as number) < 0) throw new RangeError(`${what}: offset must be an integer >= 0, got ${String(offset)}`);
  if (!Number.isInteger(limit) || (limit as number) < 0) throw new RangeError(`${what}: limit must be an integer >= 0, got ${String(limit)}`);
}

function pairs(flat: unknown): Array<[string, string]> {
  const a = Array.isArray(flat) ? (flat as string[]) : [];
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < a.length; i += 2) out.push([a[i], a[i + 1]]);
  return out;
}

interface Claimed {
  queue: string;
  payload: string;
  since: number;
}

function parseClaimed(v: string): Claimed | null {
  const c = parseJson(v) as Partial<Claimed> | undefined;
  if (!c || typeof c.queue !== 'string' || typeof c.payload !== 'string') return null;
  return { queue: c.queue, payload: c.payload, since: num(c.since, 0) };
}

interface Waiter {
  queues: string[];
  deadline: number;
  timer: NodeJS.Timeout;
  resolve: () => void;
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp('^' + pattern.split('*').map((s) => s.replace(/[\\^$.|?+()[\]{}]/g, '\\$&')).join('.*') + '$');
}

function matches(queues: string[], queue: string): boolean {
  return queues.some((q) => q === queue || (q.includes('*') && globToRegExp(q).test(queue)));
}

// Backends with connections open in this process, for the fork-child handler.
const live = new Set<RedisBackend>();
onForkChild(() => {
  for (const b of live) {
    // A throw here would come out of fork() in the child and skip the other handlers.
    try {
      b.abandonParentConnections();
    } catch {
      /* that backend's copies are dropped all the same */
    }
  }
});

const noop = () => {};

/** A token naming one call, for the idempotence keys: the pid keeps processes' tokens apart whatever their RNG state after fork. */
function callToken(): string {
  return `${process.pid}.${randomBytes(12).toString('hex')}`;
}

/**
 * Makes the child's copy of a parent's ioredis client inert: its socket fd is closed in
 * the child only (destroy, never end/QUIT: the parent's connection stays up), nothing
 * it held settles, and it never reconnects.
 */
function freeze(client: Redis): void {
  const c = client as unknown as Record<string, any>;
  if (c.reconnectTimeout) clearTimeout(c.reconnectTimeout);
  c.reconnectTimeout = null;
  if (c.connector) c.connector.connecting = false;
  const never = () => new Promise(noop);
  c.sendCommand = never;
  c.connect = never;
  c.flushQueue = noop;
  c.emit = () => false;
  c.silentEmit = () => false;
  const stream = c.stream;
  if (stream) {
    stream.removeAllListeners();
    stream.on('error', noop);
    stream.destroy();
  }
}

export class RedisBackend implements Backend {
  readonly url: string;
  private readonly options: RedisOptions;
  private readonly prefix: string;
  private readonly keepDone: number;
  private main?: Redis;
  private sub?: Redis;
  private subReady?: Promise<void>;
  private pid = 0;
  private closed = false;
  private waiters = new Set<Waiter>();
  // Wake-ups seen on the subscription, numbered: the latest per queue, and the number
  // when the caller last claimed, so a message between a claim and the wait counts.
  private seq = 0;
  private wakes = new Map<string, number>();
  private claimSeq = 0;

  constructor(url: string, opts: RedisBackendOptions = {}) {
    if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw new TypeError(`RedisBackend(url): a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
    const u = new URL(url);
    const namespace = opts.namespace ?? u.searchParams.get('namespace') ?? 'resque';
    if (namespace === '') throw new RangeError('RedisBackend: the namespace must not be empty');
    u.searchParams.delete('namespace');
    this.prefix = namespace + ':';
    this.keepDone = Math.max(1, Math.round(opts.keepDone ?? 86400));
    this.url = u.password ? url.replace(`:${u.password}@`, ':***@') : url;
    const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
    if (!Number.isInteger(db) || db < 0) throw new RangeError(`RedisBackend: the database in ${this.url} must be a number`);
    this.options = {
      host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: u.port ? Number(u.port) : 6379,
      db,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
      // Wait for Redis rather than fail: a call made while it restarts is queued and sent
      // once it is back; one in flight when the connection dropped is sent again.
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      autoResendUnfulfilledCommands: true,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times - 1, 6), 2000),
      // A replica promoted away under us: reconnect (to the new primary behind the address).
      reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
      lazyConnect: true,
    };
  }

  private client(): Redis {
    if (this.closed) throw new Error(`RedisBackend ${this.url} is closed`);
    if (this.pid !== process.pid) this.abandonParentConnections();
    if (!this.main) {
      this.pid = process.pid;
      this.main = this.connect();
      live.add(this);
    }
    return this.main;
  }

  private connect(): Redis {
    // Named by pid, so CLIENT LIST tells whose connection is whose (a forked child's are its own).
    const r = new Redis({ ...this.options, connectionName: `unixproc:${process.pid}` });
    // Reconnect errors arrive here while Redis is away. ioredis keeps retrying and the calls
    // wait, so there is nothing to do; without a listener ioredis would print each one.
    r.on('error', noop);
    for (const [name, body] of Object.entries(SCRIPTS)) r.defineCommand(name, { numberOfKeys: 0, lua: PRELUDE + body });
    r.connect().catch(noop);
    return r;
  }

  private run(name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    const r = this.client() as unknown as Record<ScriptName, (...a: Array<string | number>) => Promise<unknown>>;
    return r[name](this.prefix, ...args);
  }

  /** In a forked child: forget the parent's connections and waits (see freeze); new ones open on first use. */
  abandonParentConnections(): void {
    if (this.main) freeze(this.main);
    if (this.sub) freeze(this.sub);
    this.main = this.sub = this.subReady = undefined;
    // The parent's waits stay unsettled here: settling one would resume the parent's code in the child.
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters.clear();
    this.wakes.clear();
    this.seq = this.claimSeq = 0;
    this.pid = 0;
    live.delete(this);
  }

  async enqueue(specs: EnqueueSpec[]): Promise<string[]> {
    if (specs.length === 0) return [];
    const now = Date.now();
    const args: Array<string | number> = [now, callToken(), specs.length];
    for (const s of specs) {
      const [head, tail] = payloadAround(s, now);
      args.push(s.queue, Math.max(s.runAt, now), s.unique ?? '', head, tail);
    }
    return (await this.run('enqueue', ...args)) as string[];
  }

  async registerWorker(info: { id: string; host: string; pid: number; queues: string[] }): Promise<void> {
    const now = Date.now();
    await this.run('register', info.id, now, isoTime(now), rubyTime(now), info.host, info.pid, JSON.stringify(info.queues));
  }

  async unregisterWorker(id: string): Promise<void> {
    await this.run('unregister', id);
  }

  async heartbeat(workerId: string, running: WorkerInfo['running'], rss?: number): Promise<void> {
    const now = Date.now();
    const bytes = (v: unknown, what: string): number | undefined => {
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TypeError(`heartbeat: ${what} must be a whole number of bytes >= 0, got ${String(v)}`);
      return v;
    };
    const args: Array<string | number> = [workerId, now, isoTime(now), bytes(rss, 'rss') ?? '', running.length];
    running.forEach((r, i) => args.push(r.job.id, JSON.stringify({ since: r.since, childPid: r.childPid, rss: bytes(r.rss, `running[${i}].rss`) })));
    await this.run('heartbeat', ...args);
  }

  async claim(workerId: string, queues: string[]): Promise<JobRecord | null> {
    if (queues.length === 0) return null;
    this.client();
    this.claimSeq = this.seq;
    for (;;) {
      const now = Date.now();
      const r = (await this.run('claim', now, workerId, isoTime(now), failedAtTime(now), callToken(), queues.length, ...queues)) as
        | [string, string, string]
        | []
        | null;
      if (!r) return null;
      if (r.length === 0) continue; // a batch of non-jobs was recorded as failures
      const [id, queue, raw] = r;
      return jobFromPayload(raw, queue, id, now);
    }
  }

  async complete(workerId: string, job: JobRecord): Promise<void> {
    await this.run('complete', workerId, job.id, this.keepDone, Date.now());
  }

  async fail(workerId: string, job: JobRecord, failure: Omit<FailureRecord, 'job' | 'failedAt'>, retryAt: number | null): Promise<void> {
    await this.failOne(workerId, job, failure, retryAt, '');
  }

  private async failOne(
    workerId: string,
    job: JobRecord,
    failure: { error: string; exception: string; backtrace: string[] },
    retryAt: number | null,
    cutoff: string,
  ): Promise<boolean> {
    const now = Date.now();
    const counted: JobRecord = { ...job, attempt: job.attempt + 1 };
    if (retryAt !== null) counted.runAt = Math.max(retryAt, now);
    const frag = `,"exception":${JSON.stringify(String(failure.exception))},"error":${JSON.stringify(String(failure.error))},"backtrace":${JSON.stringify((failure.backtrace ?? []).map(String))}`;
    const r = await this.run('fail', workerId, job.id, now, failedAtTime(now), frag, encodePayload(counted), retryAt === null ? '' : Math.max(retryAt, now), cutoff);
    return r === 1;
  }

  async release(workerId: string, job: JobRecord): Promise<void> {
    await this.run('release', workerId, job.id);
  }

  async recoverLapsed(lapseMs: number, reason: string, retryAt: (job: JobRecord) => number | null): Promise<JobRecord[]> {
    const cutoff = Date.now() - lapseMs;
    const lapsed = (await this.run('lapsed', cutoff)) as Array<[string, string[]]>;
    const recovered: JobRecord[] = [];
    for (const [w, flat] of lapsed) {
      for (const [id, v] of pairs(flat)) {
        const c = parseClaimed(v);
        if (!c) continue;
        const job = jobFromPayload(c.payload, c.queue, id, c.since);
        const at = retryAt(job);
        if (at !== null && (typeof at !== 'number' || !Number.isFinite(at))) throw new TypeError(`recoverLapsed: retryAt(job) must return a finite number or null, got ${String(at)}`);
        const failure = { error: reason, exception: 'WorkerLapsed', backtrace: [] };
        if (await this.failOne(w, job, failure, at, String(cutoff))) recovered.push(job);
      }
      await this.run('prune', w, cutoff);
    }
    return recovered;
  }

  async waitForWork(queues: string[], timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.client();
    const since = this.claimSeq;
    const deadline = Date.now() + Math.max(0, timeoutMs);
    if (deadline <= Date.now()) return;
    // The timer runs from the start, so the timeout holds even while Redis is away and
    // the subscription or the peek are still queued.
    let waiter!: Waiter;
    const done = new Promise<void>((resolve) => {
      waiter = {
        queues,
        deadline,
        resolve: () => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          // What woke this wait is seen: the next wait returns early only for newer wake-ups.
          this.claimSeq = Math.max(this.claimSeq, this.seq);
          resolve();
        },
        timer: setTimeout(() => waiter.resolve(), deadline - Date.now()),
      };
      this.waiters.add(waiter);
    });
    (async () => {
      await this.subscribe();
      if (!this.waiters.has(waiter)) return;
      if (queues.some((q) => this.wokenSince(q, since))) return waiter.resolve();
      // Now that the subscription is in place, look once: a job enqueued before it (or
      // since the caller's last claim), or pushed by Resque, which publishes nothing.
      await this.peek(waiter);
    })().catch(noop);
    return done;
  }

  /** Resolves the waiter when its queues have work now; else bounds it by the earliest delayed job. */
  private async peek(w: Waiter): Promise<void> {
    const [ready, next] = (await this.run('peek', Date.now(), w.queues.length, ...w.queues)) as [number, string];
    if (!this.waiters.has(w)) return;
    if (ready === 1) return w.resolve();
    if (next !== '') this.shorten(w, Number(next));
  }

  /** Brings a waiter's deadline forward to `at` (a delayed job falls due then). */
  private shorten(w: Waiter, at: number): void {
    if (!this.waiters.has(w) || !(at < w.deadline)) return;
    w.deadline = at;
    clearTimeout(w.timer);
    w.timer = setTimeout(() => w.resolve(), Math.max(0, at - Date.now()));
  }

  private wokenSince(q: string, since: number): boolean {
    if (!q.includes('*')) return (this.wakes.get(q) ?? 0) > since;
    const re = globToRegExp(q);
    for (const [name, s] of this.wakes) if (s > since && re.test(name)) return true;
    return false;
  }

  private subscribe(): Promise<void> {
    if (this.subReady) return this.subReady;
    const sub = (this.sub = this.connect());
    const channel = this.prefix + 'unixproc:wake';
    let readyOnce = false;
    sub.on('ready', () => {
      // After a reconnect, messages published while it was away are gone: once subscribed
      // again (ioredis resubscribes too; twice is harmless), every waiter looks again.
      if (readyOnce) {
        sub.subscribe(channel).then(() => {
          if (this.sub === sub) for (const w of this.waiters) this.peek(w).catch(noop);
        }, noop);
      }
      readyOnce = true;
    });
    sub.on('message', (ch: string, msg: string) => {
      if (ch !== channel || this.sub !== sub) return;
      if (msg.startsWith('@')) {
        const at = Number(msg.slice(1));
        for (const w of this.waiters) this.shorten(w, at);
        return;
      }
      this.wakes.set(msg, ++this.seq);
      for (const w of this.waiters) if (matches(w.queues, msg)) w.resolve();
    });
    this.subReady = sub.subscribe(channel).then(noop);
    return this.subReady;
  }

  async stats(): Promise<Stats> {
    const r = (await this.run('stats', Date.now())) as Array<string | number>;
    const queues: Record<string, number> = {};
    for (let i = 7; i + 1 < r.length; i += 2) queues[String(r[i])] = Number(r[i + 1]);
    return {
      processed: Number(r[0]),
      failed: Number(r[1]),
      pending: Number(r[2]),
      delayed: Number(r[3]),
      running: Number(r[4]),
      failedKept: Number(r[5]),
      workers: Number(r[6]),
      queues,
    };
  }

  async queues(): Promise<Record<string, number>> {
    const r = (await this.run('queues', Date.now())) as Array<string | number>;
    const out: Record<string, number> = {};
    for (let i = 0; i + 1 < r.length; i += 2) out[String(r[i])] = Number(r[i + 1]);
    return out;
  }

  async workers(): Promise<WorkerInfo[]> {
    const rows = (await this.run('workers')) as Array<[string, string[], string, string, string, string[], string[], string, string, string]>;
    return rows.map(([id, metaFlat, lease, hbIso, started, processing, running, workingOn, processed, failed]) => {
      const meta = Object.fromEntries(pairs(metaFlat));
      // Resque's id is host:pid:queues; a worker of Ruby's Resque has only that.
      const [idHost, idPid, idQueues] = [id.split(':')[0], id.split(':')[1], id.split(':').slice(2).join(':')];
      const queues = parseJson(meta.queues ?? '');
      const info: WorkerInfo = {
        id,
        host: meta.host ?? idHost ?? '',
        pid: Number(meta.pid ?? idPid) || 0,
        queues: Array.isArray(queues) ? queues.map(String) : idQueues ? idQueues.split(',') : [],
        startedAt: Number(meta.startedAt) || Date.parse(started) || (Number(started) > 0 ? Number(started) * 1000 : 0),
        heartbeatAt: Number(lease) || Date.parse(hbIso) || 0,
        running: [],
        processed: Number(processed) || 0,
        failed: Number(failed) || 0,
      };
      if (meta.rss !== undefined && Number.isFinite(Number(meta.rss))) info.rss = Number(meta.rss);
      const live = new Map(pairs(running).map(([jid, v]) => [jid, parseJson(v) as { since?: unknown; childPid?: unknown; rss?: unknown } | undefined]));
      for (const [jid, v] of pairs(processing)) {
        const c = parseClaimed(v);
        if (!c) continue;
        const r = live.get(jid);
        info.running.push({
          job: jobFromPayload(c.payload, c.queue, jid, c.since),
          since: num(r?.since, c.since),
          childPid: typeof r?.childPid === 'number' ? r.childPid : null,
          ...(typeof r?.rss === 'number' ? { rss: r.rss } : {}),
        });
      }
      if (info.running.length === 0 && workingOn && processing.length === 0 && !meta.host) {
        // A Ruby Resque worker: its one job, from resque:worker:W.
        const j = parseJson(workingOn) as { queue?: unknown; run_at?: unknown; payload?: unknown } | undefined;
        if (j && typeof j.queue === 'string' && j.payload && typeof j.payload === 'object') {
          const since = Date.parse(String(j.run_at)) || 0;
          info.running.push({ job: jobFromPayload(JSON.stringify(j.payload), j.queue, '', since), since, childPid: null });
        }
      }
      info.running.sort((a, b) => a.since - b.since);
      return info;
    });
  }

  async failed(offset: number, limit: number): Promise<Array<FailureRecord & { id: string }>> {
    if (limit <= 0) return [];
    const start = Math.max(0, Math.floor(offset));
    const entries = await this.client().lrange(this.prefix + 'failed', start, start + Math.floor(limit) - 1);
    return entries.map((e) => this.failureFrom(e));
  }

  private failureFrom(entry: string): FailureRecord & { id: string } {
    const f = (parseJson(entry) ?? {}) as Record<string, unknown>;
    const ux = (f.unixproc && typeof f.unixproc === 'object' ? f.unixproc : {}) as { failure?: unknown; failedAt?: unknown; job?: unknown };
    const id = typeof ux.failure === 'string' ? ux.failure : createHash('sha1').update(entry).digest('hex');
    const failedAt = num(ux.failedAt, Date.parse(String(f.failed_at)) || 0);
    const queue = typeof f.queue === 'string' ? f.queue : '';
    const payload = f.payload && typeof f.payload === 'object' ? JSON.stringify(f.payload) : '{}';
    const job = jobFromPayload(payload, queue, typeof ux.job === 'string' ? ux.job : id, failedAt);
    return {
      id,
      job,
      error: typeof f.error === 'string' ? f.error : String(f.error ?? ''),
      exception: typeof f.exception === 'string' ? f.exception : String(f.exception ?? ''),
      backtrace: Array.isArray(f.backtrace) ? f.backtrace.map(String) : [],
      worker: typeof f.worker === 'string' ? f.worker : '',
      failedAt,
    };
  }

  /** The takeFailures arguments that put one failure's job back, attempts reset. */
  private retryArgs(entry: string): Array<string | number> {
    const rec = this.failureFrom(entry);
    const f = (parseJson(entry) ?? {}) as Record<string, unknown>;
    const ux = (f.unixproc && typeof f.unixproc === 'object' ? f.unixproc : {}) as { job?: unknown; raw?: unknown };
    const now = Date.now();
    let payload: string;
    let jobId = '';
    if (typeof ux.raw === 'string') {
      payload = ux.raw; // not a job: back exactly as it was found
    } else if (typeof ux.job === 'string') {
      jobId = ux.job;
      payload = encodePayload({ ...rec.job, id: jobId, attempt: 0, runAt: now });
    } else {
      // Resque's or node-resque's failure: requeued as Resque::Failure.requeue does.
      payload = JSON.stringify(f.payload && typeof f.payload === 'object' ? f.payload : { class: rec.job.name, args: rec.job.args });
    }
    return [entry, rec.id, 'retry', rec.job.queue || 'default', payload, jobId, jobId ? (rec.job.unique ?? '') : ''];
  }

  async retry(failureId: string): Promise<boolean> {
    const entry = (await this.run('findFailure', failureId)) as string | null;
    if (entry === null) return false;
    return (await this.run('takeFailures', Date.now(), 1, ...this.retryArgs(entry))) === 1;
  }

  async retryAll(): Promise<number> {
    // Only the failures there now: jobs that fail again meanwhile are not retried in a loop.
    let left = await this.client().llen(this.prefix + 'failed');
    let total = 0;
    while (left > 0) {
      const entries = await this.client().lrange(this.prefix + 'failed', 0, Math.min(left, 100) - 1);
      if (entries.length === 0) break;
      const args: Array<string | number> = [Date.now(), entries.length];
      for (const e of entries) args.push(...this.retryArgs(e));
      total += Number(await this.run('takeFailures', ...args));
      // Entries not taken were taken by another caller: gone from the head all the same.
      left -= entries.length;
    }
    return total;
  }

  async removeFailure(failureId: string): Promise<boolean> {
    const entry = (await this.run('findFailure', failureId)) as string | null;
    if (entry === null) return false;
    const rec = this.failureFrom(entry);
    const f = (parseJson(entry) ?? {}) as { unixproc?: { job?: unknown } };
    const jobId = typeof f.unixproc?.job === 'string' ? f.unixproc.job : '';
    return (await this.run('takeFailures', Date.now(), 1, entry, rec.id, 'remove', '', '', jobId, '')) === 1;
  }

  async clear(queue: string): Promise<number> {
    return Number(await this.run('clear', queue));
  }

  async job(id: string): Promise<(JobRecord & { state: JobState }) | null> {
    const h = await this.client().hgetall(this.prefix + 'unixproc:job:' + id);
    if (!h.state || !h.payload) return null;
    const job = jobFromPayload(h.payload, h.queue ?? '', id, 0);
    // Due but not yet moved into its queue (claim() moves it): runnable, so pending.
    const state = h.state === 'delayed' && job.runAt <= Date.now() ? 'pending' : (h.state as JobState);
    return { ...job, id, state };
  }

  async minutes(since: number): Promise<MinuteCount[]> {
    const r = (await this.run('minutes', since)) as Array<string | number>;
    const out: MinuteCount[] = [];
    for (let i = 0; i + 2 < r.length; i += 3) out.push({ minute: Number(r[i]), done: Number(r[i + 1]), failed: Number(r[i + 2]) });
    return out;
  }

  async delayed(offset: number, limit: number): Promise<JobRecord[]> {
    pageArgs(offset, limit, 'delayed');
    if (limit === 0) return [];
    const r = (await this.run('delayed', Date.now(), offset, limit)) as string[];
    const out: JobRecord[] = [];
    for (let i = 0; i + 2 < r.length; i += 3) out.push({ ...jobFromPayload(r[i + 2], r[i + 1], r[i], 0), id: r[i] });
    return out;
  }

  async publishSchedules(defs: Array<Omit<ScheduleRecord, 'lastTick' | 'lastJobId' | 'updatedAt' | 'firstPublishedAt'>>): Promise<void> {
    if (!Array.isArray(defs)) throw new TypeError(`publishSchedules: defs must be an array, got ${String(defs)}`);
    if (defs.length === 0) return;
    const args: Array<string | number> = [Date.now(), defs.length];
    defs.forEach((d, i) => {
      const at = `publishSchedules: defs[${i}]`;
      if (typeof d !== 'object' || d === null) throw new TypeError(`${at} must be an object, got ${String(d)}`);
      for (const f of ['name', 'cron', 'job', 'queue'] as const) {
        if (typeof d[f] !== 'string' || d[f] === '') throw new TypeError(`${at}.${f} must be a non-empty string, got ${JSON.stringify(d[f])}`);
      }
      if (!Array.isArray(d.args)) throw new TypeError(`${at}.args must be an array, got ${JSON.stringify(d.args)}`);
      if (d.timezone !== null && typeof d.timezone !== 'string') throw new TypeError(`${at}.timezone must be a string or null, got ${JSON.stringify(d.timezone)}`);
      args.push(d.name, d.cron, d.timezone ?? '', d.job, JSON.stringify(d.args), d.queue);
    });
    await this.run('publishSchedules', ...args);
  }

  async enqueueTick(name: string, tick: number, spec: EnqueueSpec): Promise<string | null> {
    if (typeof name !== 'string' || name === '') throw new TypeError(`enqueueTick: name must be a non-empty string, got ${JSON.stringify(name)}`);
    if (typeof tick !== 'number' || !Number.isFinite(tick)) throw new TypeError(`enqueueTick: tick must be a finite number (ms), got ${String(tick)}`);
    const now = Date.now();
    const [head, tail] = payloadAround(spec, now);
    try {
      const id = (await this.run('enqueueTick', now, name, Math.round(tick), callToken(), spec.queue, Math.max(spec.runAt, now), spec.unique ?? '', head, tail)) as string | null;
      return id ?? null;
    } catch (err) {
      const msg = (err as Error).message ?? '';
      if (msg.startsWith('NOSCHEDULE ')) throw new Error(`enqueueTick: ${msg.slice('NOSCHEDULE '.length)} in ${this.url}`);
      throw err;
    }
  }

  async schedules(): Promise<ScheduleRecord[]> {
    const rows = (await this.run('schedules')) as Array<[string, string[]]>;
    return rows.map(([name, flat]) => {
      const h = Object.fromEntries(pairs(flat));
      const args = parseJson(h.args ?? '[]');
      const tick = h.lastTick === undefined ? null : Number(h.lastTick);
      return {
        name,
        cron: h.cron ?? '',
        job: h.job ?? '',
        args: Array.isArray(args) ? args : [],
        queue: h.queue ?? '',
        timezone: h.timezone ? h.timezone : null,
        lastTick: tick !== null && Number.isFinite(tick) ? tick : null,
        lastJobId: h.lastJobId ? h.lastJobId : null,
        updatedAt: Number(h.updatedAt) || 0,
        firstPublishedAt: Number(h.firstPublishedAt) || 0,
      };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.waiters]) w.resolve();
    live.delete(this);
    const conns = [this.main, this.sub].filter((c): c is Redis => c !== undefined);
    this.main = this.sub = this.subReady = undefined;
    if (this.pid !== process.pid) {
      for (const c of conns) freeze(c); // the parent's: never QUIT them from here
      return;
    }
    await Promise.all(conns.map((c) => quit(c)));
  }
}

/** QUIT when connected (waiting at most a second), else just drop the connection. */
async function quit(c: Redis): Promise<void> {
  if (c.status !== 'ready') {
    c.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    c.quit().catch(noop),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1000);
    }),
  ]);
  clearTimeout(timer);
  if ((c.status as string) !== 'end') c.disconnect();
}

/**
 * In a forked child, makes the child's copy of a parent's ioredis client inert without
 * touching the parent's connection (call it from unixproc's onForkChild). The backend
 * does this to its own connections; this is for clients an application made itself.
 */
export function dropInheritedClient(client: Redis): void {
  freeze(client);
}

/** Resque's worker id for a worker: "host:pid:queue1,queue2". */
export function resqueWorkerId(queues: string[], pid: number = process.pid, host: string = hostname()): string {
  return `${host}:${pid}:${queues.join(',')}`;
}
