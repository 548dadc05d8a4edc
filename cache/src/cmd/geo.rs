//! Geo commands over sorted sets, as Redis 7.0's `geo.c`, `geohash.c` and `geohash_helper.c`:
//! a point is stored as a member whose score is its 52-bit interleaved geohash (26 steps over
//! longitude [-180, 180] and latitude [-85.05112878, 85.05112878]); searches scan the score
//! ranges of the centre geohash box and its eight neighbours and filter by exact distance.
//!
//! Sorted sets are reached only through the few functions of [`zs`], so a change of the
//! sorted set's representation touches one place.

use super::{CmdError, CmdResult, Ctx, NOT_FLOAT, SYNTAX, WRONGTYPE, eq_ic, int_arg, parse_float};
use crate::db::Db;
use crate::reply::Reply;
use crate::value::{Bytes, Value, ZSet};

/// The sorted-set operations geo (and SORT) need, over the ZSet's public API.
pub mod zs {
    use crate::value::{Bytes, ZSet};

    /// The score of `member`.
    pub fn score(z: &ZSet, member: &[u8]) -> Option<f64> {
        z.score(member)
    }

    /// Members with `min <= score < max`, in score order.
    pub fn range_from(z: &ZSet, min: f64, max: f64) -> impl Iterator<Item = (&[u8], f64)> {
        z.range_from(min, max)
    }

    /// All members in score order.
    pub fn iter(z: &ZSet) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        z.iter()
    }

    /// A sorted set built from (member, score) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Bytes, f64)>) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in pairs {
            z.insert(&m, s);
        }
        z
    }
}

const STEP_MAX: u8 = 26;
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
const LONG_MIN: f64 = -180.0;
const LONG_MAX: f64 = 180.0;
const EARTH_RADIUS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const DEG_TO_RAD: f64 = 0.017453292519943295769236907684886;

#[derive(Clone, Copy, Default, PartialEq)]
struct Hash {
    bits: u64,
    step: u8,
}

#[derive(Clone, Copy, Default)]
struct Area {
    lon_min: f64,
    lon_max: f64,
    lat_min: f64,
    lat_max: f64,
}

