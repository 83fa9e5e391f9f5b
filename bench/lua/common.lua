-- Helpers for the scenario scripts: reading the files bench/run.py writes.

local M = {}

-- The lines of a file, without blank lines; fails loudly if the file is missing or empty.
function M.lines(path)
  assert(path and path ~= "", "a file path is required (see bench/run.py)")
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(out, line) end
  end
  assert(#out > 0, "no lines in " .. path)
  return out
end

-- Fields separated by single spaces (tokens, paths, emails and ETags contain none).
function M.fields(line)
  local out = {}
  for part in string.gmatch(line, "[^ ]+") do table.insert(out, part) end
  return out
end

-- The bearer tokens: BENCH_TOKEN (one), else BENCH_TOKEN_FILE (first field of each line).
function M.tokens()
  local one = os.getenv("BENCH_TOKEN")
  if one and one ~= "" then return { one } end
  local out = {}
  for _, line in ipairs(M.lines(os.getenv("BENCH_TOKEN_FILE"))) do
    table.insert(out, M.fields(line)[1])
  end
  return out
end

function M.url_encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

return M
