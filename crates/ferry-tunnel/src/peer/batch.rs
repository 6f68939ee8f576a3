//! Batched UDP I/O: `recvmmsg`/`sendmmsg` move many datagrams per system call, and with UDP
//! GRO (receive) and GSO (`UDP_SEGMENT`, send) one message carries many same-sized datagrams,
//! so a burst crosses the kernel's UDP and veth paths once instead of once per packet.
//! Buffers are allocated once; nothing here allocates per packet.

use super::sockaddr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Most messages handed to one `recvmmsg`/`sendmmsg` call.
pub const MAX_BATCH: usize = 64;
/// Largest UDP payload one GSO send may carry (the IPv4 total-length limit, with headroom).
const GSO_MAX_BYTES: usize = 65_000;
/// Most segments the kernel accepts in one GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;
/// Control-message space per message, in u64 words (room for one int-sized cmsg and more).
const CTRL_WORDS: usize = 8;

fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> bool {
    // SAFETY: an integer socket option on a descriptor we borrow; `v` outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Turns on UDP GRO for `fd`; false if the kernel does not support it.
pub fn enable_gro(fd: BorrowedFd<'_>) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

/// True if the kernel accepts `UDP_SEGMENT` on `fd` (probed by setting it to 0: off).
pub fn gso_supported(fd: BorrowedFd<'_>) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT, 0)
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid `sockaddr_storage`.
    unsafe { std::mem::zeroed() }
}

/// Buffers for receiving up to `count` messages of up to `slot` bytes each per call.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    addrs: Vec<libc::sockaddr_storage>,
    ctrl: Vec<u64>,
    lens: Vec<usize>,
    segs: Vec<usize>,
    n: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slot", &self.slot)
            .field("count", &self.lens.len())
            .finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// Room for `count` (at most [`MAX_BATCH`]) messages of `slot` bytes. With GRO on, `slot`
    /// must be 65 535 or more: a coalesced message is up to 64 KiB.
    pub fn new(count: usize, slot: usize) -> Self {
        let count = count.clamp(1, MAX_BATCH);
        Self {
            buf: vec![0u8; count * slot],
            slot,
            addrs: vec![zeroed_storage(); count],
            ctrl: vec![0u64; count * CTRL_WORDS],
            lens: vec![0; count],
            segs: vec![0; count],
            n: 0,
        }
    }

    /// How many messages one call can receive.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Receives what is queued on `fd` without blocking; returns the number of messages
    /// (`WouldBlock` when none is queued). Truncated messages are kept with length 0.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let count = self.capacity();
        // SAFETY: all-zero is a valid `iovec` and `mmsghdr` (null pointers, zero lengths).
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let base = self.buf.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        for i in 0..count {
            // SAFETY: `i * slot` is within `buf` (`count * slot` bytes long).
            iovs[i].iov_base = unsafe { base.add(i * self.slot) }.cast();
            iovs[i].iov_len = self.slot;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            // SAFETY: `i * CTRL_WORDS` is within `ctrl` (`count * CTRL_WORDS` words long).
            h.msg_control = unsafe { ctrl.add(i * CTRL_WORDS) }.cast();
            h.msg_controllen = CTRL_WORDS * 8;
        }
        // SAFETY: every header points at live buffers of the stated sizes, owned by `self`
        // or this stack frame, for the duration of the call.
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            self.n = 0;
            return Err(io::Error::last_os_error());
        }
        let n = rc as usize;
        for (i, m) in hdrs.iter().take(n).enumerate() {
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated {
                0
            } else {
                (m.msg_len as usize).min(self.slot)
            };
            self.segs[i] = gro_size(&m.msg_hdr);
        }
        self.n = n;
        Ok(n)
    }

    /// The datagrams of the last [`RecvBatch::recv`], GRO messages split into their segments,
    /// each with its sender. `f` gets them one at a time.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], SocketAddr)) {
        for i in 0..self.n {
            let Some(from) = sockaddr::from_c(&self.addrs[i]) else {
                continue;
            };
            let start = i * self.slot;
            let msg = &self.buf[start..start + self.lens[i]];
            match self.segs[i] {
                0 => f(msg, from),
                seg => msg.chunks(seg).for_each(|d| f(d, from)),
            }
        }
    }
}

/// The GRO segment size in a received message's control data, 0 if none.
fn gro_size(h: &libc::msghdr) -> usize {
    if h.msg_control.is_null() || h.msg_controllen == 0 {
        return 0;
    }
    // SAFETY: the kernel filled `msg_control`/`msg_controllen`; the CMSG_* helpers stay
    // within them and `CMSG_DATA` of a SOL_UDP/UDP_GRO message holds an int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// Datagrams to one destination, collected and then sent with as few system calls as possible.
pub struct SendBatch {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    n: usize,
    dest: Option<SocketAddr>,
    gso: bool,
    /// Datagrams dropped on transient send errors (no route, buffer full for too long, ...).
    pub dropped: u64,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("slot", &self.slot)
            .field("queued", &self.n)
            .field("gso", &self.gso)
            .finish_non_exhaustive()
    }
}

