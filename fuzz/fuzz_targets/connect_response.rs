//! The upstream CONNECT hop's response reader on arbitrary bytes, bounded
//! as its caller bounds it ([`MAX_HEADER`]).
//!
//! Beyond "no panic": a complete head is no longer than the input, parses
//! the same from exactly its own `len` bytes, and has a status line that is
//! bounded and free of control characters (it goes into logs and errors);
//! every strict prefix of a complete head is `Ok(None)`; a prefix that is
//! already an error makes the whole an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_net::connect_head::{MAX_HEADER, ResponseHead, parse_response};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_HEADER)];
    let whole = parse_response(data);
    if let Ok(Some(head)) = &whole {
        assert!(head.len <= data.len());
        assert!(head.status <= 999, "status {}", head.status);
        assert!(
            head.status_line.chars().count() <= 200,
            "{:?}",
            head.status_line
        );
        assert!(
            !head.status_line.chars().any(char::is_control),
            "{:?}",
            head.status_line
        );
        assert_eq!(parse_response(&data[..head.len]), whole);
    }
    for cut in cuts(data, &whole) {
        match parse_response(&data[..cut]) {
            Ok(Some(head)) => assert_eq!(Ok(Some(head)), whole, "prefix {cut}"),
            Ok(None) => {}
            Err(error) => assert!(
                whole.is_err(),
                "prefix {cut} is an error ({error}) but the whole is {whole:?}"
            ),
        }
        if let Ok(Some(head)) = &whole {
            if cut < head.len {
                assert_eq!(
                    parse_response(&data[..cut]),
                    Ok(None),
                    "strict prefix {cut}"
                );
            }
        }
    }
});

/// A few prefix lengths to compare with the whole, varied by the input.
fn cuts(data: &[u8], whole: &Result<Option<ResponseHead>, String>) -> Vec<usize> {
    let len = data.len();
    if len == 0 {
        return Vec::new();
    }
    let mut cuts = vec![len - 1, len / 2];
    let mix = data.iter().fold(len, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    cuts.push(mix % len);
    if let Ok(Some(head)) = whole {
        cuts.push(head.len - 1);
    }
    cuts
}
