-- KEYS[1] cache key, KEYS[2] its version key, KEYS[3] its head key, KEYS[4..] chain
-- lists. ARGV[1] document (JSON text), ARGV[2] TTL seconds, ARGV[3] format for a new key
-- (auto|json|string), ARGV[4] mode, ARGV[5] uuid, ARGV[6] the version saved or read (0: unknown), ARGV[7]
-- (touch) what the version key held when the working copy was read, ARGV[8] (touch;
-- '' or absent: none) the exact text read when ARGV[1] is not it: the database saved the
-- copy merged with another writer's changes (ARGV[1]). ARGV[9] '0' when RedisJSON would not
-- hold the document's numbers exactly (_redis/_numbers.py), else '1' or absent.
--
-- Modes: overwrite (after a save), fill (after a database read: only an absent key),
-- touch (the conserver's save hook: the key is the working copy it read and saved, and
-- ARGV[1] is the exact text it read), refresh (only a key that exists: a bulk import
-- keeps the cache right without filling it), known (a read replica's answer: fill only
-- where a version is on record, which proves the answer is not older).
--
-- touch never stamps its version on a body it did not save:
-- * the key holds the text read: TTL renewed, version stamped; when the fence refuses
--   the version and a newer one is on record as -n (the key does not hold version n),
--   the key goes: what this save read is older than the database;
-- * the key vanished: the saved document is written;
-- * the key changed after the read and a saved version appeared on record since: a save
--   or fill of ours wrote an older database version there; the saved document replaces
--   it;
-- * the key changed and no saved version appeared: a link wrote a newer working copy
--   the database does not have yet. It is kept (TTL renewed), and -version is put on
--   record (see fence.lua): nothing older may be written or stamped there, and the
--   link's own save, newer, stamps it.
--
-- The head key (lua/feed.lua) records a newer database version (or -n: deleted at n) the
-- change feed found while the key held an older body it may not replace (a possible
-- working copy): nothing older than it may be written (it joins the fence), and a
-- version at least as new that reaches the version key clears it.
--
-- A document RedisJSON would not hold exactly is never written as RedisJSON by a fill
-- (fill, known): the database answers it, and the head key is set to its version, so
-- that a copy the conserver caches there itself is not taken for our answer. Where a
-- save writes it (overwrite, refresh, touch: the conserver may be about to process it,
-- and RedisJSON's rendition is what it gets), the head key is set to the version
-- written. Either way our reads and exists() ask the database (lua/read.lua,
-- lua/saved.lua): one answer per vCon, the database's. The mark lives twice the TTL. A
-- number RedisJSON refuses outright (an integer beyond a double) removes the key and
-- marks it. A string key holds the text as it is: no such limit.
--
-- Returns 1 when the document was written, 0 when the key was left as it was, -1 when
-- the fence refused it (older than what is on record; for "known": read the primary).
-- Every key's type is checked before anything is written, so an error reply means
-- nothing was written.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' and kind ~= 'ReJSON-RL' then
  return redis.error_reply('WRONGTYPE cache key ' .. KEYS[1] .. ' holds a ' .. kind)
end
for i = 4, #KEYS do
  local list_kind = redis.call('TYPE', KEYS[i])['ok']
  if list_kind ~= 'none' and list_kind ~= 'list' then
    return redis.error_reply('WRONGTYPE chain list ' .. KEYS[i] .. ' holds a ' .. list_kind)
  end
end
local mode = ARGV[4]
local read_text = ARGV[8]
if read_text == '' then read_text = nil end
local version = tonumber(ARGV[6])
local recorded = tonumber(redis.call('GET', KEYS[2])) or 0
local head = tonumber(redis.call('GET', KEYS[3]))
local allowed = fence(version, recorded, 'document')
if head and math.abs(head) > math.abs(recorded) then
  allowed = allowed and fence(version, head, 'document')
end
local write
-- touch: stale (the key holds what this save read, and a newer version of the database
-- is on record: remove it) or unsaved (a link changed the key after the read: keep it).
local stale, unsaved = false, false
-- The key now holds RedisJSON's rendition of a document it does not hold exactly.
local rounded = false
-- A version already on record was written here (a fill of it, or this same save): what
-- the key holds now is that version or a link's newer working copy; neither is replaced.
local again = kind ~= 'none' and version > 0 and recorded == version
if mode == 'refresh' then
  write = kind ~= 'none' and allowed and not again
elseif mode == 'known' then
  write = kind == 'none' and allowed and recorded ~= 0
elseif mode == 'touch' and kind ~= 'none' then
  local current
  if kind == 'ReJSON-RL' then
    current = redis.call('JSON.GET', KEYS[1])
  else
    current = redis.call('GET', KEYS[1])
  end
  if current == (read_text or ARGV[1]) then
    -- the text read: renewed, or (read_text: the database merged it with another writer's
    -- changes) replaced by what was saved
    write = read_text ~= nil and allowed
    stale = not allowed and version > 0 and recorded < 0
  else
    -- Changed after the read: by a save or fill of ours if a saved version appeared on
    -- record since (its body is in the database, older than this save), else by a link.
    write = allowed and recorded > 0 and recorded ~= (tonumber(ARGV[7]) or 0)
    unsaved = allowed and not write and version > 0
  end
else
  write = (kind == 'none' or mode == 'overwrite') and allowed and not again
end
-- A document RedisJSON would not hold exactly, where a fill would write RedisJSON: not
-- written; the version is recorded and the key marked (head = version), so that what a
-- conserver caches there itself after reading us (its own JSON.SET on its miss) is not
-- taken for our answer either.
local inexact = ARGV[9] == '0'
local json_target = kind == 'ReJSON-RL' or (kind == 'none' and ARGV[3] ~= 'string')
local mark_only = false
if inexact and json_target and (mode == 'fill' or mode == 'known') then
  mark_only = write and version > 0
  write = false
end
-- A string where new keys are RedisJSON (cache_format auto or json): vcon-mcp's SETEX of
-- its rendition, or a string cache from before. The conserver reads this key with
-- JSON.GET, so a write replaces it with RedisJSON, in this script, when the server has
-- the module (JSON.TYPE on a string: WRONGTYPE with it, an unknown command without).
if write and kind == 'string' and ARGV[3] ~= 'string' then
  local probe = redis.pcall('JSON.TYPE', KEYS[1])
  local err = type(probe) == 'table' and probe.err
  if not (err and string.find(string.lower(tostring(err)), 'unknown', 1, true)) then
    redis.call('DEL', KEYS[1])
    kind = 'none'
  end
end
if stale then
  redis.call('DEL', KEYS[1])
elseif write then
  if kind == 'ReJSON-RL' or (kind == 'none' and ARGV[3] ~= 'string') then
    local reply = redis.pcall('JSON.SET', KEYS[1], '$', ARGV[1])
    if type(reply) == 'table' and reply.err then
      local err = string.lower(tostring(reply.err))
      local missing = string.find(err, 'unknown', 1, true)
      if string.find(err, 'out of range', 1, true) and version > 0 then
        -- A number RedisJSON cannot hold at all (an integer beyond a double): what the
        -- key held is older than the database; it goes, and the database answers.
        redis.call('DEL', KEYS[1])
        write = false
        mark_only = true
      elseif not (missing and kind == 'none' and ARGV[3] == 'auto') then
        if missing then
          return redis.error_reply('ERR cache_format is json but Redis lacks RedisJSON')
        end
        return redis.error_reply(reply.err)
      else
        redis.call('SET', KEYS[1], ARGV[1])
      end
    else
      rounded = inexact
    end
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
end
if write or (mode == 'touch' and kind ~= 'none' and not stale) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local stamped = false
if unsaved then -- the database is at this version; the key holds something else
  redis.call('SET', KEYS[2], -version, 'EX', ARGV[2])
  stamped = true
elseif (write or mark_only or mode == 'touch' or mode == 'refresh') and version > 0 and allowed then
  redis.call('SET', KEYS[2], version, 'EX', ARGV[2])
  stamped = true
end
if (rounded or mark_only) and stamped then
  -- our reads ask the database (see above), for twice the TTL: longer than a copy the
  -- conserver caches itself with the same TTL a moment later
  redis.call('SET', KEYS[3], version, 'EX', 2 * tonumber(ARGV[2]))
elseif head and stamped and (write or mode == 'touch' or math.abs(head) ~= version) then
  -- a version at least as new reached the key (a refresh that wrote nothing leaves a
  -- mark of this same version: the key still holds what it marks)
  redis.call('DEL', KEYS[3])
end
for i = 4, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[5])
end
if write then return 1 end
if allowed then return 0 end
return -1
