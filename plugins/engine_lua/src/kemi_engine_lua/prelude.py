"""The Lua side of the engine, run once in each new Lua runtime (Lua 5.1 to 5.5 and LuaJIT).

It creates the global ``KSR`` and ``sr`` tables. Each is an empty table whose ``__index`` asks
Python once per name and stores the answer with ``rawset``: the next ``KSR.sl.send_reply`` is two
plain Lua table reads and a call of a Python callable, with no Python on the lookup path.

It returns four functions for the engine (and, with the C bridge, ``crun``: the runner's
pieces a C route run uses, {handler, failed, F}; see _cbridge.c):
``runner(name)``  -> a function running the global function ``name`` (looked up at each
                  call): ``runner(name)(...)`` gives its first result (one value) when it ran;
                  1 after KSR.x.exit() (the route's int for an exit, as core.run_route
                  gives it: no exception to raise in Python); on failure 1, error, trace;
                  2, nil, nil when there is no such function (three
                  values: Python receives a tuple only then, which spares building one per
                  message). The engine keeps one runner per name: no name crosses per message.
``load(path, source)`` -> code (0 ran, 1 failed, 3 KSR.x.exit()), value, trace (compile and
                  run one script: the file, or
                  ``source`` text published by a reload, named after the file)
``has(name)``     -> whether the global ``name`` is a function
``watch(changed)`` -> after the scripts are loaded: calls ``changed()`` whenever a function is
                  assigned to a new global (the engine caches ``has``); false when ``_G``
                  already has a metatable (a script's own), which it leaves alone
Errors are caught with ``xpcall`` so the message handler can add ``debug.traceback``; a Python
exception raised by an export arrives as itself (the engine tells ScriptExit/ScriptDrop apart).
``is_flow(e)``, the prelude's fifth argument, tells the handler that a Python exception is
ScriptExit/ScriptDrop (KSR.x.exit/drop): those end the route with no traceback to build.
``KSR.x.exit`` itself, when it is the core's (not wrapped, e.g. by the debugger's cfgtrace;
the member function's second result says so), is a Lua function raising the Lua error EXIT,
as Kamailio's app_lua raises its own exit string: no Python exception crosses Lua then.
``facts()``, the sixth argument, gives the running message's kind and method, from which the
prelude answers the exports marked ``message_fact`` (KSR.is_INVITE, is_method_in,
siputils.is_request ...) in Lua: a script asks those many times per message.
``cmake, ident, take`` (nil without the C bridge, see cbridge.py): ``cmake(ident(f), f, take)``
is the Lua C closure that calls the Python callable ``f`` of a KSR function.
"""

