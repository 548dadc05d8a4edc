//! The Lua engine behind `EVAL` and `FUNCTION`: Lua 5.1 states set up as Redis sets them up
//! (sandbox, `redis.*` API, `cjson`, `bit`, `cmsgpack`, `struct`), the script cache, function
//! libraries, and the conversions between Lua values and RESP.
//!
//! The engine never touches the keyspace: a running script asks the caller-provided
//! [`Host`] to run one command and gets its raw RESP reply back, which it parses into Lua
//! values. The command layer (`cmd::scripting`) does lookups, checks and dispatch.

mod convert;
mod libs;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;

use crate::reply::Reply;

pub use convert::fmt_g;

/// Script flags (shebang `flags=` or `redis.register_function{flags=...}`).
pub mod flags {
    /// `no-writes`.
    pub const NO_WRITES: u32 = 1;
    /// `allow-oom`.
    pub const ALLOW_OOM: u32 = 2;
    /// `allow-stale`.
    pub const ALLOW_STALE: u32 = 4;
    /// `no-cluster`.
    pub const NO_CLUSTER: u32 = 8;
    /// `allow-cross-slot-keys`.
    pub const ALLOW_CROSS_SLOT: u32 = 16;
    /// An `EVAL` body without a shebang: the pre-7.0 behaviour.
    pub const EVAL_COMPAT: u32 = 32;

    /// The flag names as Redis spells them.
    pub const NAMES: &[(&str, u32)] = &[
        ("no-writes", NO_WRITES),
        ("allow-oom", ALLOW_OOM),
        ("allow-stale", ALLOW_STALE),
        ("no-cluster", NO_CLUSTER),
        ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
    ];
}

/// Instructions between two checks of the time limit and of `SCRIPT KILL` (Redis's count).
const HOOK_EVERY: u32 = 100_000;
/// The longest `FUNCTION LOAD` run (Redis: 500 ms).
const LOAD_TIMEOUT_MS: u64 = 500;

/// What a script's command call returns: the raw RESP reply, or an error found before the
/// command ran (`Unknown Redis command called from script`, or `-CODE msg`).
pub type HostReply = Result<Vec<u8>, String>;

/// The caller's side of a running script: runs one command, with the reply in RESP3 if `resp3`.
pub trait Host {
    /// Runs `argv` and returns its reply.
    fn call(&mut self, argv: &[Vec<u8>], resp3: bool) -> HostReply;

    /// Whether the user running the script may run `argv` (`redis.acl_check_cmd`); `Err` for a
    /// command that does not exist.
    fn acl_check(&mut self, argv: &[Vec<u8>]) -> Result<bool, String>;
}

/// What is running now, for BUSY, `SCRIPT KILL`, `FUNCTION KILL` and `FUNCTION STATS`; shared
/// with the instruction hook, read by other connections without any lock.
#[derive(Debug, Default)]
pub struct RunState {
    running: AtomicBool,
    busy: AtomicBool,
    kill: AtomicBool,
    wrote: AtomicBool,
    is_eval: AtomicBool,
    started_ms: AtomicU64,
    threshold_ms: AtomicU64,
    /// `proxima-script-time-limit`: a script still running after this long is stopped, even if
    /// it wrote (0: never, Redis's behaviour).
    stop_ms: AtomicU64,
    /// The running script's name (sha or function name) and its command, for FUNCTION STATS.
    info: Mutex<(String, Vec<Vec<u8>>)>,
    /// Libraries and functions loaded (FUNCTION STATS answers while a function holds the
    /// engine).
    counts: Mutex<(usize, usize)>,
}

impl RunState {
    /// Whether other clients must be told BUSY (a script ran past `busy-reply-threshold`).
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Whether a script runs now.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether the running script is an `EVAL` (not a function).
    pub fn is_eval(&self) -> bool {
        self.is_eval.load(Ordering::Acquire)
    }

    /// Records that the running script wrote (it can no longer be killed).
    pub fn mark_written(&self) {
        self.wrote.store(true, Ordering::Release);
    }

