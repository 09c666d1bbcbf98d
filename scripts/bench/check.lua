-- wrk script: POST /check-access with the bodies of a JSON-lines file, round robin, each
-- thread starting at its own offset; or, given a batch size, POST /check-access/batch with
-- that many consecutive lines to a request. Usage:
--   wrk ... -s check.lua URL -- requests.jsonl [batch-size]
local bodies = {}
local next_body = 0
local headers = { ["Content-Type"] = "application/json" }
local path = "/check-access"

function init(args)
  local size = tonumber(args[2])
  local checks = {}
  for line in io.lines(args[1]) do
    -- The "expected" field is for the checker, not for the server.
    local check = line:gsub(',"expected":%a+', '')
    if size then
      checks[#checks + 1] = check
      if #checks == size then
        bodies[#bodies + 1] = '{"checks":[' .. table.concat(checks, ",") .. ']}'
        checks = {}
      end
    else
      bodies[#bodies + 1] = check
    end
  end
  if size then path = "/check-access/batch" end
  next_body = math.random(#bodies)
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", path, headers, bodies[next_body])
end
