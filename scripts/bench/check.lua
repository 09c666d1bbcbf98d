-- wrk script: POST /check-access with the bodies of a JSON-lines file, round robin, each
-- thread starting at its own offset. Usage: wrk ... -s check.lua URL -- requests.jsonl
local bodies = {}
local next_body = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(args[1]) do
    -- The "expected" field is for the checker, not for the server.
    bodies[#bodies + 1] = line:gsub(',"expected":%a+', '')
  end
  next_body = math.random(#bodies)
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/check-access", headers, bodies[next_body])
end
