-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3] its head key. Returns the document
-- as JSON text, or nil when the key is absent, or when the head key says the database
-- changed the vCon since (the change feed, lua/feed.lua: the key may be a working copy, so
-- it was left; the database answers instead). Reads the version key too, so that LRU/LFU eviction does not
-- drop it, cold, before the document it guards (a read counts as an access, as TOUCH
-- would; GET also runs on every Redis and every fake). ARGV[1] 'versioned' (the save
-- hook's read of the working copy): returns {text, what the version key holds} instead,
-- read together, for the touch after the save (lua/write.lua).
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'ReJSON-RL' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE cache key ' .. KEYS[1] .. ' holds a ' .. kind)
end
local recorded = redis.call('GET', KEYS[2])
local text
if kind == 'ReJSON-RL' then text = redis.call('JSON.GET', KEYS[1])
else text = redis.call('GET', KEYS[1]) end
if ARGV[1] == 'versioned' then return {text, tostring(tonumber(recorded) or 0)} end
if redis.call('EXISTS', KEYS[3]) == 1 then return false end
return text