/// What a failed send means for the datagram.
enum SendFailure {
    /// Drop this datagram and go on.
    Drop,
    /// Wait for the socket to drain, then retry.
    Wait,
    /// GSO is not usable here: turn it off and retry.
    NoGso,
    /// The socket is broken.
    Fatal(io::Error),
}

fn classify(e: io::Error, gso: bool) -> SendFailure {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => SendFailure::Wait,
        Some(libc::EINTR) => SendFailure::Wait,
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP) if gso => SendFailure::NoGso,
        Some(
            libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::ENOBUFS
            | libc::ECONNREFUSED
            | libc::EPERM
            | libc::EMSGSIZE
            | libc::EADDRNOTAVAIL
            | libc::EAFNOSUPPORT,
        ) => SendFailure::Drop,
        _ => SendFailure::Fatal(e),
    }
}

impl SendBatch {
    /// Room for `count` (at most [`MAX_BATCH`]) datagrams of up to `slot` bytes; `gso` uses
    /// `UDP_SEGMENT` for runs of equal-sized datagrams.
    pub fn new(count: usize, slot: usize, gso: bool) -> Self {
        let count = count.clamp(1, MAX_BATCH);
        Self {
            buf: vec![0u8; count * slot],
            slot,
            lens: vec![0; count],
            n: 0,
            dest: None,
            gso,
            dropped: 0,
        }
    }

    /// True when no more datagrams fit: flush first.
    pub fn is_full(&self) -> bool {
        self.n == self.lens.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether GSO is (still) in use.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// The next free slot to write a datagram into, or `None` if the batch is full.
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        let start = self.n * self.slot;
        Some(&mut self.buf[start..start + self.slot])
    }

    /// Queues the first `len` bytes of the slot from [`SendBatch::slot`] for `dest`. The caller
    /// flushes first when `dest` differs from the queued datagrams' (see [`SendBatch::dest`]).
    pub fn commit(&mut self, len: usize, dest: SocketAddr) {
        if self.is_full() {
            return;
        }
        self.lens[self.n] = len.min(self.slot);
        self.n += 1;
        self.dest = Some(dest);
    }

    /// Where the queued datagrams go.
    pub fn dest(&self) -> Option<SocketAddr> {
        if self.n == 0 {
            None
        } else {
            self.dest
        }
    }

    /// Sends everything queued; transient errors drop datagrams (counted), a full socket
    /// buffer is waited on briefly. Only a broken socket is an error.
    pub fn flush(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let Some(dest) = self.dest() else {
            return Ok(());
        };
        let (mut addr, addr_len) = sockaddr::to_c(dest);
        let mut first = 0;
        let mut waits = 0;
        while first < self.n {
            match self.send_from(fd, first, &mut addr, addr_len) {
                Ok(sent) => {
                    first += sent;
                    waits = 0;
                }
                Err((at, e)) => match classify(e, self.gso) {
                    SendFailure::Drop => {
                        self.dropped += 1;
                        first = at + 1;
                    }
                    SendFailure::Wait => {
                        waits += 1;
                        if waits > 20 || !wait_writable(fd, 10) {
                            self.dropped += (self.n - at) as u64;
                            first = self.n;
                        }
                        first = first.max(at);
                    }
                    SendFailure::NoGso => {
                        tracing::info!("UDP GSO unavailable here; sending datagram by datagram");
                        self.gso = false;
                        first = at;
                    }
                    SendFailure::Fatal(e) => {
                        self.n = 0;
                        return Err(e);
                    }
                },
            }
        }
        self.n = 0;
        Ok(())
    }

