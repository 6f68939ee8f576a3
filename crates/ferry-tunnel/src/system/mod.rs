//! System mode: a TUN device with addresses, MTU, routes, full-tunnel policy routing and DNS,
//! all undone on disconnect, on error and at the next start after a crash.
//!
//! Every change is made with the `ip` command (as wg-quick does): the steps are readable in logs,
//! match what users and wg-quick docs show, and a future privileged helper can run the same
//! commands. Before each change, its undo is appended to a journal file (`state_dir`), so a
//! crash at any point leaves a list of exactly what to revert. Setup and teardown live only here.

pub mod offload;
pub mod tun;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Errors of system setup and teardown.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// A command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A route for an allowed network already exists on another interface.
    #[error("route {0} already exists via another interface")]
    RouteConflict(IpNet),
    /// Reading or writing a file (journal, resolv.conf, sysctl) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SystemError + '_ {
    move |source| SystemError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What system mode sets up.
#[derive(Debug, Clone)]
pub struct SystemPlan {
    /// The TUN interface (already created).
    pub ifname: String,
    /// Addresses for the interface.
    pub addresses: Vec<IpNet>,
    /// Interface MTU.
    pub mtu: u16,
    /// Networks routed into the tunnel; `0.0.0.0/0` or `::/0` select full-tunnel routing.
    pub allowed_ips: Vec<IpNet>,
    /// DNS servers and search domains (empty: DNS untouched).
    pub dns: Vec<IpAddr>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// Firewall mark on the tunnel's own UDP socket, also the routing table number.
    pub fwmark: u32,
    /// Where the journal lives.
    pub state_dir: PathBuf,
    /// The resolv.conf to edit when systemd-resolved is not in charge.
    pub resolv_conf: PathBuf,
}

impl SystemPlan {
    /// True if the plan routes everything of IPv4 (`v6 == false`) or IPv6 into the tunnel.
    pub fn full_tunnel(&self, v6: bool) -> bool {
        self.allowed_ips
            .iter()
            .any(|n| n.prefix_len() == 0 && matches!(n, IpNet::V6(_)) == v6)
    }
}

/// One recorded undo step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// Run `ip` with these arguments.
    Ip {
        /// Arguments.
        args: Vec<String>,
    },
    /// Write `content` back to `path`.
    File {
        /// The file.
        path: PathBuf,
        /// Its previous content.
        content: String,
    },
    /// `resolvectl revert <ifname>`.
    Resolvectl {
        /// Interface.
        ifname: String,
    },
}

/// The journal file's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    /// The process that made the changes.
    pub pid: u32,
    /// Inode of the network namespace the changes were made in.
    pub netns: u64,
    /// Interface name.
    pub ifname: String,
    /// Undo steps, in the order the changes were made.
    pub undo: Vec<Undo>,
}

/// Applied system changes; call [`SystemGuard::teardown`] to revert them.
#[derive(Debug)]
pub struct SystemGuard {
    path: PathBuf,
    journal: Journal,
}

fn netns_inode() -> u64 {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

fn journal_path(state_dir: &Path, netns: u64, ifname: &str) -> PathBuf {
    state_dir.join(format!("system-{netns}-{ifname}.json"))
}

async fn run(cmd: &str, args: &[String]) -> Result<String, SystemError> {
    tracing::debug!(cmd, ?args, "system");
    let out = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| SystemError::Command {
            cmd: format!("{cmd} {}", args.join(" ")),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SystemError::Command {
            cmd: format!("{cmd} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn strs(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}

impl SystemGuard {
    fn save(&self) -> Result<(), SystemError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_string_pretty(&self.journal).unwrap_or_default();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))
    }

    async fn record(&mut self, undo: Undo) -> Result<(), SystemError> {
        self.journal.undo.push(undo);
        self.save()
    }

    async fn ip(&mut self, args: &[&str], undo: Option<&[&str]>) -> Result<(), SystemError> {
        if let Some(u) = undo {
            self.record(Undo::Ip { args: strs(u) }).await?;
        }
        run("ip", &strs(args)).await.map(|_| ())
    }

    /// Reverts every recorded change (best effort, in reverse order) and removes the journal.
    pub async fn teardown(self) -> Result<(), SystemError> {
        undo_all(&self.journal).await;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SystemError::Io {
                path: self.path.clone(),
                source: e,
            }),
        }
    }
}