    /// Whether the running script wrote.
    pub fn written(&self) -> bool {
        self.wrote.load(Ordering::Acquire)
    }

    /// `SCRIPT KILL` / `FUNCTION KILL`: the error reply, or `None` once the kill is requested.
    pub fn kill(&self, is_eval: bool) -> Option<&'static str> {
        if !self.running() {
            return Some("NOTBUSY No scripts in execution right now.");
        }
        if self.written() {
            return Some(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        if is_eval && !self.is_eval() {
            return Some(BUSY_FUNCTION);
        }
        if !is_eval && self.is_eval() {
            return Some(BUSY_EVAL);
        }
        self.kill.store(true, Ordering::Release);
        None
    }

    /// Sets the hard time limit of the next scripts (0: none).
    pub fn set_stop_after(&self, ms: u64) {
        self.stop_ms.store(ms, Ordering::Release);
    }

    /// Libraries and functions loaded.
    pub fn counts(&self) -> (usize, usize) {
        *self.counts.lock()
    }

    /// Records the number of libraries and functions.
    pub fn set_counts(&self, libs: usize, funcs: usize) {
        *self.counts.lock() = (libs, funcs);
    }

    /// The running script's name, command and run time in ms (`FUNCTION STATS`).
    pub fn current(&self) -> Option<(String, Vec<Vec<u8>>, u64)> {
        if !self.running() {
            return None;
        }
        let (name, cmd) = self.info.lock().clone();
        let started = self.started_ms.load(Ordering::Acquire);
        Some((name, cmd, crate::session::now_ms().saturating_sub(started)))
    }

    fn start(&self, is_eval: bool, name: &str, cmd: Vec<Vec<u8>>, threshold_ms: u64) {
        *self.info.lock() = (name.to_owned(), cmd);
        self.kill.store(false, Ordering::Release);
        self.wrote.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        self.is_eval.store(is_eval, Ordering::Release);
        self.threshold_ms.store(threshold_ms, Ordering::Release);
        self.started_ms
            .store(crate::session::now_ms(), Ordering::Release);
        self.running.store(true, Ordering::Release);
    }

    fn finish(&self) {
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        self.kill.store(false, Ordering::Release);
    }

    /// The instruction hook's check: flags BUSY past the threshold, stops a killed script.
    fn check(&self) -> mlua::Result<VmState> {
        let started = self.started_ms.load(Ordering::Acquire);
        let elapsed = crate::session::now_ms().saturating_sub(started);
        let threshold = self.threshold_ms.load(Ordering::Acquire);
        if threshold > 0 && elapsed >= threshold {
            self.busy.store(true, Ordering::Release);
        }
        if self.kill.load(Ordering::Acquire) {
            return Err(mlua::Error::RuntimeError(KILLED.into()));
        }
        let stop = self.stop_ms.load(Ordering::Acquire);
        if stop > 0 && elapsed >= stop {
            self.kill.store(true, Ordering::Release);
            return Err(mlua::Error::RuntimeError(KILLED.into()));
        }
        Ok(VmState::Continue)
    }
}

/// Ends a run however it ends (a panic in a command must not leave the server BUSY forever).
struct Finish<'r>(&'r RunState);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// What a stopped script raises (on every line from then on, so `pcall` cannot go on).
const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// BUSY while an `EVAL` runs.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// BUSY while a function runs.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// The scripting state of one server: the engine (behind a lock taken while the keyspace lock
/// is held) and the lock-free run state.
pub struct Scripting {
    engine: Mutex<Option<Engine>>,
    /// What runs now.
    pub run: Arc<RunState>,
}

impl Scripting {
    /// The flags of the cached script `sha` and of the function `name`, without waiting for a
    /// script that runs now (`None` then, or if unknown).
    pub fn peek_flags(&self, sha: Option<&str>, function: Option<&str>) -> Option<u32> {
        let guard = self.engine.try_lock()?;
        let engine = guard.as_ref()?;
        match (sha, function) {
            (Some(sha), _) => engine.script_flags(sha),
            (_, Some(name)) => engine.function(name).map(|f| f.flags),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting").field("run", &self.run).finish()
    }
}

impl Default for Scripting {
    fn default() -> Self {
        Self {
            engine: Mutex::new(None),
            run: Arc::new(RunState::default()),
        }
    }
}

impl Scripting {
    /// The engine, created on first use.
    pub fn engine(&self) -> parking_lot::MappedMutexGuard<'_, Engine> {
        parking_lot::MutexGuard::map(self.engine.lock(), |e| {
            e.get_or_insert_with(|| Engine::new(self.run.clone()))
        })
    }

