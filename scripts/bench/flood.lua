-- wrk script: GET /check-access naming a new made-up tenant every time, so that no two
-- requests of a run name the same one. Usage: wrk ... -s flood.lua URL -- RUN
-- (RUN, a number, keeps the names of successive runs apart.)
local run = "0"
local sent = 0
local thread_id = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  run = args[1] or "0"
  thread_id = id
end

function request()
  sent = sent + 1
  return wrk.format("GET", "/check-access?tenant=flood-" .. run .. "-" .. thread_id .. "-" .. sent
    .. "&user=u&resource=r&action=a")
end
