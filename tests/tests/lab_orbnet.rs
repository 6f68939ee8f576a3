//! OrbNET conformance: the lab, run as a separate `ferry lab` process, checked over HTTP against
//! seed page 000 (sessions) and the vendor reference §1 (auth, servers, authorize, WireGuard,
//! rate limits). Time-based rules run on the lab clock (`/_lab/clock/advance`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ferry_tests::lab::LabProcess;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const DEMO: &str = "demo@orbnet.lab";
const EMPTY: &str = "empty@orbnet.lab";
const TWO_FA: &str = "2fa@orbnet.lab";
const FREE: &str = "free@orbnet.lab";

/// One OrbNET answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn data(&self) -> &Value {
        assert_eq!(self.body["success"], true, "not a success: {}", self.body);
        &self.body["data"]
    }

    /// Asserts the error envelope with `status` and `code`, and returns `error`.
    fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "status for {}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        let e = &self.body["error"];
        assert_eq!(e["code"], code, "{}", self.body);
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error.message: {}",
            self.body
        );
        assert!(self.body.get("data").is_none(), "{}", self.body);
        e
    }

    fn header(&self, name: &str) -> i64 {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

struct Orb {
    lab: LabProcess,
}

impl Orb {
    fn launch() -> Self {
        Self {
            lab: LabProcess::start().unwrap(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .lab
            .http()
            .request(method, format!("{}{path}", self.lab.urls.orbnet));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn account(&self, email: &str) -> Value {
        let accounts = self.lab.accounts().await;
        accounts["orbnet"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["email"] == email)
            .cloned()
            .unwrap_or_else(|| panic!("no seeded account {email}: {accounts}"))
    }

    async fn login_raw(&self, email: &str, password: &str, totp: Option<&str>) -> Answer {
        let mut body = json!({"email": email, "password": password});
        if let Some(code) = totp {
            body["totp_code"] = json!(code);
        }
        self.call(Method::POST, "/auth/login", None, Some(body))
            .await
    }

    /// Logs in a seeded account; returns (access, refresh).
    async fn login(&self, email: &str) -> (String, String) {
        let acc = self.account(email).await;
        let a = self
            .login_raw(email, acc["password"].as_str().unwrap(), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let t = &a.data()["tokens"];
        (
            t["access_token"].as_str().unwrap().to_owned(),
            t["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn set_credits(&self, email: &str, credits: f64) {
        self.lab
            .control_post(
                "/orbnet/credits",
                json!({"email": email, "credits": credits}),
            )
            .await
            .unwrap();
    }

    async fn start(&self, token: &str, session_id: &str) -> Answer {
        self.post(
            "/vpn/session/start",
            token,
            json!({"session_id": session_id, "server_id": 101, "protocol": "wireguard"}),
        )
        .await
    }

    async fn beat(&self, token: &str, session_id: &str, secs: Value) -> Answer {
        self.post(
            "/vpn/session/heartbeat",
            token,
            json!({"session_id": session_id, "seconds_since_last": secs}),
        )
        .await
    }

    async fn end(&self, token: &str, session_id: &str, secs: i64, reason: &str) -> Answer {
        self.post(
            "/vpn/session/end",
            token,
            json!({"session_id": session_id, "seconds_since_last": secs, "disconnect_reason": reason}),
        )
        .await
    }

    async fn active(&self, token: &str) -> Value {
        let a = self.get("/vpn/session/active", token).await;
        assert_eq!(a.status, 200);
        a.data().clone()
    }
}

fn is_z_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.len() == 20 && s.as_bytes()[10] == b'T')
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

const SID: &str = "sess_a1b2c3d4-e5f6-7890-abcd-ef1234567890";

#[tokio::test]
async fn every_answer_uses_the_envelope_and_rate_limit_headers() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;

    let a = orb.get("/no/such/route", &token).await;
    a.error(404, "NOT_FOUND");
    let a = orb.call(Method::GET, "/vpn/unknown", None, None).await;
    a.error(404, "NOT_FOUND");
    assert!(a.header("x-ratelimit-limit") > 0);

    let a = orb.get("/vpn/session/start", &token).await;
    a.error(405, "METHOD_NOT_ALLOWED");

    for path in [
        "/vpn/session/active",
        "/vpn/servers",
        "/vpn/servers/101/wireguard",
        "/vpn/connection",
        "/vpn/authorize?protocol=wireguard",
    ] {
        let a = orb.call(Method::GET, path, None, None).await;
        a.error(401, "UNAUTHORIZED");
        let a = orb.get(path, "not-a-token").await;
        let e = a.error(401, "UNAUTHORIZED");
        assert_eq!(e["message"], "Invalid or expired access token");
        assert!(a.headers.contains_key("x-ratelimit-remaining"));
    }
    for path in [
        "/vpn/session/start",
        "/vpn/session/heartbeat",
        "/vpn/session/end",
        "/vpn/authorize",
    ] {
        let a = orb
            .call(Method::POST, path, Some("bad"), Some(json!({})))
            .await;
        a.error(401, "UNAUTHORIZED");
    }

    let a = orb.get("/vpn/session/active", &token).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.header("x-ratelimit-limit"), 300);
    let remaining = a.header("x-ratelimit-remaining");
    let a2 = orb.get("/vpn/session/active", &token).await;
    assert_eq!(a2.header("x-ratelimit-remaining"), remaining - 1);
    let now = orb.lab.control_get("/clock").await.unwrap()["now_ms"]
        .as_i64()
        .unwrap()
        / 1000;
    let reset = a2.header("x-ratelimit-reset");
    assert!(
        reset > now && reset <= now + 61,
        "reset {reset} vs now {now}"
    );
}

#[tokio::test]
async fn login_validates_and_rejects_bad_credentials() {
    let orb = Orb::launch();
    let acc = orb.account(DEMO).await;
    assert_eq!(f(&acc["credits"]), 5000.0);

    let a = orb.login_raw(DEMO, "wrong", None).await;
    a.error(401, "INVALID_CREDENTIALS");
    let a = orb
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"password": "x"})),
        )
        .await;
    let e = a.error(400, "VALIDATION_ERROR");
    assert_eq!(e["details"]["field"], "email");
    assert_eq!(e["details"]["constraint"], "required");

    let a = orb
        .login_raw(DEMO, acc["password"].as_str().unwrap(), None)
        .await;
    let d = a.data();
    assert_eq!(d["user"]["email"], DEMO);
    assert!(d["user"]["id"].is_u64());
    assert!(d["subscription"].is_object());
    let access = d["tokens"]["access_token"].as_str().unwrap();
    assert!(!d["tokens"]["refresh_token"].as_str().unwrap().is_empty());
    // A JWT whose payload carries the integer user id and a 15-minute expiry.
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], d["user"]["id"]);
    assert_eq!(payload["iss"], "orbnet");
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn access_tokens_expire_and_refresh_tokens_rotate() {
    let orb = Orb::launch();
    let (access, refresh) = orb.login(DEMO).await;
    assert_eq!(orb.get("/vpn/session/active", &access).await.status, 200);

    orb.lab.advance(14.0 * 60.0).await.unwrap();
    assert_eq!(orb.get("/vpn/session/active", &access).await.status, 200);
    orb.lab.advance(61.0).await.unwrap();
    orb.get("/vpn/session/active", &access)
        .await
        .error(401, "UNAUTHORIZED");

    let a = orb
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    let t = &a.data()["tokens"];
    let access2 = t["access_token"].as_str().unwrap().to_owned();
    let refresh2 = t["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh, "the refresh token rotates");
    assert_eq!(orb.get("/vpn/session/active", &access2).await.status, 200);

    // Reusing the old refresh token is refused; the new one works once.
    let a = orb
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    a.error(401, "UNAUTHORIZED");
    let a = orb
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh2})),
        )
        .await;
    assert_eq!(a.status, 200);
    let a = orb
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh2})),
        )
        .await;
    a.error(401, "UNAUTHORIZED");
    let a = orb
        .call(Method::POST, "/auth/refresh", None, Some(json!({})))
        .await;
    a.error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn logout_revokes_both_tokens() {
    let orb = Orb::launch();
    let (access, refresh) = orb.login(DEMO).await;
    let a = orb
        .post("/auth/logout", &access, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(a.status, 200);
    orb.get("/vpn/session/active", &access)
        .await
        .error(401, "UNAUTHORIZED");
    orb.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await
    .error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn two_factor_login_needs_the_totp_code() {
    let orb = Orb::launch();
    let acc = orb.account(TWO_FA).await;
    let password = acc["password"].as_str().unwrap();
    let a = orb.login_raw(TWO_FA, password, None).await;
    let d = a.data();
    assert_eq!(d["requires_2fa"], true);
    assert!(d
        .get("tokens")
        .is_none_or(|t| t["access_token"].as_str().unwrap_or("").is_empty()));

    let code = acc["totp_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    let wrong: String = code
        .chars()
        .map(|c| char::from(b'0' + (c.to_digit(10).unwrap() as u8 + 5) % 10))
        .collect();
    orb.login_raw(TWO_FA, password, Some(&wrong))
        .await
        .error(401, "INVALID_2FA_CODE");

    // Codes follow the lab clock: the current one (fetched again, in case a step passed) works.
    let code = orb.account(TWO_FA).await["totp_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = orb.login_raw(TWO_FA, password, Some(&code)).await;
    let d = a.data();
    assert_eq!(d["requires_2fa"], false);
    let token = d["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(orb.get("/vpn/session/active", token).await.status, 200);

    // Ten minutes later that code is stale.
    orb.lab.advance(600.0).await.unwrap();
    orb.login_raw(TWO_FA, password, Some(&code))
        .await
        .error(401, "INVALID_2FA_CODE");
}

#[tokio::test]
async fn servers_list_and_details() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let a = orb.get("/vpn/servers", &token).await;
    let servers = a.data()["servers"].as_array().unwrap().clone();
    assert!(servers.len() >= 3);
    for s in &servers {
        assert!(s["id"].is_u64(), "{s}");
        for k in [
            "name",
            "city",
            "country",
            "host_name",
            "public_ip",
            "type",
            "continent",
        ] {
            assert!(s[k].is_string(), "{k} in {s}");
        }
        assert!(s["hidden"].is_boolean());
    }
    assert!(servers.iter().any(|s| s["id"] == 101));
    let one = orb.get("/vpn/servers/102", &token).await;
    assert_eq!(one.data()["id"], 102);
    orb.get("/vpn/servers/999", &token)
        .await
        .error(404, "SERVER_NOT_FOUND");
}

#[tokio::test]
async fn authorize_post_and_get_and_insufficient_credits() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let a = orb
        .post(
            "/vpn/authorize",
            &token,
            json!({"server_id": 101, "protocol": "wireguard"}),
        )
        .await;
    let d = a.data();
    assert_eq!(d["authorized"], true);
    assert_eq!(d["server_id"], 101);
    assert_eq!(d["protocol"], "wireguard");
    assert_eq!(f(&d["credits"]["available"]), 5000.0);
    assert_eq!(f(&d["credits"]["consumption_rate"]), 1.5);
    assert_eq!(f(&d["credits"]["estimated_hours"]), 55.5);

    let a = orb
        .get("/vpn/authorize?protocol=vless&server_id=102", &token)
        .await;
    assert_eq!(a.data()["server_id"], 102);
    assert_eq!(a.data()["protocol"], "vless");
    // server_id is optional: the server picks one.
    let a = orb
        .post("/vpn/authorize", &token, json!({"protocol": "orbconnect"}))
        .await;
    assert!(a.data()["server_id"].is_u64());

    let e = orb
        .post("/vpn/authorize", &token, json!({"protocol": "ipsec"}))
        .await;
    assert_eq!(
        e.error(400, "VALIDATION_ERROR")["details"]["field"],
        "protocol"
    );
    orb.post("/vpn/authorize", &token, json!({"server_id": 101}))
        .await
        .error(400, "VALIDATION_ERROR");

    let (empty, _) = orb.login(EMPTY).await;
    let e = orb
        .post(
            "/vpn/authorize",
            &empty,
            json!({"server_id": 101, "protocol": "wireguard"}),
        )
        .await;
    let err = e.error(403, "INSUFFICIENT_CREDITS");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("You do not have enough credits for a VPN connection."));
    orb.get("/vpn/authorize?protocol=wireguard", &empty)
        .await
        .error(403, "INSUFFICIENT_CREDITS");

    // Credits set to zero by the control API: refused as well.
    orb.set_credits(DEMO, 0.0).await;
    orb.post("/vpn/authorize", &token, json!({"protocol": "wireguard"}))
        .await
        .error(403, "INSUFFICIENT_CREDITS");
}

#[tokio::test]
async fn wireguard_config_is_real_and_points_at_the_lab_exit_node() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let a = orb.get("/vpn/servers/101/wireguard", &token).await;
    let d = a.data().clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = |v: &Value| -> [u8; 32] {
        b64.decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .expect("a 32-byte key")
    };
    let private = key(&d["interface"]["private_key"]);
    let server_public = key(&d["peer"]["public_key"]);
    assert_ne!(private, [0u8; 32]);
    assert_eq!(d["interface"]["mtu"], 1420);
    // The lab's configs name the resolver its exit node answers inside the tunnel.
    assert_eq!(
        d["interface"]["dns"],
        json!([ferry_tunnel::exit::TUNNEL_DNS_V4.to_string()])
    );
    assert_eq!(d["peer"]["allowed_ips"], json!(["0.0.0.0/0", "::/0"]));
    assert_eq!(d["peer"]["persistent_keepalive"], 25);
    let address = d["interface"]["address"].as_str().unwrap();
    assert!(address.ends_with("/32"), "{address}");

    // The endpoint is the lab's own UDP port on loopback: the lab holds it.
    let endpoint: std::net::SocketAddr = d["peer"]["endpoint"].as_str().unwrap().parse().unwrap();
    assert!(endpoint.ip().is_loopback(), "{endpoint}");
    let bind = std::net::UdpSocket::bind(endpoint);
    assert!(bind.is_err(), "the lab's exit node owns UDP {endpoint}");

    // The text parses as a wg-quick config and says the same as the parsed fields.
    let conf = ferry_tunnel::wgconf::WgConfig::parse(d["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        conf.interface.private_key.as_ref().unwrap().to_base64(),
        d["interface"]["private_key"].as_str().unwrap()
    );
    assert_eq!(conf.interface.addresses[0].to_string(), address);
    assert_eq!(conf.interface.mtu, Some(1420));
    assert_eq!(conf.interface.dns.len(), 1);
    assert_eq!(conf.peers.len(), 1);
    let peer = &conf.peers[0];
    assert_eq!(peer.public_key.as_bytes(), &server_public);
    assert_eq!(
        peer.endpoint.as_ref().unwrap().to_string(),
        endpoint.to_string()
    );
    assert_eq!(peer.allowed_ips.len(), 2);
    assert_eq!(peer.persistent_keepalive, Some(25));

    // Each call makes a fresh keypair; each account has its own tunnel address.
    let again = orb.get("/vpn/servers/101/wireguard", &token).await;
    assert_ne!(
        again.data()["interface"]["private_key"],
        d["interface"]["private_key"]
    );
    assert_eq!(again.data()["interface"]["address"], address);
    assert_eq!(again.data()["peer"]["public_key"], d["peer"]["public_key"]);
    let (other, _) = orb.login(FREE).await;
    let o = orb
        .get("/vpn/servers/101/wireguard?device_id=1", &other)
        .await;
    assert_ne!(o.data()["interface"]["address"], address);

    orb.get("/vpn/servers/999/wireguard", &token)
        .await
        .error(404, "SERVER_NOT_FOUND");
    orb.get("/vpn/servers/abc/wireguard", &token)
        .await
        .error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn session_lifecycle_as_the_seed_describes() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let idle = orb.active(&token).await;
    assert_eq!(idle, json!({"has_active_session": false, "session": null}));

    let a = orb.start(&token, SID).await;
    let d = a.data();
    assert_eq!(d["session_id"], SID);
    assert!(d["tracking_id"].as_str().unwrap().starts_with("trk_"));
    assert_eq!(d["is_free_user"], false);
    assert_eq!(f(&d["credits_at_start"]), 5000.0);
    assert_eq!(f(&d["consumption_rate"]), 1.5);
    assert_eq!(d["next_deduction_in_seconds"], 60);

    let e = orb.start(&token, "sess_other").await;
    let err = e.error(409, "SESSION_ALREADY_ACTIVE");
    assert_eq!(
        err["message"],
        "An active VPN session already exists. End the current session before starting a new one."
    );

    orb.lab.advance(90.0).await.unwrap();
    let act = orb.active(&token).await;
    assert_eq!(act["has_active_session"], true);
    let s = &act["session"];
    assert_eq!(s["session_id"], SID);
    assert_eq!(s["server_id"], 101);
    assert_eq!(s["protocol"], "wireguard");
    assert!(is_z_time(&s["started_at"]), "{s}");
    let dur = s["duration_secs"].as_i64().unwrap();
    assert!((90..=95).contains(&dur), "{dur}");
    assert_eq!(f(&s["credits_remaining"]), 5000.0);

    let h = orb.beat(&token, SID, json!(60)).await;
    let d = h.data();
    assert_eq!(d["session_id"], SID);
    assert_eq!(f(&d["credits_deducted"]), 1.5);
    assert_eq!(f(&d["credits_remaining"]), 4998.5);
    assert_eq!(f(&d["consumption_rate"]), 1.5);
    assert_eq!(d["next_deduction_in_seconds"], 60);
    assert_eq!(d["session_duration_secs"], 60);

    let h = orb.beat(&token, SID, json!(45)).await;
    assert_eq!(f(&h.data()["credits_deducted"]), 1.125);
    assert_eq!(h.data()["session_duration_secs"], 105);

    let e = orb.end(&token, SID, 30, "user_initiated").await;
    let d = e.data();
    assert_eq!(d["session_id"], SID);
    assert_eq!(d["total_duration_secs"], 135);
    assert_eq!(f(&d["total_credits_used"]), 3.375);
    assert_eq!(f(&d["credits_remaining"]), 4996.625);
    assert_eq!(d["disconnect_reason"], "user_initiated");
    assert!(is_z_time(&d["ended_at"]), "{d}");

    assert_eq!(orb.active(&token).await["has_active_session"], false);
    let e = orb.beat(&token, SID, json!(60)).await;
    assert_eq!(
        e.error(404, "SESSION_NOT_FOUND")["message"],
        "No active session found with the specified ID"
    );
    orb.end(&token, SID, 30, "user_initiated")
        .await
        .error(404, "SESSION_NOT_FOUND");

    // A new session may start after the end.
    assert_eq!(orb.start(&token, "sess_2").await.status, 200);
    orb.beat(&token, "sess_wrong", json!(60))
        .await
        .error(404, "SESSION_NOT_FOUND");
}

#[tokio::test]
async fn an_hour_at_one_and_a_half_per_minute_uses_ninety_credits() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    orb.start(&token, SID).await.data();
    for _ in 0..11 {
        assert_eq!(orb.beat(&token, SID, json!(300)).await.status, 200);
    }
    let d = orb.end(&token, SID, 300, "user_initiated").await;
    let d = d.data();
    assert_eq!(d["total_duration_secs"], 3600);
    assert_eq!(f(&d["total_credits_used"]), 90.0);
    assert_eq!(f(&d["credits_remaining"]), 4910.0);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let check = |a: Answer, field: &str| {
        let e = a.error(400, "VALIDATION_ERROR");
        assert_eq!(e["details"]["field"], field, "{e}");
    };
    check(
        orb.post(
            "/vpn/session/start",
            &token,
            json!({"server_id": 101, "protocol": "wireguard"}),
        )
        .await,
        "session_id",
    );
    check(
        orb.post(
            "/vpn/session/start",
            &token,
            json!({"session_id": SID, "protocol": "wireguard"}),
        )
        .await,
        "server_id",
    );
    check(
        orb.post(
            "/vpn/session/start",
            &token,
            json!({"session_id": SID, "server_id": 101}),
        )
        .await,
        "protocol",
    );
    check(
        orb.post(
            "/vpn/session/start",
            &token,
            json!({"session_id": SID, "server_id": 101, "protocol": "openvpn"}),
        )
        .await,
        "protocol",
    );
    for p in ["vless", "orbconnect"] {
        let a = orb
            .post(
                "/vpn/session/start",
                &token,
                json!({"session_id": p, "server_id": 101, "protocol": p}),
            )
            .await;
        assert_eq!(a.status, 200, "{p}: {}", a.body);
        orb.end(&token, p, 1, "error").await.data();
    }

    // Malformed JSON gets the envelope too.
    let r = orb
        .lab
        .http()
        .post(format!("{}/vpn/session/start", orb.lab.urls.orbnet))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "VALIDATION_ERROR");

    orb.start(&token, SID).await.data();
    for bad in [
        json!(0),
        json!(301),
        json!(-5),
        json!(1.5),
        json!("60"),
        Value::Null,
    ] {
        let a = orb.beat(&token, SID, bad.clone()).await;
        let e = a.error(400, "VALIDATION_ERROR");
        assert_eq!(e["details"]["field"], "seconds_since_last", "{bad}");
    }
    check(
        orb.post(
            "/vpn/session/heartbeat",
            &token,
            json!({"seconds_since_last": 60}),
        )
        .await,
        "session_id",
    );
    // The bounds themselves are accepted.
    assert_eq!(orb.beat(&token, SID, json!(1)).await.status, 200);
    assert_eq!(orb.beat(&token, SID, json!(300)).await.status, 200);

    check(
        orb.end(&token, SID, 0, "user_initiated").await,
        "seconds_since_last",
    );
    check(
        orb.end(&token, SID, 301, "user_initiated").await,
        "seconds_since_last",
    );
    check(orb.end(&token, SID, 30, "bored").await, "disconnect_reason");
    check(
        orb.post(
            "/vpn/session/end",
            &token,
            json!({"session_id": SID, "seconds_since_last": 30}),
        )
        .await,
        "disconnect_reason",
    );
    // Invalid requests changed nothing: the session is still there.
    assert_eq!(orb.active(&token).await["has_active_session"], true);
    for reason in ["credits_depleted", "timeout", "error"] {
        let sid = format!("s_{reason}");
        orb.end(&token, SID, 10, "user_initiated").await;
        orb.start(&token, &sid).await.data();
        assert_eq!(
            orb.end(&token, &sid, 10, reason).await.data()["disconnect_reason"],
            reason
        );
    }
}