fn interleave(x: u32, y: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave(v: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (v, v >> 1);
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// `geohashEncode` over the given ranges; `None` outside them.
fn encode(lon_r: (f64, f64), lat_r: (f64, f64), lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.0 || lat > lat_r.1 || lon < lon_r.0 || lon > lon_r.1 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.0) / (lat_r.1 - lat_r.0) * scale;
    let lon_off = (lon - lon_r.0) / (lon_r.1 - lon_r.0) * scale;
    Some(Hash {
        bits: interleave(lat_off as u32, lon_off as u32),
        step,
    })
}

fn encode_wgs84(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

fn decode(h: Hash) -> Area {
    let sep = deinterleave(h.bits);
    let ilat = f64::from(sep as u32);
    let ilon = f64::from((sep >> 32) as u32);
    let div = (1u64 << h.step) as f64;
    let (lat_s, lon_s) = (LAT_MAX - LAT_MIN, LONG_MAX - LONG_MIN);
    Area {
        lat_min: LAT_MIN + (ilat / div) * lat_s,
        lat_max: LAT_MIN + ((ilat + 1.0) / div) * lat_s,
        lon_min: LONG_MIN + (ilon / div) * lon_s,
        lon_max: LONG_MIN + ((ilon + 1.0) / div) * lon_s,
    }
}

/// Longitude and latitude of a 52-bit score (the centre of its cell).
fn decode_score(score: f64) -> (f64, f64) {
    let a = decode(Hash {
        bits: score as u64,
        step: STEP_MAX,
    });
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

fn align52(h: Hash) -> u64 {
    h.bits << (52 - u32::from(h.step) * 2)
}

fn move_x(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let y = h.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> (64 - u32::from(h.step) * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> (64 - u32::from(h.step) * 2);
    h.bits = x | y;
}

fn move_y(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = h.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = h.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> (64 - u32::from(h.step) * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> (64 - u32::from(h.step) * 2);
    h.bits = x | y;
}

fn deg_rad(d: f64) -> f64 {
    d * DEG_TO_RAD
}

fn rad_deg(r: f64) -> f64 {
    r / DEG_TO_RAD
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Redis's haversine distance in meters.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

#[derive(Clone, Copy)]
enum Kind {
    Circle(f64),
    Box(f64, f64),
}

#[derive(Clone, Copy)]
struct Shape {
    lon: f64,
    lat: f64,
    kind: Kind,
    /// Meters per unit.
    conv: f64,
}

impl Shape {
    /// The distance from the centre if the point is inside.
    fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.kind {
            Kind::Circle(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conv).then_some(d)
            }
            Kind::Box(w, h) => {
                let (w, h) = (w * self.conv, h * self.conv);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    fn bounds(&self) -> [f64; 4] {
        let (hh, hw) = match self.kind {
            Kind::Circle(r) => (r * self.conv, r * self.conv),
            Kind::Box(w, h) => (h / 2.0 * self.conv, w / 2.0 * self.conv),
        };
        let lat_delta = rad_deg(hh / EARTH_RADIUS);
        let top = rad_deg(hw / EARTH_RADIUS / deg_rad(self.lat + lat_delta).cos());
        let bottom = rad_deg(hw / EARTH_RADIUS / deg_rad(self.lat - lat_delta).cos());
        let south = self.lat < 0.0;
        [
            if south {
                self.lon - bottom
            } else {
                self.lon - top
            },
            self.lat - lat_delta,
            if south {
                self.lon + bottom
            } else {
                self.lon + top
            },
            self.lat + lat_delta,
        ]
    }
}

fn estimate_steps(mut range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The centre box and its eight neighbours to scan (zeroed ones are skipped), as
/// `geohashCalculateAreasByShapeWGS84`; order: centre, N, S, E, W, NE, NW, SE, SW.
fn areas(shape: &Shape) -> [Hash; 9] {
    let [min_lon, min_lat, max_lon, max_lat] = shape.bounds();
    let radius = match shape.kind {
        Kind::Circle(r) => r,
        Kind::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
    } * shape.conv;
    let mut steps = estimate_steps(radius, shape.lat);
    let build = |steps: u8| {
        let h = encode_wgs84(shape.lon, shape.lat, steps).unwrap_or_default();
        let nb = |dx: i8, dy: i8| {
            let mut n = h;
            move_x(&mut n, dx);
            move_y(&mut n, dy);
            n
        };
        // centre, N, S, E, W, NE, NW, SE, SW
        [
            h,
            nb(0, 1),
            nb(0, -1),
            nb(1, 0),
            nb(-1, 0),
            nb(1, 1),
            nb(-1, 1),
            nb(1, -1),
            nb(-1, -1),
        ]
    };
    let mut n = build(steps);
    let decrease = decode(n[1]).lat_max < max_lat
        || decode(n[2]).lat_min > min_lat
        || decode(n[3]).lon_max < max_lon
        || decode(n[4]).lon_min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        n = build(steps);
    }
    if steps >= 2 {
        let area = decode(n[0]);
        let zero = Hash::default();
        if area.lat_min < min_lat {
            n[2] = zero;
            n[8] = zero;
            n[7] = zero;
        }
        if area.lat_max > max_lat {
            n[1] = zero;
            n[5] = zero;
            n[6] = zero;
        }
        if area.lon_min < min_lon {
            n[4] = zero;
            n[8] = zero;
            n[6] = zero;
        }
        if area.lon_max > max_lon {
            n[3] = zero;
            n[7] = zero;
            n[5] = zero;
        }
    }
    n
}

struct Point {
    member: Bytes,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

/// Every member inside `shape` (stopping at `limit` if non-zero, for ANY).
fn search(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let boxes = areas(shape);
    let mut found = Vec::new();
    let mut last: Option<usize> = None;
    for (i, h) in boxes.iter().enumerate() {
        if h.bits == 0 && h.step == 0 {
            continue;
        }
        // Huge radii make neighbours coincide; skip a box equal to the previous one scanned.
        if let Some(l) = last
            && l != 0
            && boxes[l] == *h
        {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let min = align52(*h) as f64;
        let max = align52(Hash {
            bits: h.bits + 1,
            step: h.step,
        }) as f64;
        for (m, s) in zs::range_from(z, min, max) {
            let (lon, lat) = decode_score(s);
            if let Some(dist) = shape.contains(lon, lat) {
                found.push(Point {
                    member: m.into(),
                    lon,
                    lat,
                    dist,
                    score: s,
                });
            }
            if limit != 0 && found.len() >= limit {
                break;
            }
        }
        last = Some(i);
    }
    found
}

fn read<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d ZSet>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(WRONGTYPE.into()),
        },
    }
}

fn lon_lat(a: &[u8], b: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = parse_float(a).ok_or(CmdError::Static(NOT_FLOAT))?;
    let lat = parse_float(b).ok_or(CmdError::Static(NOT_FLOAT))?;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}").into());
    }
    Ok((lon, lat))
}

fn unit(a: &[u8]) -> Result<f64, CmdError> {
    Ok(if eq_ic(a, "m") {
        1.0
    } else if eq_ic(a, "km") {
        1000.0
    } else if eq_ic(a, "ft") {
        0.3048
    } else if eq_ic(a, "mi") {
        1609.34
    } else {
        return Err("ERR unsupported unit provided. please use M, KM, FT, MI".into());
    })
}

/// A distance with 4 decimals, as Redis's `addReplyDoubleDistance` (`llrint` rounding).
fn fmt_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even() as i64;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// A coordinate as Redis's `addReplyHumanLongDouble` (`%.17Lf`, trailing zeros trimmed).
fn human(out: &mut Reply, d: f64) {
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    if out.resp3 {
        out.buf.extend_from_slice(b",");
        out.buf.extend_from_slice(s.as_bytes());
        out.buf.extend_from_slice(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]
pub fn geoadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut i = 2;
    while i < args.len() {
        if eq_ic(args[i], "NX") {
            nx = true;
        } else if eq_ic(args[i], "XX") {
            xx = true;
        } else if !eq_ic(args[i], "CH") {
            break;
        }
        i += 1;
    }
    if !(args.len() - i).is_multiple_of(3) || (nx && xx) {
        return Err(SYNTAX.into());
    }
    // Rewritten as ZADD key [options] score member ..., as Redis does.
    let mut scores: Vec<String> = Vec::with_capacity((args.len() - i) / 3);
    for t in args[i..].chunks(3) {
        let (lon, lat) = lon_lat(t[0], t[1])?;
        let h = encode_wgs84(lon, lat, STEP_MAX).unwrap_or_default();
        scores.push(align52(h).to_string());
    }
    let mut zargs: Vec<&[u8]> = Vec::with_capacity(i + scores.len() * 2);
    zargs.push(b"zadd");
    zargs.extend_from_slice(&args[1..i]);
    for (t, s) in args[i..].chunks(3).zip(&scores) {
        zargs.push(s.as_bytes());
        zargs.push(t[2]);
    }
    super::zset::zadd(ctx, &zargs)
}

/// GEOPOS key [member ...]
pub fn geopos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let (db, out, now) = ctx.split();
    let z = read(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| zs::score(z, m)) {
            None => out.null_array(),
            Some(s) => {
                let (lon, lat) = decode_score(s);
                out.array(2);
                human(out, lon);
                human(out, lat);
            }
        }
    }
    Ok(())
}

/// GEOHASH key [member ...]
pub fn geohash(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (db, out, now) = ctx.split();
    let z = read(db, args[1], now)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| zs::score(z, m)) {
            None => out.null(),
            Some(s) => {
                // Stored hashes use latitude -85..85; standard geohash strings use -90..90.
                let (lon, lat) = decode_score(s);
                let h = encode((-180.0, 180.0), (-90.0, 90.0), lon, lat, 26).unwrap_or_default();
                let mut buf = [0u8; 11];
                for (i, c) in buf.iter_mut().enumerate() {
                    let idx = if i == 10 {
                        0
                    } else {
                        (h.bits >> (52 - (i + 1) * 5)) & 0x1f
                    };
                    *c = ALPHABET[idx as usize];
                }
                out.bulk(&buf);
            }
        }
    }
    Ok(())
}

/// GEODIST key member1 member2 [unit]
pub fn geodist(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let conv = match args.len() {
        5 => unit(args[4])?,
        4 => 1.0,
        _ => return Err(SYNTAX.into()),
    };
    let (db, out, now) = ctx.split();
    let Some(z) = read(db, args[1], now)? else {
        out.null();
        return Ok(());
    };
    match (zs::score(z, args[2]), zs::score(z, args[3])) {
        (Some(a), Some(b)) => {
            let (lon1, lat1) = decode_score(a);
            let (lon2, lat2) = decode_score(b);
            out.bulk(fmt_distance(distance(lon1, lat1, lon2, lat2) / conv).as_bytes());
        }
        _ => out.null(),
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Coords,
    Member,
    Search,
}

/// GEORADIUS key lon lat radius unit [options]
pub fn georadius(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let ro = args[0].len() > 9;
    generic(ctx, args, 1, Mode::Coords, !ro, false)
}

/// GEORADIUSBYMEMBER key member radius unit [options]
pub fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let ro = args[0].len() > 17;
    generic(ctx, args, 1, Mode::Member, !ro, false)
}

/// GEOSEARCH key FROMMEMBER m|FROMLONLAT lon lat BYRADIUS r unit|BYBOX w h unit [options]
pub fn geosearch(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    generic(ctx, args, 1, Mode::Search, false, false)
}

/// GEOSEARCHSTORE dest src ... [STOREDIST]
pub fn geosearchstore(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    generic(ctx, args, 2, Mode::Search, false, true)
}

fn radius_arg(a: &[u8], b: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = parse_float(a).ok_or(CmdError::Static("ERR need numeric radius"))?;
    if r < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((r, unit(b)?))
}

fn generic(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    src: usize,
    mode: Mode,
    may_store: bool,
    searchstore: bool,
) -> CmdResult {
    let (db, out, now) = ctx.split();
    let z = read(db, args[src], now)?;
    let mut center: Option<(f64, f64)> = None;
    let mut kind: Option<(Kind, f64)> = None;
    let mut storekey: Option<&[u8]> = if searchstore { Some(args[1]) } else { None };
    let base = match mode {
        Mode::Coords => {
            center = Some(lon_lat(args[2], args[3])?);
            let (r, c) = radius_arg(args[4], args[5])?;
            kind = Some((Kind::Circle(r), c));
            6
        }
        Mode::Member => {
            if let Some(z) = z {
                let s = zs::score(z, args[2]).ok_or(CmdError::Static(
                    "ERR could not decode requested zset member",
                ))?;
                center = Some(decode_score(s));
                let (r, c) = radius_arg(args[3], args[4])?;
                kind = Some((Kind::Circle(r), c));
            }
            5
        }
        Mode::Search => src + 1,
    };
    let (mut withdist, mut withhash, mut withcoord) = (false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort: Option<bool> = None; // Some(true) = ASC
    let mut any = false;
    let mut count: i64 = 0;
    let mut storedist = false;
    let is_search = mode == Mode::Search;
    let mut i = base;
    while i < args.len() {
        let a = args[i];
        let rem = args.len() - i; // counting this one
        if eq_ic(a, "WITHDIST") {
            withdist = true;
        } else if eq_ic(a, "WITHHASH") {
            withhash = true;
        } else if eq_ic(a, "WITHCOORD") {
            withcoord = true;
        } else if eq_ic(a, "ANY") {
            any = true;
        } else if eq_ic(a, "ASC") {
            sort = Some(true);
        } else if eq_ic(a, "DESC") {
            sort = Some(false);
        } else if eq_ic(a, "COUNT") && rem > 1 {
            count = int_arg(args[i + 1])?;
            if count <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            i += 1;
        } else if (eq_ic(a, "STORE") || eq_ic(a, "STOREDIST")) && rem > 1 && may_store && !is_search
        {
            storekey = Some(args[i + 1]);
            storedist = a.len() == 9;
            i += 1;
        } else if eq_ic(a, "STOREDIST") && searchstore {
            storedist = true;
        } else if eq_ic(a, "FROMMEMBER") && rem > 1 && is_search && !fromloc {
            if let Some(z) = z {
                let s = zs::score(z, args[i + 1]).ok_or(CmdError::Static(
                    "ERR could not decode requested zset member",
                ))?;
                center = Some(decode_score(s));
            }
            frommember = true;
            i += 1;
        } else if eq_ic(a, "FROMLONLAT") && rem > 2 && is_search && !frommember {
            center = Some(lon_lat(args[i + 1], args[i + 2])?);
            fromloc = true;
            i += 2;
        } else if eq_ic(a, "BYRADIUS") && rem > 2 && is_search && !bybox {
            let (r, c) = radius_arg(args[i + 1], args[i + 2])?;
            kind = Some((Kind::Circle(r), c));
            byradius = true;
            i += 2;
        } else if eq_ic(a, "BYBOX") && rem > 3 && is_search && !byradius {
            let w = parse_float(args[i + 1]).ok_or(CmdError::Static("ERR need numeric width"))?;
            let h = parse_float(args[i + 2]).ok_or(CmdError::Static("ERR need numeric height"))?;
            if h < 0.0 || w < 0.0 {
                return Err("ERR height or width cannot be negative".into());
            }
            kind = Some((Kind::Box(w, h), unit(args[i + 3])?));
            bybox = true;
            i += 3;
        } else {
            return Err(SYNTAX.into());
        }
        i += 1;
    }
    if storekey.is_some() && (withdist || withhash || withcoord) {
        return Err(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if searchstore {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )
        .into());
    }
    let name = String::from_utf8_lossy(args[0]).into_owned();
    if is_search && !(frommember || fromloc) {
        return Err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )
        .into());
    }
    if is_search && !(byradius || bybox) {
        return Err(
            format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}").into(),
        );
    }
    if any && count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    let Some(z) = z else {
        if let Some(k) = storekey {
            db.remove(k);
            out.int(0);
        } else {
            out.array(0);
        }
        return Ok(());
    };
    if count != 0 && sort.is_none() && !any {
        sort = Some(true);
    }
    let (Some((lon, lat)), Some((kind, conv))) = (center, kind) else {
        return Err(SYNTAX.into());
    };
    let shape = Shape {
        lon,
        lat,
        kind,
        conv,
    };
    let mut found = search(z, &shape, if any { count as usize } else { 0 });
    if found.is_empty() && storekey.is_none() {
        out.array(0);
        return Ok(());
    }
    match sort {
        Some(true) => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Some(false) => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        None => {}
    }
    let n = if count == 0 {
        found.len()
    } else {
        found.len().min(count as usize)
    };
    found.truncate(n);
    match storekey {
        None => {
            let opts = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
            out.array(n);
            for p in &found {
                if opts > 0 {
                    out.array(opts + 1);
                }
                out.bulk(&p.member);
                if withdist {
                    out.bulk(fmt_distance(p.dist / conv).as_bytes());
                }
                if withhash {
                    out.int(p.score as i64);
                }
                if withcoord {
                    out.array(2);
                    human(out, p.lon);
                    human(out, p.lat);
                }
            }
        }
        Some(k) => {
            if n == 0 {
                db.remove(k);
            } else {
                let z = zs::from_pairs(found.into_iter().map(|p| {
                    let s = if storedist { p.dist / conv } else { p.score };
                    (p.member, s)
                }));
                db.insert(k, Value::ZSet(Box::new(z)), 0, now);
            }
            out.int(n as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" stores score 3479099956230698.
        let h = encode_wgs84(13.361389, 38.115556, STEP_MAX).unwrap();
        assert_eq!(align52(h), 3479099956230698);
        let (lon, lat) = decode_score(3479099956230698.0);
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
        assert_eq!(fmt_distance(166274.15156960033), "166274.1516");
    }
}
