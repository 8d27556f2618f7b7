//! End-to-end tests: real sockets on 127.0.0.1:0, real TLS, the real proxy.
//! One test binary (modules below) to keep link time down.

// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod clienthello;
mod connect_front;
mod connect_hop;
mod forwarding;
mod hostile;
mod interop;
mod limits;
mod observe;
mod offload;
mod post_quantum;
mod proxy_protocol;
mod routing;
mod server_limits;
mod storm;
mod takeover;
mod threads;

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use passthru_tests::within;

/// Send `hello` and return the first line the backend answered with (its
/// name, for a `RawBackend`), keeping the connection.
async fn hello_then_line(addr: SocketAddr, hello: &[u8]) -> (String, BufReader<TcpStream>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    within("the backend's first line", reader.read_line(&mut line))
        .await
        .unwrap();
    (line.trim_end().to_string(), reader)
}

/// Send `bytes`, then read everything until the proxy closes. A reset
/// (a silent refusal with unread bytes in the kernel) ends the read too:
/// whatever arrived before it is returned.
async fn send_and_read_to_end(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match within("the proxy to close", tcp.read(&mut chunk)).await {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("reading from the proxy: {e}"),
        }
    }
}

/// An address where nothing listens (bound once, then closed).
async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}
