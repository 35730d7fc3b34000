-- The version rule: the one place it is written. Every script that writes a cached vCon
-- or its version record starts with this file.
--
-- recorded: what the vCon's version key holds. n > 0: the cache knows the database's
-- version n (saved or read); -n: the database is at version n and the cache does not
-- hold it: the vCon was deleted at version n (a tombstone), or the key holds a working
-- copy a link wrote after a save read it (lua/write.lua, touch); 0: nothing on record.
-- version: the database version of what wants in; 0 when unknown (a vCon another
-- writer made, with no version of ours). kind: 'delete' for a delete, else a document
-- (a save, or a read from the database).
--
-- Every save adds one to the version, a delete takes the next one, and a save after a
-- delete continues from the delete's (conserver_vcon_remove): what committed later has the
-- higher version. So nothing older than what the cache knows may replace it: a document
-- only if it is newer than -n (at least as new as a saved version: the same save
-- twice), a delete if it is at least as new as anything on record (a retried delete).
-- An unknown version only where nothing is on record.
local function fence(version, recorded, kind)
  if version == 0 then return recorded == 0 end
  if recorded < 0 and kind ~= 'delete' then return version > -recorded end
  return math.abs(recorded) <= version
end
