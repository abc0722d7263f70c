-- wrk script for bench/consumer_path.py: each request a uniformly random demo label,
-- from a random client address (X-Forwarded-For through the API's trusted loopback proxy).
-- Set by the bench: SERIALS_FILE (one serial a line), KIND (get|page|scan|hello), GTIN.
local serials = {}
local kind = os.getenv("KIND") or "get"
local gtin = os.getenv("GTIN") or ""
local body = '{"channel": "web", "region": "440300"}'

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0))
  local f = os.getenv("SERIALS_FILE")
  if f and #f > 0 then
    for line in io.lines(f) do
      if #line > 0 then serials[#serials + 1] = line end
    end
  end
end

function request()
  local xff = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  if kind == "hello" then
    return wrk.format("GET", "/hello", {["X-Forwarded-For"] = xff})
  end
  local serial = serials[math.random(1, #serials)]
  if kind == "page" then
    return wrk.format("GET", "/01/" .. gtin .. "/21/" .. serial,
      {["X-Forwarded-For"] = xff, ["Accept"] = "text/html", ["Accept-Language"] = "zh-CN"})
  elseif kind == "scan" then
    return wrk.format("POST", "/v1/labels/" .. serial .. "/scans",
      {["X-Forwarded-For"] = xff, ["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", "/v1/labels/" .. serial, {["X-Forwarded-For"] = xff, ["Accept"] = "application/json"})
end

function done(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %.3f, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