#[tokio::test]
async fn the_server_ends_a_session_after_300_seconds_without_heartbeat() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    orb.start(&token, SID).await.data();
    orb.lab.advance(200.0).await.unwrap();
    assert_eq!(orb.beat(&token, SID, json!(200)).await.status, 200);
    orb.lab.advance(290.0).await.unwrap();
    // 490 s since start but 290 s since the heartbeat: still alive.
    assert_eq!(orb.active(&token).await["has_active_session"], true);
    orb.lab.advance(15.0).await.unwrap();
    assert_eq!(orb.active(&token).await["has_active_session"], false);
    orb.beat(&token, SID, json!(300))
        .await
        .error(404, "SESSION_NOT_FOUND");
    orb.end(&token, SID, 300, "timeout")
        .await
        .error(404, "SESSION_NOT_FOUND");
    // Nothing was charged for the unreported time: 200 s at 1.5/min = 5 credits.
    assert_eq!(f(&orb.account(DEMO).await["credits"]), 4995.0);
}

#[tokio::test]
async fn credits_running_out_ends_the_session_with_402() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    orb.start(&token, SID).await.data();
    orb.set_credits(DEMO, 2.0).await;
    let h = orb.beat(&token, SID, json!(60)).await;
    assert_eq!(f(&h.data()["credits_remaining"]), 0.5);
    // The heartbeat that crosses zero deducts what is left and answers 402.
    let e = orb.beat(&token, SID, json!(60)).await;
    let err = e.error(402, "CREDITS_DEPLETED");
    assert_eq!(
        err["message"],
        "Your credits have been depleted. The session will be terminated."
    );
    assert_eq!(f(&err["details"]["credits_remaining"]), 0.0);
    assert_eq!(f(&err["details"]["credits_deducted"]), 0.5);
    assert_eq!(orb.active(&token).await["has_active_session"], false);
    orb.end(&token, SID, 10, "credits_depleted")
        .await
        .error(404, "SESSION_NOT_FOUND");
    assert_eq!(f(&orb.account(DEMO).await["credits"]), 0.0);

    // With nothing left, neither start nor authorize is allowed.
    orb.start(&token, "sess_again")
        .await
        .error(403, "INSUFFICIENT_CREDITS");

    // Credits set to zero from outside mid-session: the next heartbeat gets 402.
    orb.set_credits(DEMO, 100.0).await;
    orb.start(&token, "sess_3").await.data();
    orb.set_credits(DEMO, 0.0).await;
    orb.beat(&token, "sess_3", json!(30))
        .await
        .error(402, "CREDITS_DEPLETED");
    assert_eq!(orb.active(&token).await["has_active_session"], false);
}