async fn undo_all(j: &Journal) {
    for step in j.undo.iter().rev() {
        let res = match step {
            Undo::Ip { args } => run("ip", args).await.map(|_| ()),
            Undo::File { path, content } => write_in_place(path, content),
            Undo::Resolvectl { ifname } => run("resolvectl", &strs(&["revert", ifname]))
                .await
                .map(|_| ()),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "undo step (already gone?)");
        }
    }
}

/// Writes a file in place (keeps bind mounts and symlinks working).
fn write_in_place(path: &Path, content: &str) -> Result<(), SystemError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(content.as_bytes()).map_err(io_err(path))
}

fn resolved_in_charge(resolv_conf: &Path) -> bool {
    let stub = std::fs::read_link(resolv_conf)
        .map(|t| t.to_string_lossy().contains("systemd/resolve"))
        .unwrap_or(false);
    stub && Path::new("/run/systemd/resolve/io.systemd.Resolve").exists()
}

/// Reverts changes left by a Ferry process that died without cleaning up (same network
/// namespace, process gone). Returns how many journals were replayed.
pub async fn recover_stale(state_dir: &Path) -> Result<usize, SystemError> {
    let netns = netns_inode();
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(SystemError::Io {
                path: state_dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with(&format!("system-{netns}-")) && f.ends_with(".json"));
        if !is_ours {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(journal) = serde_json::from_str::<Journal>(&text) else {
            tracing::warn!(path = %path.display(), "unreadable journal left alone");
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = journal.pid != std::process::id()
            && unsafe { libc::kill(journal.pid as libc::pid_t, 0) } == 0;
        if alive || journal.netns != netns {
            continue;
        }
        tracing::info!(ifname = %journal.ifname, pid = journal.pid, "reverting changes left by a crashed tunnel");
        undo_all(&journal).await;
        let _ = std::fs::remove_file(&path);
        n += 1;
    }
    Ok(n)
}

/// Applies `plan`; on any error, reverts what was done and returns the error.
pub async fn apply(plan: &SystemPlan) -> Result<SystemGuard, SystemError> {
    let netns = netns_inode();
    let mut g = SystemGuard {
        path: journal_path(&plan.state_dir, netns, &plan.ifname),
        journal: Journal {
            pid: std::process::id(),
            netns,
            ifname: plan.ifname.clone(),
            undo: Vec::new(),
        },
    };
    match apply_steps(&mut g, plan).await {
        Ok(()) => Ok(g),
        Err(e) => {
            tracing::warn!(error = %e, "system setup failed; reverting");
            let _ = g.teardown().await;
            Err(e)
        }
    }
}

async fn apply_steps(g: &mut SystemGuard, plan: &SystemPlan) -> Result<(), SystemError> {
    let ifn = plan.ifname.as_str();
    g.record(Undo::Ip {
        args: strs(&["link", "del", ifn]),
    })
    .await?;
    for a in &plan.addresses {
        let a = a.to_string();
        g.ip(&["address", "add", &a, "dev", ifn], None).await?;
    }
    let mtu = plan.mtu.to_string();
    g.ip(&["link", "set", "dev", ifn, "mtu", &mtu, "up"], None)
        .await?;

    let mut nets = plan.allowed_ips.clone();
    nets.sort_by_key(|n| std::cmp::Reverse(n.prefix_len()));
    let table = plan.fwmark.to_string();
    for net in nets {
        let fam = if matches!(net, IpNet::V6(_)) {
            "-6"
        } else {
            "-4"
        };
        let n = net.to_string();
        if net.prefix_len() == 0 {
            // Full tunnel, as wg-quick does: default route in our table, used by everything
            // except the tunnel's own (fwmarked) UDP, with the main table still winning for
            // its more specific routes.
            g.ip(
                &[fam, "route", "add", &n, "dev", ifn, "table", &table],
                Some(&[fam, "route", "del", &n, "dev", ifn, "table", &table]),
            )
            .await?;
            g.ip(
                &[fam, "rule", "add", "not", "fwmark", &table, "table", &table],
                Some(&[fam, "rule", "del", "not", "fwmark", &table, "table", &table]),
            )
            .await?;
            g.ip(
                &[
                    fam,
                    "rule",
                    "add",
                    "table",
                    "main",
                    "suppress_prefixlength",
                    "0",
                ],
                Some(&[
                    fam,
                    "rule",
                    "del",
                    "table",
                    "main",
                    "suppress_prefixlength",
                    "0",
                ]),
            )
            .await?;
            if fam == "-4" {
                let p = PathBuf::from("/proc/sys/net/ipv4/conf/all/src_valid_mark");
                if let Ok(old) = std::fs::read_to_string(&p) {
                    if old.trim() != "1" {
                        g.record(Undo::File {
                            path: p.clone(),
                            content: old,
                        })
                        .await?;
                        write_in_place(&p, "1\n")?;
                    }
                }
            }
        } else {
            let r = g
                .ip(
                    &[fam, "route", "add", &n, "dev", ifn],
                    Some(&[fam, "route", "del", &n, "dev", ifn]),
                )
                .await;
            if let Err(SystemError::Command { stderr, .. }) = &r {
                if stderr.contains("File exists") {
                    let shown = run(
                        "ip",
                        &strs(&[fam, "route", "show", "exact", &n, "dev", ifn]),
                    )
                    .await?;
                    if shown.trim().is_empty() {
                        return Err(SystemError::RouteConflict(net));
                    }
                    continue;
                }
            }
            r?;
        }
    }

    if !plan.dns.is_empty() {
        if resolved_in_charge(&plan.resolv_conf) {
            g.record(Undo::Resolvectl {
                ifname: ifn.to_string(),
            })
            .await?;
            let mut args = strs(&["dns", ifn]);
            args.extend(plan.dns.iter().map(ToString::to_string));
            run("resolvectl", &args).await?;
            let mut args = strs(&["domain", ifn]);
            args.extend(plan.dns_search.iter().cloned());
            if plan.full_tunnel(false) || plan.full_tunnel(true) {
                args.push("~.".into());
            }
            if args.len() > 2 {
                run("resolvectl", &args).await?;
            }
        } else {
            let old =
                std::fs::read_to_string(&plan.resolv_conf).map_err(io_err(&plan.resolv_conf))?;
            g.record(Undo::File {
                path: plan.resolv_conf.clone(),
                content: old,
            })
            .await?;
            let mut text = format!("# Written by Ferry for {ifn}; restored on disconnect.\n");
            for d in &plan.dns {
                text.push_str(&format!("nameserver {d}\n"));
            }
            if !plan.dns_search.is_empty() {
                text.push_str(&format!("search {}\n", plan.dns_search.join(" ")));
            }
            write_in_place(&plan.resolv_conf, &text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_as_json() {
        let j = Journal {
            pid: 7,
            netns: 42,
            ifname: "ferry0".into(),
            undo: vec![
                Undo::Ip {
                    args: strs(&["link", "del", "ferry0"]),
                },
                Undo::File {
                    path: "/etc/resolv.conf".into(),
                    content: "nameserver 1.1.1.1\n".into(),
                },
                Undo::Resolvectl {
                    ifname: "ferry0".into(),
                },
            ],
        };
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
    }

    #[test]
    fn full_tunnel_is_per_family() {
        let plan = SystemPlan {
            ifname: "f".into(),
            addresses: vec![],
            mtu: 1420,
            allowed_ips: vec!["0.0.0.0/0".parse().unwrap(), "fd00::/8".parse().unwrap()],
            dns: vec![],
            dns_search: vec![],
            fwmark: 1,
            state_dir: "/tmp".into(),
            resolv_conf: "/etc/resolv.conf".into(),
        };
        assert!(plan.full_tunnel(false));
        assert!(!plan.full_tunnel(true));
    }

    #[tokio::test]
    async fn recover_ignores_missing_dir_and_live_or_foreign_journals() {
        let dir = std::env::temp_dir().join(format!("ferry-t1-recover-{}", std::process::id()));
        assert_eq!(recover_stale(&dir).await.unwrap(), 0);
        std::fs::create_dir_all(&dir).unwrap();
        let netns = netns_inode();
        let marker = dir.join("marker");
        std::fs::write(&marker, "changed").unwrap();
        // A journal from a live process (ourselves counts as live-foreign only if pid differs: use pid 1).
        let live = Journal {
            pid: 1,
            netns,
            ifname: "a".into(),
            undo: vec![Undo::File {
                path: marker.clone(),
                content: "live".into(),
            }],
        };
        std::fs::write(
            journal_path(&dir, netns, "a"),
            serde_json::to_string(&live).unwrap(),
        )
        .unwrap();
        assert_eq!(recover_stale(&dir).await.unwrap(), 0);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "changed");
        // A journal from a dead process is replayed and removed.
        let dead = Journal {
            pid: 0x3fff_fff0,
            netns,
            ifname: "b".into(),
            undo: vec![Undo::File {
                path: marker.clone(),
                content: "restored".into(),
            }],
        };
        std::fs::write(
            journal_path(&dir, netns, "b"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        assert_eq!(recover_stale(&dir).await.unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "restored");
        assert!(!journal_path(&dir, netns, "b").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
