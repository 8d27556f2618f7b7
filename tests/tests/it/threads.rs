//! The runtime shape through the real binary: new connections stay on the
//! accepting thread, lasting ones spread over the others at a quiet moment
//! and go on there with every byte.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use passthru_tests::binary::{BinaryProxy, sample};
use passthru_tests::wait::eventually;
use passthru_tests::{Client, Lab, TlsBackend, WAIT, within};

/// Six mutual-TLS connections, all accepted (and handshaken) on the first
/// of two threads: once they last, three move to the second (each move
/// narrows the gap by two), and every one goes on echoing and ends cleanly
/// with its bytes counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lasting_connections_spread_over_the_threads_and_go_on() {
    let lab = Lab::new();
    let backend = TlsBackend::new(&lab)
        .require_client_cert(&lab)
        .spawn()
        .await;
    let config = format!(
        "[[listener]]\nname = \"test\"\nbind = \"127.0.0.1:0\"\n\
         [[route]]\nserver_names = [\"gw.example.com\"]\nbackend = \"gateway\"\n\
         [[backend]]\nname = \"gateway\"\nservers = [\"{}\"]\n\
         [admin]\nbind = \"127.0.0.1:0\"\ndrain_delay = \"0s\"\n",
        backend.addr
    );
    let proxy = BinaryProxy::start_with(&config, &["--threads", "2"]);
    let mut conns = Vec::new();
    for _ in 0..6 {
        let conn = within("a handshake", Client::new(&lab).connect(proxy.addr)).await;
        conns.push(conn.unwrap());
    }
    let moved = |least: f64| {
        let metrics = proxy.metrics();
        sample(&metrics, "passthru_connections_moved_total").filter(|&n| n >= least)
    };
    assert_eq!(moved(0.0), Some(0.0), "nothing moves at once");
    let moved = eventually(WAIT, || moved(3.0), "three connections moved").await;
    assert_eq!(moved, 3.0, "6 and 0 become 3 and 3");
    for (i, conn) in conns.iter_mut().enumerate() {
        let ping = format!("ping {i}");
        conn.stream.write_all(ping.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; ping.len()];
        within("the echo", conn.stream.read_exact(&mut echo))
            .await
            .unwrap();
        assert_eq!(echo, ping.as_bytes());
    }
    for mut conn in conns {
        conn.stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        within("the close", conn.stream.read_to_end(&mut rest))
            .await
            .unwrap();
    }
    let lines: Vec<String> = (0..6).map(|_| proxy.next_access_line()).collect();
    for line in &lines {
        assert!(line.contains("outcome=ok"), "{line}");
        assert!(line.contains("end=closed"), "{line}");
    }
}
