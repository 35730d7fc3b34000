-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3] its head key; ARGV[1] the delete's version (0: the vCon
-- was not in the database), ARGV[2] TTL seconds. Returns 1 when the key was removed.
-- With a version: unless the fence refuses it (a save committed after the delete is
-- cached already), the key goes and the tombstone -version stays for the TTL, so no
-- save committed before the delete (and no read from before it) can bring the vCon
-- back, and any save after it can. Without one, only the key goes: the version on
-- record still guards against late writes of older versions.
local version = tonumber(ARGV[1])
if version == 0 then return redis.call('DEL', KEYS[1]) end
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
if not fence(version, recorded, 'delete') then return 0 end
local existed = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], -version, 'EX', ARGV[2])
redis.call('DEL', KEYS[3]) -- the delete is newer than any change the head recorded
return existed
