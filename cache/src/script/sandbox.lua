-- The sandbox every Lua state of the server starts with (run once, as chunk "=redis_sandbox").
-- Redis patches its Lua with read-only tables; stock Lua 5.1 has none, so the same guarantees
-- are built from proxies: every library table is replaced by an empty proxy whose metatable
-- reads from a private copy and refuses writes, the global table itself is emptied and given
-- such a metatable, and the functions that could bypass a metatable (setmetatable, rawset,
-- getmetatable) refuse or hide protected tables.
--
-- Arguments: the mode ("eval" or "function") and `rt`, the table of Rust callbacks.
-- Returns: the private globals table (for KEYS/ARGV), the runner, and the api switch.
local mode, rt = ...

local type, error, tostring, next, select, unpack = type, error, tostring, next, select, unpack
local raw_setmetatable, raw_getmetatable, raw_rawset = setmetatable, getmetatable, rawset
local string_gsub = string.gsub
local lua_pcall, lua_xpcall, lua_loadstring, lua_setfenv = pcall, xpcall, loadstring, setfenv
local G = _G

local RO = "Attempt to modify a readonly table"
local function ro_error()
  error(RO, 2)
end

-- proxy -> its private contents
local protected = raw_setmetatable({}, { __mode = "k" })
local proxies = {}

local function protect(t, strict)
  if protected[t] then
    return t
  end
  if proxies[t] then
    return proxies[t]
  end
  local inner, p = {}, {}
  proxies[t] = p
  protected[p] = inner
  for k, v in next, t do
    if type(v) == "table" then
      v = protect(v)
    end
    inner[k] = v
  end
  local mt = { __newindex = ro_error }
  if strict then
    mt.__index = function(_, k)
      local v = inner[k]
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
      end
      return v
    end
  else
    mt.__index = inner
  end
  -- what getmetatable() shows: a read-only view, never the real metatable
  mt.__metatable = false
  raw_setmetatable(p, mt)
  return p
end

local fake_mts = raw_setmetatable({}, { __mode = "k" })
local function safe_getmetatable(o)
  local inner = protected[o]
  if inner then
    local f = fake_mts[o]
    if not f then
      f = protect({ __index = protect(inner) })
      fake_mts[o] = f
    end
    return f
  end
  if type(o) ~= "table" then
    local m = raw_getmetatable(o)
    if type(m) == "table" then
      return protect(m)
    end
    return m
  end
  return raw_getmetatable(o)
end

local function safe_setmetatable(t, m)
  if protected[t] then
    error(RO, 2)
  end
  return raw_setmetatable(t, m)
end

local function safe_rawset(t, k, v)
  if protected[t] then
    error(RO, 2)
  end
  return raw_rawset(t, k, v)
end

-- The thread's environment is where every later script is compiled: no script may swap it.
local lua_setfenv_orig = setfenv
local function safe_setfenv(f, t)
  if f == 0 or protected[f] then
    error(RO, 2)
  end
  return lua_setfenv_orig(f, t)
end

