-- Paced load for wrk: each connection waits about DELAY_MS (randomised 0.5-1.5x) between
-- requests; counts non-2xx answers; prints one JSON line at the end.
local delay_ms = tonumber(os.getenv("NOLOSS_DELAY_MS") or "30")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function delay()
  return math.floor(delay_ms * (0.5 + math.random()))
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    'NOLOSS {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
