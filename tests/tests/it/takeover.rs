//! A takeover (`passthru run --takeover`) under real mutual-TLS load: short
//! connections back to back and five persistent ones; nothing is refused or
//! fails, the persistent connections stay with the old process (which logs
//! them when they close, then exits 0), new ones go to the new process.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use passthru_tests::{BinaryProxy, Client, Lab, TlsBackend, within};

async fn echo(stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin), message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    within("the gateway's echo", stream.read_exact(&mut back))
        .await
        .unwrap();
    assert_eq!(back, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_under_tls_load_fails_no_connection_and_keeps_the_persistent_ones() {
    let lab = Lab::new();
    let gateway = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("handoff.sock");
    let config = format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gw\"\n\
         [[backend]]\nname = \"gw\"\nservers = [\"{}\"]\n\
         [admin]\nbind = \"127.0.0.1:0\"\ndrain_delay = \"0s\"\ndrain_timeout = \"20s\"\n\
         handoff = \"{}\"\n",
        gateway.addr,
        socket.display()
    );
    let old = BinaryProxy::start(&config);
    let addr = old.addr;
    let client = Client::new(&lab);

    let mut persistent = Vec::new();
    for _ in 0..5 {
        let mut conn = within("a persistent handshake", client.connect(addr))
            .await
            .unwrap();
        echo(&mut conn.stream, b"hello before").await;
        persistent.push(conn);
    }
    let ports: HashSet<u16> = persistent
        .iter()
        .map(|c| c.stream.get_ref().0.local_addr().unwrap().port())
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (made, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (client, stop, made, failed) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&made),
            Arc::clone(&failed),
        );
        tokio::spawn(async move {
            let mut first = None;
            // Bounded: the test stops it long before.
            for _ in 0..100_000u32 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                made.fetch_add(1, Ordering::SeqCst);
                let attempt = async {
                    let mut conn = client.connect(addr).await?;
                    conn.stream.write_all(b"short").await?;
                    let mut back = [0u8; 5];
                    conn.stream.read_exact(&mut back).await?;
                    conn.stream.shutdown().await
                };
                if let Err(e) = within("a short connection", attempt).await {
                    failed.fetch_add(1, Ordering::SeqCst);
                    first.get_or_insert(e.to_string());
                }
            }
            first
        })
    };
    old.next_access_line();

    let takeover = ["--takeover", socket.to_str().unwrap()];
    let new = BinaryProxy::start_with(&config, &takeover);
    assert_eq!(new.addr, addr, "the new process serves the same socket");
    new.wait_diagnostic("took over");
    old.wait_diagnostic("stopping accepting and draining");
    let line = new.next_access_line();
    assert!(line.contains("listener=public"), "{line}");

    // The persistent connections flow on, through the old process.
    for conn in &mut persistent {
        echo(&mut conn.stream, b"still here after the takeover").await;
    }
    stop.store(true, Ordering::SeqCst);
    let first = within("the load to stop", load).await.unwrap();
    let (made, failed) = (made.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(made > 0);
    assert_eq!(
        failed, 0,
        "{failed} of {made} short connections failed: {first:?}"
    );

    // Closed, they are logged by the old process, which then exits 0.
    for mut conn in persistent {
        conn.stream.shutdown().await.unwrap();
    }
    let mut seen = HashSet::new();
    while seen.len() < ports.len() {
        let line = old.next_access_line();
        if let Some(port) = ports
            .iter()
            .find(|p| line.contains(&format!("peer=127.0.0.1:{p} ")))
        {
            seen.insert(*port);
        }
    }
    assert_eq!(old.wait_exit(), 0);
}
