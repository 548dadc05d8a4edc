//! Connection commands: PING, ECHO, SELECT, QUIT, RESET, AUTH, HELLO, CLIENT.

use std::sync::atomic::Ordering;

use super::pubsub::unsubscribe_all;
use super::server::REDIS_VERSION;
use super::{CmdError, CmdResult, Ctx, NOT_INT, SYNTAX, arity_error, eq_ic, help, int_arg, sub};

/// PING [message]
pub fn ping(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 2 {
        return Err(arity_error("ping"));
    }
    if ctx.conn.sub_count() > 0 && !ctx.out.resp3 {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).copied().unwrap_or(b""));
    } else if let Some(m) = args.get(1) {
        ctx.out.bulk(m);
    } else {
        ctx.out.simple("PONG");
    }
    Ok(())
}

/// ECHO message
pub fn echo(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.bulk(args[1]);
    Ok(())
}

/// SELECT index (only database 0 exists)
pub fn select(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let i = int_arg(args[1]).map_err(|_| CmdError::Static(NOT_INT))?;
    if i != 0 {
        return Err("ERR DB index is out of range".into());
    }
    ctx.out.ok();
    Ok(())
}

/// QUIT
pub fn quit(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.out.ok();
    ctx.conn.close = true;
    Ok(())
}

/// RESET
pub fn reset(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    ctx.conn.multi = None;
    ctx.conn.multi_failed = false;
    let watched = std::mem::take(&mut ctx.conn.watched);
    let id = ctx.conn.id;
    ctx.db().unwatch(id, &watched);
    unsubscribe_all(ctx, false, false);
    unsubscribe_all(ctx, true, false);
    ctx.out.resp3 = false;
    ctx.conn.info.resp3.store(false, Ordering::Relaxed);
    ctx.conn.info.name.lock().clear();
    ctx.conn.authenticated = !ctx.shared.needs_auth();
    ctx.conn.credential = None;
    super::clients::stop_monitor(ctx);
    let r = &mut ctx.conn.replies;
    (r.off, r.skip, r.skip_next) = (false, false, false);
    ctx.conn
        .info
        .activity
        .no_evict
        .store(false, Ordering::Relaxed);
    *ctx.conn.info.user.lock() = b"default".to_vec();
    ctx.out.simple("RESET");
    Ok(())
}

fn check_password(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    if ctx.shared.password_ok(user, pass) {
        Ok(())
    } else {
        crate::acl::log_auth_failure(ctx, user);
        Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

/// Notes the credential a client authenticated with: its proxied sessions carry it.
fn authenticated_as(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) {
    ctx.conn.authenticated = true;
    *ctx.conn.info.user.lock() = user.to_vec();
    ctx.conn.credential = Some(crate::client::Credential {
        user: user.to_vec(),
        pass: pass.to_vec(),
    });
}

/// AUTH [username] password
pub fn auth(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(SYNTAX.into());
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 3 {
        (args[1], args[2])
    } else {
        (b"default", args[1])
    };
    if args.len() == 2 && ctx.shared.acl.read().default_nopass() {
        return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
    }
    check_password(ctx, user, pass)?;
    authenticated_as(ctx, user, pass);
    ctx.out.ok();
    Ok(())
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let mut proto = None;
    if args.len() >= 2 {
        let v = int_arg(args[1]).map_err(|_| {
            CmdError::Static("ERR Protocol version is not an integer or out of range")
        })?;
        if !(2..=3).contains(&v) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        proto = Some(v);
    }
    let mut i = 2;
    let mut setname = None;
    let mut authed = None;
    while i < args.len() {
        if eq_ic(args[i], "AUTH") && i + 2 < args.len() {
            check_password(ctx, args[i + 1], args[i + 2])?;
            authed = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if eq_ic(args[i], "SETNAME") && i + 1 < args.len() {
            setname = Some(args[i + 1]);
            i += 2;
        } else {
            return Err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args[i])
            )
            .into());
        }
    }
    if let Some((user, pass)) = authed {
        authenticated_as(ctx, user, pass);
    }
    if !ctx.conn.authenticated {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = setname {
        set_name(ctx, name)?;
    }
    if let Some(p) = proto {
        ctx.out.resp3 = p == 3;
        ctx.conn.info.resp3.store(p == 3, Ordering::Relaxed);
    }
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ctx.conn.id as i64);
    out.bulk(b"mode");
    out.bulk(b"cluster");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    *ctx.conn.info.name.lock() = String::from_utf8_lossy(name).into_owned();
    Ok(())
}

/// CLIENT subcommands.
pub fn client(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let s = sub(args, "client")?;
    match s.name {
        "client|id" => ctx.out.int(ctx.conn.id as i64),
        "client|getname" => {
            let n = ctx.conn.info.name.lock().clone();
            if n.is_empty() {
                ctx.out.null();
            } else {
                ctx.out.bulk(n.as_bytes());
            }
        }
        "client|setname" => {
            set_name(ctx, args[2])?;
            ctx.out.ok();
        }
        "client|setinfo" => {
            let v = String::from_utf8_lossy(args[3]).into_owned();
            if v.contains([' ', '\n']) {
                return Err(
                    "ERR lib-name cannot contain spaces, newlines or special characters.".into(),
                );
            }
            let mut lib = ctx.conn.info.lib.lock();
            if eq_ic(args[2], "LIB-NAME") {
                lib.0 = v;
            } else if eq_ic(args[2], "LIB-VER") {
                lib.1 = v;
            } else {
                return Err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(args[2])
                )
                .into());
            }
            drop(lib);
            ctx.out.ok();
        }
        "client|info" | "client|list" | "client|kill" | "client|reply" | "client|unblock"
        | "client|pause" | "client|unpause" | "client|no-evict" => {
            return super::clients::client(ctx, args, s.name);
        }
        "client|tracking" => crate::tracking::client_tracking(ctx, args)?,
        "client|caching" => crate::tracking::client_caching(ctx, args)?,
        "client|getredir" => crate::tracking::client_getredir(ctx, args)?,
        "client|trackinginfo" => crate::tracking::client_trackinginfo(ctx, args)?,
        _ => help(
            ctx,
            &[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "ID",
                "INFO",
                "KILL <ip:port> | ID <id> | ADDR <ip:port>",
                "LIST",
                "SETNAME <name>",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "HELP",
            ],
        ),
    }
    Ok(())
}
