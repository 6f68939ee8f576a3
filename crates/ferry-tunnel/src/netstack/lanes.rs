//! Lanes: the stack's sockets, each TCP connection in a socket set of its own.
//!
//! smoltcp visits every socket of a set on each poll (and, sending, once per segment), so in one
//! set 500 idle connections cost every packet of a busy one 500 visits. Here each TCP connection
//! is a lane with its own set: a packet is routed to its lane by its flow, only lanes something
//! happened to (a packet, a handle's read or write) are polled, and the others wait in a timer
//! queue until smoltcp wants them (retransmit, keep-alive). UDP sockets and packets of no known
//! connection share the default lane, where smoltcp answers a TCP segment with a reset, as a
//! single set would.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp as stcp;
use smoltcp::time::Instant;
use smoltcp::wire::IpProtocol;

use foldhash::{HashMap, HashMapExt};

use super::flow;

/// Names a lane.
pub(crate) type LaneId = u64;
/// The lane of UDP sockets and of packets no connection claims.
pub(crate) const DEFAULT_LANE: LaneId = 0;
/// A connection's (remote, local) endpoints, as the stack sees them.
pub(crate) type FlowKey = (SocketAddr, SocketAddr);

struct Lane {
    sockets: SocketSet<'static>,
    /// The lane's TCP socket (none on the default lane).
    tcp: Option<SocketHandle>,
    key: Option<FlowKey>,
    /// When smoltcp next wants this lane polled, as last asked.
    want: Option<Instant>,
    /// The earliest entry this lane has in the timer queue.
    queued: Option<Instant>,
    dirty: bool,
}

impl Lane {
    fn new(sockets: SocketSet<'static>, tcp: Option<SocketHandle>) -> Self {
        Self {
            sockets,
            tcp,
            key: None,
            want: None,
            queued: None,
            dirty: false,
        }
    }
}

/// Every socket of a stack, in lanes, with the work each lane waits for.
pub(crate) struct Lanes {
    lanes: HashMap<LaneId, Lane>,
    flows: HashMap<FlowKey, LaneId>,
    next: LaneId,
    dirty: Vec<LaneId>,
    timers: BinaryHeap<Reverse<(Instant, LaneId)>>,
}

impl Lanes {
    /// No sockets; the default lane only.
    pub(crate) fn new() -> Self {
        let mut lanes = HashMap::new();
        lanes.insert(DEFAULT_LANE, Lane::new(SocketSet::new(Vec::new()), None));
        Self {
            lanes,
            flows: HashMap::new(),
            next: DEFAULT_LANE + 1,
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// Puts `socket` in a lane of its own, routed to by `key` when given.
    pub(crate) fn add_tcp(
        &mut self,
        socket: stcp::Socket<'static>,
        key: Option<FlowKey>,
    ) -> LaneId {
        let id = self.next;
        self.next += 1;
        let mut sockets = SocketSet::new(Vec::with_capacity(1));
        let handle = sockets.add(socket);
        self.lanes.insert(id, Lane::new(sockets, Some(handle)));
        if let Some(key) = key {
            self.set_key(id, key);
        }
        self.mark(id);
        id
    }

    /// Routes packets of `key` to lane `id` (from now on, instead of any key it had).
    pub(crate) fn set_key(&mut self, id: LaneId, key: FlowKey) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        if let Some(old) = lane.key.replace(key) {
            if self.flows.get(&old) == Some(&id) {
                self.flows.remove(&old);
            }
        }
        self.flows.insert(key, id);
    }

    /// Whether a lane is routed to by `key`.
    pub(crate) fn has_flow(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Lane `id`'s TCP socket, to change: the lane is polled at the driver's next turn.
    pub(crate) fn tcp(&mut self, id: LaneId) -> Option<&mut stcp::Socket<'static>> {
        self.mark(id);
        let lane = self.lanes.get_mut(&id)?;
        let handle = lane.tcp?;
        Some(lane.sockets.get_mut::<stcp::Socket>(handle))
    }

    /// Lane `id`'s TCP socket, to look at.
    pub(crate) fn tcp_ref(&self, id: LaneId) -> Option<&stcp::Socket<'static>> {
        let lane = self.lanes.get(&id)?;
        Some(lane.sockets.get::<stcp::Socket>(lane.tcp?))
    }

