//! Thin adapters from the real service clients and the SQLite store to the supervisor's traits.

use chrono::{DateTime, Utc};
use ferry_tunnel::keys::PrivateKey;
use ferry_tunnel::wgconf::WgConfig;
use tracing::warn;

use super::machine::ErrorCause;
use super::orbnet::{OrbnetApi, Prepared};
use super::ports::{Ledger, NewRow, OpenRow, UsageRow};
use super::tunnelbyte::{Created, TunnelbyteApi};
use crate::meter::credits::{HeartbeatInfo, StartInfo};
use crate::meter::credits_driver::{
    ActiveSession, CreditsApi, CreditsApiError, DisconnectReason, EndSummary,
};
use crate::meter::quota::{QuotaApi, QuotaApiError, SessionStatus, WindowResets};
use crate::services::error::{ApiError, Delivery};
use crate::services::keys::WgKeypair;
use crate::services::orbnet::{OrbnetClient, Protocol, StartSession};
use crate::services::tunnelbyte::TunnelbyteClient;
use crate::services::ServiceKind;
use crate::store::{EndReason, NewSession, SessionClose, SessionRecord, Store, UsageUpdate};

/// Classifies a client error by what it means for billing.
pub fn credits_error(e: ApiError) -> CreditsApiError {
    let status = e.status();
    let code = e.code().map(str::to_owned);
    match (e.delivery(), status, code.as_deref()) {
        (Delivery::NotSent, _, _) => CreditsApiError::NotSent(e.to_string()),
        (Delivery::Unknown, _, _) => CreditsApiError::Unconfirmed(e.to_string()),
        (_, Some(402), _) | (_, _, Some("CREDITS_DEPLETED")) => CreditsApiError::CreditsDepleted,
        (_, Some(409), _) | (_, _, Some("SESSION_ALREADY_ACTIVE")) => {
            CreditsApiError::SessionAlreadyActive
        }
        (_, Some(404), _) | (_, _, Some("SESSION_NOT_FOUND")) => CreditsApiError::SessionNotFound,
        // 429 and 503 are answered before any work is done: not processed.
        (_, Some(429 | 503), _) => CreditsApiError::NotSent(e.to_string()),
        // Other 5xx, and answers we cannot read, may have been processed.
        (_, Some(s), _) if s >= 500 => CreditsApiError::Unconfirmed(e.to_string()),
        (_, _, _)
            if matches!(
                e,
                ApiError::Malformed { .. } | ApiError::BodyTooLarge { .. }
            ) =>
        {
            CreditsApiError::Unconfirmed(e.to_string())
        }
        _ => CreditsApiError::Rejected {
            status: status.unwrap_or(0),
            code: code.unwrap_or_default(),
            message: e.to_string(),
        },
    }
}

impl CreditsApi for OrbnetClient {
    async fn start(
        &self,
        session_id: &str,
        server_id: i64,
        _protocol: &str,
    ) -> Result<StartInfo, CreditsApiError> {
        let s = self
            .start_session(&StartSession {
                session_id: session_id.to_string(),
                server_id,
                protocol: Protocol::Wireguard,
            })
            .await
            .map_err(credits_error)?;
        Ok(StartInfo {
            credits_at_start: s.credits_at_start,
            consumption_rate: s.consumption_rate,
            next_deduction_in_seconds: s.next_deduction_in_seconds,
            is_free_user: s.is_free_user,
            tracking_id: Some(s.tracking_id).filter(|t| !t.is_empty()),
        })
    }

    async fn heartbeat(
        &self,
        session_id: &str,
        seconds_since_last: u32,
    ) -> Result<HeartbeatInfo, CreditsApiError> {
        let a = OrbnetClient::heartbeat(self, session_id, seconds_since_last)
            .await
            .map_err(credits_error)?;
        Ok(HeartbeatInfo {
            credits_remaining: a.credits_remaining,
            credits_deducted: a.credits_deducted,
            consumption_rate: a.consumption_rate,
            next_deduction_in_seconds: a.next_deduction_in_seconds,
            session_duration_secs: a.session_duration_secs,
        })
    }

    async fn end(
        &self,
        session_id: &str,
        seconds_since_last: u32,
        reason: DisconnectReason,
    ) -> Result<EndSummary, CreditsApiError> {
        let e = self
            .end_session(session_id, seconds_since_last, reason)
            .await
            .map_err(credits_error)?;
        Ok(EndSummary {
            total_duration_secs: e.total_duration_secs,
            total_credits_used: Some(e.total_credits_used),
            credits_remaining: Some(e.credits_remaining),
        })
    }

