-- GET with a bearer token, rotating over the signed-in users.
--   BENCH_TOKEN or BENCH_TOKEN_FILE: one token, or lines "<token>" or "<token> <path>".
-- A line with a path sends that path (e.g. one task of that token's user); otherwise the path
-- of the URL given to wrk. Requests are formatted once, in init(); request() only rotates.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local requests = {}
local n = 0

function init(args)
  local lines
  local one = os.getenv("BENCH_TOKEN")
  if one and one ~= "" then lines = { one } else lines = common.lines(os.getenv("BENCH_TOKEN_FILE")) end
  for _, line in ipairs(lines) do
    local f = common.fields(line)
    table.insert(requests, wrk.format("GET", f[2], { ["Authorization"] = "Bearer " .. f[1] }))
  end
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