    /// The BUSY error for a command another client sends while a script runs past the
    /// threshold (`None`: the command may run). Only `SCRIPT KILL`, `FUNCTION KILL`,
    /// `FUNCTION STATS` and connection-level commands flagged `allow_busy` pass.
    pub fn busy_error(
        &self,
        cmd: &crate::cmd::table::Command,
        args: &[&[u8]],
    ) -> Option<&'static str> {
        if !self.run.busy() {
            return None;
        }
        if cmd.flags.contains(&"allow_busy") {
            return None;
        }
        let sub = args.get(1).map(|a| a.to_ascii_lowercase());
        match (cmd.name, sub.as_deref()) {
            ("script", Some(b"kill")) | ("function", Some(b"kill" | b"stats")) => None,
            _ if self.run.is_eval() => Some(BUSY_EVAL),
            _ => Some(BUSY_FUNCTION),
        }
    }
}

/// A cached `EVAL` script.
struct Script {
    func: Function,
    flags: u32,
}

/// One function of a library.
#[derive(Clone)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// `description`, if given.
    pub desc: Option<String>,
    /// Script flags.
    pub flags: u32,
    func: Function,
}

/// A loaded library.
pub struct Library {
    /// Its name (from the shebang).
    pub name: String,
    /// The source as loaded.
    pub code: Vec<u8>,
    /// Its functions by name.
    pub functions: BTreeMap<String, FunctionInfo>,
}

/// One Lua state with the sandbox set up.
struct Vm {
    lua: Lua,
    rt: Table,
    runner: Function,
    loader: Function,
}

/// The Lua states, the script cache and the function libraries.
pub struct Engine {
    eval: Vm,
    scripts: HashMap<String, Script>,
    fvm: Vm,
    libs: BTreeMap<String, Library>,
    /// function name -> library name
    funcs: HashMap<String, String>,
    run: Arc<RunState>,
}

/// Why a script could not be created or loaded: the error reply.
pub type EngineError = String;

/// What `FUNCTION RESTORE` does with libraries that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Fail if any library exists.
    Append,
    /// Replace existing libraries.
    Replace,
    /// Drop all libraries first.
    Flush,
}

impl Engine {
    fn new(run: Arc<RunState>) -> Self {
        Self {
            eval: Vm::new("eval").expect("the Lua sandbox sets up"),
            scripts: HashMap::new(),
            fvm: Vm::new("function").expect("the Lua sandbox sets up"),
            libs: BTreeMap::new(),
            funcs: HashMap::new(),
            run,
        }
    }

