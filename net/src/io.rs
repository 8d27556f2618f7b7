//! Socket helpers for a `TcpStream` shared by reference: one bounded read
//! into a `BytesMut`, and writing a whole buffer. No deadlines here: callers
//! put each call under theirs.

use std::io;

use bytes::{BufMut, BytesMut};
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

/// Bytes reserved per read at most.
pub const READ_CHUNK: usize = 4096;
