-- A plain GET of the URL given to wrk, no headers: the floor and the sync/async comparison.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
