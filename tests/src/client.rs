//! The agent: a rustls client that presents a machine certificate and pins
//! the server's certificate (accepts exactly that certificate, as agents
//! pinning a gateway by thumbprint do), recording what it was shown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use passthru_certs::Identity;
use passthru_certs::fingerprint::sha256_hex;
use passthru_certs::pin::PinnedServerCert;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::lab::{Lab, provider};

/// A TLS client builder.
#[derive(Clone)]
pub struct Client {
    sni: String,
    identity: Option<Identity>,
    pinned: CertificateDer<'static>,
    alpn: Vec<Vec<u8>>,
    source: Option<std::net::IpAddr>,
    tls12_only: bool,
}

/// A completed handshake.
pub struct Connected {
    /// The TLS stream.
    pub stream: TlsStream<TcpStream>,
    /// SHA-256 of the certificate the server presented.
    pub server_cert_sha256: String,
    /// The negotiated ALPN protocol.
    pub alpn: Option<String>,
}

impl Client {
    /// SNI `gw.example.com`, presenting agent-01, pinning the gateway certificate.
    pub fn new(lab: &Lab) -> Client {
        Client {
            sni: "gw.example.com".to_string(),
            identity: Some(lab.pki.agent.clone()),
            pinned: lab.pki.gateway.cert_der.clone().into(),
            alpn: Vec::new(),
            source: None,
            tls12_only: false,
        }
    }

    /// Offer TLS 1.2 only (certificates then travel in clear).
    pub fn tls12_only(mut self) -> Client {
        self.tls12_only = true;
        self
    }

    /// Connect from this local address (e.g. 127.0.0.23, to tell the agent
    /// apart from a balancer on 127.0.0.1).
    pub fn source(mut self, ip: std::net::IpAddr) -> Client {
        self.source = Some(ip);
        self
    }

    /// The server name to send.
    pub fn sni(mut self, name: &str) -> Client {
        self.sni = name.to_string();
        self
    }

    /// The client certificate to present (`None`: none).
    pub fn client_cert(mut self, id: Option<&Identity>) -> Client {
        self.identity = id.cloned();
        self
    }

    /// The only server certificate to accept.
    pub fn pin(mut self, id: &Identity) -> Client {
        self.pinned = id.cert_der.clone().into();
        self
    }

    /// ALPN protocols to offer.
    pub fn alpn(mut self, protocols: &[&str]) -> Client {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self
    }

    /// Connect to `addr` and complete the handshake.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<Connected> {
        let tcp = match self.source {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        tcp.set_nodelay(true)?;
        self.handshake(tcp).await
    }

    /// Complete the handshake over an existing connection (e.g. a CONNECT tunnel).
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<Connected> {
        let verifier = Arc::new(PinnedServerCert::new(self.pinned.clone(), provider()));
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(if self.tls12_only {
                TLS12_ONLY
            } else {
                rustls::ALL_VERSIONS
            })
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            Some(id) => {
                let (chain, key) = id.rustls_chain();
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(io::Error::other)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        let name = ServerName::try_from(self.sni.clone()).map_err(io::Error::other)?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (_, conn) = stream.get_ref();
        let server_cert_sha256 = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| sha256_hex(c))
            .unwrap_or_default();
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Connected {
            stream,
            server_cert_sha256,
            alpn,
        })
    }
}

const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
