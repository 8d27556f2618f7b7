//! The inbound CONNECT head parser (a client asking passthru itself for a
//! tunnel) on arbitrary bytes, cut as its caller cuts them: at the first
//! blank line, within 16 KiB.
//!
//! Beyond "no panic": an accepted target has a non-empty host of at most
//! 253 bytes, already lower-case (it is matched against route patterns).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_net::connect_head::{ConnectRequest, parse_connect};

/// The CONNECT head limit in `front.rs`.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_CONNECT_HEAD)];
    let head = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &data[..end + 4],
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
