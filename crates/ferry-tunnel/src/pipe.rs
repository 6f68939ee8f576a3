//! Channels of IP packets between the WireGuard peer loop and a userspace TCP/IP stack.
//!
//! App mode joins the peer loop (which encrypts and decrypts) to a userspace stack (which speaks
//! TCP/UDP for the local proxy) with a [`pipe`]: each end sends whole IP packets to the other.

use bytes::Bytes;
use tokio::sync::mpsc;

/// One end of a packet pipe: `tx` sends IP packets to the other end, `rx` receives its packets.
#[derive(Debug)]
pub struct PipeEnd {
    /// Sends whole IP packets to the other end.
    pub tx: mpsc::Sender<Bytes>,
    /// Receives whole IP packets from the other end.
    pub rx: mpsc::Receiver<Bytes>,
}

/// Makes a bounded pipe holding up to `capacity` packets in each direction.
pub fn pipe(capacity: usize) -> (PipeEnd, PipeEnd) {
    let (a_tx, b_rx) = mpsc::channel(capacity.max(1));
    let (b_tx, a_rx) = mpsc::channel(capacity.max(1));
    (
        PipeEnd { tx: a_tx, rx: a_rx },
        PipeEnd { tx: b_tx, rx: b_rx },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_cross_both_ways() {
        let (mut a, mut b) = pipe(4);
        a.tx.send(Bytes::from_static(b"to-b")).await.unwrap();
        b.tx.send(Bytes::from_static(b"to-a")).await.unwrap();
        assert_eq!(b.rx.recv().await.unwrap(), Bytes::from_static(b"to-b"));
        assert_eq!(a.rx.recv().await.unwrap(), Bytes::from_static(b"to-a"));
    }
}
