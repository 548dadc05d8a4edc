//! Sorted sets: the skiplist with spans against a sorted `Vec` model (property tests, both on
//! the structure and through the command layer), and Redis 7.0.15's reply shapes and errors.

use cache::session::Session;
use cache::zset::ZSet;
use proptest::prelude::*;

/// The model: (score, member) pairs kept sorted as Redis orders them.
#[derive(Default, Debug)]
struct Model(Vec<(f64, String)>);

impl Model {
    fn find(&self, m: &str) -> Option<usize> {
        self.0.iter().position(|(_, x)| x == m)
    }

    fn score(&self, m: &str) -> Option<f64> {
        self.find(m).map(|i| self.0[i].0)
    }

    fn set(&mut self, m: &str, s: f64) {
        let s = if s == 0.0 { 0.0 } else { s };
        self.remove(m);
        self.0.push((s, m.to_string()));
        self.0
            .sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    }

    fn remove(&mut self, m: &str) -> bool {
        match self.find(m) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(i8, u8),
    Rem(u8),
    Incr(i8, u8),
}

fn member(i: u8) -> String {
    // Few members so that updates, ties and removals are frequent.
    format!("m{}", i % 24)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<i8>(), any::<u8>()).prop_map(|(s, m)| Op::Add(s % 6, m)),
        1 => any::<u8>().prop_map(Op::Rem),
        1 => (any::<i8>(), any::<u8>()).prop_map(|(s, m)| Op::Incr(s % 3, m)),
    ]
}

/// A score as Redis prints the model's (integral, small) scores.
fn fmt(s: f64) -> String {
    format!("{}", s as i64)
}

