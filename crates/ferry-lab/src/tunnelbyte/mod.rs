//! tunnelbyte (quota and cost) as documented: regions, usage, sessions.
//!
//! Built from the vendor's sessions page (seed 001) and the reference (§2): bearer tokens per
//! tier, a per-region /24 of client addresses, WireGuard configs pointing at the lab's exit node,
//! two quota windows per token, and three server-side endings (`quota_exceeded`, `idle`,
//! `expired`). Everything here is a pure state machine over lab time; the HTTP layer is in
//! [`routes`].

mod error;
pub mod quota;
pub mod ratelimit;
mod routes;
mod wgconfig;

pub use error::TbError;
pub use routes::{control_routes, router};

use crate::clock::{rfc3339_z, LabClock};
use crate::exit::ExitPeers;
use crate::exit_key;
use chrono::{DateTime, Duration, Utc};
use quota::{Tier, Usage};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

/// The exit node derives handshake times from their age, so the same handshake can be reported
/// a little differently each time; a later time within this margin is the same handshake.
const HANDSHAKE_JITTER: std::time::Duration = std::time::Duration::from_secs(2);

/// A session with no WireGuard handshake for longer than this is ended as `idle`.
pub fn idle_after() -> Duration {
    Duration::minutes(5)
}

/// Every session ends as `expired` this long after it was created (the 30-day safety ceiling).
pub fn max_lifetime() -> Duration {
    Duration::days(30)
}

/// After a node stops accepting peers, the server routes around it this much later.
pub fn reroute_after() -> Duration {
    Duration::seconds(60)
}

/// Paid time leg: 1000 millicents per minute (€0.60/h), from the seed's pricing example.
pub const TIME_MILLICENTS_PER_MINUTE: u64 = 1000;
/// Paid byte leg: 10 millicents per 1,000,000 bytes, both directions (€0.10/GB). The vendor only
/// says "a fraction of a cent"; this rate is the lab's choice.
pub const BYTE_MILLICENTS_PER_MB: u64 = 10;

/// First host number handed to clients in a region's /24 (`.1` is the node).
const FIRST_HOST: u8 = 2;
/// Last host number handed to clients (`.255` is broadcast).
const LAST_HOST: u8 = 254;

/// One bearer token and its account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Resolved tier.
    pub tier: Tier,
    /// Usage in the current windows.
    pub usage: Usage,
    /// Default region shown by `GET /v1/usage` (free tier example has `fsn`).
    #[serde(default)]
    pub default_region: Option<String>,
}

/// One exit region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Region {
    /// Short code, e.g. `fsn`.
    pub code: String,
    /// Nodes the region starts with (restored when brought back online).
    pub seeded_nodes: u32,
    /// Healthy nodes now (a disconnected node counts until it is routed around).
    pub nodes: u32,
    /// False when taken offline through the control API.
    pub online: bool,
    /// When a node stopped accepting peers, if one did.
    pub disconnected_since: Option<DateTime<Utc>>,
    /// Third octet of the region's client /24, `10.77.<octet>.0/24`.
    pub octet: u8,
    /// Host numbers currently leased to live sessions.
    pub leases: BTreeSet<u8>,
}

impl Region {
    fn new(code: &str, nodes: u32, octet: u8) -> Self {
        Self {
            code: code.to_owned(),
            seeded_nodes: nodes,
            nodes,
            online: true,
            disconnected_since: None,
            octet,
            leases: BTreeSet::new(),
        }
    }

    fn is_active(&self) -> bool {
        self.online && self.nodes > 0
    }

    fn lease(&mut self) -> Option<u8> {
        let host = (FIRST_HOST..=LAST_HOST).find(|h| !self.leases.contains(h))?;
        self.leases.insert(host);
        Some(host)
    }

    fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.octet, host)
    }
}

