-- Shared by every scenario script: counts responses by status (>= 300) per thread and prints
-- one machine-readable line at the end, which bench/harness.py parses:
--   BENCH_JSON {"requests":..., "duration_us":..., "p50_us":..., "p99_us":..., ...}
-- A scenario script loads it with
--   dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
-- and may still define request()/init() itself, and on_response(status, headers, body) to see
-- every response; it must not redefine response() or done().

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
  if status >= 300 then
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
  end
  if on_response then on_response(status, headers, body) end
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for code, n in pairs(counts) do
      merged[code] = (merged[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    table.insert(parts, string.format('"%s":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status, table.concat(parts, ",")))
end