-- table.insert/remove/sort write raw: refused on protected tables (a script could otherwise
-- leave data in _G's array part for the next one).
local function guard_first(fn)
  return function(t, ...)
    if protected[t] then
      error(RO, 2)
    end
    return fn(t, ...)
  end
end
G.table.insert = guard_first(G.table.insert)
G.table.remove = guard_first(G.table.remove)
G.table.sort = guard_first(G.table.sort)

-- Binary chunks could break out of the VM: only source is loaded, with the protected globals.
local function safe_loadstring(s, name)
  if type(s) == "string" and s:byte(1) == 27 then
    return nil, "binary chunks are not allowed"
  end
  local f, e = lua_loadstring(s, name)
  if f then
    lua_setfenv(f, G)
  end
  return f, e
end

-- pcall as Redis has it: an error table raised by redis.call is returned as its message.
local function redis_pcall(f, ...)
  local r = { lua_pcall(f, ...) }
  if not r[1] then
    local e = r[2]
    if type(e) == "table" and type(e.err) == "string" then
      e = e.err
    end
    return false, e
  end
  return unpack(r, 1, select("#", unpack(r)))
end

-- Errors become tables {err=..., source=..., line=...}; frames of this sandbox and C functions
-- are skipped so the position is the script's.
local where = rt.where
local function err_handler(err)
  local source, line = where()
  if type(err) ~= "table" then
    -- errors raised by Rust callbacks print as "runtime error: <msg>"
    local msg = string_gsub(tostring(err), "^runtime error: ", "")
    err = { err = "ERR " .. msg }
  end
  if source then
    lua_pcall(function()
      err.source = source
      err.line = line
    end)
  end
  return err
end

-- redis.call / redis.pcall: rt.call returns the reply and whether it is an error table.
local function call_cmd(...)
  local c = rt.call
  if not c then
    error({ err = "ERR redis.call/pcall can only be called inside a script invocation" })
  end
  -- the arguments travel as one table: thousands of them must not each take a stack slot
  return c(select("#", ...), { ... })
end
local function redis_call(...)
  local r, is_err = call_cmd(...)
  if is_err then
    error(r)
  end
  return r
end
local function redis_pcall_cmd(...)
  local r = call_cmd(...)
  return r
end

local function raise_if_err(r, e)
  if e then
    error({ err = e })
  end
  return r
end

local function log(...)
  return raise_if_err(rt.log(...))
end

local redis = {
  call = redis_call,
  pcall = redis_pcall_cmd,
  log = log,
  LOG_DEBUG = 0,
  LOG_VERBOSE = 1,
  LOG_NOTICE = 2,
  LOG_WARNING = 3,
  REDIS_VERSION_NUM = rt.version_num,
  REDIS_VERSION = rt.version,
  setresp = function(...)
    return raise_if_err(rt.setresp(...))
  end,
  sha1hex = function(...)
    return raise_if_err(rt.sha1hex(...))
  end,
  error_reply = function(...)
    return rt.error_reply(...)
  end,
  status_reply = function(...)
    return rt.status_reply(...)
  end,
  set_repl = function(...)
    return raise_if_err(rt.set_repl(...))
  end,
  replicate_commands = function()
    return true
  end,
  breakpoint = function()
    return false
  end,
  debug = function() end,
  acl_check_cmd = function(...)
    return raise_if_err(rt.acl_check_cmd(select("#", ...), { ... }))
  end,
  REPL_NONE = 0,
  REPL_AOF = 1,
  REPL_SLAVE = 2,
  REPL_REPLICA = 2,
  REPL_ALL = 3,
}

-- math.random/randomseed: Redis's own generator, the same sequence on every platform.
G.math.random = rt.random
G.math.randomseed = rt.randomseed

G.redis = redis
G.cjson = rt.cjson
G.bit = rt.bit
G.cmsgpack = rt.cmsgpack
G.struct = rt.struct
G.pcall = redis_pcall
G.setmetatable = safe_setmetatable
G.getmetatable = safe_getmetatable
G.rawset = safe_rawset
G.setfenv = safe_setfenv
G.loadstring = safe_loadstring
-- not available to scripts
G.print = nil
G.dofile = nil
G.loadfile = nil
G.load = nil
G.module = nil
G.require = nil
G.package = nil
G.newproxy = nil
G.gcinfo = nil
G.debug = nil
G.os = nil
G.io = nil

-- Move every global into the private table, then protect the (now empty) global table.
local inner = {}
for k, v in next, G do
  inner[k] = v
end
for k in next, inner do
  G[k] = nil
end
for k, v in next, inner do
  if type(v) == "table" and v ~= G then
    inner[k] = protect(v)
  end
end
inner._G = G
protected[G] = inner

-- Functions: while a library loads, the globals are only `redis` with register_function & co.
local load_api = {
  redis = protect({
    register_function = function(...)
      local f = rt.register_function
      if not f then
        error({ err = "ERR redis.register_function can only be called on FUNCTION LOAD command" })
      end
      return raise_if_err(f(...))
    end,
    log = log,
    LOG_DEBUG = 0,
    LOG_VERBOSE = 1,
    LOG_NOTICE = 2,
    LOG_WARNING = 3,
    REDIS_VERSION_NUM = rt.version_num,
    REDIS_VERSION = rt.version,
  }, true),
}
local current = inner

raw_setmetatable(G, {
  __index = function(_, k)
    local v = current[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = ro_error,
  __metatable = false,
})

local function set_api(which)
  if which == "load" then
    current = load_api
  else
    current = inner
  end
end

-- Runs a compiled script (eval: no arguments, KEYS/ARGV are globals) or a function
-- (KEYS, ARGV as arguments); returns ok, result.
local function runner(f, keys, argv)
  if mode == "eval" then
    inner.KEYS = keys
    inner.ARGV = argv
    return lua_xpcall(f, err_handler)
  end
  return lua_xpcall(function()
    return f(keys, argv)
  end, err_handler)
end

-- Runs a library's body while the load api is in place.
local function loader(f)
  set_api("load")
  local ok, e = lua_xpcall(f, err_handler)
  set_api("full")
  return ok, e
end

return inner, runner, loader, G
