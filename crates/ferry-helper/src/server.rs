//! The helper's server: one thread per connection (a handful at most), one lock around the
//! session, so requests are applied one at a time in the order they arrive.
//!
//! Lifecycle of the user's session (one control connection from the user's connect until
//! their disconnect):
//! - `Open` → block to the endpoint first, then TUN + marked socket + routes + DNS; the two
//!   descriptors go back to the client, which runs the data plane.
//! - `Handshake` → block all but the tunnel.
//! - `Close` → routes and DNS go; block to the endpoint (a later `Open` may bring a new one).
//! - `Disconnect` → routes, DNS, block and journal go (idempotent).
//! - the connection drops without `Disconnect` (client crash) → routes and DNS go (the TUN
//!   device vanishes with the client's descriptor), the block to the endpoint stays.
//! - `DisconnectAll` (any member, e.g. `ferry disconnect`) → the session's client is told to
//!   end cleanly, and routes, DNS and block are cleared at once.

use crate::firewall::{Nft, Rules};
use crate::journal;
use crate::peer::{peer_of, Peer};
use crate::proto::{
    self, Event, Label, OpenRequest, Policy, ProtoError, Reader, Request, Response, SessionState,
    Status,
};
use ferry_tunnel::system::tun::TunDevice;
use ferry_tunnel::system::{self, SystemGuard, SystemPlan};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long `disconnect_all` waits for the session's client to end the session itself.
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(10);

/// How the helper runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The group whose members may connect.
    pub group: String,
    /// Its gid.
    pub gid: u32,
    /// Runtime state directory (created at start; everything that must survive a crash or a
    /// reboot lives in `journal_dir` instead).
    pub state_dir: PathBuf,
    /// Reboot-surviving journal: the block in force and the routes'/DNS's undo steps.
    pub journal_dir: PathBuf,
    /// Keep a block (no endpoint) while no session runs.
    pub always_require_vpn: bool,
    /// fwmark of the tunnel's socket (and routing table number).
    pub fwmark: u32,
    /// resolv.conf to edit when systemd-resolved is not in charge.
    pub resolv_conf: PathBuf,
    /// The nft binary.
    pub nft: Nft,
    /// Most connections served at once.
    pub max_clients: usize,
}

