-- Refresh-token rotation under wrk (loadtest/bound.sh): one queue of refresh tokens per wrk
-- thread, seeded from a file (one token per line); each request spends the oldest token and each
-- answer queues its successor, so every token is presented once. Run with one thread and a seed
-- of more tokens than connections (wrk asks for one request more than it has connections before
-- the first answer):
--   wrk -t1 -c64 -d8s -s loadtest/refresh.lua http://127.0.0.1:4444 -- SEED_FILE "Basic <base64 id:secret>"
local queue, head, tail = {}, 1, 0
local basic

init = function(args)
  basic = args[2]
  for line in io.lines(args[1]) do
    tail = tail + 1
    queue[tail] = line
  end
end

request = function()
  local token = queue[head]
  if token == nil then
    -- An empty queue (answers that carried no token): the request fails and wrk counts it.
    token = "exhausted"
  else
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", "/oauth2/token",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = basic },
    "grant_type=refresh_token&refresh_token=" .. token)
end

response = function(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then
    tail = tail + 1
    queue[tail] = token
  end
end

-- One line bound.sh reads: requests, errors (non-2xx/3xx included), duration in µs.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration))
end