    /// `SCRIPT FLUSH`: a fresh Lua state and an empty cache.
    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.eval = Vm::new("eval").expect("the Lua sandbox sets up");
    }

    /// Whether a script with this (lowercase) SHA1 is cached.
    pub fn script_exists(&self, sha: &str) -> bool {
        self.scripts.contains_key(sha)
    }

    /// Compiles and caches a script body (`SCRIPT LOAD`, `EVAL`); returns its SHA1.
    pub fn create_script(&mut self, body: &[u8]) -> Result<String, EngineError> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, shebang_len) = eval_shebang(body)?;
        let func = self
            .eval
            .lua
            .load(&body[shebang_len..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                format!(
                    "ERR Error compiling script (new function): {}",
                    lua_error_text(&e)
                )
            })?;
        self.scripts.insert(sha.clone(), Script { func, flags });
        Ok(sha)
    }

    /// A cached script's flags.
    pub fn script_flags(&self, sha: &str) -> Option<u32> {
        self.scripts.get(sha).map(|s| s.flags)
    }

    /// Runs a cached script; the reply (or error) is written to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_script(
        &mut self,
        sha: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        cmd: Vec<Vec<u8>>,
        threshold_ms: u64,
        host: &mut dyn Host,
        out: &mut Reply,
    ) {
        let Some(script) = self.scripts.get(sha) else {
            out.error("NOSCRIPT No matching script. Please use EVAL.");
            return;
        };
        let func = script.func.clone();
        self.run.start(true, sha, cmd, threshold_ms);
        let _done = Finish(&self.run);
        self.eval.call(&self.run, func, keys, args, host, out);
    }

    /// The library and flags of a function.
    pub fn function(&self, name: &str) -> Option<&FunctionInfo> {
        // Function names are case-insensitive, as Redis's function dictionary is.
        let lib = self.funcs.get(&name.to_ascii_lowercase())?;
        self.libs
            .get(lib)?
            .functions
            .values()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Runs a function; the reply (or error) is written to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_function(
        &mut self,
        name: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        cmd: Vec<Vec<u8>>,
        threshold_ms: u64,
        host: &mut dyn Host,
        out: &mut Reply,
    ) {
        let Some(f) = self.function(name) else {
            out.error("ERR Function not found");
            return;
        };
        let func = f.func.clone();
        self.run.start(false, name, cmd, threshold_ms);
        let _done = Finish(&self.run);
        self.fvm.call(&self.run, func, keys, args, host, out);
    }

    /// The libraries, by name.
    pub fn libraries(&self) -> &BTreeMap<String, Library> {
        &self.libs
    }

    /// Number of functions.
    pub fn function_count(&self) -> usize {
        self.funcs.len()
    }

    /// `FUNCTION LOAD [REPLACE]`: returns the library name.
    pub fn load_library(&mut self, code: &[u8], replace: bool) -> Result<String, EngineError> {
        let (name, _) = library_shebang(code)?;
        if !replace && self.libs.contains_key(&name) {
            return Err(format!("ERR Library '{name}' already exists"));
        }
        let lib = self.compile_library(code)?;
        let policy = if replace {
            RestorePolicy::Replace
        } else {
            RestorePolicy::Append
        };
        self.install(vec![lib], policy)?;
        Ok(name)
    }

    /// Installs compiled libraries atomically (all or none): a replaced library's function
    /// names are free for its successor, any other clash fails the whole set.
    fn install(&mut self, libs: Vec<Library>, policy: RestorePolicy) -> Result<(), EngineError> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for lib in &libs {
            if policy == RestorePolicy::Append && self.libs.contains_key(&lib.name) {
                return Err(format!("ERR Library {} already exists", lib.name));
            }
            for f in lib.functions.keys() {
                if seen.insert(f, &lib.name).is_some() {
                    return Err(format!("ERR Function {f} already exists"));
                }
                if policy == RestorePolicy::Flush {
                    continue;
                }
                if let Some(owner) = self.funcs.get(&f.to_ascii_lowercase()) {
                    let replaced =
                        policy == RestorePolicy::Replace && libs.iter().any(|l| l.name == *owner);
                    if !replaced {
                        return Err(format!("ERR Function {f} already exists"));
                    }
                }
            }
        }
        if policy == RestorePolicy::Flush {
            self.libs.clear();
            self.funcs.clear();
        }
        for lib in libs {
            if let Some(old) = self.libs.remove(&lib.name) {
                for f in old.functions.keys() {
                    self.funcs.remove(&f.to_ascii_lowercase());
                }
            }
            for f in lib.functions.keys() {
                self.funcs.insert(f.to_ascii_lowercase(), lib.name.clone());
            }
            self.libs.insert(lib.name.clone(), lib);
        }
        Ok(())
    }

    /// Compiles a library and runs its body to collect its functions.
    fn compile_library(&mut self, code: &[u8]) -> Result<Library, EngineError> {
        let (name, shebang_len) = library_shebang(code)?;
        let func = self
            .fvm
            .lua
            .load(&code[shebang_len..])
            .set_name("@user_function")
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", lua_error_text(&e)))?;
        let collected: Arc<Mutex<Result<BTreeMap<String, FunctionInfo>, String>>> =
            Arc::new(Mutex::new(Ok(BTreeMap::new())));
        let sink = collected.clone();
        let lua = &self.fvm.lua;
        let register = lua
            .create_function(move |lua, args: MultiValue| {
                let r = register_args(lua, args).and_then(|f| {
                    let mut c = sink.lock();
                    let map = c.as_mut().map_err(|e| e.clone())?;
                    if !valid_name(&f.name) {
                        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".to_owned());
                    }
                    if map.contains_key(&f.name) {
                        return Err("Function already exists in the library".to_owned());
                    }
                    map.insert(f.name.clone(), f);
                    Ok(())
                });
                match r {
                    Ok(()) => Ok((Value::Nil, Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(format!("ERR {e}"))?))),
                }
            })
            .map_err(|e| e.to_string())?;
        self.fvm
            .rt
            .raw_set("register_function", register)
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let _ = lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if started.elapsed().as_millis() as u64 > LOAD_TIMEOUT_MS {
                    return Err(mlua::Error::RuntimeError("FUNCTION LOAD timeout".into()));
                }
                Ok(VmState::Continue)
            },
        );
        let res: mlua::Result<(bool, Value)> = self.fvm.loader.call(func);
        lua.remove_hook();
        let _ = self.fvm.rt.raw_set("register_function", Value::Nil);
        let functions = std::mem::replace(&mut *collected.lock(), Ok(BTreeMap::new()));
        match res {
            Ok((true, _)) => {}
            Ok((false, e)) => {
                return Err(format!(
                    "ERR Error registering functions: {}",
                    error_message(&e)
                ));
            }
            Err(e) => {
                return Err(format!(
                    "ERR Error registering functions: {}",
                    lua_error_text(&e)
                ));
            }
        }
        let functions = functions.map_err(|e| format!("ERR {e}"))?;
        if functions.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(Library {
            name,
            code: code.to_vec(),
            functions,
        })
    }

    /// `FUNCTION DELETE`.
    pub fn delete_library(&mut self, name: &str) -> bool {
        match self.libs.remove(name) {
            Some(lib) => {
                for f in lib.functions.keys() {
                    self.funcs.remove(&f.to_ascii_lowercase());
                }
                true
            }
            None => false,
        }
    }

    /// `FUNCTION FLUSH`: no libraries, a fresh Lua state.
    pub fn flush_functions(&mut self) {
        self.libs.clear();
        self.funcs.clear();
        self.fvm = Vm::new("function").expect("the Lua sandbox sets up");
    }

    /// `FUNCTION RESTORE`: the libraries of a dump, installed by `policy`.
    pub fn restore(
        &mut self,
        codes: Vec<Vec<u8>>,
        policy: RestorePolicy,
    ) -> Result<(), EngineError> {
        let mut libs = Vec::new();
        for code in codes {
            libs.push(self.compile_library(&code)?);
        }
        self.install(libs, policy)
    }

    /// Memory used by the eval and function Lua states, in bytes.
    pub fn memory(&self) -> (usize, usize) {
        (self.eval.lua.used_memory(), self.fvm.lua.used_memory())
    }

    /// Number of cached scripts.
    pub fn script_count(&self) -> usize {
        self.scripts.len()
    }
}

