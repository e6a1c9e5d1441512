-- wrk script: POST progress updates for random students 1..STUDENTS over the three specializations.
local specs = { "PLAYER", "COACH", "INTERNSHIP" }
local students = tonumber(os.getenv("STUDENTS") or "10000")
local token = os.getenv("TOKEN")

request = function()
  local body = string.format('{"student_id":%d,"specialization_id":"%s","xp_change":%d}',
    math.random(1, students), specs[math.random(1, 3)], math.random(1, 100))
  return wrk.format("POST", "/api/v1/specializations/progress/update", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

local non2xx = 0
response = function(status)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.status + summary.errors.timeout))
end
