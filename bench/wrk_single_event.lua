-- Single-event POSTs for bench/ingest.py's (d) under wrk: every request a new event of a
-- random customer, the same shape as the Python clients send.
-- Arguments (after `--`): API key, number of customers (cust-0 …), a prefix for the ids.
local key, customers, prefix
local counter = 0
local threads = 0
local models = {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"}
local features = {"reply", "summary", "triage"}

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  key, customers, prefix = args[1], tonumber(args[2]), args[3]
  math.randomseed(thread_number)
end

function request()
  counter = counter + 1
  local input_tokens = math.random(200, 20000)
  local body = string.format(
    '{"id":"%s-%d-%d","customer":"cust-%d","provider":"openai","model":"%s",' ..
    '"input_tokens":%d,"output_tokens":%d,"feature":"%s","user":"user-%d"}',
    prefix, thread_number, counter, math.random(0, customers - 1),
    models[math.random(#models)], input_tokens, math.random(10, 2000),
    features[math.random(#features)], math.random(0, 999))
  return wrk.format("POST", "/v1/events",
    {["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json"}, body)
end
