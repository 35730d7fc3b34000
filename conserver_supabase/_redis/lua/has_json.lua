-- Returns 1 when the server runs the RedisJSON module.
local reply = redis.pcall('JSON.TYPE', KEYS[1])
if type(reply) == 'table' and reply.err then
  if string.find(string.lower(tostring(reply.err)), 'unknown', 1, true) then return 0 end
end
return 1
