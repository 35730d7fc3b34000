-- One change of the change log (conserver_vcon_feed_poll), applied to one vCon's keys.
-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3] its head key. ARGV[1] the head
-- version after the change, ARGV[2] op (save|rows|delete), ARGV[3] TTL seconds, ARGV[4]
-- '1' when the cache key is where the conserver keeps its working copies (vcon:).
--
-- Applying a change twice, or after a newer one, does nothing. Returns 0 when nothing was
-- needed (what is on record is as new: this Redis got the save itself, or the change came
-- before), 1 when only the version key was set (no key: a read from before the change can
-- no longer fill it), 2 when the key was removed (it is not a working copy: vcon-mcp's
-- string, or a cache under another prefix), 3 when the head key was set: a RedisJSON key
-- under vcon: may be a working copy a link is editing right now, so it is neither removed
-- nor rewritten; our reads miss it (lua/read.lua), exists() asks the database
-- (lua/saved.lua), and the next save or fill at this version or later clears the head.
local version = tonumber(ARGV[1])
local deleted = ARGV[2] == 'delete'
local mark = version
if deleted then mark = -version end
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
-- The version rule (fence.lua), and not what is on record already: n, the cache knows
-- version n; -n, deleted at n, or our save of n found a link's newer working copy
-- (lua/write.lua): either way this Redis heard of version n.
local kind_of_change = 'document'
if deleted then kind_of_change = 'delete' end
if not fence(version, recorded, kind_of_change) or math.abs(recorded) == version then
  return 0
end
local head = tonumber(redis.call('GET', KEYS[3])) or 0
if math.abs(head) >= version then return 0 end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  redis.call('SET', KEYS[2], mark, 'EX', ARGV[3])
  redis.call('DEL', KEYS[3])
  return 1
end
if kind == 'string' or ARGV[4] ~= '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], mark, 'EX', ARGV[3])
  redis.call('DEL', KEYS[3])
  return 2
end
redis.call('SET', KEYS[3], mark, 'EX', ARGV[3])
return 3