    /// One `sendmmsg` for datagrams `first..n`; returns how many datagrams went out, or the
    /// index of the first datagram of the failing message and the error.
    fn send_from(
        &mut self,
        fd: BorrowedFd<'_>,
        first: usize,
        addr: &mut libc::sockaddr_storage,
        addr_len: libc::socklen_t,
    ) -> Result<usize, (usize, io::Error)> {
        // SAFETY: all-zero is a valid `iovec`, `mmsghdr` (null pointers, zero lengths).
        let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut ctrl = [[0u64; CTRL_WORDS]; MAX_BATCH];
        // Per message: index of its first datagram and how many it carries.
        let mut spans = [(0usize, 0usize); MAX_BATCH];
        let base = self.buf.as_mut_ptr();
        let mut msgs = 0;
        let mut i = first;
        while i < self.n {
            let seg = self.lens[i];
            let mut k = 1;
            if self.gso {
                // A run of equal sizes, optionally ended by one shorter datagram.
                while i + k < self.n
                    && k < GSO_MAX_SEGMENTS
                    && (k + 1) * seg <= GSO_MAX_BYTES
                    && self.lens[i + k] <= seg
                {
                    let last = self.lens[i + k] < seg;
                    k += 1;
                    if last {
                        break;
                    }
                }
            }
            for j in 0..k {
                // SAFETY: `(i + j) * slot` is within `buf`.
                iovs[i + j].iov_base = unsafe { base.add((i + j) * self.slot) }.cast();
                iovs[i + j].iov_len = self.lens[i + j];
            }
            let h = &mut hdrs[msgs].msg_hdr;
            h.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = addr_len;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = k;
            if k > 1 {
                let c = &mut ctrl[msgs];
                h.msg_control = c.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE is a pure size computation.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
                // SAFETY: the control buffer is CTRL_WORDS * 8 bytes, more than CMSG_SPACE(2);
                // the header and its u16 payload are written inside it.
                unsafe {
                    let cm = libc::CMSG_FIRSTHDR(h);
                    (*cm).cmsg_level = libc::SOL_UDP;
                    (*cm).cmsg_type = libc::UDP_SEGMENT;
                    (*cm).cmsg_len = libc::CMSG_LEN(2) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), seg as u16);
                }
            }
            spans[msgs] = (i, k);
            msgs += 1;
            i += k;
        }
        // SAFETY: every header points at live buffers of the stated sizes for the call.
        let rc = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                msgs as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            return Err((first, io::Error::last_os_error()));
        }
        let sent_msgs = rc as usize;
        Ok(spans[..sent_msgs].iter().map(|(_, k)| k).sum())
    }
}

/// Waits up to `ms` for `fd` to become writable.
fn wait_writable(fd: BorrowedFd<'_>, ms: libc::c_int) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    rc > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn recv_all(rx: &UdpSocket, batch: &mut RecvBatch, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            match batch.recv(rx.as_fd()) {
                Ok(_) => batch.for_each(|d, from| got.push((d.to_vec(), from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    fn roundtrip(gso: bool, gro: bool) {
        let (tx, rx) = pair();
        if gro {
            assert!(enable_gro(rx.as_fd()) || !gso_supported(rx.as_fd()));
        }
        let mut out = SendBatch::new(MAX_BATCH, 1500, gso && gso_supported(tx.as_fd()));
        let mut inb = RecvBatch::new(8, 65_536);
        let to = rx.local_addr().unwrap();
        // 50 full-size datagrams, then a short one, then sizes that break runs.
        let mut sizes: Vec<usize> = vec![1200; 50];
        sizes.extend([700, 1200, 1200, 100, 1, 1300]);
        let mut sent = Vec::new();
        for (i, len) in sizes.iter().enumerate() {
            if out.is_full() {
                out.flush(tx.as_fd()).unwrap();
            }
            let s = out.slot().unwrap();
            for (j, b) in s[..*len].iter_mut().enumerate() {
                *b = (i * 7 + j) as u8;
            }
            sent.push(s[..*len].to_vec());
            out.commit(*len, to);
        }
        out.flush(tx.as_fd()).unwrap();
        assert!(out.is_empty());
        let got = recv_all(&rx, &mut inb, sent.len());
        assert_eq!(got.len(), sent.len());
        for ((d, from), want) in got.iter().zip(&sent) {
            assert_eq!(d, want);
            assert_eq!(*from, tx.local_addr().unwrap());
        }
        assert_eq!(out.dropped, 0);
    }

    #[test]
    fn batches_arrive_whole_and_in_order_without_offloads() {
        roundtrip(false, false);
    }

    #[test]
    fn batches_arrive_whole_and_in_order_with_gso_and_gro() {
        roundtrip(true, true);
    }

    #[test]
    fn empty_socket_would_block() {
        let (_tx, rx) = pair();
        let mut inb = RecvBatch::new(4, 2048);
        let e = inb.recv(rx.as_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let mut n = 0;
        inb.for_each(|_, _| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn truncated_datagram_is_empty_not_garbage() {
        let (tx, rx) = pair();
        tx.send_to(&[9u8; 300], rx.local_addr().unwrap()).unwrap();
        let mut inb = RecvBatch::new(4, 100);
        let got = recv_all(&rx, &mut inb, 1);
        assert_eq!(got.len(), 1);
        assert!(got[0].0.is_empty());
    }

    #[test]
    fn unusable_destination_drops_instead_of_failing() {
        let (tx, rx) = pair();
        let mut out = SendBatch::new(4, 64, false);
        out.slot().unwrap()[..4].copy_from_slice(b"ping");
        // An IPv6 destination on an IPv4 socket: EAFNOSUPPORT, nothing leaves the host.
        out.commit(4, "[::1]:9".parse().unwrap());
        out.flush(tx.as_fd()).unwrap();
        assert!(out.is_empty());
        assert_eq!(out.dropped, 1);
        // The batch still works afterwards.
        out.slot().unwrap()[..4].copy_from_slice(b"pong");
        out.commit(4, rx.local_addr().unwrap());
        out.flush(tx.as_fd()).unwrap();
        let mut inb = RecvBatch::new(4, 64);
        let got = recv_all(&rx, &mut inb, 1);
        assert_eq!(got[0].0, b"pong");
    }
}
