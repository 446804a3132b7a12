-- wrk script for bench/serve.py: request one route with a varying index, print a JSON summary.
--
-- Environment variables (bench/serve.py sets them):
--   BENCH_PATH     path with one %d for the index, e.g. /digits/%d or /digits/%d.png
--   BENCH_COUNT    indexes 0 to BENCH_COUNT - 1 are requested in turn
--   BENCH_METHOD   GET (default) or POST
--   BENCH_HX       "true" adds the header HX-Request: true
--   BENCH_BODIES   for POST: a file with one JSON body per line, sent in turn
--
-- Each wrk thread starts at a different offset, so threads do not request the same
-- index at the same moment.

local path_format = os.getenv("BENCH_PATH")
local count = tonumber(os.getenv("BENCH_COUNT") or "1")
local method = os.getenv("BENCH_METHOD") or "GET"
local headers = {}
if os.getenv("BENCH_HX") == "true" then
  headers["HX-Request"] = "true"
end

local bodies = {}
local bodies_file = os.getenv("BENCH_BODIES")
if bodies_file and bodies_file ~= "" then
  headers["Content-Type"] = "application/json"
  for line in io.lines(bodies_file) do
    bodies[#bodies + 1] = line
  end
  count = #bodies
end

local threads_started = 0

function setup(thread)
  thread:set("thread_number", threads_started)
  threads_started = threads_started + 1
end

local sent = 0

function request()
  local index = (sent + (thread_number or 0) * 7919) % count
  sent = sent + 1
  local body = nil
  if #bodies > 0 then
    body = bodies[index + 1]
  end
  return wrk.format(method, string.format(path_format, index), headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "latency_mean_us": %.1f, '
      .. '"latency_p50_us": %d, "latency_p90_us": %d, "latency_p99_us": %d, "latency_max_us": %d, '
      .. '"errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, '
      .. '"errors_timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
