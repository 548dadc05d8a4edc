//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], as Redis 7.0's `lcsCommand`:
//! the classic dynamic-programming table, walked back from the end to build the common
//! subsequence and its matching ranges.

use super::{CmdResult, Ctx, SYNTAX, eq_ic, int_arg};
use crate::value::Value;

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let max_table = ctx.shared.limits().max_bulk as u64;
    let (db, out, now) = ctx.split();
    let mut strs: [Box<[u8]>; 2] = Default::default();
    for (k, slot) in args[1..3].iter().zip(strs.iter_mut()) {
        if let Some(e) = db.get(k, now) {
            match &e.value {
                Value::Str(s) => *slot = s.as_slice().into(),
                _ => return Err("ERR The specified keys must contain string values".into()),
            }
        }
    }
    let [a, b] = strs;
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = args[j];
        let more = args.len() - 1 - j;
        if eq_ic(opt, "IDX") {
            getidx = true;
        } else if eq_ic(opt, "LEN") {
            getlen = true;
        } else if eq_ic(opt, "WITHMATCHLEN") {
            withmatchlen = true;
        } else if eq_ic(opt, "MINMATCHLEN") && more > 0 {
            minmatchlen = int_arg(args[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(SYNTAX.into());
        }
        j += 1;
    }
    if getlen && getidx {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if a.len() as u64 >= u64::from(u32::MAX - 1) || b.len() as u64 >= u64::from(u32::MAX - 1) {
        return Err("ERR String too long for LCS".into());
    }
    let (alen, blen) = (a.len(), b.len());
    // The table is bounded by proto-max-bulk-len before it is allocated, as Redis does.
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > max_table {
        return Err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into(),
        );
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let compute = getidx || !getlen;
    let mut result = vec![0u8; if compute { total as usize } else { 0 }];
    let mut idx = total as usize;
    // (a_start, a_end, b_start, b_end, len) of each emitted range.
    let mut ranges: Vec<(usize, usize, usize, usize, usize)> = Vec::new();
    let (mut ast, mut aend, mut bst, mut bend) = (alen, 0usize, 0usize, 0usize);
    let (mut i, mut j) = (alen, blen);
    while compute && i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if ast == alen {
                ast = i - 1;
                aend = i - 1;
                bst = j - 1;
                bend = j - 1;
            } else if ast == i && bst == j {
                // Contiguous with the current range: extend it backwards.
                ast -= 1;
                bst -= 1;
            } else {
                emit = true;
            }
            if ast == 0 || bst == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if ast != alen {
                emit = true;
            }
        }
        if emit {
            let len = aend.wrapping_sub(ast).wrapping_add(1);
            if getidx && (minmatchlen == 0 || len as i64 >= minmatchlen) {
                ranges.push((ast, aend, bst, bend, len));
            }
            ast = alen;
        }
    }
    if getidx {
        out.map(2);
        out.bulk(b"matches");
        out.array(ranges.len());
        for (a0, a1, b0, b1, len) in ranges {
            out.array(2 + usize::from(withmatchlen));
            out.array(2);
            out.int(a0 as i64);
            out.int(a1 as i64);
            out.array(2);
            out.int(b0 as i64);
            out.int(b1 as i64);
            if withmatchlen {
                out.int(len as i64);
            }
        }
        out.bulk(b"len");
        out.int(i64::from(total));
    } else if getlen {
        out.int(i64::from(total));
    } else {
        out.bulk(&result);
    }
    Ok(())
}
