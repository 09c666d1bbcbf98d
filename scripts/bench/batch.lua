-- wrk script: POST /check-access/batch with the checks of a JSON-lines file, 100 to a batch
-- (consecutive lines, round robin), each thread starting at its own offset. Usage:
-- wrk ... -s batch.lua URL -- requests.jsonl
local batches = {}
local next_batch = 0
local headers = { ["Content-Type"] = "application/json" }
local size = 100

function init(args)
  local checks = {}
  for line in io.lines(args[1]) do
    -- The "expected" field is for the checker, not for the server.
    checks[#checks + 1] = line:gsub(',"expected":%a+', '')
    if #checks == size then
      batches[#batches + 1] = '{"checks":[' .. table.concat(checks, ",") .. ']}'
      checks = {}
    end
  end
  next_batch = math.random(#batches)
end

function request()
  next_batch = next_batch % #batches + 1
  return wrk.format("POST", "/check-access/batch", headers, batches[next_batch])
end
