//! TUN offloads in user space: with `IFF_VNET_HDR` and TSO on, the kernel hands the TUN device
//! TCP super-packets of up to 64 KiB (one read instead of ~45), which [`TsoSegments`] cuts
//! into MTU-sized segments with correct headers and checksums before encryption; in the other
//! direction [`Coalescer`] merges consecutive decrypted segments of one TCP flow into one
//! super-packet, so the kernel's TCP stack handles one packet (one write) instead of ~45.
//!
//! Every packet read from or written to such a device starts with a 10-byte
//! `struct virtio_net_hdr` ([`VnetHdr`]).

/// Length of `struct virtio_net_hdr` (what `TUNSETVNETHDRSZ` is left at).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;
const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;
/// Largest IP packet (IPv4 total length / IPv6 payload length are 16 bits).
const MAX_IP: usize = 65_535;
/// Most segments merged into one super-packet.
const MAX_SEGS: usize = 64;

/// Why an offloaded packet could not be handled (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Shorter than its virtio-net header or its IP/TCP headers say.
    #[error("truncated packet")]
    Truncated,
    /// A GSO type or header layout we do not segment (not plain TCP over IPv4/IPv6).
    #[error("unsupported offload request")]
    Unsupported,
}

/// The virtio-net header in front of every packet on a `IFF_VNET_HDR` TUN device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Length of the headers (IP + TCP) of a GSO packet.
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO packet.
    pub gso_size: u16,
    /// Where checksumming starts (the transport header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the first [`VNET_HDR_LEN`] bytes (native byte order, as the kernel writes them).
    pub fn parse(b: &[u8]) -> Result<Self, OffloadError> {
        let b: &[u8; VNET_HDR_LEN] = b
            .get(..VNET_HDR_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(OffloadError::Truncated)?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Ok(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// The header's wire form.
    pub fn to_bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// Adds `data` to a ones'-complement sum (big-endian 16-bit words, odd byte padded).
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = rest.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The pseudo-header sum for a transport segment of `len` bytes in `ip`'s packet.
fn pseudo(ip: &[u8], v6: bool, len: usize) -> u64 {
    if v6 {
        sum(&ip[8..40], u64::from(PROTO_TCP) + len as u64)
    } else {
        sum(&ip[12..20], u64::from(PROTO_TCP) + len as u64)
    }
}

fn ipv4_header_checksum(ip: &mut [u8], ihl: usize) {
    ip[10] = 0;
    ip[11] = 0;
    let c = !fold(sum(&ip[..ihl], 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Finishes a partial checksum the kernel left for us (`VIRTIO_NET_HDR_F_NEEDS_CSUM` on a
/// packet that is not GSO): the field already holds the pseudo-header sum.
pub fn complete_checksum(pkt: &mut [u8], hdr: &VnetHdr) -> Result<(), OffloadError> {
    if hdr.flags & F_NEEDS_CSUM == 0 {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > pkt.len() {
        return Err(OffloadError::Truncated);
    }
    let c = !fold(sum(&pkt[start..], 0));
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// IP and TCP header facts of a packet.
#[derive(Debug, Clone, Copy)]
struct TcpIp {
    v6: bool,
    ip_len: usize,
    tcp_len: usize,
    /// IP packet length from the header (the buffer may be longer).
    total: usize,
}

impl TcpIp {
    fn headers(&self) -> usize {
        self.ip_len + self.tcp_len
    }
}

/// Parses a plain (no IPv4 options, no IPv6 extension headers, unfragmented) TCP packet.
fn parse_tcp(pkt: &[u8]) -> Option<TcpIp> {
    let (v6, ip_len, total) = match pkt.first()? >> 4 {
        4 => {
            if pkt.len() < 20 || pkt[0] & 0x0f != 5 || pkt[9] != PROTO_TCP {
                return None;
            }
            // More-fragments flag or a fragment offset: not a whole segment.
            if u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0 {
                return None;
            }
            (false, 20, usize::from(u16::from_be_bytes([pkt[2], pkt[3]])))
        }
        6 => {
            if pkt.len() < 40 || pkt[6] != PROTO_TCP {
                return None;
            }
            (
                true,
                40,
                40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]])),
            )
        }
        _ => return None,
    };
    let tcp_len = usize::from(pkt.get(ip_len + 12)? >> 4) * 4;
    if tcp_len < 20 || total < ip_len + tcp_len || total > pkt.len() {
        return None;
    }
    Some(TcpIp {
        v6,
        ip_len,
        tcp_len,
        total,
    })
}

/// Cuts a TSO super-packet read from the TUN device into segments of `gso_size` payload
/// bytes, each a valid TCP/IP packet with its own headers and checksums.
#[derive(Debug)]
pub struct TsoSegments<'a> {
    pkt: &'a [u8],
    tcp: TcpIp,
    gso: usize,
    offset: usize,
    index: usize,
}

impl<'a> TsoSegments<'a> {
    /// Prepares to segment `pkt` (the bytes after the virtio-net header) as `hdr` asks.
    pub fn new(pkt: &'a [u8], hdr: &VnetHdr) -> Result<Self, OffloadError> {
        let want_v6 = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 => false,
            GSO_TCPV6 => true,
            _ => return Err(OffloadError::Unsupported),
        };
        let tcp = parse_tcp(pkt).ok_or(OffloadError::Unsupported)?;
        if tcp.v6 != want_v6 || hdr.gso_size == 0 {
            return Err(OffloadError::Unsupported);
        }
        Ok(Self {
            pkt: &pkt[..tcp.total],
            tcp,
            gso: usize::from(hdr.gso_size),
            offset: tcp.headers(),
            index: 0,
        })
    }

    /// Writes the next segment into `out` and returns its length; `None` when done.
    /// `out` must hold the headers plus `gso_size` bytes (segments that do not fit end it).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let h = self.tcp.headers();
        if self.offset >= self.pkt.len() {
            return None;
        }
        let chunk = (self.pkt.len() - self.offset).min(self.gso);
        let len = h + chunk;
        if out.len() < len {
            return None;
        }
        let first = self.index == 0;
        let last = self.offset + chunk >= self.pkt.len();
        out[..h].copy_from_slice(&self.pkt[..h]);
        out[h..len].copy_from_slice(&self.pkt[self.offset..self.offset + chunk]);
        let ip = self.tcp.ip_len;
        if self.tcp.v6 {
            out[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let id = u16::from_be_bytes([out[4], out[5]]).wrapping_add(self.index as u16);
            out[4..6].copy_from_slice(&id.to_be_bytes());
            ipv4_header_checksum(out, ip);
        }
        let seq = u32::from_be_bytes([out[ip + 4], out[ip + 5], out[ip + 6], out[ip + 7]])
            .wrapping_add((self.offset - h) as u32);
        out[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
        if !last {
            out[ip + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if !first {
            out[ip + 13] &= !TCP_CWR;
        }
        out[ip + 16] = 0;
        out[ip + 17] = 0;
        let c = !fold(sum(&out[ip..len], pseudo(out, self.tcp.v6, len - ip)));
        out[ip + 16..ip + 18].copy_from_slice(&c.to_be_bytes());
        self.offset += chunk;
        self.index += 1;
        Some(len)
    }
}

/// Merges consecutive in-order TCP segments of one flow into one super-packet for a
/// `IFF_VNET_HDR` TUN device (what the kernel's GRO would do), and passes everything else
/// through unchanged.
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    len: usize,
    tcp: Option<TcpIp>,
    segs: usize,
    gso: usize,
    next_seq: u32,
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    /// An empty coalescer (one 64 KiB buffer).
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; MAX_IP],
            len: 0,
            tcp: None,
            segs: 0,
            gso: 0,
            next_seq: 0,
            closed: false,
        }
    }

    /// Takes one decrypted IP packet; `write` receives finished packets (virtio-net header,
    /// packet) whenever one is complete. Call [`Coalescer::flush`] after each batch.
    pub fn push<E>(
        &mut self,
        pkt: &[u8],
        mut write: impl FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(t) = parse_tcp(pkt).filter(|t| mergeable(pkt, t)) else {
            self.flush(&mut write)?;
            return write(&VnetHdr::default().to_bytes(), pkt);
        };
        let pkt = &pkt[..t.total];
        if self.can_append(pkt, &t) {
            let payload = &pkt[t.headers()..];
            self.buf[self.len..self.len + payload.len()].copy_from_slice(payload);
            self.len += payload.len();
            self.segs += 1;
            self.next_seq = self.next_seq.wrapping_add(payload.len() as u32);
            let ip = t.ip_len;
            if pkt[ip + 13] & TCP_PSH != 0 {
                self.buf[ip + 13] |= TCP_PSH;
                self.closed = true;
            }
            if payload.len() < self.gso {
                self.closed = true;
            }
            return Ok(());
        }
        self.flush(&mut write)?;
        let ip = t.ip_len;
        if pkt[ip + 13] & TCP_PSH != 0 {
            // Nothing can follow it: pass it through as is.
            return write(&VnetHdr::default().to_bytes(), pkt);
        }
        self.buf[..pkt.len()].copy_from_slice(pkt);
        self.len = pkt.len();
        self.tcp = Some(t);
        self.segs = 1;
        self.gso = t.total - t.headers();
        self.next_seq = seq_of(pkt, ip).wrapping_add(self.gso as u32);
        self.closed = false;
        Ok(())
    }

    fn can_append(&self, pkt: &[u8], t: &TcpIp) -> bool {
        let Some(cur) = self.tcp else { return false };
        let payload = t.total - t.headers();
        let h = t.headers();
        let ip = t.ip_len;
        !self.closed
            && self.segs < MAX_SEGS
            && cur.v6 == t.v6
            && cur.tcp_len == t.tcp_len
            && payload <= self.gso
            && self.len + payload <= MAX_IP
            && seq_of(pkt, ip) == self.next_seq
            // Same addresses, ports, ack, window and options; same TOS/TTL or class/hop limit.
            && same_ip(&self.buf, pkt, t.v6)
            && self.buf[ip..ip + 4] == pkt[ip..ip + 4]
            && self.buf[ip + 8..ip + 12] == pkt[ip + 8..ip + 12]
            && self.buf[ip + 14..ip + 16] == pkt[ip + 14..ip + 16]
            && self.buf[ip + 20..h] == pkt[ip + 20..h]
    }

    /// Writes the packet being built, if any.
    pub fn flush<E>(
        &mut self,
        mut write: impl FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(t) = self.tcp.take() else {
            return Ok(());
        };
        let len = std::mem::take(&mut self.len);
        let segs = std::mem::take(&mut self.segs);
        if segs <= 1 {
            return write(&VnetHdr::default().to_bytes(), &self.buf[..len]);
        }
        let ip = t.ip_len;
        let p = &mut self.buf[..len];
        if t.v6 {
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            ipv4_header_checksum(p, ip);
        }
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
        let c = fold(pseudo(p, t.v6, len - ip));
        p[ip + 16..ip + 18].copy_from_slice(&c.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if t.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: t.headers() as u16,
            gso_size: self.gso as u16,
            csum_start: ip as u16,
            csum_offset: 16,
        };
        write(&hdr.to_bytes(), p)
    }
}

fn seq_of(pkt: &[u8], ip: usize) -> u32 {
    u32::from_be_bytes([pkt[ip + 4], pkt[ip + 5], pkt[ip + 6], pkt[ip + 7]])
}

/// A data segment with only ACK (and maybe PSH) set: the only kind merged.
fn mergeable(pkt: &[u8], t: &TcpIp) -> bool {
    let flags = pkt[t.ip_len + 13];
    t.total > t.headers() && flags & !(TCP_ACK | TCP_PSH) == 0 && flags & TCP_ACK != 0
}

fn same_ip(a: &[u8], b: &[u8], v6: bool) -> bool {
    if v6 {
        // Version/class/flow label, next header, hop limit, addresses.
        a[..4] == b[..4] && a[6..40] == b[6..40]
    } else {
        // Version/IHL/TOS, flags (DF), TTL/protocol, addresses.
        a[..2] == b[..2] && a[6..7] == b[6..7] && a[8..10] == b[8..10] && a[12..20] == b[12..20]
    }
}

/// Whether a virtio-net header asks for segmentation.
pub fn is_gso(hdr: &VnetHdr) -> bool {
    hdr.gso_type != GSO_NONE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks an IPv4/IPv6 TCP packet's checksums the way a receiver would.
    fn checksums_ok(p: &[u8]) -> bool {
        let t = parse_tcp(p).unwrap();
        let ip_ok = t.v6 || fold(sum(&p[..20], 0)) == 0xffff;
        let tcp_ok = fold(sum(
            &p[t.ip_len..t.total],
            pseudo(p, t.v6, t.total - t.ip_len),
        )) == 0xffff;
        ip_ok && tcp_ok
    }

    fn tcp_packet(v6: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let ip = if v6 { 40 } else { 20 };
        let tcp = 32; // with 12 bytes of options (timestamps)
        let total = ip + tcp + payload.len();
        let mut p = vec![0u8; total];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            p[6] = PROTO_TCP;
            p[7] = 64;
            p[8..24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            p[0] = 0x45;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            p[6] = 0x40;
            p[8] = 64;
            p[9] = PROTO_TCP;
            p[12..16].copy_from_slice(&[10, 98, 0, 1]);
            p[16..20].copy_from_slice(&[10, 98, 0, 2]);
            ipv4_header_checksum(&mut p, 20);
        }
        p[ip..ip + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[ip + 2..ip + 4].copy_from_slice(&5201u16.to_be_bytes());
        p[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
        p[ip + 8..ip + 12].copy_from_slice(&77u32.to_be_bytes());
        p[ip + 12] = ((tcp / 4) as u8) << 4;
        p[ip + 13] = flags;
        p[ip + 14..ip + 16].copy_from_slice(&512u16.to_be_bytes());
        p[ip + 20..ip + 32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3]);
        p[ip + tcp..].copy_from_slice(payload);
        let c = !fold(sum(&p[ip..], pseudo(&p, v6, total - ip)));
        p[ip + 16..ip + 18].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Segments a super-packet the way the kernel hands it over (partial checksum).
    fn segment_all(sup: &[u8], v6: bool, gso: u16) -> Vec<Vec<u8>> {
        let t = parse_tcp(sup).unwrap();
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: t.headers() as u16,
            gso_size: gso,
            csum_start: t.ip_len as u16,
            csum_offset: 16,
        };
        let mut segs = TsoSegments::new(sup, &hdr).unwrap();
        let mut out = vec![0u8; 2048];
        let mut v = Vec::new();
        while let Some(n) = segs.next_into(&mut out) {
            v.push(out[..n].to_vec());
        }
        v
    }

    #[test]
    fn tso_segments_are_valid_packets_that_reassemble() {
        for v6 in [false, true] {
            let data = payload(10_000);
            let sup = tcp_packet(v6, 1000, TCP_ACK | TCP_PSH | TCP_FIN, &data);
            let segs = segment_all(&sup, v6, 1368);
            assert_eq!(segs.len(), 8);
            let mut joined = Vec::new();
            let mut seq = 1000u32;
            for (i, s) in segs.iter().enumerate() {
                assert!(checksums_ok(s), "segment {i} v6={v6}");
                let t = parse_tcp(s).unwrap();
                assert_eq!(seq_of(s, t.ip_len), seq);
                let last = i == segs.len() - 1;
                assert_eq!(s[t.ip_len + 13] & (TCP_PSH | TCP_FIN) != 0, last);
                if !v6 {
                    assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + i as u16);
                }
                joined.extend_from_slice(&s[t.headers()..]);
                seq += (s.len() - t.headers()) as u32;
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn coalescer_rebuilds_one_super_packet_with_partial_checksum() {
        for v6 in [false, true] {
            let data = payload(5 * 1368 + 100);
            let sup = tcp_packet(v6, 42, TCP_ACK | TCP_PSH, &data);
            let segs = segment_all(&sup, v6, 1368);
            let mut c = Coalescer::new();
            let mut out: Vec<(VnetHdr, Vec<u8>)> = Vec::new();
            let mut w = |h: &[u8; VNET_HDR_LEN], p: &[u8]| -> Result<(), ()> {
                out.push((VnetHdr::parse(h).unwrap(), p.to_vec()));
                Ok(())
            };
            for s in &segs {
                c.push(s, &mut w).unwrap();
            }
            c.flush(&mut w).unwrap();
            assert_eq!(out.len(), 1, "v6={v6}");
            let (h, p) = &out[0];
            assert_eq!(h.gso_size, 1368);
            assert_eq!(h.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
            assert_eq!(h.flags, F_NEEDS_CSUM);
            let t = parse_tcp(p).unwrap();
            assert_eq!(&p[t.headers()..], &data[..]);
            assert_eq!(p[t.ip_len + 13], TCP_ACK | TCP_PSH);
            // Completing the partial checksum gives a valid packet again.
            let mut done = p.clone();
            complete_checksum(&mut done, h).unwrap();
            assert!(checksums_ok(&done));
            // And segmenting that yields the original segments.
            assert_eq!(segment_all(&done, v6, 1368), segs);
        }
    }

    #[test]
    fn coalescer_keeps_gaps_other_flows_and_control_packets_apart() {
        let a = tcp_packet(false, 0, TCP_ACK, &payload(1000));
        let b = tcp_packet(false, 1000, TCP_ACK, &payload(1000));
        let gap = tcp_packet(false, 5000, TCP_ACK, &payload(1000));
        let syn = tcp_packet(false, 6000, 0x02, &[]);
        let pure_ack = tcp_packet(false, 6000, TCP_ACK, &[]);
        let mut other = tcp_packet(false, 2000, TCP_ACK, &payload(1000));
        other[20] ^= 1; // another source port
        let udp = {
            let mut u = a.clone();
            u[9] = 17;
            u
        };
        let mut c = Coalescer::new();
        let mut out: Vec<(u8, usize)> = Vec::new();
        let mut w = |h: &[u8; VNET_HDR_LEN], p: &[u8]| -> Result<(), ()> {
            out.push((h[1], p.len()));
            Ok(())
        };
        for p in [&a, &b, &gap, &other, &syn, &pure_ack, &udp] {
            c.push(p, &mut w).unwrap();
        }
        c.flush(&mut w).unwrap();
        assert_eq!(
            out,
            vec![
                (GSO_TCPV4, 52 + 2000),
                (0, gap.len()),
                (0, other.len()),
                (0, syn.len()),
                (0, pure_ack.len()),
                (0, udp.len()),
            ]
        );
    }

    #[test]
    fn bad_offload_requests_are_errors_not_panics() {
        let hdr = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 100,
            ..VnetHdr::default()
        };
        assert!(TsoSegments::new(&[0x45, 0, 0], &hdr).is_err());
        assert!(VnetHdr::parse(&[0u8; 3]).is_err());
        let udp = {
            let mut u = tcp_packet(false, 0, TCP_ACK, &payload(10));
            u[9] = 17;
            u
        };
        assert!(TsoSegments::new(&udp, &hdr).is_err());
        let mut short = vec![0u8; 8];
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 4,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        assert_eq!(
            complete_checksum(&mut short, &h),
            Err(OffloadError::Truncated)
        );
        let mut c = Coalescer::new();
        for junk in [&[][..], &[0x45][..], &[0x60; 39][..], &[0x4f; 60][..]] {
            c.push(junk, |_, _| Ok::<(), ()>(())).unwrap();
        }
    }

    #[test]
    fn vnet_header_round_trips() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 72,
            gso_size: 1368,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()).unwrap(), h);
    }
}