impl Vm {
    fn new(mode: &str) -> mlua::Result<Self> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let rt = lua.create_table()?;
        libs::install(&lua, &rt)?;
        let boot = lua
            .load(include_str!("sandbox.lua"))
            .set_name("=redis_sandbox")
            .into_function()?;
        let (_inner, runner, loader, _g): (Table, Function, Function, Table) =
            boot.call((mode, rt.clone()))?;
        Ok(Self {
            lua,
            rt,
            runner,
            loader,
        })
    }

    /// Calls a script or function with the host in reach of `redis.call`, and writes the
    /// converted result or the error to `out`.
    fn call(
        &self,
        run: &Arc<RunState>,
        func: Function,
        keys: &[&[u8]],
        args: &[&[u8]],
        host: &mut dyn Host,
        out: &mut Reply,
    ) {
        let lua = &self.lua;
        let hook_run = run.clone();
        let _ = lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |lua, _| {
                let r = hook_run.check();
                if r.is_err() {
                    // Killed: raise again on every line, so a pcall cannot swallow the kill and
                    // go on (Redis switches its hook the same way).
                    let _ = lua.set_hook(HookTriggers::EVERY_LINE, |_, _| {
                        Err(mlua::Error::RuntimeError(KILLED.into()))
                    });
                }
                r
            },
        );
        let resp3 = std::cell::Cell::new(false);
        // The library's own `acl_check_cmd` (outside a run nobody is running), put back after.
        let acl_outside_runs: Value = self.rt.raw_get("acl_check_cmd").unwrap_or(Value::Nil);
        let host = std::cell::RefCell::new(host);
        let result = lua.scope(|scope| {
            let call = scope.create_function(|lua, (n, argv): (usize, Table)| {
                let argv = match convert::lua_args(n, &argv) {
                    Ok(a) => a,
                    Err(msg) => return Ok((convert::error_table(lua, msg)?, true)),
                };
                let Ok(mut host) = host.try_borrow_mut() else {
                    // Only a command running Lua could get here: none does.
                    return Ok((
                        convert::error_table(lua, "redis.call recursive call detected")?,
                        true,
                    ));
                };
                let reply = host.call(&argv, resp3.get());
                let (v, is_err) = match reply {
                    Ok(bytes) => convert::resp_to_lua(lua, &bytes)?,
                    Err(e) => (convert::error_table(lua, &e)?, true),
                };
                // The command's error is counted where it happened; the script's reply, if it
                // passes the error on, is not counted again (Redis's field of the same name).
                if is_err && let Value::Table(t) = &v {
                    t.raw_set(convert::COUNTED, true)?;
                }
                Ok((v, is_err))
            })?;
            let setresp = scope.create_function(|lua, argv: MultiValue| {
                if argv.len() != 1 {
                    return Ok(Some(
                        lua.create_string("ERR redis.setresp() requires one argument.")?,
                    ));
                }
                let v = match &argv[0] {
                    Value::Integer(i) => *i as f64,
                    Value::Number(n) => *n,
                    Value::String(s) => s
                        .to_str()
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .unwrap_or(0.0),
                    _ => 0.0,
                };
                match v as i64 {
                    2 => resp3.set(false),
                    3 => resp3.set(true),
                    _ => return Ok(Some(lua.create_string("ERR RESP version must be 2 or 3.")?)),
                }
                Ok(None)
            })?;
            // Permissions are the running user's: only the host knows who that is.
            let acl_check = scope.create_function(|lua, (n, argv): (usize, Table)| {
                let args = match convert::lua_args(n, &argv) {
                    Ok(a) => a,
                    Err(msg) => {
                        let e = lua.create_string(format!("ERR {msg}"))?;
                        return Ok((Value::Nil, Value::String(e)));
                    }
                };
                let Ok(mut host) = host.try_borrow_mut() else {
                    return Ok((Value::Boolean(false), Value::Nil));
                };
                match host.acl_check(&args) {
                    Ok(ok) => Ok((Value::Boolean(ok), Value::Nil)),
                    Err(e) => Ok((Value::Nil, Value::String(lua.create_string(&e)?))),
                }
            })?;
            self.rt.raw_set("call", call)?;
            self.rt.raw_set("setresp", setresp)?;
            self.rt.raw_set("acl_check_cmd", acl_check)?;
            let keys = lua.create_sequence_from(
                keys.iter()
                    .map(|k| lua.create_string(k))
                    .collect::<mlua::Result<Vec<_>>>()?,
            )?;
            let args = lua.create_sequence_from(
                args.iter()
                    .map(|k| lua.create_string(k))
                    .collect::<mlua::Result<Vec<_>>>()?,
            )?;
            let (ok, v): (bool, Value) = self.runner.call((func, keys, args))?;
            let script_resp3 = resp3.get();
            if ok {
                convert::lua_to_resp(&v, out, script_resp3, 0);
            } else {
                out.error_counted = convert::is_counted(&v);
                out.error(&error_reply_text(&v, &run.info.lock().0));
            }
            Ok(())
        });
        let _ = self.rt.raw_set("call", Value::Nil);
        let _ = self.rt.raw_set("setresp", Value::Nil);
        let _ = self.rt.raw_set("acl_check_cmd", acl_outside_runs);
        lua.remove_hook();
        if let Err(e) = result {
            out.error(&format!("ERR Error running script: {}", lua_error_text(&e)));
        }
        // Redis steps the collector every 50 calls; a small step each call does the same work.
        let _ = lua.gc_step_kbytes(1);
    }
}