/// One session, live or ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Opaque id.
    pub id: String,
    /// The token that created it (only that token can see it).
    pub token: String,
    /// Tier at creation.
    pub tier: Tier,
    /// Region code.
    pub region: String,
    /// Leased host number in the region's /24.
    pub host: u8,
    /// The client's WireGuard public key.
    pub client_key: [u8; 32],
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Hard cutoff.
    pub expires_at: DateTime<Utc>,
    /// Set once the server ended the session.
    pub terminated_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub terminated_reason: Option<String>,
    /// Bytes sent to the client (exit node's tx).
    pub bytes_in: u64,
    /// Bytes received from the client (exit node's rx).
    pub bytes_out: u64,
    /// Exit-node rx counter last seen.
    pub seen_rx: u64,
    /// Exit-node tx counter last seen.
    pub seen_tx: u64,
    /// Session time is accounted up to here.
    pub accrued_until: DateTime<Utc>,
    /// Last WireGuard handshake, in lab time.
    pub last_handshake: Option<DateTime<Utc>>,
    /// Host time of the last handshake the exit node reported.
    #[serde(default)]
    pub seen_handshake: Option<SystemTime>,
    /// Control API: treat the peer as handshaking continuously (never idle).
    #[serde(default)]
    pub simulated_alive: bool,
}

/// tunnelbyte's tokens, regions and sessions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TbState {
    /// Accounts by bearer token.
    pub accounts: HashMap<String, Account>,
    /// Seeded tokens in tier order, for `GET /_lab/accounts`.
    pub seeded_tokens: Vec<String>,
    /// Regions in listing order.
    pub regions: Vec<Region>,
    /// Sessions by id.
    pub sessions: HashMap<String, Session>,
    /// Ids of live sessions.
    pub live: BTreeSet<String>,
    /// The public endpoints' rate limiter (in memory only).
    #[serde(skip)]
    pub limiter: ratelimit::RateLimiter,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Formats a time the way tunnelbyte does (RFC 3339, UTC, `Z`).
fn ts(t: DateTime<Utc>) -> String {
    rfc3339_z(t)
}

impl TbState {
    /// The seeded tokens (one per tier) and regions (fsn with two nodes, ash, sin).
    pub fn seeded() -> Self {
        let mut s = Self::default();
        for (tier, region) in [
            (Tier::Anonymous, None),
            (Tier::Free, Some("fsn")),
            (Tier::Paid, None),
        ] {
            let token = s.issue_token(tier);
            if let Some(acct) = s.accounts.get_mut(&token) {
                acct.default_region = region.map(str::to_owned);
            }
            s.seeded_tokens.push(token);
        }
        s.regions = vec![
            Region::new("fsn", 2, 1),
            Region::new("ash", 1, 2),
            Region::new("sin", 1, 3),
        ];
        s
    }

    /// Makes a new token of `tier`.
    pub fn issue_token(&mut self, tier: Tier) -> String {
        let token = format!("tb_{}_{}", tier.as_str(), random_hex(16));
        self.accounts.insert(
            token.clone(),
            Account {
                tier,
                usage: Usage::default(),
                default_region: None,
            },
        );
        token
    }

    /// Seeded tokens for `GET /_lab/accounts`: `[{token, tier}]`.
    pub fn accounts(&self) -> Value {
        let list: Vec<Value> = self
            .seeded_tokens
            .iter()
            .filter_map(|t| {
                self.accounts
                    .get(t)
                    .map(|a| json!({"token": t, "tier": a.tier.as_str()}))
            })
            .collect();
        Value::Array(list)
    }