/// Errors starting the helper.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The journal directory cannot be used.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// The firewall could not be set.
    #[error(transparent)]
    Firewall(#[from] crate::firewall::FirewallError),
    /// Undoing leftovers failed.
    #[error(transparent)]
    System(#[from] system::SystemError),
}

struct Owner {
    conn: u64,
    writer: Arc<Mutex<UnixStream>>,
}

struct Session {
    owner: Option<Owner>,
    label: Option<Label>,
    endpoint: Option<SocketAddr>,
    allow_lan: bool,
    tunnel_v6: bool,
    ifname: Option<String>,
    state: SessionState,
    guard: Option<SystemGuard>,
    api: Vec<SocketAddr>,
}

struct Inner {
    session: Option<Session>,
    policy: Policy,
}

/// The helper.
pub struct Helper {
    cfg: Config,
    rt: tokio::runtime::Handle,
    inner: Mutex<Inner>,
    /// Signalled when a session ends or loses its client.
    ended: Condvar,
    next_conn: AtomicU64,
    clients: AtomicUsize,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error(message: impl Into<String>) -> (Response, Vec<OwnedFd>) {
    (
        Response::Error {
            message: message.into(),
        },
        Vec::new(),
    )
}

impl Helper {
    /// Starts the helper's state: replays leftover route/DNS undo steps, then puts back the
    /// block a previous helper journaled (or the always-require-VPN block). `rt` runs the
    /// system commands; it must be a multi-thread runtime.
    pub fn start(cfg: Config, rt: tokio::runtime::Handle) -> Result<Arc<Self>, ServerError> {
        journal::prepare_dir(&cfg.journal_dir)?;
        let replayed = rt.block_on(system::recover_stale(&cfg.journal_dir))?;
        if replayed > 0 {
            tracing::info!(
                replayed,
                "restored routes and DNS left by a previous helper"
            );
        }
        let saved = match journal::load(&cfg.journal_dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "helper journal ignored");
                None
            }
        };
        let helper = Arc::new(Self {
            cfg,
            rt,
            inner: Mutex::new(Inner {
                session: None,
                policy: Policy::Open,
            }),
            ended: Condvar::new(),
            next_conn: AtomicU64::new(1),
            clients: AtomicUsize::new(0),
        });
        {
            let mut inner = lock(&helper.inner);
            if let Some(s) = saved {
                tracing::info!(endpoint = ?s.endpoint, "re-applying the block of the session the user has not disconnected");
                inner.session = Some(Session {
                    owner: None,
                    label: s.label,
                    endpoint: s.endpoint,
                    allow_lan: s.allow_lan,
                    tunnel_v6: false,
                    ifname: None,
                    state: SessionState::Blocked,
                    guard: None,
                    api: s.api,
                });
                helper.set_policy(
                    &mut inner,
                    Policy::TunnelEndpointOnly {
                        endpoint: s.endpoint,
                    },
                )?;
            } else if helper.cfg.always_require_vpn {
                helper.set_policy(&mut inner, Policy::TunnelEndpointOnly { endpoint: None })?;
            }
        }
        Ok(helper)
    }

    /// The policy applied when no session runs.
    fn idle_policy(&self) -> Policy {
        if self.cfg.always_require_vpn {
            Policy::TunnelEndpointOnly { endpoint: None }
        } else {
            Policy::Open
        }
    }

    /// Journals (first) and applies a policy for the current session.
    fn set_policy(
        &self,
        inner: &mut Inner,
        policy: Policy,
    ) -> Result<(), crate::firewall::FirewallError> {
        let s = inner.session.as_ref();
        let rules = Rules {
            policy,
            tunnel: s.and_then(|s| s.ifname.clone()),
            tunnel_v6: s.is_some_and(|s| s.tunnel_v6),
            endpoint: s.and_then(|s| s.endpoint),
            api: s.map(|s| s.api.clone()).unwrap_or_default(),
            fwmark: self.cfg.fwmark,
            allow_lan: s.is_some_and(|s| s.allow_lan),
        };
        if let Some(s) = s {
            let st = journal::State {
                policy,
                endpoint: s.endpoint,
                allow_lan: s.allow_lan,
                label: s.label.clone(),
                api: s.api.clone(),
            };
            if let Err(e) = journal::save(&self.cfg.journal_dir, &st) {
                tracing::warn!(error = %e, "cannot journal the block");
            }
        }
        self.cfg.nft.apply(&rules)?;
        tracing::info!(?policy, "kill switch");
        inner.policy = policy;
        Ok(())
    }

    fn teardown(&self, s: &mut Session) {
        if let Some(g) = s.guard.take() {
            if let Err(e) = self.rt.block_on(g.teardown()) {
                tracing::warn!(error = %e, "teardown");
            }
        }
        s.ifname = None;
    }

    /// Ends the session entirely: routes, DNS, block, journal.
    fn end_session(&self, inner: &mut Inner) -> Result<(), crate::firewall::FirewallError> {
        if let Some(mut s) = inner.session.take() {
            self.teardown(&mut s);
        }
        self.ended.notify_all();
        if let Err(e) = journal::remove(&self.cfg.journal_dir) {
            tracing::warn!(error = %e, "cannot remove the journal");
        }
        let idle = self.idle_policy();
        if idle == Policy::Open {
            // Also clears a table left without a journal.
            self.cfg.nft.clear()?;
            inner.policy = Policy::Open;
            Ok(())
        } else {
            self.set_policy(inner, idle)
        }
    }

    fn status(&self, inner: &Inner) -> Status {
        let s = inner.session.as_ref();
        Status {
            state: s.map_or(SessionState::Disconnected, |s| s.state),
            label: s.and_then(|s| s.label.clone()),
            policy: inner.policy,
            block: self.cfg.nft.active(),
            client_attached: s.is_some_and(|s| s.owner.is_some()),
            interface: s.and_then(|s| s.ifname.clone()),
        }
    }

    fn open(
        &self,
        inner: &mut Inner,
        conn: u64,
        writer: &Arc<Mutex<UnixStream>>,
        req: OpenRequest,
    ) -> (Response, Vec<OwnedFd>) {
        if let Err(e) = req.validate() {
            return error(e.to_string());
        }
        if let Some(s) = &inner.session {
            if s.owner.as_ref().is_some_and(|o| o.conn != conn) {
                return error(
                    "another session is active; end it first (`ferry disconnect`)".to_string(),
                );
            }
        }
        let mut session = inner.session.take().unwrap_or(Session {
            owner: None,
            label: None,
            endpoint: None,
            allow_lan: false,
            tunnel_v6: false,
            ifname: None,
            state: SessionState::Connecting,
            guard: None,
            api: Vec::new(),
        });
        self.teardown(&mut session);
        session.owner = Some(Owner {
            conn,
            writer: writer.clone(),
        });
        session.label = Some(req.label.clone());
        session.endpoint = Some(req.endpoint);
        session.allow_lan = req.allow_lan;
        session.api = req.api.clone();
        session.tunnel_v6 = req.carries_v6();
        session.state = SessionState::Connecting;
        inner.session = Some(session);
        // Block first: from here on nothing but the endpoint passes.
        if let Err(e) = self.set_policy(
            inner,
            Policy::TunnelEndpointOnly {
                endpoint: Some(req.endpoint),
            },
        ) {
            return error(format!("cannot set the kill switch: {e}"));
        }
        match self.setup(&req) {
            Ok((guard, tun, socket)) => {
                let ifname = tun.name().to_string();
                let vnet = tun.vnet();
                if let Some(s) = inner.session.as_mut() {
                    s.guard = Some(guard);
                    s.ifname = Some(ifname.clone());
                }
                let fds = vec![tun.into_fd(), OwnedFd::from(socket)];
                tracing::info!(%ifname, endpoint = %req.endpoint, "tunnel set up");
                (
                    Response::Opened {
                        ifname,
                        vnet,
                        mtu: req.mtu,
                    },
                    fds,
                )
            }
            Err(e) => {
                if let Some(s) = inner.session.as_mut() {
                    s.state = SessionState::Blocked;
                }
                error(e)
            }
        }
    }

    fn setup(
        &self,
        req: &OpenRequest,
    ) -> Result<(SystemGuard, TunDevice, std::net::UdpSocket), String> {
        let tun = TunDevice::open(&req.ifname)
            .map_err(|e| format!("cannot open the TUN device {}: {e}", req.ifname))?;
        let socket = ferry_tunnel::tunnel::udp_socket(
            Some(req.endpoint),
            req.listen_port,
            Some(self.cfg.fwmark),
        )
        .map_err(|e| e.to_string())?;
        let plan = SystemPlan {
            ifname: tun.name().to_string(),
            addresses: req.addresses.clone(),
            mtu: req.mtu,
            allowed_ips: req.allowed_ips.clone(),
            dns: req.dns.clone(),
            dns_search: req.dns_search.clone(),
            fwmark: self.cfg.fwmark,
            state_dir: self.cfg.journal_dir.clone(),
            resolv_conf: self.cfg.resolv_conf.clone(),
        };
        let guard = self
            .rt
            .block_on(system::apply(&plan))
            .map_err(|e| format!("cannot set up routes and DNS: {e}"))?;
        Ok((guard, tun, socket))
    }

    fn handle(
        &self,
        conn: u64,
        writer: &Arc<Mutex<UnixStream>>,
        req: Request,
    ) -> (Response, Vec<OwnedFd>) {
        let mut inner = lock(&self.inner);
        let ours = |inner: &Inner| {
            inner
                .session
                .as_ref()
                .and_then(|s| s.owner.as_ref())
                .is_some_and(|o| o.conn == conn)
        };
        match req {
            Request::Hello { .. } => error("already said hello"),
            Request::Open(req) => self.open(&mut inner, conn, writer, req),
            Request::Handshake => {
                if !ours(&inner) || inner.session.as_ref().is_some_and(|s| s.guard.is_none()) {
                    return error("no tunnel of this connection is set up");
                }
                if let Some(s) = inner.session.as_mut() {
                    s.state = SessionState::Connected;
                }
                match self.set_policy(&mut inner, Policy::TunnelOnly) {
                    Ok(()) => (Response::Ok, Vec::new()),
                    Err(e) => error(format!("cannot set the kill switch: {e}")),
                }
            }
            Request::Close => {
                if !ours(&inner) {
                    return error("no session of this connection");
                }
                let endpoint = inner.session.as_mut().and_then(|s| {
                    self.teardown(s);
                    s.state = SessionState::Blocked;
                    s.endpoint
                });
                match self.set_policy(&mut inner, Policy::TunnelEndpointOnly { endpoint }) {
                    Ok(()) => (Response::Ok, Vec::new()),
                    Err(e) => error(format!("cannot set the kill switch: {e}")),
                }
            }
            Request::Disconnect => {
                let foreign = inner
                    .session
                    .as_ref()
                    .and_then(|s| s.owner.as_ref())
                    .is_some_and(|o| o.conn != conn);
                if foreign {
                    return error(
                        "the session belongs to another client (use disconnect_all)".to_string(),
                    );
                }
                match self.end_session(&mut inner) {
                    Ok(()) => (Response::Ok, Vec::new()),
                    Err(e) => error(format!("cannot clear the kill switch: {e}")),
                }
            }
            Request::Status => (Response::Status(self.status(&inner)), Vec::new()),
            Request::DisconnectAll => self.disconnect_all(inner, conn),
        }
    }

    /// Tells the session's client to end cleanly and gives it [`DISCONNECT_GRACE`] to do so
    /// (its own `disconnect` ends the session: the vendor session first, then the tunnel); then
    /// (or at once when no client is attached) ends whatever is left and clears the block.
    fn disconnect_all(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        conn: u64,
    ) -> (Response, Vec<OwnedFd>) {
        let owner = inner
            .session
            .as_ref()
            .and_then(|s| s.owner.as_ref())
            .filter(|o| o.conn != conn)
            .map(|o| (o.conn, o.writer.clone()));
        if let Some((owner, writer)) = owner {
            let ev = Response::Event {
                event: Event::DisconnectRequested,
            };
            let sent = {
                let w = lock(&writer);
                proto::write_msg(&*w, &ev, &[])
            };
            match sent {
                Ok(()) => {
                    let still_ours = |i: &mut Inner| {
                        i.session
                            .as_ref()
                            .and_then(|s| s.owner.as_ref())
                            .is_some_and(|o| o.conn == owner)
                    };
                    let (guard, waited) = self
                        .ended
                        .wait_timeout_while(inner, DISCONNECT_GRACE, still_ours)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    inner = guard;
                    if waited.timed_out() {
                        tracing::warn!(
                            "the session's client did not disconnect in time; ending it"
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "session client gone"),
            }
        }
        match self.end_session(&mut inner) {
            Ok(()) => (Response::Ok, Vec::new()),
            Err(e) => error(format!("cannot clear the kill switch: {e}")),
        }
    }

    /// The connection `conn` is gone: if it held the session, keep blocking.
    fn detach(&self, conn: u64) {
        let mut inner = lock(&self.inner);
        let ours = inner
            .session
            .as_ref()
            .and_then(|s| s.owner.as_ref())
            .is_some_and(|o| o.conn == conn);
        if !ours {
            return;
        }
        tracing::warn!("the session's client went away without disconnecting; keeping the block");
        self.ended.notify_all();
        let endpoint = inner.session.as_mut().and_then(|s| {
            s.owner = None;
            self.teardown(s);
            s.state = SessionState::Blocked;
            s.endpoint
        });
        if let Err(e) = self.set_policy(&mut inner, Policy::TunnelEndpointOnly { endpoint }) {
            tracing::error!(error = %e, "cannot keep the block");
        }
    }

    /// Serves one connection until it closes.
    pub fn serve(self: &Arc<Self>, stream: UnixStream) {
        let peer = match peer_of(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials; refused");
                return;
            }
        };
        if !peer.allowed(self.cfg.gid) {
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                group = %self.cfg.group,
                "refused a client outside the group"
            );
            let msg = refused_message(&peer, &self.cfg.group);
            let _ = proto::write_msg(&stream, &Response::Error { message: msg }, &[]);
            return;
        }
        if self.clients.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_clients {
            self.clients.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(uid = peer.uid, "too many clients; refused");
            let _ = proto::write_msg(
                &stream,
                &Response::Error {
                    message: "too many clients".into(),
                },
                &[],
            );
            return;
        }
        let conn = self.next_conn.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(conn, uid = peer.uid, pid = peer.pid, "client connected");
        let opened = self.session_loop(conn, stream);
        // The connection is closed: its slot is free even while the cleanup waits for the lock.
        self.clients.fetch_sub(1, Ordering::SeqCst);
        if opened {
            self.detach(conn);
        }
        tracing::debug!(conn, "client gone");
    }

    /// Serves requests until the connection ends; true if it ever asked for a tunnel.
    fn session_loop(self: &Arc<Self>, conn: u64, stream: UnixStream) -> bool {
        let mut opened = false;
        let Ok(w) = stream.try_clone() else {
            return false;
        };
        let writer = Arc::new(Mutex::new(w));
        let reply = |resp: &Response, fds: &[std::os::fd::RawFd]| {
            let w = lock(&writer);
            proto::write_msg(&*w, resp, fds)
        };
        let mut reader = Reader::new();
        // A silent connection does not hold a thread forever before its hello.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        match reader.read_msg::<Request>(&stream) {
            Ok(Request::Hello { version }) if version == proto::VERSION => {
                if reply(
                    &Response::Hello {
                        version: proto::VERSION,
                    },
                    &[],
                )
                .is_err()
                {
                    return opened;
                }
            }
            Ok(Request::Hello { version }) => {
                let _ = reply(
                    &Response::Error {
                        message: format!(
                            "protocol version {version} is not supported: this ferry-helper speaks version {}; install matching ferry and ferry-helper versions",
                            proto::VERSION
                        ),
                    },
                    &[],
                );
                return opened;
            }
            Ok(_) => {
                let _ = reply(
                    &Response::Error {
                        message: "the first message must be hello".into(),
                    },
                    &[],
                );
                return opened;
            }
            Err(e) => {
                let _ = reply(
                    &Response::Error {
                        message: e.to_string(),
                    },
                    &[],
                );
                return opened;
            }
        }
        let _ = stream.set_read_timeout(None);
        loop {
            match reader.read_msg::<Request>(&stream) {
                Ok(req) => {
                    opened |= matches!(req, Request::Open(_));
                    let (resp, fds) = self.handle(conn, &writer, req);
                    let raw: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                    if let Err(e) = reply(&resp, &raw) {
                        tracing::debug!(error = %e, "reply failed");
                        return opened;
                    }
                    // Our copies of handed descriptors close here.
                    drop(fds);
                }
                Err(ProtoError::Malformed(m)) => {
                    // The frame was read whole: the stream is still in step.
                    if reply(
                        &Response::Error {
                            message: format!("malformed request: {m}"),
                        },
                        &[],
                    )
                    .is_err()
                    {
                        return opened;
                    }
                }
                Err(e @ ProtoError::TooLarge(_)) => {
                    let _ = reply(
                        &Response::Error {
                            message: e.to_string(),
                        },
                        &[],
                    );
                    return opened;
                }
                Err(_) => return opened,
            }
        }
    }
}

/// The message a refused peer gets.
pub fn refused_message(peer: &Peer, group: &str) -> String {
    format!(
        "uid {} is not root and not in group {group:?}; add the user to it (`sudo usermod -aG {group} $USER`, then log in again)",
        peer.uid
    )
}