    async fn active(&self) -> Result<Option<ActiveSession>, CreditsApiError> {
        let a = self.active_session().await.map_err(credits_error)?;
        Ok(a.session
            .filter(|_| a.has_active_session)
            .map(|s| ActiveSession {
                session_id: s.session_id,
                server_id: s.server_id,
            }))
    }
}

impl OrbnetApi for OrbnetClient {
    async fn prepare(&self, server: Option<i64>) -> Result<Prepared, ErrorCause> {
        let auth = self
            .authorize(server, Protocol::Wireguard)
            .await
            .map_err(|e| {
                if e.has_code("INSUFFICIENT_CREDITS") || e.status() == Some(402) {
                    ErrorCause::CreditsExhausted(e.to_string())
                } else {
                    ErrorCause::Service(e.to_string())
                }
            })?;
        let server_id = auth
            .server_id
            .or(server)
            .ok_or_else(|| ErrorCause::Service("OrbNET authorized no server".into()))?;
        let cfg = self
            .wireguard_config(server_id)
            .await
            .map_err(|e| ErrorCause::Service(e.to_string()))?;
        // The vendor's config (wg-quick text, or its JSON fields written as such) becomes a
        // typed value here, once, and passes as one to the tunnel.
        let wg_quick = match cfg.config.as_ref().filter(|c| !c.is_blank()) {
            Some(text) => text.expose().to_string(),
            None => {
                let mut s = format!(
                    "[Interface]\nPrivateKey = {}\nAddress = {}\n",
                    cfg.interface.private_key.expose(),
                    cfg.interface.address.join(", ")
                );
                if !cfg.interface.dns.is_empty() {
                    s.push_str(&format!("DNS = {}\n", cfg.interface.dns.join(", ")));
                }
                if let Some(mtu) = cfg.interface.mtu {
                    s.push_str(&format!("MTU = {mtu}\n"));
                }
                s.push_str(&format!(
                    "\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = {}\n",
                    cfg.peer.public_key,
                    cfg.peer.endpoint,
                    cfg.peer.allowed_ips.join(", ")
                ));
                if let Some(k) = cfg.peer.persistent_keepalive {
                    s.push_str(&format!("PersistentKeepalive = {k}\n"));
                }
                s
            }
        };
        let config = WgConfig::parse(&wg_quick).map_err(|e| {
            ErrorCause::Service(format!("OrbNET sent an unusable WireGuard config: {e}"))
        })?;
        Ok(Prepared {
            server_id,
            location: format!("server {server_id}"),
            config,
            exit_ip: endpoint_ip(&cfg.peer.endpoint),
            consumption_rate: Some(auth.credits.consumption_rate).filter(|r| *r > 0.0),
        })
    }
}

/// The IP of a WireGuard `host:port` endpoint, when the host is an address.
fn endpoint_ip(endpoint: &str) -> Option<String> {
    endpoint
        .trim()
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_string())
}

fn quota_error(e: ApiError) -> QuotaApiError {
    if e.status() == Some(404) {
        QuotaApiError::NotFound
    } else {
        QuotaApiError::Failed(e.to_string())
    }
}

impl QuotaApi for TunnelbyteClient {
    async fn status(&self, id: &str) -> Result<SessionStatus, QuotaApiError> {
        let s = self.session_status(id).await.map_err(quota_error)?;
        Ok(SessionStatus {
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            tier: s.tier,
            cost_time_millicents: s.cost_time_millicents,
            cost_bytes_millicents: s.cost_bytes_millicents,
            cost_currency: s.cost_currency,
            quota_bytes_used: s.quota_bytes_used,
            quota_bytes_limit: s.quota_bytes_limit,
            quota_seconds_used: s.quota_seconds_used,
            quota_seconds_limit: s.quota_seconds_limit,
            terminated_at: s.terminated_at,
            terminated_reason: s.terminated_reason,
        })
    }

    async fn resets(&self) -> Result<WindowResets, QuotaApiError> {
        let u = self.usage().await.map_err(quota_error)?;
        Ok(WindowResets {
            bytes: u.bytes_window_resets_at,
            seconds: u.seconds_window_resets_at,
        })
    }

    async fn delete(&self, id: &str) -> Result<(), QuotaApiError> {
        self.delete_session(id)
            .await
            .map(|_| ())
            .map_err(quota_error)
    }
}

/// tunnelbyte's config as a typed value, with the key generated on this device as its private
/// key (a key the server wrote into it is kept).
pub fn device_keyed(wg_config: &str, key: &WgKeypair) -> Result<WgConfig, ErrorCause> {
    let config = WgConfig::parse(wg_config).map_err(|e| {
        ErrorCause::Service(format!("tunnelbyte sent an unusable WireGuard config: {e}"))
    })?;
    if config.interface.private_key.is_some() {
        return Ok(config);
    }
    let private = PrivateKey::from_bytes(key.private_bytes())
        .map_err(|e| ErrorCause::Service(format!("the device key is unusable: {e}")))?;
    Ok(config.with_private_key(private))
}

