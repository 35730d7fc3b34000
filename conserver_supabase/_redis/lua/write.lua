-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3..] chain lists. ARGV[1] document
-- (JSON text), ARGV[2] TTL seconds, ARGV[3] format for a new key (auto|json|string),
-- ARGV[4] mode, ARGV[5] uuid, ARGV[6] the version saved or read (0: unknown).
--
-- Modes: overwrite (after a save), fill (after a database read: only an absent key),
-- touch (the key already holds what was saved: renew its TTL, or write it if it
-- vanished), refresh (only a key that exists: a bulk import keeps the cache right
-- without filling it), known (a read replica's answer: fill only where a version is on
-- record, which proves the answer is not older).
--
-- Returns 1 when the document was written, 0 when the key was left as it was, -1 when
-- the fence refused it (older than what is on record; for "known": read the primary).
-- Every key's type is checked before anything is written, so an error reply means
-- nothing was written.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' and kind ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE cache key ' .. KEYS[1] .. ' holds a ' .. kind)
end
for i = 3, #KEYS do
  local list_kind = redis.call('TYPE', KEYS[i])['ok']
  if list_kind ~= 'none' and list_kind ~= 'list' then
    return redis.error_reply('WRONGTYPE chain list ' .. KEYS[i] .. ' holds a ' .. list_kind)
  end
end
local mode = ARGV[4]
local version = tonumber(ARGV[6])
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
local allowed = fence(version, recorded, 'document')
local write
if mode == 'refresh' then
  write = kind ~= 'none' and allowed
elseif mode == 'known' then
  write = kind == 'none' and allowed and recorded ~= 0
else
  write = (kind == 'none' or mode == 'overwrite') and allowed
end
if write then
  if kind == 'ReJSON-RL' or (kind == 'none' and ARGV[3] ~= 'string') then
    local reply = redis.pcall('JSON.SET', KEYS[1], '$', ARGV[1])
    if type(reply) == 'table' and reply.err then
      local missing = string.find(string.lower(tostring(reply.err)), 'unknown', 1, true)
      if not (missing and kind == 'none' and ARGV[3] == 'auto') then
        if missing then
          return redis.error_reply('ERR cache_format is json but Redis lacks RedisJSON')
        end
        return redis.error_reply(reply.err)
      end
      redis.call('SET', KEYS[1], ARGV[1])
    end
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
end
if write or (mode == 'touch' and kind ~= 'none') then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if (write or mode == 'touch' or mode == 'refresh') and version > 0 and allowed then
  redis.call('SET', KEYS[2], version, 'EX', ARGV[2])
end
for i = 3, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[5])
end
if write then return 1 end
if allowed then return 0 end
return -1
