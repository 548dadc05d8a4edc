//! The RESP request parser on arbitrary bytes: never panics, never claims more than it was
//! given, and every multibulk request it accepts re-encodes to bytes that parse the same.
#![no_main]

use cache::resp::{Limits, Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bulk: 1 << 20,
        authenticated: data.first().is_some_and(|b| b & 1 == 0),
    };
    let mut pos = 0;
    let mut argv = Vec::new();
    // Bounded: every successful step consumes at least one byte.
    while pos < data.len() {
        match parse(&data[pos..], &mut argv, limits) {
            Ok(Parsed::Multibulk { consumed }) => {
                assert!(consumed > 0 && consumed <= data.len() - pos);
                let mut enc = format!("*{}\r\n", argv.len()).into_bytes();
                for a in &argv {
                    enc.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    enc.extend_from_slice(a);
                    enc.extend_from_slice(b"\r\n");
                }
                let owned: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
                let mut again = Vec::new();
                if !owned.is_empty() {
                    assert_eq!(
                        parse(&enc, &mut again, Limits::default()),
                        Ok(Parsed::Multibulk { consumed: enc.len() })
                    );
                    let again: Vec<Vec<u8>> = again.iter().map(|a| a.to_vec()).collect();
                    assert_eq!(again, owned);
                }
                pos += consumed;
            }
            Ok(Parsed::Inline { consumed, .. }) => {
                assert!(consumed > 0 && consumed <= data.len() - pos);
                pos += consumed;
            }
            Ok(Parsed::Incomplete { need }) => {
                if let Some(n) = need {
                    assert!(n > data.len() - pos);
                }
                break;
            }
            Err(_) => break,
        }
    }
});
