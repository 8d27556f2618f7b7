//! Socket helpers: one bounded read into a `BytesMut` (from a `TcpStream`
//! shared by reference, or from any `AsyncRead`), and writing a whole
//! buffer to a shared `TcpStream`. No deadlines here: callers put each call
//! under theirs.

use std::io::{self, IoSlice};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// One read into `buf`, never growing it past `max`.
pub async fn read_some(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        let room = max.saturating_sub(buf.len());
        buf.reserve(room.min(READ_CHUNK));
        match stream.try_read_buf(&mut (&mut *buf).limit(room)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// One read from `stream` into `buf`, never growing it past `max` (`Ok(0)`
/// when `buf` is already full, as at end of stream).
pub async fn read_some_from<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    let room = max.saturating_sub(buf.len());
    buf.reserve(room.min(READ_CHUNK));
    stream.read_buf(&mut (&mut *buf).limit(room)).await
}

/// Write all of `data`, waiting for the socket as needed.
pub async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write all of `parts`, in order, with as few `writev(2)` calls as the
/// socket allows: a PROXY header and the ClientHello leave in one call
/// (and, with TCP_NODELAY, in one segment) instead of two.
pub async fn write_all_vectored(to: &TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|part| !part.is_empty())
        .map(|part| IoSlice::new(part))
        .collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        to.writable().await?;
        match to.try_write_vectored(left) {
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes reserved per read at most.
pub const READ_CHUNK: usize = 4096;

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn vectored_write_delivers_every_part_in_order() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut receiver, _) = listener.accept().await.unwrap();
        // Larger than a socket buffer, so that the write is partial and
        // resumes in the middle of a part.
        let big = vec![7u8; 8 << 20];
        let parts: [&[u8]; 4] = [b"PROXY ", b"", &big, b"end"];
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).await.unwrap();
            got
        });
        write_all_vectored(&sender, &parts).await.unwrap();
        drop(sender);
        let got = reading.await.unwrap();
        assert_eq!(got.len(), 6 + big.len() + 3);
        assert_eq!(&got[..6], b"PROXY ");
        assert!(got[6..6 + big.len()].iter().all(|&b| b == 7));
        assert_eq!(&got[6 + big.len()..], b"end");
    }

    #[tokio::test]
    async fn a_read_never_grows_the_buffer_past_its_bound() {
        let (mut far, mut near) = tokio::io::duplex(64);
        far.write_all(b"abcdef").await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(read_some_from(&mut near, &mut buf, 4).await.unwrap(), 4);
        assert_eq!(&buf[..], b"abcd");
        assert_eq!(read_some_from(&mut near, &mut buf, 4).await.unwrap(), 0);
        assert_eq!(read_some_from(&mut near, &mut buf, 8).await.unwrap(), 2);
        assert_eq!(&buf[..], b"abcdef");
    }
}
