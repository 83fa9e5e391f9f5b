-- PATCH with If-Match, keeping each target's ETag current.
--   BENCH_TARGETS_FILE: lines "<token> <path> <etag>" (one task per line, its owner's token).
--   BENCH_BODY: the JSON body; "%d" in it becomes a request counter.
-- The response's ETag replaces the target's; the target is found by the task id in the JSON
-- body ("id"), which must be the last segment of the path. Keep targets >> connections so two
-- requests never race on one task (a race shows up as 412 in the error column).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local targets = {}
local by_id = {}
local body
local n = 0

function init(args)
  body = os.getenv("BENCH_BODY") or '{"title": "Edited %d"}'
  for _, line in ipairs(common.lines(os.getenv("BENCH_TARGETS_FILE"))) do
    local f = common.fields(line)
    local target = { token = f[1], path = f[2], etag = f[3] }
    table.insert(targets, target)
    by_id[string.match(f[2], "([^/]+)$")] = target
  end
end

function request()
  n = n + 1
  local t = targets[(n % #targets) + 1]
  return wrk.format("PATCH", t.path, {
    ["Authorization"] = "Bearer " .. t.token,
    ["Content-Type"] = "application/json",
    ["If-Match"] = t.etag,
  }, string.format(body, n))
end

function on_response(status, headers, body)
  if status ~= 200 then return end
  local id = string.match(body, '"id"%s*:%s*"([^"]+)"')
  local etag = headers["etag"] or headers["ETag"] or headers["Etag"]
  local t = id and by_id[id]
  if t and etag then t.etag = etag end
end
