//! Blocking waits for the data-plane threads: `poll(2)` on one descriptor plus a stop signal
//! (an eventfd that stays readable once set), so idle threads sleep in the kernel and use no CPU.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A one-shot stop signal shared by the data-plane threads.
#[derive(Debug)]
pub struct Stop {
    fd: OwnedFd,
}

/// Why a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The descriptor is ready.
    Ready,
    /// [`Stop::signal`] was called.
    Stop,
}

impl Stop {
    /// A new, unsignalled stop.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd creation; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Wakes every waiter, now and later.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Blocks until `fd` has `events` (e.g. `libc::POLLIN`) or the stop is signalled.
    pub fn wait(&self, fd: BorrowedFd<'_>, events: libc::c_short) -> io::Result<Woken> {
        let mut fds = [
            libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.fd.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two valid pollfds for the duration of the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                return Ok(Woken::Stop);
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0
                && fds[0].revents & events == 0
            {
                return Err(io::Error::other("descriptor failed while waiting"));
            }
            if fds[0].revents != 0 {
                return Ok(Woken::Ready);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::sync::Arc;

    #[test]
    fn wakes_on_data_and_on_stop() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stop = Arc::new(Stop::new().unwrap());
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        assert_eq!(stop.wait(b.as_fd(), libc::POLLIN).unwrap(), Woken::Ready);
        let mut buf = [0u8; 4];
        b.recv_from(&mut buf).unwrap();
        let s2 = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            s2.wait(c.as_fd(), libc::POLLIN).unwrap()
        });
        stop.signal();
        assert_eq!(t.join().unwrap(), Woken::Stop);
        // Stays signalled.
        assert_eq!(stop.wait(b.as_fd(), libc::POLLIN).unwrap(), Woken::Stop);
    }
}
