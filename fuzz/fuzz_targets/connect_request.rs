//! The inbound CONNECT head parser (a client asking passthru itself for a
//! tunnel) on arbitrary bytes, cut as its caller cuts them: at the first
//! blank line, within 16 KiB.
//!
//! Beyond "no panic": an accepted target has a non-empty host of at most
//! 253 bytes, already lower-case (it is matched against route patterns).
//! Cost: finding the head's end as the bytes trickle in one per read looks
//! at each byte a bounded number of times (linear, never quadratic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_net::connect_head::{ConnectRequest, HeadEnd, head_len, parse_connect};

/// The CONNECT head limit in `front.rs`.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_CONNECT_HEAD)];
    let mut end = HeadEnd::default();
    let trickled = (1..=data.len()).find_map(|n| end.find(&data[..n]));
    assert_eq!(trickled, head_len(data));
    assert!(end.examined() <= 3 * data.len() as u64 + 3);
    let head = match trickled {
        Some(len) => &data[..len],
        None => data,
    };
    match parse_connect(head) {
        ConnectRequest::Target { host, port: _ } => {
            assert!(!host.is_empty() && host.len() <= 253, "host {host:?}");
            assert_eq!(host, host.to_ascii_lowercase());
        }
        ConnectRequest::Malformed(reason) => assert!(!reason.is_empty()),
        ConnectRequest::Incomplete => {}
    }
});
