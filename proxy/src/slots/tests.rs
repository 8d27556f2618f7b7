use std::future::pending;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::config::{Balance, SendProxy};

fn config(name: &str, servers: &[u16], limits: ServerLimits) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        servers: servers
            .iter()
            .map(|&port| ServerAddr {
                host: "127.0.0.1".into(),
                port,
            })
            .collect(),
        balance: Balance::RoundRobin,
        connect_timeout: Duration::from_secs(1),
        idle_timeout: None,
        tcp_keepalive: None,
        via: None,
        send_proxy_protocol: SendProxy::Off,
        health_check: None,
        limits,
    }
}

fn limited(max_per_server: usize, max_queue: usize) -> ServerLimits {
    ServerLimits {
        max_per_server,
        max_queue,
        queue_timeout: Duration::from_secs(10),
        slow_start: Duration::ZERO,
    }
}

fn slots(servers: &[u16], limits: ServerLimits) -> Arc<BackendSlots> {
    Arc::new(BackendSlots::standalone(&config("b", servers, limits)))
}

/// A waiter in its own task; its client "leaves" when `leave` is sent.
struct Queued {
    task: JoinHandle<Result<Slot, QueueExit>>,
    leave: oneshot::Sender<()>,
}

async fn enqueue(slots: &Arc<BackendSlots>) -> Queued {
    let before = slots.queued();
    let (leave, left) = oneshot::channel::<()>();
    let s = Arc::clone(slots);
    let task = tokio::spawn(async move {
        s.wait_until_gone(async move {
            if left.await.is_err() {
                pending::<()>().await;
            }
        })
        .await
    });
    // Bounded: the task enqueues on its first poll.
    for _ in 0..1000 {
        if slots.queued() > before || task.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    Queued { task, leave }
}

async fn served(q: Queued) -> Slot {
    match q.task.await {
        Ok(Ok(slot)) => slot,
        other => panic!("expected a slot, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn full_servers_are_skipped_and_waiters_are_served_first_in_first_out() {
    let s = slots(&[1001, 1002], limited(1, 10));
    let a = s.try_acquire(0).unwrap();
    let b = s.try_acquire(1).unwrap();
    assert!(s.try_acquire(0).is_none(), "server 0 is at its limit");
    assert!(s.try_acquire(1).is_none(), "server 1 is at its limit");
    let first = enqueue(&s).await;
    let second = enqueue(&s).await;
    let third = enqueue(&s).await;
    assert_eq!(s.queued(), 3);
    drop(b);
    let got = served(first).await;
    assert_eq!(
        got.server().port,
        1002,
        "the freed slot, on the server that freed it"
    );
    assert_eq!(s.queued(), 2);
    assert_eq!(s.active(1), 1, "handed over, not released and retaken");
    drop(a);
    let got2 = served(second).await;
    assert_eq!(got2.server().port, 1001);
    assert!(!third.task.is_finished(), "nothing free for the third");
    drop(got);
    let got3 = served(third).await;
    assert_eq!(got3.server().port, 1002);
    assert_eq!(s.queued(), 0);
    drop((got2, got3));
    assert_eq!((s.active(0), s.active(1)), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn newcomers_do_not_overtake_the_queue() {
    let s = slots(&[1001], limited(2, 10));
    let a = s.try_acquire(0).unwrap();
    let _b = s.try_acquire(0).unwrap();
    let waiter = enqueue(&s).await;
    drop(a);
    // The slot went to the waiter under the lock: a newcomer finds none.
    assert!(s.try_acquire(0).is_none());
    let _slot = served(waiter).await;
    assert_eq!(s.active(0), 2);
}

#[tokio::test(start_paused = true)]
async fn queue_full_is_refused_at_once_and_queue_timeout_after_the_timeout() {
    let s = slots(&[1001], limited(1, 1));
    let _held = s.try_acquire(0).unwrap();
    let waiting = enqueue(&s).await;
    let started = Instant::now();
    let full = s.wait_until_gone(pending()).await;
    assert_eq!(full.err(), Some(QueueExit::Full));
    assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
    let result = waiting.task.await.unwrap();
    assert_eq!(result.err(), Some(QueueExit::Timeout));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(10),
        "refused at queue_timeout (paused clock)"
    );
    assert_eq!(s.queued(), 0, "a timed-out waiter leaves the queue");
    assert_eq!(s.active(0), 1, "and frees nothing it did not hold");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_leaves_the_queue_at_once_and_frees_nothing() {
    let s = slots(&[1001], limited(1, 10));
    let held = s.try_acquire(0).unwrap();
    let leaving = enqueue(&s).await;
    let staying = enqueue(&s).await;
    leaving.leave.send(()).unwrap();
    assert_eq!(
        leaving.task.await.unwrap().err(),
        Some(QueueExit::ClientGone)
    );
    assert_eq!(s.queued(), 1);
    assert_eq!(s.active(0), 1, "the held slot is still held");
    drop(held);
    let slot = served(staying).await;
    assert_eq!(s.active(0), 1);
    drop(slot);
    assert_eq!(s.active(0), 0);
}

#[tokio::test]
async fn a_real_client_closing_its_socket_is_noticed_without_reading_its_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = slots(&[1001], limited(1, 10));
    let _held = s.try_acquire(0).unwrap();

    // A client that goes away.
    let client = TcpStream::connect(addr).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    drop(client);
    assert_eq!(
        s.wait(&server_side).await.err(),
        Some(QueueExit::ClientGone)
    );
    assert_eq!(s.queued(), 0);

    // A client that sends more (early data) stays queued; its bytes stay
    // in the socket.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    client.write_all(b"early").await.unwrap();
    let wait = s.wait(&server_side);
    let timed = tokio::time::timeout(Duration::from_millis(200), wait).await;
    assert!(timed.is_err(), "still waiting: {timed:?}");
    let mut buf = [0u8; 5];
    server_side.readable().await.unwrap();
    assert_eq!(server_side.try_read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"early");
}

#[tokio::test(start_paused = true)]
async fn a_granted_slot_whose_waiter_left_goes_to_the_next_one() {
    let s = slots(&[1001], limited(1, 10));
    let held = s.try_acquire(0).unwrap();
    let first = enqueue(&s).await;
    let second = enqueue(&s).await;
    // The first waiter's task ends (drain, connection cut) just as the slot frees.
    first.task.abort();
    let _ = first.task.await;
    drop(held);
    let _slot = served(second).await;
    assert_eq!(s.active(0), 1);
    assert_eq!(s.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn slot_accounting_under_every_end() {
    let s = slots(&[1001], limited(3, 10));
    // Close, reset, idle timeout: the connection's future returns and
    // drops its slot.
    let slot = s.try_acquire(0).unwrap();
    let task = tokio::spawn(async move {
        let _slot = slot;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    assert_eq!(s.active(0), 1);
    task.await.unwrap();
    assert_eq!(s.active(0), 0, "ended normally");
    // Drain timeout: the task is cancelled mid-flight.
    let slot = s.try_acquire(0).unwrap();
    let task = tokio::spawn(async move {
        let _slot = slot;
        pending::<()>().await;
    });
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(s.active(0), 0, "cancelled");
    // A panic in the connection task unwinds and drops it too.
    let slot = s.try_acquire(0).unwrap();
    let task = tokio::spawn(async move {
        let _slot = slot;
        panic!("connection task failed");
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(s.active(0), 0, "panicked");
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_counts_of_the_servers_that_stay() {
    let pools = Pools::default();
    let old = pools.slots_for(&config("gw", &[1001, 1002], limited(2, 10)));
    let on_kept = old.try_acquire(0).unwrap();
    let on_removed = old.try_acquire(1).unwrap();
    // The reload keeps 1001, removes 1002, adds 1003 (in another order).
    let new = pools.slots_for(&config("gw", &[1003, 1001], limited(2, 10)));
    assert_eq!(
        new.active(1),
        1,
        "the connection opened before the reload counts"
    );
    assert_eq!(new.active(0), 0);
    let second = new.try_acquire(1).unwrap();
    assert!(
        new.try_acquire(1).is_none(),
        "the limit counts both generations"
    );
    drop(on_kept);
    assert_eq!(new.active(1), 1);
    drop(on_removed);
    assert_eq!(old.active(1), 0, "the removed server's slot is freed too");
    drop(second);
    assert_eq!(new.active(1), 0);
    // A backend that is gone, then back: a fresh pool once forgotten.
    pools.retain(&[]);
    let again = pools.slots_for(&config("gw", &[1001], limited(2, 10)));
    let _held = again.try_acquire(0).unwrap();
    assert_eq!(new.active(1), 0, "the forgotten pool is not shared");
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_the_limit_from_ten_percent_to_all() {
    let limits = ServerLimits {
        slow_start: Duration::from_secs(10),
        ..limited(100, 1000)
    };
    let s = slots(&[1001], limits);
    let take_all = |s: &BackendSlots, held: &mut Vec<Slot>| {
        while let Some(slot) = s.try_acquire(0) {
            held.push(slot);
            assert!(held.len() <= 100, "never above the limit");
        }
        held.len()
    };
    let mut held = Vec::new();
    assert_eq!(take_all(&s, &mut held), 10, "10% at the start");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(take_all(&s, &mut held), 55, "half way: 10% + 45%");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(take_all(&s, &mut held), 100, "all of it after slow_start");

    // Down, then up again: the ramp starts over.
    s.set_up(0, false);
    s.set_up(0, true);
    held.clear();
    assert_eq!(take_all(&s, &mut held), 10);
}

#[tokio::test(start_paused = true)]
async fn waiters_get_the_slots_a_ramp_opens() {
    let limits = ServerLimits {
        slow_start: Duration::from_secs(10),
        ..limited(10, 100)
    };
    let s = slots(&[1001], limits);
    let first = s.try_acquire(0).unwrap();
    assert!(
        s.try_acquire(0).is_none(),
        "limit 1 (10% of 10) at the start"
    );
    let t0 = Instant::now();
    let waiter = enqueue(&s).await;
    // No slot frees, but the limit rises: the waiter is served as it does.
    let slot = served(waiter).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    drop((first, slot));
}

#[tokio::test(start_paused = true)]
async fn slow_start_without_a_limit_ramps_the_share_of_new_connections() {
    let limits = ServerLimits {
        slow_start: Duration::from_secs(10),
        ..ServerLimits::default()
    };
    let s = slots(&[1001, 1002], limits);
    let share = |s: &BackendSlots| {
        (0..1000)
            .filter(|_| {
                let mut order = [0, 1];
                s.defer_ramping(&mut order);
                order[0] == 0
            })
            .count()
    };
    let start = share(&s);
    assert!((95..=110).contains(&start), "about 10% at first: {start}");
    tokio::time::advance(Duration::from_secs(5)).await;
    let half = share(&s);
    assert!((530..=570).contains(&half), "about 55% half way: {half}");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(share(&s), 1000, "all of its share after slow_start");
}

#[tokio::test(start_paused = true)]
async fn waiters_go_to_servers_that_are_up() {
    let s = slots(&[1001, 1002], limited(1, 10));
    let a = s.try_acquire(0).unwrap();
    let b = s.try_acquire(1).unwrap();
    s.set_up(0, false);
    let waiter = enqueue(&s).await;
    drop(a);
    tokio::task::yield_now().await;
    assert!(
        !waiter.task.is_finished(),
        "server 0 is down: no grant there"
    );
    drop(b);
    assert_eq!(served(waiter).await.server().port, 1002);
}
