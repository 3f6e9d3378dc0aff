package redisstore

import "github.com/redis/go-redis/v9"

// Each session is a hash at PREFIX s:ID with fields
//
//	d  data            v  version          l  lock id ("" when unlocked)
//	la locked at (ms)  c  created (ms)     i  idle timeout (ms)
//	dl deadline (ms)   e  expires (ms)     rn "1" on a renewed id
//
// and a PEXPIREAT at e, so Redis itself forgets an expired session. The store
// keeps its own metadata beside it, instead of keyspace notifications (which
// are lossy and off by default): PREFIX idx, a sorted set of live session ids
// scored by expiry (Sweep walks it to count expiries; Stats counts it), and
// PREFIX locks, the ids whose lock is held. Every time comes from Redis TIME,
// so all service processes share one clock. Every script is one atomic step;
// replies start with a status: ok, nf (not found), rn (renewed), ex (exists),
// lk (locked, then the lock age in ms), ll (lock lost), vm (version mismatch).

const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function n(x) return string.format('%.0f', x) end
local function load(key)
  local f = redis.call('HGETALL', key)
  if #f == 0 then return nil end
  local r = {}
  for i = 1, #f, 2 do r[f[i]] = f[i + 1] end
  for _, k in ipairs({'v', 'la', 'c', 'i', 'dl', 'e'}) do r[k] = tonumber(r[k]) or 0 end
  return r
end
-- live returns the session unless it is missing or (unless renewed_ok) renewed.
local function live(key, now, renewed_ok)
  local r = load(key)
  if not r or r.e <= now then return nil, 'nf' end
  if r.rn == '1' and not renewed_ok then return nil, 'rn' end
  return r
end
-- slide pushes the expiry to now+idle, capped by the deadline.
local function slide(key, idx, id, r, now)
  local e = math.min(now + r.i, r.dl)
  if e <= r.e then return end
  r.e = e
  redis.call('HSET', key, 'e', n(e))
  redis.call('PEXPIREAT', key, n(e))
  redis.call('ZADD', idx, n(e), id)
end
`

// KEYS: session, idx. ARGV: id, data, idle ms, max ms.
var createScript = redis.NewScript(prelude + `
local now = now_ms()
if live(KEYS[1], now, true) then return {'ex'} end
local idle, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local dl = now + max
local e = math.min(now + idle, dl)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', 1, 'l', '', 'la', 0, 'c', n(now), 'i', n(idle), 'dl', n(dl), 'e', n(e))
redis.call('PEXPIREAT', KEYS[1], n(e))
redis.call('ZADD', KEYS[2], n(e), ARGV[1])
return {'ok', now, e}
`)

// KEYS: session, idx. ARGV: id. Reply: ok data version lockid lockedAt now expires renewed.
var getScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, true)
if not r then return {st} end
local renewed = 0
if r.rn == '1' then renewed = 1 else slide(KEYS[1], KEYS[2], ARGV[1], r, now) end
return {'ok', r.d, r.v, r.l, r.la, now, r.e, renewed}
`)

// KEYS: session, idx, locks. ARGV: id, break after ms, new lock id.
// Reply: ok data version now expires broke.
var lockScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, false)
if not r then return {st} end
local broke = 0
if r.l ~= '' then
  local age = math.max(now - r.la, 0)
  if age < tonumber(ARGV[2]) then return {'lk', age} end
  broke = 1
end
redis.call('HSET', KEYS[1], 'l', ARGV[3], 'la', n(now))
redis.call('ZADD', KEYS[3], n(now), ARGV[1])
slide(KEYS[1], KEYS[2], ARGV[1], r, now)
return {'ok', r.d, r.v, now, r.e, broke}
`)

// KEYS: session, idx, locks. ARGV: id, data, lock id, version. Reply: ok version.
var putScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, false)
if not r then return {st} end
if ARGV[3] ~= '' and r.l ~= ARGV[3] then return {'ll'} end
if ARGV[3] == '' and r.l ~= '' then return {'lk', math.max(now - r.la, 0)} end
if ARGV[4] ~= '0' and tonumber(ARGV[4]) ~= r.v then return {'vm'} end
local v = r.v + 1
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'v', n(v), 'l', '', 'la', 0)
redis.call('ZREM', KEYS[3], ARGV[1])
slide(KEYS[1], KEYS[2], ARGV[1], r, now)
return {'ok', v}
`)

// KEYS: session, idx, locks. ARGV: id, lock id.
var unlockScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, false)
if not r then return {st} end
if ARGV[2] == '' or r.l ~= ARGV[2] then return {'ll'} end
redis.call('HSET', KEYS[1], 'l', '', 'la', 0)
redis.call('ZREM', KEYS[3], ARGV[1])
slide(KEYS[1], KEYS[2], ARGV[1], r, now)
return {'ok'}
`)

// KEYS: session, idx. ARGV: id.
var touchScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, false)
if not r then return {st} end
slide(KEYS[1], KEYS[2], ARGV[1], r, now)
return {'ok'}
`)

// KEYS: session, idx, locks. ARGV: id.
var deleteScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, true)
if not r then return {st} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'ok'}
`)

// KEYS: session, idx, locks, new session. ARGV: id, new id, grace ms.
var renewScript = redis.NewScript(prelude + `
local now = now_ms()
local r, st = live(KEYS[1], now, false)
if not r then return {st} end
if live(KEYS[4], now, true) then return {'ex'} end
local e = math.max(math.min(now + r.i, r.dl), r.e)
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'd', r.d, 'v', n(r.v), 'l', '', 'la', 0, 'c', n(r.c), 'i', n(r.i), 'dl', n(r.dl), 'e', n(e))
redis.call('PEXPIREAT', KEYS[4], n(e))
redis.call('ZADD', KEYS[2], n(e), ARGV[2])
local old = math.min(now + tonumber(ARGV[3]), r.e)
redis.call('HSET', KEYS[1], 'rn', '1', 'l', '', 'la', 0, 'e', n(old))
redis.call('PEXPIREAT', KEYS[1], n(old))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'ok'}
`)

// KEYS: idx, locks. ARGV: session key prefix, batch size. Reply: expired, examined.
var sweepScript = redis.NewScript(prelude + `
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', n(now), 'LIMIT', 0, tonumber(ARGV[2]))
local expired = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local e = tonumber(redis.call('HGET', key, 'e'))
  if e and e > now then
    redis.call('ZADD', KEYS[1], n(e), id)
  else
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    expired = expired + 1
  end
end
return {expired, #ids}
`)

// KEYS: idx, locks. ARGV: session key prefix. Reply: sessions, locked.
var statsScript = redis.NewScript(prelude + `
local now = now_ms()
local sessions = redis.call('ZCOUNT', KEYS[1], '(' .. n(now), '+inf')
local locked = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local e = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if e and e > now then locked = locked + 1 end
end
return {sessions, locked}
`)
