//! The smoltcp device over a packet pipe: received packets wait in a queue, sent packets are
//! carved out of a shared arena so the hot path does not allocate per packet.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// Size of each arena chunk outgoing packets are cut from (reclaimed once its packets are gone).
/// Below the stack's mmap threshold (128 KiB), so a new chunk comes from the heap: at 256 KiB
/// each chunk was a fresh mapping, page-faulted, zeroed and unmapped again, every ~180 packets.
const ARENA_CHUNK: usize = 64 * 1024;

/// A medium-ip device whose packets come from and go to in-memory queues.
pub(crate) struct PipeDevice {
    /// Packets received from the pipe, waiting for the interface.
    pub(crate) rx: VecDeque<Bytes>,
    /// Packets the interface produced, waiting to go into the pipe.
    pub(crate) tx: VecDeque<Bytes>,
    arena: BytesMut,
    mtu: usize,
}

impl PipeDevice {
    pub(crate) fn new(mtu: usize) -> Self {
        Self {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            arena: BytesMut::with_capacity(ARENA_CHUNK),
            mtu,
        }
    }
}

pub(crate) struct PipeRxToken(Bytes);

pub(crate) struct PipeTxToken<'a> {
    tx: &'a mut VecDeque<Bytes>,
    arena: &'a mut BytesMut,
}

impl RxToken for PipeRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

impl TxToken for PipeTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        if self.arena.capacity() < len {
            // Reuses the chunk in place when every packet cut from it has been dropped.
            self.arena.reserve(ARENA_CHUNK.max(len));
        }
        self.arena.resize(len, 0);
        let result = f(&mut self.arena[..len]);
        let packet = self.arena.split_to(len).freeze();
        self.tx.push_back(packet);
        result
    }
}

impl Device for PipeDevice {
    type RxToken<'a> = PipeRxToken;
    type TxToken<'a> = PipeTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((
            PipeRxToken(packet),
            PipeTxToken {
                tx: &mut self.tx,
                arena: &mut self.arena,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(PipeTxToken {
            tx: &mut self.tx,
            arena: &mut self.arena,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}