/// The error reply for a failed script: `<err> script: <name>, on <source>:<line>.`
fn error_reply_text(v: &Value, name: &str) -> String {
    let Value::Table(t) = v else {
        return format!("ERR Error running script {name}, {}", error_message(v));
    };
    let msg = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        _ => "ERR unknown error".to_owned(),
    };
    let source: Option<String> = match t.raw_get::<Value>("source") {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    let line: Option<String> = match t.raw_get::<Value>("line") {
        Ok(Value::Integer(i)) => Some(i.to_string()),
        Ok(Value::Number(n)) => Some(fmt_g(n, 14)),
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    let msg = msg.strip_prefix('-').unwrap_or(&msg).to_owned();
    match (source, line) {
        (Some(s), Some(l)) => format!("{msg} script: {name}, on {s}:{l}."),
        _ => msg,
    }
}

/// The message of an error value (a `{err=...}` table, a string, an mlua error).
fn error_message(v: &Value) -> String {
    match v {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.to_string_lossy(),
            _ => "unknown error".into(),
        },
        Value::String(s) => s.to_string_lossy(),
        Value::Error(e) => lua_error_text(e),
        other => format!("{other:?}"),
    }
}

/// An mlua error as the Lua message it stands for (without mlua's decorations).
fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}

/// Reads `redis.register_function`'s arguments: `(name, callback)` or a table of named ones.
fn register_args(_lua: &Lua, args: MultiValue) -> Result<FunctionInfo, String> {
    if args.is_empty() || args.len() > 2 {
        return Err("wrong number of arguments to redis.register_function".into());
    }
    if args.len() == 2 {
        let name = match &args[0] {
            Value::String(s) => s.to_string_lossy(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => fmt_g(*n, 14),
            _ => return Err("first argument to redis.register_function must be a string".into()),
        };
        let Value::Function(f) = &args[1] else {
            return Err("second argument to redis.register_function must be a function".into());
        };
        return Ok(FunctionInfo {
            name,
            desc: None,
            flags: 0,
            func: f.clone(),
        });
    }
    let Value::Table(t) = &args[0] else {
        return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into());
    };
    let (mut name, mut desc, mut func, mut fl) = (None, None, None, 0u32);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let key = match &k {
            Value::String(s) => s.to_string_lossy(),
            _ => {
                return Err(
                    "named argument key given to redis.register_function is not a string".into(),
                );
            }
        };
        match key.to_ascii_lowercase().as_str() {
            "function_name" => {
                match &v {
                    Value::String(s) => name = Some(s.to_string_lossy()),
                    _ => return Err(
                        "function_name argument given to redis.register_function must be a string"
                            .into(),
                    ),
                }
            }
            "description" => {
                match &v {
                    Value::String(s) => desc = Some(s.to_string_lossy()),
                    _ => return Err(
                        "description argument given to redis.register_function must be a string"
                            .into(),
                    ),
                }
            }
            "callback" => match &v {
                Value::Function(f) => func = Some(f.clone()),
                _ => {
                    return Err(
                        "callback argument given to redis.register_function must be a function"
                            .into(),
                    );
                }
            },
            "flags" => {
                let Value::Table(ft) = &v else {
                    return Err("flags argument to redis.register_function must be a table representing function flags".into());
                };
                for item in ft.clone().sequence_values::<Value>() {
                    let item = item.map_err(|e| e.to_string())?;
                    let Value::String(s) = item else {
                        return Err("unknown flag given".into());
                    };
                    let s = s.to_string_lossy();
                    match flags::NAMES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&s))
                    {
                        Some((_, b)) => fl |= b,
                        None => return Err("unknown flag given".into()),
                    }
                }
            }
            _ => return Err("unknown argument given to redis.register_function".into()),
        }
    }
    let name = name.ok_or("redis.register_function must get a function name argument")?;
    let func = func.ok_or("redis.register_function must get a callback argument")?;
    Ok(FunctionInfo {
        name,
        desc,
        flags: fl,
        func,
    })
}