#[tokio::test]
async fn free_users_are_flagged_and_pay_one_credit_per_minute() {
    let orb = Orb::launch();
    let acc = orb.account(FREE).await;
    assert_eq!(acc["is_free_user"], true);
    let (token, _) = orb.login(FREE).await;
    let d = orb.start(&token, SID).await;
    let d = d.data();
    assert_eq!(d["is_free_user"], true);
    assert_eq!(f(&d["consumption_rate"]), 1.0);
    let h = orb.beat(&token, SID, json!(60)).await;
    assert_eq!(f(&h.data()["credits_deducted"]), 1.0);
}

#[tokio::test]
async fn sessions_are_per_user() {
    let orb = Orb::launch();
    let (a, _) = orb.login(DEMO).await;
    let (b, _) = orb.login(FREE).await;
    orb.start(&a, SID).await.data();
    assert_eq!(orb.active(&b).await["has_active_session"], false);
    orb.beat(&b, SID, json!(60))
        .await
        .error(404, "SESSION_NOT_FOUND");
    orb.end(&b, SID, 60, "user_initiated")
        .await
        .error(404, "SESSION_NOT_FOUND");
    // B may run its own session at the same time.
    orb.start(&b, SID).await.data();
    assert_eq!(orb.active(&a).await["has_active_session"], true);
}

