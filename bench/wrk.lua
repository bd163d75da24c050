-- wrk script for the benchmark. Two modes, chosen by the first argument after `--`:
--
--   wrk -s wrk.lua URL -- cycle PATH BODIES_FILE
--       POST the lines of BODIES_FILE (one JSON body each) in turn, as fast as the connections go.
--   wrk -s wrk.lua URL -- keyed PATH BODIES_FILE
--       As cycle, each request with an Idempotency-Key of its own.
--   wrk -s wrk.lua URL -- paced PATH TEMPLATE_FILE OUT_FILE RATE ID_PREFIX
--       POST RATE requests a second in all (wrk's delay() spreads them over the connections),
--       each with its own device id (ID_PREFIX-<12 hex digits>, replacing the template's
--       placeholder id); write "device_id<TAB>wall-clock send time" for each to OUT_FILE.
--
-- Both print a WRK_RESULT line of JSON at the end. Requests are formatted in init where possible,
-- so the load generator spends little per request.
--
-- With --stop-after=SECONDS before the mode, wrk (whose -d counts whole seconds) stops as on
-- Ctrl-C at the first response once SECONDS have passed: a load shorter than a second that still
-- counts at least one response, however busy the machine.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
int getpid(void);
int kill(int pid, int sig);
]]
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
local SIGINT = 2
local STOP_AFTER = "--stop-after="
local PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
local KEY_SLOT = "KEY-SLOT"
local timespec = ffi.new("bench_timespec[1]")

local function clock(id)
   ffi.C.clock_gettime(id, timespec)
   return tonumber(timespec[0].tv_sec) + tonumber(timespec[0].tv_nsec) * 1e-9
end

local prepared, bodies, next_index = {}, {}, 1
local path, head, tail, out, rate, prefix
local sent, started = 0, nil

local function read_file(name)
   local file = assert(io.open(name, "rb"))
   local text = file:read("*a")
   file:close()
   return text
end

local stop_at, stopping = nil, false

-- The response callback under --stop-after (wrk calls it for every response once it is set).
local function stop_when_due()
   if not stopping and clock(CLOCK_MONOTONIC) >= stop_at then
      stopping = true
      ffi.C.kill(ffi.C.getpid(), SIGINT)
   end
end

function init(args)
   if args[1]:sub(1, #STOP_AFTER) == STOP_AFTER then
      stop_at = clock(CLOCK_MONOTONIC) + tonumber(args[1]:sub(#STOP_AFTER + 1))
      table.remove(args, 1)
      response = stop_when_due
   end
   local mode = args[1]
   path = args[2]
   if mode == "cycle" then
      for line in io.lines(args[3]) do
         local headers = { ["Content-Type"] = "application/json" }
         prepared[#prepared + 1] = wrk.format("POST", path, headers, line)
      end
      assert(#prepared > 0, "no request bodies in " .. args[3])
      -- Each thread starts at its own place, so threads do not send the same devices together.
      next_index = math.random(#prepared)
      request = cycle_request
   elseif mode == "keyed" then
      -- Each request formatted in init around its key, so a keyed request costs the load
      -- generator about what a cycled one does (a concatenation, no wrk.format).
      for line in io.lines(args[3]) do
         local headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = KEY_SLOT }
         local r = wrk.format("POST", path, headers, line)
         local at = assert(r:find(KEY_SLOT, 1, true))
         bodies[#bodies + 1] = { r:sub(1, at - 1), r:sub(at + #KEY_SLOT) }
      end
      assert(#bodies > 0, "no request bodies in " .. args[3])
      next_index = math.random(#bodies)
      request = keyed_request
   elseif mode == "paced" then
      local template = read_file(args[3]):gsub("%s+$", "")
      local at = assert(template:find(PLACEHOLDER, 1, true), "no placeholder id in the template")
      head, tail = template:sub(1, at - 1), template:sub(at + #PLACEHOLDER)
      out = assert(io.open(args[4], "w"))
      rate = tonumber(args[5])
      prefix = args[6]
      request, delay = paced_request, paced_delay
   else
      error("unknown mode " .. tostring(mode))
   end
end

-- Each thread's number, so that its idempotency keys are its own.
local threads = 0
function setup(thread)
   threads = threads + 1
   thread:set("thread_number", threads)
end

local keyed, key_prefix = 0, nil

-- A key is <start time>-<thread>-<count>: unique across runs, threads and requests.
function keyed_request()
   local parts = bodies[next_index]
   next_index = next_index % #bodies + 1
   keyed = keyed + 1
   key_prefix = key_prefix or string.format("%x-%d-", os.time(), thread_number or 0)
   return parts[1] .. key_prefix .. keyed .. parts[2]
end

function cycle_request()
   local r = prepared[next_index]
   next_index = next_index % #prepared + 1
   return r
end

-- Each call takes the next slot of one schedule shared by all connections: slot k is due at
-- started + k / rate. A connection that is free early waits; one that is late goes at once.
function paced_delay()
   local now = clock(CLOCK_MONOTONIC)
   started = started or now
   local due = started + sent / rate
   sent = sent + 1
   local ms = (due - now) * 1000
   return ms > 0 and ms or 0
end

local requested = 0

function paced_request()
   if started == nil then
      -- wrk calls request() once at start-up to check it; that one is never sent.
      local headers = { ["Content-Type"] = "application/json" }
      return wrk.format("POST", path, headers, head .. PLACEHOLDER .. tail)
   end
   local device = string.format("%s-%012x", prefix, requested)
   requested = requested + 1
   local headers = { ["Content-Type"] = "application/json" }
   local r = wrk.format("POST", path, headers, head .. device .. tail)
   out:write(string.format("%s\t%.6f\n", device, clock(CLOCK_REALTIME)))
   return r
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,'
         .. '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
         .. '"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean))
end