/// Library and function names: letters, digits and underscores.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An `EVAL` body's shebang: its flags and length (kept line feed excluded).
pub fn eval_shebang(body: &[u8]) -> Result<(u32, usize), EngineError> {
    if !body.starts_with(b"#!") {
        return Ok((flags::EVAL_COMPAT, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = &body[..end];
    let parts = crate::resp::split_args(line).unwrap_or_default();
    if parts.is_empty() {
        return Err("ERR Invalid engine in script shebang".into());
    }
    if parts[0] != b"#!lua" {
        return Err(format!(
            "ERR Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut fl = 0;
    for p in &parts[1..] {
        if let Some(list) = p.strip_prefix(b"flags=") {
            for f in list.split(|&b| b == b',') {
                if f.is_empty() {
                    continue;
                }
                match flags::NAMES.iter().find(|(n, _)| n.as_bytes() == f) {
                    Some((_, b)) => fl |= b,
                    None => {
                        return Err(format!(
                            "ERR Unexpected flag in script shebang: {}",
                            String::from_utf8_lossy(f)
                        ));
                    }
                }
            }
        } else {
            return Err(format!(
                "ERR Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            ));
        }
    }
    Ok((fl, end))
}

/// A library's shebang (`#!lua name=<lib>`): its name and length, checked in Redis's order
/// (metadata, name, engine).
fn library_shebang(code: &[u8]) -> Result<(String, usize), EngineError> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err("ERR Invalid library metadata".into());
    };
    let parts = crate::resp::split_args(&code[..end]).unwrap_or_default();
    if parts.is_empty() {
        return Err("ERR Invalid library metadata".into());
    }
    let engine = String::from_utf8_lossy(&parts[0][2.min(parts[0].len())..]).into_owned();
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
        } else {
            return Err(format!(
                "ERR Invalid metadata value given: {}",
                String::from_utf8_lossy(p)
            ));
        }
    }
    let name = name.ok_or_else(|| "ERR Library name was not given".to_owned())?;
    if !valid_name(&name) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    Ok((name, end))
}

/// The scripting lines of `INFO memory` (Redis 7.0's names), each ending in CRLF.
pub fn info_memory(scripting: &Scripting) -> String {
    // A script calling INFO holds the engine already: report the counts kept outside it.
    let (eval_mem, fn_mem, scripts) = match scripting.engine.try_lock() {
        Some(g) => match g.as_ref() {
            Some(e) => {
                let (a, b) = e.memory();
                (a, b, e.script_count())
            }
            None => (0, 0, 0),
        },
        None => (0, 0, 0),
    };
    let (libs, funcs) = scripting.run.counts();
    let total = eval_mem + fn_mem;
    format!(
        "used_memory_lua:{eval_mem}\r\nused_memory_vm_eval:{eval_mem}\r\nused_memory_scripts_eval:0\r\nnumber_of_cached_scripts:{scripts}\r\nnumber_of_functions:{funcs}\r\nnumber_of_libraries:{libs}\r\nused_memory_vm_functions:{fn_mem}\r\nused_memory_vm_total:{total}\r\nused_memory_functions:0\r\nused_memory_scripts:0\r\n"
    )
}

/// Runs one step of a recursion over a Lua value or a payload with enough stack: values may
/// nest 1000 deep (cjson's limit), and a debug build's frames would exhaust a worker
/// thread's 2 MiB long before that; the stack grows on the heap instead.
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(128 * 1024, 2 * 1024 * 1024, f)
}

/// Lowercase hex SHA1.
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}
