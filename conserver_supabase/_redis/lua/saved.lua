-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3] its head key. 1 when the key holds
-- a vCon a save put there (a version on record, not a tombstone), else 0: a working copy
-- the conserver holds does not prove the vCon is in the database, nor a key the database
-- changed since (its head key: another writer may have deleted it).
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'ReJSON-RL' and kind ~= 'string' then return 0 end
local version = tonumber(redis.call('GET', KEYS[2])) or 0
if version > 0 and redis.call('EXISTS', KEYS[3]) == 0 then return 1 end
return 0
