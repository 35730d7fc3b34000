-- KEYS: (cache key, version key) pairs. Removes each cache key whose version key holds a
-- saved version (> 0: the database has that vCon), atomically with that check; keys
-- without one (a conserver's working copy not saved yet) and the version keys stay.
-- Returns how many keys it removed.
local removed = 0
for i = 1, #KEYS, 2 do
  local version = tonumber(redis.call('GET', KEYS[i + 1])) or 0
  if version > 0 then removed = removed + redis.call('UNLINK', KEYS[i]) end
end
return removed