impl TunnelbyteApi for TunnelbyteClient {
    async fn create(&self, region: Option<String>) -> Result<Created, ErrorCause> {
        let region = match region {
            Some(r) => r,
            None => self.default_region().await?,
        };
        let key = WgKeypair::generate();
        let created = self
            .create_session(&region, &key)
            .await
            .map_err(|e| match e {
                ApiError::QuotaExceeded(q) => ErrorCause::QuotaExhausted(q.to_string()),
                ApiError::RegionUnavailable { message, available } => {
                    ErrorCause::RegionUnavailable {
                        message,
                        alternatives: available,
                    }
                }
                e => ErrorCause::Service(e.to_string()),
            })?;
        let config = device_keyed(&created.wg_config, &key)?;
        Ok(Created {
            id: created.id,
            region,
            config,
            exit_ip: Some(created.public_ip).filter(|s| !s.is_empty()),
        })
    }
}

impl TunnelbyteClient {
    /// The account's default region, else the first region with a node.
    async fn default_region(&self) -> Result<String, ErrorCause> {
        if let Ok(u) = self.usage().await {
            if let Some(r) = u.default_region.filter(|r| !r.is_empty()) {
                return Ok(r);
            }
        }
        let regions = self
            .regions()
            .await
            .map_err(|e| ErrorCause::Service(e.to_string()))?;
        regions
            .into_iter()
            .find(|r| r.node_count > 0)
            .map(|r| r.code)
            .ok_or_else(|| ErrorCause::RegionUnavailable {
                message: "tunnelbyte has no region up".into(),
                alternatives: Vec::new(),
            })
    }
}

fn usage_update(u: &UsageRow, at: DateTime<Utc>) -> UsageUpdate {
    let mut up = UsageUpdate::at(at);
    up.bytes_in = u.bytes_in;
    up.bytes_out = u.bytes_out;
    up.credits_remaining = u.credits_remaining;
    up.credits_used = u.credits_used;
    up.cost_millicents = u.cost_millicents;
    up.cost_currency = u.cost_currency.clone();
    up.quota_bytes_used = u.quota_bytes.map(|q| q.0);
    up.quota_bytes_limit = u.quota_bytes.map(|q| q.1);
    up.quota_seconds_used = u.quota_seconds.map(|q| q.0);
    up.quota_seconds_limit = u.quota_seconds.map(|q| q.1);
    up
}

fn open_row(r: SessionRecord) -> OpenRow {
    OpenRow {
        id: r.id,
        client_session_id: r.client_session_id,
        server_session_id: r.server_session_id,
        service: r.service.as_str().to_string(),
        last_ack_at: r.last_ack_at.or(r.connected_at).or(Some(r.started_at)),
    }
}

fn logged<T>(what: &str, r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        warn!(error = %e, "history: {what} failed");
    }
}

