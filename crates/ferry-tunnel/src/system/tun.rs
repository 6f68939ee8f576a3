//! A Linux TUN device opened with one ioctl (`TUNSETIFF`), non-blocking, read and written by
//! the data-plane threads (see [`crate::peer::dataplane`]) after `poll(2)` says it is ready.
//!
//! With offloads (the default; `FERRY_TUN_OFFLOAD=0` turns them off) the device is opened with
//! `IFF_VNET_HDR` and TSO/checksum offloads, so the kernel hands over TCP super-packets and
//! accepts them back (see [`crate::system::offload`]); if the kernel refuses, the device is
//! reopened plain.
//!
//! A small module rather than a crate: it is ~150 lines and keeps control over the open flags.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFNAMSIZ: usize = 16;
/// Environment variable that turns the TUN offloads off when set to `0`.
pub const TUN_OFFLOAD_ENV: &str = "FERRY_TUN_OFFLOAD";
/// Queue length given to the interface: the kernel's default for TUN (500) overflows when
/// TCP bursts faster than one read per packet.
pub const TXQUEUELEN: libc::c_int = 1000;

#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

#[repr(C)]
struct IfReqQlen {
    name: [u8; IFNAMSIZ],
    qlen: libc::c_int,
    _pad: [u8; 20],
}

/// An open TUN device. The kernel removes the interface when this is dropped.
#[derive(Debug)]
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
    vnet: bool,
}

/// Checks an interface name: 1..=15 bytes of `[A-Za-z0-9_-.]`.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn ifname_bytes(name: &str) -> [u8; IFNAMSIZ] {
    let mut b = [0u8; IFNAMSIZ];
    let n = name.len().min(IFNAMSIZ - 1);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

impl TunDevice {
    /// Creates (or attaches to) the TUN interface `name`, non-blocking, with offloads unless
    /// `FERRY_TUN_OFFLOAD=0` or the kernel refuses them. Needs CAP_NET_ADMIN.
    pub fn open(name: &str) -> io::Result<Self> {
        let want = std::env::var(TUN_OFFLOAD_ENV).map_or(true, |v| v != "0");
        if want {
            match Self::open_with(name, true) {
                Ok(dev) => return Ok(dev),
                Err(e) => tracing::info!(error = %e, "TUN offloads unavailable; plain TUN"),
            }
        }
        Self::open_with(name, false)
    }

    /// Opens the device; with `vnet`, also `IFF_VNET_HDR` plus checksum and TSO offloads
    /// (an error if the kernel refuses any of it).
    pub fn open_with(name: &str, vnet: bool) -> io::Result<Self> {
        if !valid_ifname(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad interface name",
            ));
        }
        // SAFETY: the path is a valid NUL-terminated string; flags are plain constants.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: ifname_bytes(name),
            flags: IFF_TUN | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 },
            _pad: [0; 22],
        };
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out (40 bytes).
        let rc =
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if vnet {
            let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes the flags as an unsigned long argument.
            let rc = unsafe {
                libc::ioctl(
                    fd.as_raw_fd(),
                    libc::TUNSETOFFLOAD as _,
                    libc::c_ulong::from(offloads),
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let name = CStr::from_bytes_until_nul(&req.name)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| name.to_string());
        let dev = Self { fd, name, vnet };
        if let Err(e) = dev.set_txqueuelen(TXQUEUELEN) {
            tracing::debug!(error = %e, "TUN txqueuelen left at the default");
        }
        Ok(dev)
    }

    /// Wraps a TUN descriptor opened elsewhere (by the privileged helper, handed over with
    /// `SCM_RIGHTS`): `name` and `vnet` must say how it was opened. The descriptor is made
    /// non-blocking.
    pub fn from_fd(fd: OwnedFd, name: String, vnet: bool) -> io::Result<Self> {
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, name, vnet })
    }

    /// Gives up the descriptor (to hand it to another process).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// True if every packet read or written starts with a virtio-net header
    /// ([`crate::system::offload::VnetHdr`]) and TSO offloads are on.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Sets the interface's transmit queue length (packets the kernel holds for us to read).
    pub fn set_txqueuelen(&self, qlen: libc::c_int) -> io::Result<()> {
        // SAFETY: a fresh datagram socket just to carry the interface ioctl; closed on drop.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqQlen {
            name: ifname_bytes(&self.name),
            qlen,
            _pad: [0; 20],
        };
        // SAFETY: SIOCSIFTXQLEN reads a `struct ifreq` with `ifr_qlen`, laid out by `IfReqQlen`.
        let rc = unsafe {
            libc::ioctl(
                sock.as_raw_fd(),
                libc::SIOCSIFTXQLEN as _,
                &mut req as *mut IfReqQlen,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one IP packet into `buf` without blocking (`WouldBlock` when none is queued).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Writes one IP packet without blocking.
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: `pkt` is valid for `pkt.len()` readable bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl TunDevice {
    /// Writes one packet given as a virtio-net header and the IP packet (vnet devices).
    pub fn write_vnet(&self, hdr: &[u8], pkt: &[u8]) -> io::Result<usize> {
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            },
        ];
        // SAFETY: both iovecs describe live, readable slices; writev does not write to them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl AsFd for TunDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(valid_ifname("ferry0"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a-very-long-name-x"));
        assert!(!valid_ifname("bad/name"));
        assert!(!valid_ifname("x; rm"));
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::size_of::<IfReqQlen>(), 40);
    }
}