fn bulk_array(items: &[String]) -> String {
    let mut r = format!("*{}\r\n", items.len());
    for i in items {
        r.push_str(&format!("${}\r\n{}\r\n", i.len(), i));
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The structure itself: ranks, the member at each rank, both walk directions and score
    /// and lex bounds agree with the model after any sequence of writes.
    #[test]
    fn skiplist_matches_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut z = ZSet::default();
        let mut model = Model::default();
        for o in &ops {
            match *o {
                Op::Add(s, m) => {
                    z.insert(member(m).as_bytes(), f64::from(s));
                    model.set(&member(m), f64::from(s));
                }
                Op::Rem(m) => {
                    prop_assert_eq!(z.remove(member(m).as_bytes()), model.remove(&member(m)));
                }
                Op::Incr(s, m) => {
                    let new = model.score(&member(m)).unwrap_or(0.0) + f64::from(s);
                    z.insert(member(m).as_bytes(), new);
                    model.set(&member(m), new);
                }
            }
        }
        prop_assert_eq!(z.len(), model.0.len());
        prop_assert_eq!(z.list.len(), model.0.len());
        let walked: Vec<(f64, String)> = z
            .list
            .iter()
            .map(|(s, m)| (s, String::from_utf8(m.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(&walked, &model.0);
        let back: Vec<(f64, String)> = z
            .list
            .walk(z.list.last(), true)
            .map(|(s, m)| (s, String::from_utf8(m.to_vec()).unwrap()))
            .collect();
        let mut rev = model.0.clone();
        rev.reverse();
        prop_assert_eq!(&back, &rev);
        for (i, (s, m)) in model.0.iter().enumerate() {
            prop_assert_eq!(z.rank(m.as_bytes()), Some(i));
            let p = z.list.at_rank(i).unwrap();
            let (ps, pm) = z.list.get(p);
            prop_assert_eq!((ps, &**pm), (*s, m.as_bytes()));
        }
        prop_assert!(z.list.at_rank(model.0.len()).is_none());
        for t in -7..7 {
            let t = f64::from(t);
            let first = z.list.first_where(|s, _| s >= t).map(|p| z.list.get(p).0);
            prop_assert_eq!(first, model.0.iter().find(|(s, _)| *s >= t).map(|x| x.0));
            let last = z.list.last_where(|s, _| s <= t).map(|p| z.list.get(p).0);
            prop_assert_eq!(last, model.0.iter().rev().find(|(s, _)| *s <= t).map(|x| x.0));
        }
    }

    /// Through the command layer: ZADD/ZREM/ZINCRBY replies, then ZRANK, ZREVRANK, ZRANGE,
    /// ZRANGEBYSCORE (with LIMIT) and ZRANGEBYLEX against the model.
    #[test]
    fn commands_match_model(
        ops in proptest::collection::vec(op(), 1..120),
        lo in -6i8..6,
        span in 0i8..8,
        off in 0u8..4,
    ) {
        let mut s = Session::new();
        let mut model = Model::default();
        for o in &ops {
            match *o {
                Op::Add(sc, m) => {
                    let new = model.score(&member(m)).is_none();
                    let r = s.cmd(&["ZADD", "z", &sc.to_string(), &member(m)]);
                    prop_assert_eq!(r, format!(":{}\r\n", i32::from(new)));
                    model.set(&member(m), f64::from(sc));
                }
                Op::Rem(m) => {
                    let was = model.remove(&member(m));
                    prop_assert_eq!(s.cmd(&["ZREM", "z", &member(m)]), format!(":{}\r\n", i32::from(was)));
                }
                Op::Incr(by, m) => {
                    let new = model.score(&member(m)).unwrap_or(0.0) + f64::from(by);
                    let r = s.cmd(&["ZINCRBY", "z", &by.to_string(), &member(m)]);
                    let t = fmt(new);
                    prop_assert_eq!(r, format!("${}\r\n{}\r\n", t.len(), t));
                    model.set(&member(m), new);
                }
            }
        }
        let n = model.0.len();
        prop_assert_eq!(s.cmd(&["ZCARD", "z"]), format!(":{n}\r\n"));
        for i in 0..24u8 {
            let m = member(i);
            let want = match model.find(&m) {
                Some(r) => format!(":{r}\r\n"),
                None => "$-1\r\n".to_string(),
            };
            prop_assert_eq!(s.cmd(&["ZRANK", "z", &m]), want);
            let want = match model.find(&m) {
                Some(r) => format!(":{}\r\n", n - 1 - r),
                None => "$-1\r\n".to_string(),
            };
            prop_assert_eq!(s.cmd(&["ZREVRANK", "z", &m]), want);
        }
        let names: Vec<String> = model.0.iter().map(|x| x.1.clone()).collect();
        // Rank ranges, including negative indexes.
        let (a, b) = (i64::from(lo), i64::from(lo) + i64::from(span));
        let norm = |i: i64| if i < 0 { n as i64 + i } else { i };
        let (sa, sb) = (norm(a).max(0), norm(b).min(n as i64 - 1));
        let want: Vec<String> = if sa <= sb && sa < n as i64 {
            names[sa as usize..=sb as usize].to_vec()
        } else {
            Vec::new()
        };
        prop_assert_eq!(s.cmd(&["ZRANGE", "z", &a.to_string(), &b.to_string()]), bulk_array(&want));
        // Score ranges with an exclusive lower bound and LIMIT.
        let (min, max) = (f64::from(lo), f64::from(lo) + f64::from(span));
        let in_range: Vec<String> = model
            .0
            .iter()
            .filter(|(s, _)| *s > min && *s <= max)
            .map(|x| x.1.clone())
            .collect();
        let limited: Vec<String> = in_range.iter().skip(off as usize).take(3).cloned().collect();
        prop_assert_eq!(
            s.cmd(&["ZRANGEBYSCORE", "z", &format!("({lo}"), &fmt(max), "LIMIT", &off.to_string(), "3"]),
            bulk_array(&limited)
        );
        prop_assert_eq!(s.cmd(&["ZCOUNT", "z", &format!("({lo}"), &fmt(max)]), format!(":{}\r\n", in_range.len()));
        let mut rev_in = in_range.clone();
        rev_in.reverse();
        prop_assert_eq!(
            s.cmd(&["ZREVRANGEBYSCORE", "z", &fmt(max), &format!("({lo}")]),
            bulk_array(&rev_in)
        );
        // Lex ranges over a copy where every score is equal (where lex order is defined).
        s.cmd(&["DEL", "l"]);
        for m in &names {
            s.cmd(&["ZADD", "l", "0", m]);
        }
        let mut sorted = names.clone();
        sorted.sort();
        let lmin = member(lo.unsigned_abs());
        let lmax = member(lo.unsigned_abs() + span as u8);
        let lex: Vec<String> = sorted
            .iter()
            .filter(|m| **m >= lmin && **m < lmax)
            .cloned()
            .collect();
        prop_assert_eq!(
            s.cmd(&["ZRANGEBYLEX", "l", &format!("[{lmin}"), &format!("({lmax}")]),
            bulk_array(&lex)
        );
        prop_assert_eq!(
            s.cmd(&["ZLEXCOUNT", "l", &format!("[{lmin}"), &format!("({lmax}")]),
            format!(":{}\r\n", lex.len())
        );
    }
}

#[test]
fn resp3_pairs_and_doubles() {
    let mut s = Session::new();
    s.cmd(&["HELLO", "3"]);
    s.cmd(&["ZADD", "z", "1", "a", "inf", "b"]);
    assert_eq!(
        s.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,inf\r\n"
    );
    assert_eq!(s.cmd(&["ZSCORE", "z", "b"]), ",inf\r\n");
    assert_eq!(
        s.cmd(&["ZPOPMIN", "z", "1"]),
        "*1\r\n*2\r\n$1\r\na\r\n,1\r\n"
    );
    // Without COUNT the reply stays flat.
    assert_eq!(s.cmd(&["ZPOPMIN", "z"]), "*2\r\n$1\r\nb\r\n,inf\r\n");
}

#[test]
fn set_operations() {
    let mut s = Session::new();
    s.cmd(&["ZADD", "a", "1", "x", "2", "y", "3", "z"]);
    s.cmd(&["ZADD", "b", "10", "y", "20", "z", "30", "w"]);
    s.cmd(&["SADD", "plain", "x", "w"]);
    assert_eq!(
        s.cmd(&["ZUNION", "2", "a", "b", "WITHSCORES"]),
        "*8\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nz\r\n$2\r\n23\r\n$1\r\nw\r\n$2\r\n30\r\n"
    );
    assert_eq!(
        s.cmd(&["ZINTER", "2", "a", "b", "AGGREGATE", "MAX"]),
        "*2\r\n$1\r\ny\r\n$1\r\nz\r\n"
    );
    assert_eq!(
        s.cmd(&["ZINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        ":1\r\n"
    );
    assert_eq!(
        s.cmd(&["ZINTERCARD", "1", "a", "LIMIT", "-1"]),
        "-ERR LIMIT can't be negative\r\n"
    );
    assert_eq!(
        s.cmd(&["ZDIFF", "2", "a", "plain"]),
        "*2\r\n$1\r\ny\r\n$1\r\nz\r\n"
    );
    assert_eq!(s.cmd(&["ZDIFFSTORE", "d", "2", "a", "b"]), ":1\r\n");
    assert_eq!(s.cmd(&["ZRANGE", "d", "0", "-1"]), "*1\r\n$1\r\nx\r\n");
    assert_eq!(
        s.cmd(&["ZUNION", "0", "a"]),
        "-ERR at least 1 input key is needed for 'zunion' command\r\n"
    );
    assert_eq!(s.cmd(&["ZUNION", "3", "a", "b"]), "-ERR syntax error\r\n");
    assert_eq!(
        s.cmd(&["ZINTERSTORE", "d", "2", "a", "b", "WEIGHTS", "nan", "1"]),
        "-ERR weight value is not a float\r\n"
    );
    // An empty result deletes the destination.
    assert_eq!(s.cmd(&["ZINTERSTORE", "d", "2", "a", "nothing"]), ":0\r\n");
    assert_eq!(s.cmd(&["EXISTS", "d"]), ":0\r\n");
}

#[test]
fn multi_pop() {
    let mut s = Session::new();
    s.cmd(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(
        s.cmd(&["ZMPOP", "2", "none", "z", "MAX", "COUNT", "2"]),
        "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(s.cmd(&["ZMPOP", "1", "none", "MIN"]), "*-1\r\n");
    assert_eq!(
        s.cmd(&["ZMPOP", "0", "z", "MIN"]),
        "-ERR numkeys should be greater than 0\r\n"
    );
    assert_eq!(
        s.cmd(&["ZMPOP", "1", "z", "MIN", "COUNT", "0"]),
        "-ERR count should be greater than 0\r\n"
    );
    assert_eq!(
        s.cmd(&["ZMPOP", "9223372036854775807", "z", "MIN"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        s.cmd(&["BZMPOP", "0.01", "1", "z", "MIN"]),
        "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    assert_eq!(s.cmd(&["EXISTS", "z"]), ":0\r\n");
    assert_eq!(s.cmd(&["BZMPOP", "0.01", "1", "z", "MIN"]), "*-1\r\n");
}

#[test]
fn argument_errors() {
    let mut s = Session::new();
    s.cmd(&["ZADD", "z", "1", "a"]);
    assert_eq!(
        s.cmd(&["ZRANDMEMBER", "z", "-9223372036854775808"]),
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANDMEMBER", "z", "-9223372036854770000", "WITHSCORES"]),
        "-ERR value is out of range\r\n"
    );
    assert_eq!(
        s.cmd(&["ZPOPMIN", "z", "-1"]),
        "-ERR value is out of range, must be positive\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANGEBYSCORE", "z", "(x", "1"]),
        "-ERR min or max is not a float\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANGEBYLEX", "z", "a", "+"]),
        "-ERR min or max not valid string range item\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        "-ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX\r\n"
    );
    assert_eq!(
        s.cmd(&["ZRANK", "z", "a", "x"]),
        "-ERR wrong number of arguments for 'zrank' command\r\n"
    );
}

/// Members of a flat RESP2 array of bulk strings.
fn bulks(reply: &str) -> Vec<String> {
    reply
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.starts_with('$') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn random_members() {
    let mut s = Session::new();
    let mut args = vec!["ZADD", "z"];
    let names: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    for n in &names {
        args.push("1");
        args.push(n);
    }
    s.cmd(&args);
    for count in ["5", "40", "99"] {
        let got = bulks(&s.cmd(&["ZRANDMEMBER", "z", count]));
        let distinct: std::collections::HashSet<&String> = got.iter().collect();
        assert_eq!(got.len(), count.parse::<usize>().unwrap());
        assert_eq!(distinct.len(), got.len(), "distinct for {count}");
        assert!(got.iter().all(|m| names.contains(m)));
    }
    assert_eq!(bulks(&s.cmd(&["ZRANDMEMBER", "z", "-300"])).len(), 300);
    // At least the whole set: every member, in order.
    assert_eq!(bulks(&s.cmd(&["ZRANDMEMBER", "z", "1000"])), names);
    let one = s.cmd(&["ZRANDMEMBER", "z"]);
    assert!(names.iter().any(|n| one == format!("$4\r\n{n}\r\n")));
    assert_eq!(s.cmd(&["ZRANDMEMBER", "nothing"]), "$-1\r\n");
    assert_eq!(s.cmd(&["ZRANDMEMBER", "nothing", "3"]), "*0\r\n");
}

#[test]
fn negative_zero_and_nan() {
    let mut s = Session::new();
    s.cmd(&["ZADD", "z", "-0", "b", "0", "a", "0", "c"]);
    // `-0` orders as `0` (then by member) and is answered as given, as Redis does.
    assert_eq!(
        s.cmd(&["ZRANGE", "z", "0", "-1"]),
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );
    assert_eq!(s.cmd(&["ZSCORE", "z", "b"]), "$2\r\n-0\r\n");
    assert_eq!(s.cmd(&["ZADD", "z", "CH", "0", "b"]), ":0\r\n");
    s.cmd(&["ZADD", "z", "inf", "x"]);
    assert_eq!(
        s.cmd(&["ZINCRBY", "z", "-inf", "x"]),
        "-ERR resulting score is not a number (NaN)\r\n"
    );
    assert_eq!(
        s.cmd(&["ZADD", "z", "INCR", "-inf", "x"]),
        "-ERR resulting score is not a number (NaN)\r\n"
    );
    assert_eq!(s.cmd(&["ZSCORE", "z", "x"]), "$3\r\ninf\r\n");
    assert_eq!(
        s.cmd(&["ZADD", "z", "nan", "y"]),
        "-ERR value is not a valid float\r\n"
    );
    // A failed ZINCRBY on a missing key leaves no empty key behind.
    assert_eq!(
        s.cmd(&["ZINCRBY", "fresh", "x", "m"]),
        "-ERR value is not a valid float\r\n"
    );
    assert_eq!(s.cmd(&["EXISTS", "fresh"]), ":0\r\n");
}
