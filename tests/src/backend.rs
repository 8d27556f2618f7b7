//! Test servers behind the proxy: a mutual-TLS backend that records which
//! client certificate it saw, and a plain TCP backend that answers with its
//! name and echoes. Both bind 127.0.0.1:0 and are ready when `spawn` returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use passthru_certs::Identity;
use passthru_certs::fingerprint::sha256_hex;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::lab::{Lab, provider};
use crate::wait::within;

/// What a TLS backend saw on one connection.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// SHA-256 of the client certificate, when one was presented.
    pub client_cert_sha256: Option<String>,
    /// SNI the backend received.
    pub sni: Option<String>,
    /// ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// The handshake error, when the handshake failed.
    pub error: Option<String>,
}

/// A TLS server (rustls) that optionally requires a client certificate.
/// After the handshake it answers `GET ` with an HTTP response naming the
/// client certificate's SHA-256, and echoes anything else.
pub struct TlsBackend {
    identity: Identity,
    client_roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    alpn: Vec<Vec<u8>>,
    max_open: Option<usize>,
}

/// A running [`TlsBackend`].
pub struct RunningTls {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    load: Arc<Load>,
}

/// Connections a [`TlsBackend`] has open, the most it had at once, and
/// how many it turned away.
#[derive(Debug, Default)]
struct Load {
    open: AtomicUsize,
    peak: AtomicUsize,
    turned_away: AtomicUsize,
}

/// One open connection of a [`TlsBackend`], counted until it drops.
struct Open(Arc<Load>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TlsBackend {
    /// Presents the lab's self-signed gateway certificate; no client auth.
    pub fn new(lab: &Lab) -> TlsBackend {
        TlsBackend {
            identity: lab.pki.gateway.clone(),
            client_roots: None,
            alpn: Vec::new(),
            max_open: None,
        }
    }

    /// Model a gateway that can handle only `n` connections (handshakes
    /// included) at once: beyond them it resets new connections at accept,
    /// as a gateway at its connection limit does.
    pub fn max_open(mut self, n: usize) -> TlsBackend {
        self.max_open = Some(n);
        self
    }

    /// Present another certificate.
    pub fn identity(mut self, id: &Identity) -> TlsBackend {
        self.identity = id.clone();
        self
    }

    /// Require a client certificate chaining to the lab root CA.
    pub fn require_client_cert(mut self, lab: &Lab) -> TlsBackend {
        self.client_roots = Some(vec![lab.pki.root_ca.cert_der.clone().into()]);
        self
    }

    /// ALPN protocols to accept.
    pub fn alpn(mut self, protocols: &[&str]) -> TlsBackend {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Bind 127.0.0.1:0 and serve until the test ends.
    pub async fn spawn(self) -> RunningTls {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .expect("protocol versions");
        let builder = match &self.client_roots {
            Some(roots) => {
                let mut store = RootCertStore::empty();
                for r in roots {
                    store.add(r.clone()).expect("root");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
                        .build()
                        .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let (chain, key) = self.identity.rustls_chain();
        let mut config = builder.with_single_cert(chain, key).expect("server cert");
        config.alpn_protocols = self.alpn;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = bind_with_backlog();
        let addr = listener.local_addr().expect("addr");
        let (tx, seen) = mpsc::unbounded_channel();
        let load = Arc::new(Load::default());
        let counted = Arc::clone(&load);
        let max_open = self.max_open.unwrap_or(usize::MAX);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let open = counted.open.fetch_add(1, Ordering::SeqCst) + 1;
                let guard = Open(Arc::clone(&counted));
                if open > max_open {
                    counted.turned_away.fetch_add(1, Ordering::SeqCst);
                    let _ =
                        socket2::SockRef::from(&tcp).set_linger(Some(std::time::Duration::ZERO));
                    drop((tcp, guard));
                    continue;
                }
                counted.peak.fetch_max(open, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = tx.send(Seen {
                                error: Some(e.to_string()),
                                ..Seen::default()
                            });
                            return;
                        }
                    };
                    let (_, conn) = tls.get_ref();
                    let seen = Seen {
                        client_cert_sha256: conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| sha256_hex(c)),
                        sni: conn.server_name().map(str::to_string),
                        alpn: conn
                            .alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                        error: None,
                    };
                    let _ = tx.send(seen.clone());
                    serve_plain(&mut tls, &seen, guard).await;
                });
            }
        });
        RunningTls { addr, seen, load }
    }
}

/// Serve one connection; `open` stops counting it once the client is done
/// (before the close, so that a proxy reusing the slot cannot be counted
/// twice).
async fn serve_plain<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    seen: &Seen,
    open: Open,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if first && buf[..n].starts_with(b"GET ") {
            let body = format!(
                "client-sha256={}\n",
                seen.client_cert_sha256.as_deref().unwrap_or("none")
            );
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
            break;
        }
        first = false;
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    drop(open);
    let _ = s.shutdown().await;
}

impl RunningTls {
    /// The most connections it had open at once.
    pub fn peak_open(&self) -> usize {
        self.load.peak.load(Ordering::SeqCst)
    }

    /// Connections it reset at accept for being beyond [`TlsBackend::max_open`].
    pub fn turned_away(&self) -> usize {
        self.load.turned_away.load(Ordering::SeqCst)
    }

    /// What the backend saw on its next connection.
    pub async fn next_seen(&mut self) -> Seen {
        within("the TLS backend to finish a handshake", self.seen.recv())
            .await
            .expect("backend task ended")
    }
}

/// 127.0.0.1:0 with a backlog deep enough for connection storms (tokio's
/// default of 1024 drops SYNs when thousands connect at once).
fn bind_with_backlog() -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    socket.listen(4096).expect("listen")
}

/// What a raw backend received on one connection.
#[derive(Debug, Clone)]
pub struct RawConn {
    /// The bytes received, in order (the whole stream, up to 1 MiB).
    pub received: Vec<u8>,
}

/// A plain TCP server: on accept it writes `NAME\n`, then echoes everything
/// and reports what it received when the client half-closes.
pub struct RawBackend;

/// A running [`RawBackend`].
pub struct RunningRaw {
    /// Where it listens.
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<RawConn>,
}

impl RawBackend {
    /// Bind 127.0.0.1:0 and serve until the test ends.
    pub async fn spawn(name: &str) -> RunningRaw {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, conns) = mpsc::unbounded_channel();
        let greeting = format!("{name}\n").into_bytes();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                let greeting = greeting.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    if tcp.write_all(&greeting).await.is_err() {
                        return;
                    }
                    let mut received = Vec::new();
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if received.len() < (1 << 20) {
                                    received.extend_from_slice(&buf[..n]);
                                }
                                if tcp.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = tcp.shutdown().await;
                    let _ = tx.send(RawConn { received });
                });
            }
        });
        RunningRaw { addr, conns }
    }
}

impl RunningRaw {
    /// The next connection, once the client has half-closed it.
    pub async fn next_conn(&mut self) -> RawConn {
        within("the raw backend to see a connection end", self.conns.recv())
            .await
            .expect("backend task ended")
    }

    /// Whether a connection has ended without being taken yet.
    pub fn try_next_conn(&mut self) -> Option<RawConn> {
        self.conns.try_recv().ok()
    }
}