impl Ledger for Store {
    async fn open(&self, row: NewRow) -> Result<i64, String> {
        let service: ServiceKind = row.service.parse().map_err(|e| format!("{e}"))?;
        self.insert_session(&NewSession {
            client_session_id: row.client_session_id,
            service,
            account: None,
            location: Some(row.location),
            started_at: row.started_at,
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn set_server_session(&self, row: i64, id: String, exit_ip: Option<String>) {
        logged(
            "server session id",
            Store::set_server_session(self, row, &id, exit_ip.as_deref()).await,
        );
    }

    async fn connected(&self, row: i64) {
        logged(
            "mark connected",
            self.mark_connected(row, self.wall_now()).await,
        );
    }

    async fn acked(&self, row: i64) {
        logged("heartbeat ack", self.record_ack(row, self.wall_now()).await);
    }

    async fn usage(&self, row: i64, u: UsageRow) {
        logged(
            "usage",
            self.update_usage(row, &usage_update(&u, self.wall_now()))
                .await,
        );
    }

    async fn close(&self, row: i64, reason: String, u: UsageRow) {
        let mut c = SessionClose::new(self.wall_now(), EndReason::parse(&reason));
        c.credits_used = u.credits_used;
        c.credits_remaining = u.credits_remaining;
        c.cost_millicents = u.cost_millicents;
        c.bytes_in = u.bytes_in;
        c.bytes_out = u.bytes_out;
        logged("close", self.close_session(row, &c).await);
    }

    async fn traffic(&self, row: i64, bytes_in: u64, bytes_out: u64) {
        logged(
            "final traffic",
            self.set_traffic(row, bytes_in, bytes_out).await,
        );
    }

    async fn find(&self, client_session_id: String) -> Option<OpenRow> {
        match self.session_by_client_id(&client_session_id).await {
            Ok(r) => r.map(open_row),
            Err(e) => {
                warn!(error = %e, "history lookup failed");
                None
            }
        }
    }

    async fn open_rows(&self, service: &'static str) -> Vec<OpenRow> {
        match self.open_sessions().await {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.service.as_str() == service)
                .map(open_row)
                .collect(),
            Err(e) => {
                warn!(error = %e, "history: open rows unavailable");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn session_rows_are_stamped_on_the_injected_clock() {
        use crate::clock::ManualClock;
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(t0);
        let store = Store::open_in(dir.path())
            .await
            .unwrap()
            .with_clock(clock.shared());
        let row = Ledger::open(
            &store,
            NewRow {
                client_session_id: "c1".into(),
                service: "orbnet",
                location: "server 101".into(),
                started_at: store.wall_now(),
            },
        )
        .await
        .unwrap();
        clock.advance(std::time::Duration::from_secs(3));
        Ledger::connected(&store, row).await;
        clock.advance(std::time::Duration::from_secs(60));
        Ledger::acked(&store, row).await;
        clock.advance(std::time::Duration::from_secs(30));
        Ledger::close(&store, row, "user_initiated".into(), UsageRow::default()).await;
        let r = store.session(row).await.unwrap().unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(r.started_at, at(0));
        assert_eq!(r.connected_at, Some(at(3)));
        assert_eq!(r.last_ack_at, Some(at(63)));
        assert_eq!(r.ended_at, Some(at(93)));
        assert_eq!(
            r.connected_secs(at(1000)),
            Some(90),
            "no sleeping, exact to the second"
        );
    }

    #[test]
    fn exit_ip_comes_from_an_address_endpoint_only() {
        assert_eq!(
            endpoint_ip("198.51.100.7:51820").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            endpoint_ip("[2001:db8::1]:51820").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(endpoint_ip("vpn.example.net:51820"), None);
    }

    #[test]
    fn the_device_key_is_set_only_when_the_server_sent_none() {
        let peer = WgKeypair::generate().public_base64();
        let cfg = format!(
            "[Interface]\nAddress = 10.0.0.2/32\n\n[Peer]\nPublicKey = {peer}\nEndpoint = 127.0.0.1:51820\nAllowedIPs = 0.0.0.0/0\n"
        );
        let key = WgKeypair::generate();
        let c = device_keyed(&cfg, &key).unwrap();
        let set = c.interface.private_key.clone().unwrap();
        assert_eq!(set, PrivateKey::from_bytes(key.private_bytes()).unwrap());
        let again = device_keyed(&c.to_conf_string(), &WgKeypair::generate()).unwrap();
        assert_eq!(
            again.interface.private_key,
            Some(set),
            "the server's key is kept"
        );
        assert!(matches!(
            device_keyed("[Interface]\nPostUp = rm -rf /\n", &key),
            Err(ErrorCause::Service(_))
        ));
    }

    #[test]
    fn billing_classification_of_client_errors() {
        let s = ServiceKind::Orbnet;
        let vendor = |status: u16, code: &str| ApiError::Vendor {
            service: s,
            status,
            code: Some(code.into()),
            message: "m".into(),
            retry_after: None,
        };
        assert!(matches!(
            credits_error(ApiError::NotSent {
                service: s,
                message: "refused".into()
            }),
            CreditsApiError::NotSent(_)
        ));
        assert!(matches!(
            credits_error(ApiError::AnswerLost {
                service: s,
                message: "timeout".into()
            }),
            CreditsApiError::Unconfirmed(_)
        ));
        assert_eq!(
            credits_error(vendor(402, "CREDITS_DEPLETED")),
            CreditsApiError::CreditsDepleted
        );
        assert_eq!(
            credits_error(vendor(409, "SESSION_ALREADY_ACTIVE")),
            CreditsApiError::SessionAlreadyActive
        );
        assert_eq!(
            credits_error(vendor(404, "SESSION_NOT_FOUND")),
            CreditsApiError::SessionNotFound
        );
        assert!(matches!(
            credits_error(vendor(503, "X")),
            CreditsApiError::NotSent(_)
        ));
        assert!(matches!(
            credits_error(vendor(500, "X")),
            CreditsApiError::Unconfirmed(_)
        ));
        assert!(matches!(
            credits_error(vendor(400, "VALIDATION_ERROR")),
            CreditsApiError::Rejected { status: 400, .. }
        ));
    }
}
