//! The plaintext-HTTP reply's offload-header finder on arbitrary bytes
//! (what a client sent instead of a ClientHello, bounded to 16 KiB as
//! `front.rs` bounds it).
//!
//! Beyond "no panic": every name returned is one of [`OFFLOAD_HEADERS`]
//! (ASCII case-insensitively), appears in the input as sent, and there are
//! at most 64 of them (the header array it parses into).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru::alert::{OFFLOAD_HEADERS, find_offload_headers};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(16 * 1024)];
    let names = find_offload_headers(data);
    assert!(names.len() <= 64, "{} names", names.len());
    for name in &names {
        assert!(
            OFFLOAD_HEADERS
                .iter()
                .any(|known| name.eq_ignore_ascii_case(known)),
            "{name:?} is not an offload header"
        );
        assert!(
            data.windows(name.len())
                .any(|window| window == name.as_bytes()),
            "{name:?} is not in the input"
        );
    }
});
