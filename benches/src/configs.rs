//! The configuration files of the peers, as text: the nginx TLS backend,
//! passthru, HAProxy (`mode tcp`, `req.ssl_sni`) and nginx stream
//! (`ssl_preread`). Every path they write (pid, logs, temp files) is inside
//! the run's temporary directory. No I/O.

use std::net::SocketAddr;
use std::path::Path;

/// The server name every client sends and every proxy routes on.
pub const SERVER_NAME: &str = "gw.example.com";

/// The server name wrk sends (it takes SNI from the URL's host, and
/// `localhost` resolves without touching `/etc/hosts`). The backend asks
/// for a client certificate under this name but does not require one: wrk
/// cannot present one. Every proxy routes it like [`SERVER_NAME`].
pub const WRK_NAME: &str = "localhost";

/// The body of `/small`: 64 bytes, the keep-alive and new-connection answer.
pub const SMALL_BODY: &str = "passthru-bench 64-byte answer: 0123456789abcdefghijklmnopqrstuv\n";

/// Where the backend serves the bulk file (a sparse file of [`BULK_BYTES`]).
pub const BULK_PATH: &str = "/bulk.bin";

/// Size of the bulk file: larger than any window downloads at loopback speed.
pub const BULK_BYTES: u64 = 64 << 30;

/// Where the nginx stream module lives when Debian packages it as a module.
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// nginx as the TLS backend: TLS 1.3 only, X25519, the lab's ECDSA P-256
/// gateway certificate, a client certificate required (issued under
/// root-ca), no session resumption, `/small` (64 bytes) and `/bulk.bin`.
/// Under [`WRK_NAME`] the same, with the client certificate requested but
/// optional (`ssl_verify_client optional`), for wrk, which has none.
/// `connections` is the number of client connections it must hold.
pub fn nginx_backend(dir: &Path, addr: SocketAddr, connections: usize) -> String {
    let d = dir.display();
    let per_worker = connections + 1024;
    format!(
        r#"# passthru load generator: TLS backend
worker_processes auto;
worker_rlimit_nofile {nofile};
pid {d}/backend.pid;
error_log {d}/backend.error.log warn;
events {{ worker_connections {per_worker}; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {d}/backend-tmp/body;
    proxy_temp_path {d}/backend-tmp/proxy;
    fastcgi_temp_path {d}/backend-tmp/fastcgi;
    uwsgi_temp_path {d}/backend-tmp/uwsgi;
    scgi_temp_path {d}/backend-tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server {{
        listen {addr} ssl default_server;
        server_name {SERVER_NAME};
        ssl_verify_client on;
{common}    }}
    server {{
        listen {addr} ssl;
        server_name {WRK_NAME};
        ssl_verify_client optional;
{common}    }}
}}
"#,
        nofile = 2 * per_worker + 1024,
        common = backend_server_common(dir),
    )
}

/// What both backend `server` blocks share.
fn backend_server_common(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"        root {d}/www;
        ssl_certificate {d}/pki/gateway.pem;
        ssl_certificate_key {d}/pki/gateway.key;
        ssl_client_certificate {d}/pki/root-ca.pem;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519;
        ssl_session_cache off;
        ssl_session_tickets off;
        location = /small {{ return 200 "{SMALL_BODY}"; }}
        location = {BULK_PATH} {{ }}
"#,
        SMALL_BODY = SMALL_BODY.escape_default(),
    )
}

/// passthru: one listener, one route for [`SERVER_NAME`] and [`WRK_NAME`], one backend.
/// The listener binds port 0; passthru reports the port on stderr.
pub fn passthru(backend: SocketAddr) -> String {
    format!(
        r#"# passthru load generator
[[listener]]
name = "bench"
bind = "127.0.0.1:0"

[[route]]
server_names = ["{SERVER_NAME}", "{WRK_NAME}"]
backend = "gateway"

[[backend]]
name = "gateway"
servers = ["{backend}"]
"#
    )
}

/// HAProxy 2.6 in `mode tcp`: wait for the ClientHello, route on its SNI.
/// No logging, default buffers, no forced splice.
pub fn haproxy(listen: SocketAddr, backend: SocketAddr, connections: usize) -> String {
    format!(
        r#"# passthru load generator: HAProxy comparison
global
    maxconn {maxconn}
defaults
    mode tcp
    timeout connect 5s
    timeout client 600s
    timeout server 600s
frontend tls
    bind {listen}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req_ssl_hello_type 1 }}
    use_backend gateway if {{ req.ssl_sni -i {SERVER_NAME} {WRK_NAME} }}
backend gateway
    server gw {backend}
"#,
        maxconn = connections + 64,
    )
}

/// nginx stream with `ssl_preread`: route on `$ssl_preread_server_name`.
/// `load_module` is the Debian module path, or `None` when stream is built in.
pub fn nginx_stream(
    dir: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    connections: usize,
    load_module: Option<&str>,
) -> String {
    let d = dir.display();
    let per_worker = 2 * connections + 1024;
    let module = load_module.map_or_else(String::new, |m| format!("load_module {m};\n"));
    format!(
        r#"# passthru load generator: nginx stream comparison
{module}worker_processes auto;
worker_rlimit_nofile {nofile};
pid {d}/stream.pid;
error_log {d}/stream.error.log warn;
events {{ worker_connections {per_worker}; }}
stream {{
    upstream gateway {{ server {backend}; }}
    upstream nowhere {{ server 127.0.0.1:9; }}
    map $ssl_preread_server_name $upstream {{
        {SERVER_NAME} gateway;
        {WRK_NAME} gateway;
        default nowhere;
    }}
    server {{
        listen {listen};
        ssl_preread on;
        proxy_pass $upstream;
        proxy_timeout 600s;
    }}
}}
"#,
        nofile = per_worker + 1024,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_body_is_64_bytes() {
        assert_eq!(SMALL_BODY.len(), 64);
    }

    #[test]
    fn passthru_config_is_valid() {
        let text = passthru("127.0.0.1:8443".parse().unwrap());
        let config = passthru::Config::from_toml(&text, "bench.toml").unwrap();
        assert_eq!(config.routes.len(), 1);
    }
}