#[tokio::test]
async fn connection_view_and_control_termination() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let c = orb.get("/vpn/connection", &token).await;
    assert_eq!(
        *c.data(),
        json!({"is_connected": false, "connection": null})
    );

    orb.get("/vpn/servers/102/wireguard", &token).await.data();
    orb.post(
        "/vpn/session/start",
        &token,
        json!({"session_id": SID, "server_id": 102, "protocol": "wireguard"}),
    )
    .await
    .data();
    let c = orb.get("/vpn/connection", &token).await;
    let d = c.data();
    assert_eq!(d["is_connected"], true);
    let conn = &d["connection"];
    assert_eq!(conn["server"]["id"], 102);
    assert_eq!(conn["server"]["country"], "DE");
    assert_eq!(conn["protocol"], "wireguard");
    assert!(is_z_time(&conn["connected_at"]));
    assert!(conn["data_transferred"].is_u64());
    assert!(conn["stats_id"].is_string());

    orb.lab
        .control_post(
            "/sessions/terminate",
            json!({"service": "orbnet", "id": SID, "reason": "error"}),
        )
        .await
        .unwrap();
    assert_eq!(orb.active(&token).await["has_active_session"], false);
    orb.beat(&token, SID, json!(60))
        .await
        .error(404, "SESSION_NOT_FOUND");
    assert!(orb
        .lab
        .control_post(
            "/sessions/terminate",
            json!({"service": "orbnet", "id": SID})
        )
        .await
        .is_err());
}

