-- POST /api/v1/auth/token (OAuth2 password form), rotating over the seeded users.
--   BENCH_USERS_FILE: lines "<email> <password>".
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local requests = {}
local n = 0

function init(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  for _, line in ipairs(common.lines(os.getenv("BENCH_USERS_FILE"))) do
    local f = common.fields(line)
    local form = "grant_type=password&username=" .. common.url_encode(f[1]) ..
      "&password=" .. common.url_encode(f[2])
    table.insert(requests, wrk.format("POST", nil, headers, form))
  end
end

function request()
  n = n + 1
  return requests[(n % #requests) + 1]
end