    /// Resolves a bearer header value to a known token.
    pub fn auth(&self, bearer: Option<&str>) -> Result<String, TbError> {
        let token = bearer
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TbError::MissingToken)?;
        if self.accounts.contains_key(token) {
            Ok(token.to_owned())
        } else {
            Err(TbError::InvalidToken)
        }
    }

    /// Takes one request from the public rate limit of `ip`.
    pub fn rate_limit(&mut self, ip: Option<IpAddr>, now: DateTime<Utc>) -> Result<(), TbError> {
        self.limiter
            .check(ip, now)
            .map_err(|retry_after| TbError::RateLimited { retry_after })
    }

    /// `GET /v1/regions`: regions with at least one healthy node.
    pub fn regions_json(&self) -> Value {
        let list: Vec<Value> = self
            .regions
            .iter()
            .filter(|r| r.is_active())
            .map(|r| json!({"code": r.code, "node_count": r.nodes}))
            .collect();
        json!({ "regions": list })
    }

    /// `GET /v1/usage` for `token`.
    pub fn usage_json(&mut self, token: &str, now: DateTime<Utc>) -> Result<Value, TbError> {
        let acct = self.accounts.get_mut(token).ok_or(TbError::InvalidToken)?;
        acct.usage.roll(now);
        let u = &acct.usage;
        let mut v = json!({
            "tier": acct.tier.as_str(),
            "bytes_used": u.bytes.used,
            "bytes_limit": acct.tier.bytes_limit(),
            "session_seconds": u.seconds_used(),
            "session_seconds_limit": acct.tier.seconds_limit(),
            "max_session_seconds": 0,
            "bytes_window_resets_at": ts(u.bytes.resets_at(now, quota::bytes_window())),
            "seconds_window_resets_at": ts(u.seconds_ms.resets_at(now, quota::seconds_window())),
        });
        if let (Some(r), Some(obj)) = (&acct.default_region, v.as_object_mut()) {
            obj.insert("default_region".to_owned(), json!(r));
        }
        Ok(v)
    }

    /// The 402 breakdown if either of `token`'s windows is at its cap.
    fn quota_check(&mut self, token: &str, now: DateTime<Utc>) -> Result<(), TbError> {
        let Some(acct) = self.accounts.get_mut(token) else {
            return Err(TbError::InvalidToken);
        };
        acct.usage.roll(now);
        let (bytes_hit, secs_hit) = acct.usage.exhausted(acct.tier);
        if !bytes_hit && !secs_hit {
            return Ok(());
        }
        let u = &acct.usage;
        let bytes_reset = u.bytes.resets_at(now, quota::bytes_window());
        let secs_reset = u.seconds_ms.resets_at(now, quota::seconds_window());
        // When both tripped, a new session is possible only once both have reset.
        let resets_at = match (bytes_hit, secs_hit) {
            (true, true) => bytes_reset.max(secs_reset),
            (true, false) => bytes_reset,
            _ => secs_reset,
        };
        Err(TbError::QuotaExceeded(Box::new(json!({
            "tier": acct.tier.as_str(),
            "bytes_used": u.bytes.used,
            "bytes_limit": acct.tier.bytes_limit(),
            "session_seconds": u.seconds_used(),
            "session_limit": acct.tier.seconds_limit(),
            "bytes_window_resets_at": ts(bytes_reset),
            "seconds_window_resets_at": ts(secs_reset),
            "resets_at": ts(resets_at),
            "hint": acct.tier.quota_hint(),
        }))))
    }

    /// `POST /v1/sessions`: checks the body, the region, the quota and the subnet, then adds the
    /// peer to the exit node and returns the session with its WireGuard config.
    pub fn create_session(
        &mut self,
        token: &str,
        body: &[u8],
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<Value, TbError> {
        #[derive(Deserialize)]
        struct Body {
            region: Option<String>,
            client_public_key: Option<String>,
        }
        let body: Body = serde_json::from_slice(body).map_err(|_| TbError::InvalidJson)?;
        let region = body
            .region
            .filter(|r| !r.is_empty())
            .ok_or_else(|| TbError::BadRequest("region is required".to_owned()))?;
        let client_key = match body.client_public_key.as_deref() {
            None => None,
            Some(k) => Some(
                exit_key::parse_key(k)
                    .ok_or_else(|| TbError::BadRequest("invalid client_public_key".to_owned()))?,
            ),
        };
        let ridx = self
            .regions
            .iter()
            .position(|r| r.code == region)
            .ok_or_else(|| TbError::BadRequest(format!("unknown region {region}")))?;
        if !self.regions[ridx].is_active() {
            let available: Vec<String> = self
                .regions
                .iter()
                .filter(|r| r.is_active())
                .map(|r| r.code.clone())
                .collect();
            return Err(if available.is_empty() {
                TbError::NoActiveNodes
            } else {
                TbError::RegionDown { region, available }
            });
        }
        self.quota_check(token, now)?;
        if self.regions[ridx].disconnected_since.is_some() {
            return Err(TbError::PeerApplyFailed);
        }
        let tier = self
            .accounts
            .get(token)
            .map(|a| a.tier)
            .ok_or(TbError::InvalidToken)?;
        let host = self.regions[ridx].lease().ok_or(TbError::SubnetExhausted)?;
        let tunnel_ip = self.regions[ridx].addr(host);

        let generated = match client_key {
            Some(_) => None,
            None => Some(exit_key::generate()),
        };
        let public = match (&client_key, &generated) {
            (Some(k), _) => *k,
            (None, Some(kp)) => kp.public,
            (None, None) => return Err(TbError::InvalidJson),
        };
        // One key, one peer: a new session with a key still in use supersedes the old one.
        let same_key: Vec<String> = self
            .live
            .iter()
            .filter(|id| {
                self.sessions
                    .get(*id)
                    .is_some_and(|s| s.client_key == public)
            })
            .cloned()
            .collect();
        for old in same_key {
            self.end_session(&old, now, "superseded", exit);
        }

        let id = format!("tbs_{}", random_hex(12));
        exit.add_peer(public, IpAddr::V4(tunnel_ip));
        let (seen_rx, seen_tx) = exit
            .peer_stats(&public)
            .map(|s| (s.rx_bytes, s.tx_bytes))
            .unwrap_or((0, 0));
        if let Some(acct) = self.accounts.get_mut(token) {
            acct.usage.roll(now);
            acct.usage.seconds_ms.open(now);
        }
        let session = Session {
            id: id.clone(),
            token: token.to_owned(),
            tier,
            region: region.clone(),
            host,
            client_key: public,
            created_at: now,
            expires_at: now + max_lifetime(),
            terminated_at: None,
            terminated_reason: None,
            bytes_in: 0,
            bytes_out: 0,
            seen_rx,
            seen_tx,
            accrued_until: now,
            last_handshake: None,
            seen_handshake: None,
            simulated_alive: false,
        };
        let endpoint = public_endpoint(exit.endpoint());
        let wg_config = wgconfig::render(&wgconfig::WgConfig {
            private_key: generated.as_ref().map(|k| k.private),
            address: tunnel_ip,
            server_public_key: exit.public_key(),
            endpoint,
        });
        let answer = json!({
            "id": id,
            "public_ip": endpoint.ip().to_string(),
            "wg_config": wg_config,
            "expires_at": ts(session.expires_at),
            "tier": tier.as_str(),
        });
        self.sessions.insert(id.clone(), session);
        self.live.insert(id);
        Ok(answer)
    }

    /// `GET /v1/sessions/{id}` for `token`.
    pub fn session_json(
        &mut self,
        token: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, TbError> {
        let s = self
            .sessions
            .get(id)
            .filter(|s| s.token == token)
            .ok_or(TbError::SessionNotFound)?;
        let acct = self.accounts.get_mut(token).ok_or(TbError::InvalidToken)?;
        acct.usage.roll(now);
        let mut v = json!({
            "id": s.id,
            "created_at": ts(s.created_at),
            "tier": s.tier.as_str(),
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "quota_bytes_used": acct.usage.bytes.used,
            "quota_bytes_limit": acct.tier.bytes_limit(),
            "quota_seconds_used": acct.usage.seconds_used(),
            "quota_seconds_limit": acct.tier.seconds_limit(),
        });
        let Some(obj) = v.as_object_mut() else {
            return Ok(v);
        };
        if let (Some(at), Some(reason)) = (s.terminated_at, &s.terminated_reason) {
            obj.insert("terminated_at".to_owned(), json!(ts(at)));
            obj.insert("terminated_reason".to_owned(), json!(reason));
        }
        if s.tier == Tier::Paid {
            let end = s.terminated_at.unwrap_or(now);
            let ms = u64::try_from((end - s.created_at).num_milliseconds()).unwrap_or(0);
            let time = ms.saturating_mul(TIME_MILLICENTS_PER_MINUTE) / 60_000;
            let bytes = s
                .bytes_in
                .saturating_add(s.bytes_out)
                .saturating_mul(BYTE_MILLICENTS_PER_MB)
                / 1_000_000;
            obj.insert("cost_time_millicents".to_owned(), json!(time));
            obj.insert("cost_bytes_millicents".to_owned(), json!(bytes));
            obj.insert("cost_currency".to_owned(), json!("eur"));
        }
        Ok(v)
    }

    /// `DELETE /v1/sessions/{id}` (our assumption: the vendor documents no teardown call, only
    /// that a client teardown "lands in" `terminated_at`). Ends a live session with reason
    /// `client`; an ended one is left as it is. Answers like `GET`.
    pub fn delete_session(
        &mut self,
        token: &str,
        id: &str,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<Value, TbError> {
        let live = self
            .sessions
            .get(id)
            .filter(|s| s.token == token)
            .ok_or(TbError::SessionNotFound)?
            .terminated_at
            .is_none();
        if live {
            self.end_session(id, now, "client", exit);
        }
        self.session_json(token, id, now)
    }

    /// Ends a live session at `at`: accounts its time, frees its address and its peer.
    fn end_session(&mut self, id: &str, at: DateTime<Utc>, reason: &str, exit: &dyn ExitPeers) {
        let Some(s) = self.sessions.get_mut(id) else {
            return;
        };
        if s.terminated_at.is_some() {
            return;
        }
        if let Some(acct) = self.accounts.get_mut(&s.token) {
            if at > s.accrued_until {
                let a = acct
                    .usage
                    .accrue_time(s.accrued_until, at, acct.tier.seconds_limit());
                s.accrued_until = a.until;
            }
        }
        s.terminated_at = Some(at);
        s.terminated_reason = Some(reason.to_owned());
        self.live.remove(id);
        if let Some(r) = self.regions.iter_mut().find(|r| r.code == s.region) {
            r.leases.remove(&s.host);
        }
        exit.remove_peer(&s.client_key);
        tracing::debug!(session = %id, reason, "tunnelbyte session ended");
    }

    /// Applies timing rules at `now`: byte counters from the exit node, session time, quota
    /// windows, the idle reaper, the 30-day ceiling, and routing around disconnected nodes.
    pub fn tick(&mut self, now: DateTime<Utc>, clock: &LabClock, exit: &dyn ExitPeers) {
        for r in &mut self.regions {
            if let Some(since) = r.disconnected_since {
                if now >= since + reroute_after() {
                    r.nodes = r.nodes.saturating_sub(1);
                    r.disconnected_since = None;
                }
            }
        }
        if self.live.is_empty() {
            return;
        }
        let mut endings: Vec<(String, DateTime<Utc>, &'static str)> = Vec::new();
        for id in &self.live {
            let Some(s) = self.sessions.get_mut(id) else {
                continue;
            };
            let Some(acct) = self.accounts.get_mut(&s.token) else {
                continue;
            };
            match exit.peer_stats(&s.client_key) {
                Some(st) => {
                    let rx = counter_delta(st.rx_bytes, s.seen_rx);
                    let tx = counter_delta(st.tx_bytes, s.seen_tx);
                    s.seen_rx = st.rx_bytes;
                    s.seen_tx = st.tx_bytes;
                    s.bytes_out = s.bytes_out.saturating_add(rx);
                    s.bytes_in = s.bytes_in.saturating_add(tx);
                    acct.usage.add_bytes(now, rx.saturating_add(tx));
                    // A handshake is dated in lab time when first seen: converting it later
                    // would shift it by any clock advance made since.
                    if let Some(h) = st.last_handshake {
                        let new = s
                            .seen_handshake
                            .is_none_or(|prev| h > prev + HANDSHAKE_JITTER);
                        if new {
                            s.seen_handshake = Some(h);
                            let lab = clock.from_system(h).min(now);
                            if s.last_handshake.is_none_or(|prev| lab > prev) {
                                s.last_handshake = Some(lab);
                            }
                        }
                    }
                }
                // The exit node lost the peer (e.g. the lab restarted from a state file).
                None => exit.add_peer(
                    s.client_key,
                    IpAddr::V4(Ipv4Addr::new(
                        10,
                        77,
                        region_octet(&self.regions, &s.region),
                        s.host,
                    )),
                ),
            }
            if s.simulated_alive {
                s.last_handshake = Some(now);
            }
            acct.usage.roll(now);
            let idle_at = s.last_handshake.unwrap_or(s.created_at).max(s.created_at) + idle_after();
            let end = now.min(idle_at).min(s.expires_at);
            let from = s.accrued_until;
            let quota_at = if end > from {
                let a = acct.usage.accrue_time(from, end, acct.tier.seconds_limit());
                s.accrued_until = a.until;
                a.quota_at
            } else {
                None
            };
            let (bytes_hit, _) = acct.usage.exhausted(acct.tier);
            if let Some(at) = quota_at {
                endings.push((id.clone(), at, "quota_exceeded"));
            } else if bytes_hit {
                endings.push((id.clone(), end.max(from), "quota_exceeded"));
            } else if idle_at <= now && end == idle_at {
                endings.push((id.clone(), idle_at, "idle"));
            } else if s.expires_at <= now {
                endings.push((id.clone(), s.expires_at, "expired"));
            }
        }
        for (id, at, reason) in endings {
            self.end_session(&id, at, reason, exit);
        }
    }

    /// Sets a token's usage in the current windows (control API).
    pub fn set_usage(
        &mut self,
        token: &str,
        bytes_used: Option<u64>,
        session_seconds: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let acct = self
            .accounts
            .get_mut(token)
            .ok_or_else(|| "no such tunnelbyte token".to_owned())?;
        acct.usage.roll(now);
        if let Some(b) = bytes_used {
            acct.usage.bytes.open(now);
            acct.usage.bytes.used = b;
        }
        if let Some(s) = session_seconds {
            acct.usage.seconds_ms.open(now);
            acct.usage.seconds_ms.used = s.saturating_mul(1000);
        }
        Ok(())
    }

    /// Ends a session server-side with `reason` (control API). Ending an ended one is a no-op.
    pub fn terminate(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<(), String> {
        if !self.sessions.contains_key(id) {
            return Err(format!("no tunnelbyte session {id}"));
        }
        self.end_session(id, now, reason, exit);
        Ok(())
    }

    /// Takes a region offline or brings it back with all its nodes healthy (control API).
    pub fn set_region_online(&mut self, code: &str, online: bool) -> Result<(), String> {
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.code == code)
            .ok_or_else(|| format!("no tunnelbyte region {code}"))?;
        r.online = online;
        if online {
            r.nodes = r.seeded_nodes;
            r.disconnected_since = None;
        }
        Ok(())
    }

    /// Marks one node of a region as no longer accepting peers (control API). Creates in that
    /// region then fail with `peer apply failed` until the server routes around the node a
    /// minute later, which removes it from `node_count`. `healthy` clears the condition.
    pub fn set_node_disconnected(
        &mut self,
        code: &str,
        disconnected: bool,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.code == code)
            .ok_or_else(|| format!("no tunnelbyte region {code}"))?;
        r.disconnected_since = disconnected.then_some(now);
        Ok(())
    }

    /// Records a WireGuard handshake for a session now; with `alive`, keeps treating the peer as
    /// handshaking (or stops doing so) (control API, for when no real traffic flows).
    pub fn handshake(
        &mut self,
        id: &str,
        alive: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let s = self
            .sessions
            .get_mut(id)
            .ok_or_else(|| format!("no tunnelbyte session {id}"))?;
        if s.terminated_at.is_some() {
            return Err(format!("tunnelbyte session {id} has ended"));
        }
        s.last_handshake = Some(now);
        if let Some(a) = alive {
            s.simulated_alive = a;
        }
        Ok(())
    }
}

fn counter_delta(now: u64, seen: u64) -> u64 {
    // A counter below what was seen means the peer was re-added: count from zero.
    if now >= seen {
        now - seen
    } else {
        now
    }
}

fn region_octet(regions: &[Region], code: &str) -> u8 {
    regions
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.octet)
        .unwrap_or(0)
}

/// The endpoint clients can reach: an unspecified listen address becomes loopback.
fn public_endpoint(ep: SocketAddr) -> SocketAddr {
    if ep.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ep.port())
    } else {
        ep
    }
}