#[tokio::test]
async fn auth_endpoints_allow_ten_per_minute_per_ip() {
    let orb = Orb::launch();
    for i in 0..10 {
        let a = orb.login_raw(DEMO, "wrong", None).await;
        assert_eq!(a.status, 401, "attempt {i}");
        assert_eq!(a.header("x-ratelimit-limit"), 10);
        assert_eq!(a.header("x-ratelimit-remaining"), 9 - i);
    }
    let a = orb.login_raw(DEMO, "wrong", None).await;
    a.error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(a.header("x-ratelimit-remaining"), 0);
    let retry = a.header("retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    // Refresh shares the auth budget.
    orb.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": "x"})),
    )
    .await
    .error(429, "RATE_LIMIT_EXCEEDED");
    // The window is lab time: a minute later logins work again.
    orb.lab.advance(61.0).await.unwrap();
    let acc = orb.account(DEMO).await;
    let a = orb
        .login_raw(DEMO, acc["password"].as_str().unwrap(), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn protected_endpoints_allow_300_per_minute_per_user() {
    let orb = Orb::launch();
    let (a, _) = orb.login(DEMO).await;
    let (b, _) = orb.login(FREE).await;
    let url = format!("{}/vpn/session/active", orb.lab.urls.orbnet);
    let mut last = None;
    for _ in 0..300 {
        let r = orb
            .lab
            .http()
            .get(&url)
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        last = Some(r.status());
    }
    assert_eq!(last, Some(StatusCode::OK));
    let e = orb.get("/vpn/session/active", &a).await;
    e.error(429, "RATE_LIMIT_EXCEEDED");
    assert!(e.headers.contains_key("retry-after"));
    // Another user has a budget of their own.
    assert_eq!(orb.get("/vpn/session/active", &b).await.status, 200);
    orb.lab.advance(60.0).await.unwrap();
    assert_eq!(orb.get("/vpn/session/active", &a).await.status, 200);
}

#[tokio::test]
async fn state_survives_a_restart_with_state_file() {
    let dir = std::env::temp_dir().join(format!("ferry-lab-orbnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().unwrap();
    let (token, refresh) = {
        let orb = Orb {
            lab: LabProcess::start_with(&["--state", path]).unwrap(),
        };
        let (token, refresh) = orb.login(DEMO).await;
        orb.start(&token, SID).await.data();
        orb.beat(&token, SID, json!(60)).await.data();
        (token, refresh)
    };
    let orb = Orb {
        lab: LabProcess::start_with(&["--state", path]).unwrap(),
    };
    let act = orb.active(&token).await;
    assert_eq!(act["session"]["session_id"], SID);
    assert_eq!(f(&act["session"]["credits_remaining"]), 4998.5);
    orb.call(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await
    .data();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WireGuard client made from an OrbNET config: handshakes with the exit node and, if that
/// works, sends one IPv4/UDP packet from the tunnel address. Returns whether the handshake was
/// answered within `wait`.
async fn wg_connect_and_send(config: &Value, wait: Duration) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key =
        |v: &Value| -> [u8; 32] { b64.decode(v.as_str().unwrap()).unwrap().try_into().unwrap() };
    let secret = StaticSecret::from(key(&config["interface"]["private_key"]));
    let server = PublicKey::from(key(&config["peer"]["public_key"]));
    let address = config["interface"]["address"].as_str().unwrap();
    let tunnel_ip: std::net::Ipv4Addr = address.trim_end_matches("/32").parse().unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(config["peer"]["endpoint"].as_str().unwrap())
        .await
        .unwrap();
    let mut tunn = Tunn::new(secret, server, None, None, 1, None);
    let (mut out, mut buf) = (vec![0u8; 2048], vec![0u8; 2048]);
    match tunn.format_handshake_initiation(&mut out, false) {
        TunnResult::WriteToNetwork(d) => {
            sock.send(d).await.unwrap();
        }
        _ => panic!("no handshake initiation"),
    }
    let Ok(received) = tokio::time::timeout(wait, sock.recv(&mut buf)).await else {
        return false;
    };
    let n = received.unwrap();
    let mut input: &[u8] = &buf[..n];
    while let TunnResult::WriteToNetwork(d) = tunn.decapsulate(None, input, &mut out) {
        sock.send(d).await.unwrap();
        input = &[];
    }
    // IPv4/UDP from the tunnel address to 127.0.0.1:9 with 100 bytes of payload.
    let total = 20 + 8 + 100;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&tunnel_ip.octets());
    p[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let mut sum: u32 = (0..20)
        .step_by(2)
        .map(|i| u32::from(u16::from_be_bytes([p[i], p[i + 1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + 100) as u16).to_be_bytes());
    if let TunnResult::WriteToNetwork(d) = tunn.encapsulate(&p, &mut out) {
        sock.send(d).await.unwrap();
    }
    true
}

#[tokio::test]
async fn the_exit_node_accepts_the_config_until_the_session_ends() {
    let orb = Orb::launch();
    let (token, _) = orb.login(DEMO).await;
    let config = orb
        .get("/vpn/servers/101/wireguard", &token)
        .await
        .data()
        .clone();
    orb.start(&token, SID).await.data();
    assert!(
        wg_connect_and_send(&config, Duration::from_secs(5)).await,
        "the exit node answers the handshake of a handed-out key"
    );
    // The connection view reports the bytes the exit node counted for this peer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = orb.get("/vpn/connection", &token).await;
        let bytes = c.data()["connection"]["data_transferred"].as_u64().unwrap();
        if bytes > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no bytes counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Credits run out: the server ends the session and the exit node forgets the key.
    orb.set_credits(DEMO, 0.0).await;
    orb.beat(&token, SID, json!(60))
        .await
        .error(402, "CREDITS_DEPLETED");
    assert!(
        !wg_connect_and_send(&config, Duration::from_millis(700)).await,
        "a removed peer gets no handshake answer"
    );
}
