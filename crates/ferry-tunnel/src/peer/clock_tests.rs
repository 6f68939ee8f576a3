//! Rekey and session expiry on boringtun's mocked clock (`--features mock-clock`).
//!
//! boringtun 0.7.1 has a `mock-instant` feature that swaps its clock for `mock_instant`'s
//! thread-local clock, so these tests jump minutes ahead without sleeping. They run with
//! `cargo test -p ferry-tunnel --features mock-clock clock` (scripts/test.sh does so).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::engine::tests::{handshake, ipv4, pair};
use super::engine::{Engine, Output, BUF_SIZE};
use mock_instant::MockClock;
use std::net::IpAddr;
use std::time::Duration;

fn net(o: Output<'_>) -> Vec<u8> {
    match o {
        Output::Network(d) => d.to_vec(),
        other => panic!("expected network output, got {other:?}"),
    }
}

fn is_handshake_init(d: &[u8]) -> bool {
    d.len() == 148 && d[0] == 1
}

/// Advances the clock in 250 ms steps like the peer loop, collecting what `a` sends.
fn run_for(a: &mut Engine, total: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let step = Duration::from_millis(250);
    let mut t = Duration::ZERO;
    while t < total {
        MockClock::advance(step);
        t += step;
        if let Output::Network(d) = a.tick(&mut buf) {
            out.push(d.to_vec());
        }
    }
    out
}

/// Delivers `d` from `from` to `to` and everything that triggers back and forth (a lossless wire).
fn deliver(from: &mut Engine, to: &mut Engine, d: Vec<u8>, inits: &mut u32) {
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut queue = vec![(true, d)];
    while let Some((to_b, d)) = queue.pop() {
        if is_handshake_init(&d) {
            *inits += 1;
        }
        let (rx, _) = if to_b {
            (&mut *to, &mut *from)
        } else {
            (&mut *from, &mut *to)
        };
        if let Output::Network(r) = rx.decapsulate(src, &d, &mut buf) {
            queue.push((!to_b, r.to_vec()));
            while let Some(q) = rx.next_queued(&mut buf) {
                queue.push((!to_b, q.to_vec()));
            }
        }
    }
}

/// Both peers on one lossless wire for `total`, `a` sending a packet every `every`.
/// Returns the number of handshake initiations `a` sent.
fn simulate(a: &mut Engine, b: &mut Engine, total: Duration, every: Duration) -> u32 {
    let mut buf = vec![0u8; BUF_SIZE];
    let step = Duration::from_millis(250);
    let mut t = Duration::ZERO;
    let mut inits = 0;
    let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"tick");
    while t < total {
        MockClock::advance(step);
        t += step;
        if let Output::Network(d) = a.tick(&mut buf) {
            deliver(a, b, d.to_vec(), &mut inits);
        }
        if let Output::Network(d) = b.tick(&mut buf) {
            deliver(b, a, d.to_vec(), &mut inits);
        }
        if t.as_millis() % every.as_millis() == 0 {
            if let Output::Network(d) = a.encapsulate(&p, &mut buf) {
                deliver(a, b, d.to_vec(), &mut inits);
            }
        }
    }
    inits
}

#[test]
fn initiator_rekeys_after_two_minutes_and_data_keeps_flowing() {
    MockClock::set_time(Duration::from_secs(1000));
    let (mut a, mut b) = pair();
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    let mut buf = vec![0u8; BUF_SIZE];
    handshake(&mut a, &mut b);
    assert!(a.last_handshake_age().unwrap() < Duration::from_secs(1));

    // Steady traffic for 115 s: no handshake before REKEY_AFTER_TIME (120 s).
    let inits = simulate(
        &mut a,
        &mut b,
        Duration::from_secs(115),
        Duration::from_secs(1),
    );
    assert_eq!(inits, 0, "no early rekey");
    assert!(a.last_handshake_age().unwrap() >= Duration::from_secs(115));
    let rx_before = b.counters().rx_bytes;
    assert!(rx_before > 0);

    // Past 120 s the initiator rekeys once, and the new session is in use.
    let inits = simulate(
        &mut a,
        &mut b,
        Duration::from_secs(15),
        Duration::from_secs(1),
    );
    assert_eq!(inits, 1, "exactly one rekey");
    assert!(
        a.last_handshake_age().unwrap() < Duration::from_secs(11),
        "new session"
    );
    assert!(
        b.counters().rx_bytes > rx_before,
        "data kept flowing across the rekey"
    );

    // Both directions work on the new session.
    let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"after rekey");
    let d = net(a.encapsulate(&p, &mut buf));
    match b.decapsulate(src, &d, &mut buf) {
        Output::Inside(got) => assert_eq!(got, &p[..]),
        o => panic!("{o:?}"),
    }
    let q = ipv4([10, 0, 0, 1], [10, 0, 0, 1], b"reply");
    let d = net(b.encapsulate(&q, &mut buf));
    assert!(matches!(
        a.decapsulate(src, &d, &mut buf),
        Output::Inside(_)
    ));
}

#[test]
fn silent_session_expires_and_a_new_packet_starts_a_handshake() {
    MockClock::set_time(Duration::from_secs(5000));
    let (mut a, mut b) = pair();
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    let mut buf = vec![0u8; BUF_SIZE];
    handshake(&mut a, &mut b);

    // After REJECT_AFTER_TIME (180 s) the session keys are gone: a packet now needs a handshake.
    let _ = run_for(&mut a, Duration::from_secs(181));
    assert_eq!(a.last_handshake_age(), None, "session dropped after 180 s");
    let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"late");
    let out = net(a.encapsulate(&p, &mut buf));
    assert!(
        is_handshake_init(&out),
        "packet queued behind a new handshake"
    );

    // Nobody answers: after REKEY_ATTEMPT_TIME (90 s) boringtun gives up and reports expiry.
    let mut expired = false;
    for _ in 0..(95 * 4) {
        MockClock::advance(Duration::from_millis(250));
        if let Output::Expired = a.tick(&mut buf) {
            expired = true;
            break;
        }
    }
    assert!(
        expired,
        "connection reported expired after 90 s of unanswered handshakes"
    );

    // A fresh packet after expiry starts over and completes with the peer.
    let init = net(a.encapsulate(&p, &mut buf));
    assert!(is_handshake_init(&init));
    let resp = net(b.decapsulate(src, &init, &mut buf));
    let keepalive = net(a.decapsulate(src, &resp, &mut buf));
    let queued = a
        .next_queued(&mut buf)
        .map(<[u8]>::to_vec)
        .expect("queued packet flushed");
    assert!(matches!(
        b.decapsulate(src, &keepalive, &mut buf),
        Output::Nothing
    ));
    assert!(matches!(
        b.decapsulate(src, &queued, &mut buf),
        Output::Inside(_)
    ));
}
