//! Who is on the other end of a connection: SO_PEERCRED (uid, gid, pid at connect time) and
//! SO_PEERGROUPS (the supplementary groups at connect time; `/proc/PID/status` when the kernel
//! lacks it). Only root and members of the helper's group are served.

use std::io;
use std::os::fd::AsRawFd;

/// Linux's SO_PEERGROUPS (asm-generic value, the same on x86_64 and arm64).
const SO_PEERGROUPS: libc::c_int = 59;

/// A connection's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Process id (at connect time).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    /// True for root and for members (primary or supplementary) of `group`.
    pub fn allowed(&self, group: u32) -> bool {
        self.uid == 0 || self.gid == group || self.groups.contains(&group)
    }
}

/// Reads the credentials of the peer of a connected Unix socket.
pub fn peer_of(sock: &impl AsRawFd) -> io::Result<Peer> {
    let fd = sock.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes a `struct ucred` of `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let groups = match peer_groups(fd) {
        Ok(g) => g,
        Err(_) => proc_groups(cred.pid).unwrap_or_default(),
    };
    Ok(Peer {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
        groups,
    })
}

fn peer_groups(fd: libc::c_int) -> io::Result<Vec<u32>> {
    let mut n = 64usize;
    loop {
        let mut buf = vec![0 as libc::gid_t; n];
        let mut len = (n * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: SO_PEERGROUPS writes up to `len` bytes of gid_t into `buf`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            buf.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && n < 65536 {
            n = (len as usize / std::mem::size_of::<libc::gid_t>()).max(n * 2);
            continue;
        }
        return Err(e);
    }
}

fn proc_groups(pid: i32) -> io::Result<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(parse_groups_line(&text))
}

/// The `Groups:` line of a `/proc/PID/status` text.
pub fn parse_groups_line(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The gid of a group name.
pub fn group_gid(name: &str) -> io::Result<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group {name:?}"),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn root_and_members_are_allowed_others_not() {
        let p = |uid, gid, groups: &[u32]| Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert!(p(0, 0, &[]).allowed(900));
        assert!(p(1000, 900, &[]).allowed(900));
        assert!(p(1000, 1000, &[27, 900]).allowed(900));
        assert!(!p(1000, 1000, &[27]).allowed(900));
    }

    #[test]
    fn our_own_credentials_are_read() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = peer_of(&a).unwrap();
        assert_eq!(me.pid as u32, std::process::id());
        // SAFETY: geteuid has no preconditions.
        assert_eq!(me.uid, unsafe { libc::geteuid() });
    }

    #[test]
    fn the_groups_line_is_parsed() {
        let s = "Name:\tx\nUid:\t1\t1\t1\t1\nGroups:\t4 27 900 \nNgid:\t0\n";
        assert_eq!(parse_groups_line(s), vec![4, 27, 900]);
        assert!(parse_groups_line("Name: x\n").is_empty());
    }
}