PRELUDE = r"""
local ksr_top, ksr_member, sr_top, sr_member, is_flow, facts, cmake, ident, take = ...
local rawset, setmetatable, getmetatable, type, tostring = rawset, setmetatable, getmetatable, type, tostring
local xpcall, loadfile, loadstr = xpcall, loadfile, loadstring or load
local getinfo, traceback = debug.getinfo, debug.traceback

-- KSR.x.exit() as Kamailio's app_lua does it: a Lua error the runner knows (EXIT), no Python
-- exception crossing Lua (an exit ends most relayed requests of a script). Arguments, which
-- the export refuses, still go to the export (its error message).
local EXIT = {}
local select, error = select, error
local function lua_exit(export)
  return function(...)
    if select("#", ...) ~= 0 then return export(...) end
    error(EXIT, 0)
  end
end

-- The running route's message facts (is_request, method, upper-case method), read from
-- Python once per route run at the first question (the runner starts each run without them,
-- and gives a nested run's caller its own back): KSR.is_INVITE, is_method_in,
-- siputils.is_request ... (exports marked message_fact) answer here, without a Python call
-- each. A call of a module that may replace the message or edit a reply's CSeq (textops, hdr:
-- the "edits" members) lets the next question read them again. A fact Python could not read
-- (nil) or unexpected arguments: the export is called, and answers or fails as it would.
-- F[1]: known, F[2]: is_request, F[3]: method, F[4]: upper-case method (a table the C
-- bridge's route run saves and restores as the runner below does)
local F = {false}
local function read_facts()
  F[2], F[3], F[4] = facts()
  F[1] = true
end

local function method_is(export, name)
  return function(...)
    if select("#", ...) ~= 0 then return export(...) end
    if not F[1] then read_facts() end
    if F[3] == nil then return export() end
    return F[3] == name
  end
end

local function message_kind(export, if_request, if_reply)
  return function(...)
    if select("#", ...) ~= 0 then return export(...) end
    if not F[1] then read_facts() end
    if F[2] == nil then return export() end
    if F[2] then return if_request end
    return if_reply
  end
end

local letter_sets, letter_count = {}, 0  -- is_method_in letters -> {NAME = true} or false
local function method_in(export, names_of)
  return function(...)
    local letters = ...
    if select("#", ...) ~= 1 or type(letters) ~= "string" then return export(...) end
    local set = letter_sets[letters]
    if set == nil then
      local names = names_of(letters)
      set = false
      if names ~= nil then
        set = {}
        for n in names:gmatch("%S+") do set[n] = true end
      end
      if letter_count < 256 then  -- a script uses a few strings
        letter_sets[letters] = set
        letter_count = letter_count + 1
      end
    end
    if set == false then return export(letters) end  -- an unknown letter: the export logs it
    if not F[1] then read_facts() end
    if F[4] == nil then return export(letters) end
    return set[F[4]] == true
  end
end

local function edits(export)
  return function(...)
    F[1] = false
    return export(...)
  end
end

-- the function KSR.<...> holds: the export's callable (a C closure calling it when the engine
-- has the C bridge), or the Lua one its kind asks for
local function in_lua(f, kind, a, b)
  if f == nil then return f end
  if cmake ~= nil then f = cmake(ident(f), f, take) end
  if kind == nil then return f end
  if kind == "exit" then return lua_exit(f) end
  if kind == "method" then return method_is(f, a) end
  if kind == "method_in" then return method_in(f, a) end
  if kind == "kind" then return message_kind(f, a, b) end
  if kind == "edits" then return edits(f) end
  return f
end

local function lazy_module(modname, member)
  return setmetatable({}, {__index = function(t, k)
    local f = in_lua(member(modname, k))
    if f ~= nil then rawset(t, k, f) end
    return f
  end})
end

local function lazy_root(top, member)
  return setmetatable({}, {__index = function(t, k)
    local is_module, f, kind, a, b = top(k)
    if is_module then
      local m = lazy_module(k, member)
      rawset(t, k, m)
      return m
    end
    f = in_lua(f, kind, a, b)
    if f ~= nil then rawset(t, k, f) end
    return f
  end})
end

KSR = lazy_root(ksr_top, ksr_member)
sr = lazy_root(sr_top, sr_member)

-- file:line of the innermost script frame with a line (1 = where, 2 = handler, 3 = the C
-- call); the prelude's own frames (its Lua wrappers of exports) are not the script's
local PRELUDE_SOURCE = getinfo(1, "S").source
local function where(level)
  for _ = 1, 200 do
    local info = getinfo(level, "Sl")
    if info == nil then return "?" end
    if info.currentline ~= nil and info.currentline > 0 and info.source ~= PRELUDE_SOURCE then
      local src = info.source
      if src:sub(1, 1) == "@" then src = src:sub(2) end
      return src .. ":" .. info.currentline
    end
    level = level + 1
  end
  return "?"
end

local last_trace = nil
local function handler(e)
  if e == EXIT then
    last_trace = nil
    return e
  end
  if type(e) == "userdata" and is_flow(e) then
    -- KSR.x.exit / KSR.x.drop: the route ends as asked, no fault to locate (a traceback walks
    -- every loaded module per level to name the functions: a cost per exit otherwise)
    last_trace = nil
    return e
  end
  if type(e) == "string" then
    last_trace = traceback(e, 2)
  else
    last_trace = traceback(where(3) .. ": " .. tostring(e), 2)
  end
  return e
end

local function runner(name)
  return function(...)
    local f = _G[name]
    if type(f) ~= "function" then return 2, nil, nil end
    local k, req, m, up = F[1], F[2], F[3], F[4]  -- a nested run's caller's facts
    F[1] = false
    local ok, r = xpcall(f, handler, ...)
    F[1], F[2], F[3], F[4] = k, req, m, up
    if ok then return r end
    if r == EXIT then return 1 end
    return 1, r, last_trace
  end
end

-- what a run that failed with error r returns (the C bridge's run: the runner's last lines)
local function failed(r)
  if r == EXIT then return 1 end
  return 1, r, last_trace
end

local function load(path, source)
  local chunk, err
  if source == nil then chunk, err = loadfile(path) else chunk, err = loadstr(source, "@" .. path) end
  if chunk == nil then return 1, err, err end
  F[1] = false
  local ok, r = xpcall(chunk, handler)
  F[1] = false
  if ok then return 0, nil, nil end
  if r == EXIT then return 3, nil, nil end
  return 1, r, last_trace
end

local function has(name)
  return type(_G[name]) == "function"
end

local function watch(changed)
  if getmetatable(_G) ~= nil then return false end
  setmetatable(_G, {__newindex = function(t, k, v)
    rawset(t, k, v)
    if type(v) == "function" then changed() end
  end})
  return true
end

-- the C bridge's route run (see _cbridge.c): the runner's work done in C for a function found
local crun = nil
if cmake ~= nil then crun = {handler, failed, F} end

return runner, load, has, watch, crun
"""
