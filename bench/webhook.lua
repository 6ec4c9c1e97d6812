-- wrk script for bench/events.py: POST a fixed signed body, each request with its own delivery id.
--   wrk -s bench/webhook.lua URL -- <path> <body> <signature header value> <run tag>
-- The body-only signature (X-Hub-Signature-256) does not cover the delivery id, so one
-- signature serves every request while the receiver still stores each delivery once.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  path, body, signature, tag = args[1], args[2], args[3], args[4]
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = signature,
    ["X-Delivery-Id"] = tag .. "-" .. tid .. "-" .. counter,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, "p50_ms": %.2f, "p99_ms": %.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
