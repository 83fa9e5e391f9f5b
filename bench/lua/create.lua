-- POST a JSON body with a bearer token (create a task), rotating over the users.
--   BENCH_TOKEN or BENCH_TOKEN_FILE: the tokens.
--   BENCH_BODY: the JSON body; "%d" in it becomes a request counter (unique titles).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
local common = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local tokens, body, headers
local n = 0

function init(args)
  tokens = common.tokens()
  body = os.getenv("BENCH_BODY") or '{"title": "Benchmark task %d"}'
  headers = {}
  for i, token in ipairs(tokens) do
    headers[i] = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  end
end

function request()
  n = n + 1
  return wrk.format("POST", nil, headers[(n % #tokens) + 1], string.format(body, n))
end
