//! The RDB value decoder (`RESTORE` payloads) on arbitrary bytes: never panics, and every value
//! it accepts dumps to a payload that decodes to the same value again. The input is tried both
//! as a whole payload (footer checked) and as a bare body, so the fuzzer reaches the decoder
//! without having to forge CRCs.
#![no_main]

use cache::rdb::{dump, load, restore_value};
use cache::value::Value;
use libfuzzer_sys::fuzz_target;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => x.items == y.items,
        (Value::Set(x), Value::Set(y)) => x.set == y.set,
        (Value::Hash(x), Value::Hash(y)) => x.map == y.map,
        (Value::ZSet(x), Value::ZSet(y)) => x.dict == y.dict,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = restore_value(data);
    if let Ok(v) = load(data) {
        let again = restore_value(&dump(&v).expect("decoded values dump")).expect("round trip");
        assert!(same(&v, &again));
    }
});
