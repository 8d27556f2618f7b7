//! The admin endpoint's request-head reader on arbitrary bytes, bounded as
//! its caller bounds it (8 KiB).
//!
//! Beyond "no panic": a prefix of the input is consistent with the whole:
//! a prefix that holds a complete request gives the same request as the
//! whole (bytes after the head are ignored), and a prefix that is already
//! refused (malformed, too many headers) makes the whole refused the same
//! way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru::admin::parse_request;

/// The admin endpoint's request-head limit (`Limits::DEFAULT.max_head`).
const MAX_HEAD: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_HEAD)];
    let whole = format!("{:?}", parse_request(data));
    for cut in cuts(data) {
        match parse_request(&data[..cut]) {
            Ok(None) => {}
            prefix => assert_eq!(format!("{prefix:?}"), whole, "prefix {cut}"),
        }
    }
});

/// A few prefix lengths to compare with the whole, varied by the input.
fn cuts(data: &[u8]) -> Vec<usize> {
    let len = data.len();
    if len == 0 {
        return Vec::new();
    }
    let mix = data.iter().fold(len, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    let mut cuts = vec![len - 1, len / 2, mix % len];
    // Where the caller parses: after each line end.
    cuts.extend(
        data.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .take(8),
    );
    cuts
}