    /// The default lane's sockets, to change: the lane is polled at the driver's next turn.
    pub(crate) fn default_sockets(&mut self) -> &mut SocketSet<'static> {
        self.mark(DEFAULT_LANE);
        let lane = self
            .lanes
            .entry(DEFAULT_LANE)
            .or_insert_with(|| Lane::new(SocketSet::new(Vec::new()), None));
        &mut lane.sockets
    }

    /// Removes lane `id` and its socket (never the default lane).
    pub(crate) fn remove(&mut self, id: LaneId) {
        if id == DEFAULT_LANE {
            return;
        }
        if let Some(lane) = self.lanes.remove(&id) {
            if let Some(key) = lane.key {
                if self.flows.get(&key) == Some(&id) {
                    self.flows.remove(&key);
                }
            }
        }
    }

    /// The lane a received packet belongs to: its TCP connection's, else the default one.
    pub(crate) fn route(&self, packet: &[u8]) -> LaneId {
        match flow::parse(packet) {
            Some(f) if f.proto == IpProtocol::Tcp => self
                .flows
                .get(&(f.src, f.dst))
                .copied()
                .unwrap_or(DEFAULT_LANE),
            _ => DEFAULT_LANE,
        }
    }

    /// Lane `id`'s sockets for the interface to poll, or `None` if it is gone.
    pub(crate) fn sockets_mut(&mut self, id: LaneId) -> Option<&mut SocketSet<'static>> {
        self.lanes.get_mut(&id).map(|lane| &mut lane.sockets)
    }

    /// Asks for lane `id` to be polled at the driver's next turn.
    pub(crate) fn mark(&mut self, id: LaneId) {
        if let Some(lane) = self.lanes.get_mut(&id) {
            if !lane.dirty {
                lane.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Moves the lanes to poll now into `out`: those marked and those whose time has come.
    pub(crate) fn take_work(&mut self, now: Instant, out: &mut Vec<LaneId>) {
        let start = out.len();
        // Lanes keep their `dirty` flag until the end, so a marked lane that is also due is
        // taken once.
        for id in self.dirty.drain(..) {
            if self.lanes.contains_key(&id) {
                out.push(id);
            }
        }
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(lane) = self.lanes.get_mut(&id) else {
                continue;
            };
            if lane.queued != Some(at) {
                // A later entry of a lane that was queued earlier than it needed.
                continue;
            }
            lane.queued = None;
            let Some(want) = lane.want else {
                continue;
            };
            if want > now {
                lane.queued = Some(want);
                self.timers.push(Reverse((want, id)));
            } else if !lane.dirty {
                lane.dirty = true;
                out.push(id);
            }
        }
        for id in &out[start..] {
            if let Some(lane) = self.lanes.get_mut(id) {
                lane.dirty = false;
            }
        }
    }

    /// Records when smoltcp next wants lane `id` (`None`: only when a packet comes).
    pub(crate) fn schedule(&mut self, id: LaneId, at: Option<Instant>) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        lane.want = at;
        if let Some(at) = at {
            // Only an earlier time needs an entry: a later one is re-queued when the earlier
            // entry comes due, which keeps the queue at about one entry per lane.
            if lane.queued.is_none_or(|q| at < q) {
                lane.queued = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// The earliest time any lane is due, if any lane waits for one.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            match self.lanes.get(&id) {
                Some(lane) if lane.queued == Some(at) => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Whether a lane waits to be polled at once.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Every socket of every lane.
    pub(crate) fn sockets(&self) -> impl Iterator<Item = &smoltcp::socket::Socket<'static>> {
        self.lanes
            .values()
            .flat_map(|lane| lane.sockets.iter().map(|(_, s)| s))
    }

    /// Every socket of every lane, to change (lanes are not marked).
    pub(crate) fn sockets_mut_all(
        &mut self,
    ) -> impl Iterator<Item = &mut smoltcp::socket::Socket<'static>> {
        self.lanes
            .values_mut()
            .flat_map(|lane| lane.sockets.iter_mut().map(|(_, s)| s))
    }

    /// How many TCP lanes there are.
    pub(crate) fn tcp_count(&self) -> usize {
        self.lanes.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> stcp::Socket<'static> {
        stcp::Socket::new(
            stcp::SocketBuffer::new(vec![0; 64]),
            stcp::SocketBuffer::new(vec![0; 64]),
        )
    }

    fn key(n: u16) -> FlowKey {
        (
            SocketAddr::from(([10, 0, 0, 2], n)),
            SocketAddr::from(([10, 0, 0, 1], 80)),
        )
    }

    #[test]
    fn a_lane_is_due_once_at_its_time_and_then_not_again() {
        let mut lanes = Lanes::new();
        let a = lanes.add_tcp(socket(), Some(key(1)));
        let mut work = Vec::new();
        lanes.take_work(Instant::from_millis(0), &mut work);
        assert_eq!(work, vec![a], "a new lane is polled at once");
        lanes.schedule(a, Some(Instant::from_millis(100)));
        work.clear();
        lanes.take_work(Instant::from_millis(99), &mut work);
        assert!(work.is_empty());
        assert_eq!(lanes.next_deadline(), Some(Instant::from_millis(100)));
        lanes.take_work(Instant::from_millis(100), &mut work);
        assert_eq!(work, vec![a]);
        work.clear();
        lanes.take_work(Instant::from_millis(500), &mut work);
        assert!(
            work.is_empty(),
            "due once, not again without a new schedule"
        );
        assert_eq!(lanes.next_deadline(), None);
    }

    #[test]
    fn a_later_time_keeps_one_entry_and_is_honoured() {
        let mut lanes = Lanes::new();
        let a = lanes.add_tcp(socket(), None);
        let mut work = Vec::new();
        lanes.take_work(Instant::from_millis(0), &mut work);
        for t in 1..1000 {
            lanes.schedule(a, Some(Instant::from_millis(t + 100)));
        }
        assert_eq!(
            lanes.timers.len(),
            1,
            "one queue entry for a lane pushed later and later"
        );
        work.clear();
        lanes.take_work(Instant::from_millis(101), &mut work);
        assert!(work.is_empty(), "the lane's latest time is 1099");
        assert_eq!(lanes.next_deadline(), Some(Instant::from_millis(1099)));
        lanes.take_work(Instant::from_millis(1099), &mut work);
        assert_eq!(work, vec![a]);
    }

    #[test]
    fn packets_go_to_their_connection_and_the_rest_to_the_default_lane() {
        let mut lanes = Lanes::new();
        let a = lanes.add_tcp(socket(), Some(key(1000)));
        // IPv4 TCP 10.0.0.2:1000 -> 10.0.0.1:80.
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        p.extend_from_slice(&[0x03, 0xe8, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x10, 0, 0]);
        p.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(lanes.route(&p), a);
        p[21] = 0xe9; // source port 1001: nobody's.
        assert_eq!(lanes.route(&p), DEFAULT_LANE);
        lanes.remove(a);
        p[21] = 0xe8;
        assert_eq!(
            lanes.route(&p),
            DEFAULT_LANE,
            "a removed lane is no longer routed to"
        );
        assert_eq!(lanes.tcp_count(), 0);
    }
}
