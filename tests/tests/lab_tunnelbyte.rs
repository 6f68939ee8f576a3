//! tunnelbyte conformance: the lab, run as a separate `ferry lab` process, checked over HTTP
//! against seed page 001 (sessions) and the vendor reference §2 (regions, usage, tiers, rate
//! limits). Time-based rules (idle reaper, quota windows, 30-day ceiling) run on the lab clock
//! via `/_lab/clock/advance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ferry_tests::lab::LabProcess;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const GIB: u64 = 1_073_741_824;

/// One tunnelbyte answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        &self.body
    }

    /// Asserts `{"error": text}` with `status`.
    fn error(&self, status: u16, text: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"], text, "{}", self.body);
        &self.body
    }
}

struct Tb {
    lab: LabProcess,
    tokens: Value,
}

impl Tb {
    async fn launch() -> Self {
        let lab = LabProcess::start().unwrap();
        let tokens = lab.accounts().await["tunnelbyte"].clone();
        Self { lab, tokens }
    }

    fn token(&self, tier: &str) -> String {
        self.tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["tier"] == tier)
            .unwrap_or_else(|| panic!("no {tier} token in {}", self.tokens))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut req = self
            .lab
            .http()
            .request(method, format!("{}{path}", self.lab.urls.tunnelbyte));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text:?}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn create(&self, token: &str, body: Value) -> Answer {
        self.call(
            Method::POST,
            "/sessions",
            Some(token),
            Some(&body.to_string()),
        )
        .await
    }

    /// Creates a session in `region` and returns its id.
    async fn session(&self, token: &str, region: &str) -> String {
        let a = self.create(token, json!({ "region": region })).await;
        a.ok(201)["id"].as_str().unwrap().to_owned()
    }

    async fn status(&self, token: &str, id: &str) -> Answer {
        self.call(Method::GET, &format!("/sessions/{id}"), Some(token), None)
            .await
    }

    async fn usage(&self, token: &str) -> Value {
        self.call(Method::GET, "/usage", Some(token), None)
            .await
            .ok(200)
            .clone()
    }

    async fn set_usage(&self, token: &str, bytes: Option<u64>, secs: Option<u64>) {
        self.lab
            .control_post(
                "/tunnelbyte/usage",
                json!({"token": token, "bytes_used": bytes, "session_seconds": secs}),
            )
            .await
            .unwrap();
    }

    async fn keep_alive(&self, id: &str) {
        self.lab
            .control_post("/tunnelbyte/handshake", json!({"id": id, "alive": true}))
            .await
            .unwrap();
    }

    async fn advance(&self, secs: f64) {
        self.lab.advance(secs).await.unwrap();
    }

    async fn now_s(&self) -> i64 {
        self.lab.control_get("/clock").await.unwrap()["now_ms"]
            .as_i64()
            .unwrap()
            / 1000
    }

    async fn region_codes(&self) -> Vec<String> {
        let a = self.call(Method::GET, "/regions", None, None).await;
        a.ok(200)["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Unix seconds of an RFC 3339 UTC timestamp (`Z` or `+00:00`, any fraction).
fn unix(ts: &Value) -> i64 {
    let s = ts
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {ts}"));
    let (date, time) = s.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let time = time.trim_end_matches('Z').trim_end_matches("+00:00");
    let hms: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + (hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]) as i64
}

/// Reads `key = value` from a wg-quick config.
fn wg_field<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn regions_are_public_and_list_codes_with_node_counts() {
    let tb = Tb::launch().await;
    let a = tb.call(Method::GET, "/regions", None, None).await;
    let regions = a.ok(200)["regions"].as_array().unwrap();
    let codes: Vec<&str> = regions
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["fsn", "ash", "sin"]);
    for r in regions {
        assert!(r["node_count"].as_u64().unwrap() >= 1, "{r}");
        assert!(r.get("latency").is_none(), "no latency field: {r}");
    }
}

#[tokio::test]
async fn public_endpoints_rate_limit_with_retry_after() {
    let tb = Tb::launch().await;
    for i in 0..10 {
        let a = tb.call(Method::GET, "/regions", None, None).await;
        assert_eq!(a.status, 200, "request {i} is within the burst of 10");
    }
    let mut limited = None;
    for _ in 0..5 {
        let a = tb.call(Method::GET, "/regions", None, None).await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
    }
    let a = limited.expect("a 429 after the burst of 10");
    a.error(429, "rate-limited");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // One token comes back per second of lab time.
    tb.advance(1.0).await;
    tb.call(Method::GET, "/regions", None, None).await.ok(200);
    // Bearer endpoints are not under the public limit.
    let paid = tb.token("paid");
    for _ in 0..12 {
        assert_eq!(
            tb.call(Method::GET, "/usage", Some(&paid), None)
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn bearer_endpoints_answer_missing_and_invalid_token() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let id = tb.session(&free, "fsn").await;
    let body = r#"{"region":"fsn"}"#;
    for (method, path, body) in [
        (Method::GET, "/usage".to_owned(), None),
        (Method::POST, "/sessions".to_owned(), Some(body)),
        (Method::GET, format!("/sessions/{id}"), None),
        (Method::DELETE, format!("/sessions/{id}"), None),
    ] {
        tb.call(method.clone(), &path, None, body)
            .await
            .error(401, "missing token");
        tb.call(method, &path, Some("tb_not_a_token"), body)
            .await
            .error(401, "invalid token");
    }
    // A non-Bearer scheme is a missing token.
    let r = tb
        .lab
        .http()
        .get(format!("{}/usage", tb.lab.urls.tunnelbyte))
        .header("authorization", format!("Basic {free}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "missing token");
}

#[tokio::test]
async fn usage_reports_each_tiers_limits_and_windows() {
    let tb = Tb::launch().await;
    let now = tb.now_s().await;
    let anon = tb.usage(&tb.token("anonymous")).await;
    assert_eq!(anon["tier"], "anonymous");
    assert_eq!(anon["bytes_limit"], GIB);
    assert_eq!(anon["session_seconds_limit"], 1800);
    assert_eq!(anon["bytes_used"], 0);
    assert_eq!(anon["session_seconds"], 0);
    assert_eq!(anon["max_session_seconds"], 0);
    let bytes_reset = unix(&anon["bytes_window_resets_at"]) - now;
    let secs_reset = unix(&anon["seconds_window_resets_at"]) - now;
    assert!(
        (7 * 86_400 - 5..=7 * 86_400 + 5).contains(&bytes_reset),
        "{anon}"
    );
    assert!((86_400 - 5..=86_400 + 5).contains(&secs_reset), "{anon}");

    let free = tb.usage(&tb.token("free")).await;
    assert_eq!(free["tier"], "free");
    assert_eq!(free["bytes_limit"], 5 * GIB);
    assert_eq!(free["session_seconds_limit"], 7200);
    assert_eq!(free["default_region"], "fsn");

    let paid = tb.usage(&tb.token("paid")).await;
    assert_eq!(paid["tier"], "paid");
    assert_eq!(paid["bytes_limit"], 0, "0 means unmetered");
    assert_eq!(paid["session_seconds_limit"], 0);
}

#[tokio::test]
async fn create_without_a_key_returns_a_full_config_with_the_private_key() {
    let tb = Tb::launch().await;
    let anon = tb.token("anonymous");
    let a = tb.create(&anon, json!({"region": "fsn"})).await;
    let s = a.ok(201);
    for field in ["id", "public_ip", "wg_config", "expires_at", "tier"] {
        assert!(s[field].is_string(), "{field} in {s}");
    }
    assert_eq!(s["tier"], "anonymous");
    let cfg = s["wg_config"].as_str().unwrap();
    assert!(
        cfg.contains("[Interface]") && cfg.contains("[Peer]"),
        "{cfg}"
    );
    let private = wg_field(cfg, "PrivateKey").expect("PrivateKey when the server made the keys");
    let raw: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(private)
        .unwrap()
        .try_into()
        .unwrap();
    assert_ne!(raw, [0u8; 32]);
    let address = wg_field(cfg, "Address").unwrap();
    assert!(
        address.starts_with("10.77.1.") && address.ends_with("/32"),
        "{address}"
    );
    let endpoint = wg_field(cfg, "Endpoint").unwrap();
    assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}");
    let server_key = wg_field(cfg, "PublicKey").unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(server_key)
            .unwrap()
            .len(),
        32
    );
    assert!(wg_field(cfg, "AllowedIPs").unwrap().contains("0.0.0.0/0"));

    // expires_at is the 30-day ceiling from created_at.
    let id = s["id"].as_str().unwrap();
    let st = tb.status(&anon, id).await;
    let created = unix(&st.ok(200)["created_at"]);
    assert_eq!(unix(&s["expires_at"]) - created, 30 * 86_400);

    // A second session gets the next address of the region's /24; another region its own /24.
    let b = tb.create(&anon, json!({"region": "fsn"})).await;
    let addr_b = wg_field(b.ok(201)["wg_config"].as_str().unwrap(), "Address")
        .unwrap()
        .to_owned();
    assert_ne!(addr_b, address);
    let c = tb.create(&anon, json!({"region": "sin"})).await;
    let addr_c = wg_field(c.ok(201)["wg_config"].as_str().unwrap(), "Address")
        .unwrap()
        .to_owned();
    assert!(addr_c.starts_with("10.77.3."), "{addr_c}");
}

#[tokio::test]
async fn create_with_a_client_key_omits_the_private_key_and_validates_input() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let secret = StaticSecret::from([7u8; 32]);
    let public = PublicKey::from(&secret);
    let a = tb
        .create(
            &free,
            json!({"region": "ash", "client_public_key": b64(public.as_bytes())}),
        )
        .await;
    let cfg = a.ok(201)["wg_config"].as_str().unwrap();
    assert!(!cfg.contains("PrivateKey"), "{cfg}");
    assert_eq!(a.body["tier"], "free");

    for bad in ["not base64!", &b64(&[1u8; 31]), &b64(&[1u8; 33]), ""] {
        tb.create(&free, json!({"region": "ash", "client_public_key": bad}))
            .await
            .error(400, "invalid client_public_key");
    }
    tb.call(Method::POST, "/sessions", Some(&free), Some("{\"region\":"))
        .await
        .error(400, "invalid json");
    tb.call(Method::POST, "/sessions", Some(&free), Some("[1,2]"))
        .await
        .error(400, "invalid json");
    tb.create(&free, json!({"region": "mars"}))
        .await
        .error(400, "unknown region mars");
    tb.create(&free, json!({}))
        .await
        .error(400, "region is required");
}

#[tokio::test]
async fn an_offline_region_is_left_out_and_answers_503_with_available() {
    let tb = Tb::launch().await;
    let paid = tb.token("paid");
    tb.lab
        .control_post("/regions/offline", json!({"code": "ash"}))
        .await
        .unwrap();
    assert_eq!(tb.region_codes().await, ["fsn", "sin"]);
    let a = tb.create(&paid, json!({"region": "ash"})).await;
    a.error(503, "no active node in region ash");
    assert_eq!(a.body["available"], json!(["fsn", "sin"]));

    for code in ["fsn", "sin"] {
        tb.lab
            .control_post("/regions/offline", json!({"code": code}))
            .await
            .unwrap();
    }
    tb.create(&paid, json!({"region": "fsn"}))
        .await
        .error(503, "no active nodes");

    tb.lab
        .control_post("/regions/online", json!({"code": "ash"}))
        .await
        .unwrap();
    tb.create(&paid, json!({"region": "ash"})).await.ok(201);
}

#[tokio::test]
async fn a_full_subnet_answers_503_until_an_address_is_freed() {
    let tb = Tb::launch().await;
    let paid = tb.token("paid");
    let mut ids = Vec::new();
    for _ in 0..253 {
        ids.push(tb.session(&paid, "sin").await);
    }
    tb.create(&paid, json!({"region": "sin"}))
        .await
        .error(503, "subnet exhausted");
    // Other regions have their own /24.
    tb.create(&paid, json!({"region": "ash"})).await.ok(201);
    tb.call(
        Method::DELETE,
        &format!("/sessions/{}", ids[17]),
        Some(&paid),
        None,
    )
    .await
    .ok(200);
    let a = tb.create(&paid, json!({"region": "sin"})).await;
    let addr = wg_field(a.ok(201)["wg_config"].as_str().unwrap(), "Address").unwrap();
    assert_eq!(addr, "10.77.3.19/32", "the freed address is leased again");
}

#[tokio::test]
async fn a_disconnected_node_fails_peer_apply_until_routed_around() {
    let tb = Tb::launch().await;
    let paid = tb.token("paid");
    for code in ["fsn", "ash"] {
        tb.lab
            .control_post(
                "/tunnelbyte/nodes",
                json!({"code": code, "state": "disconnected"}),
            )
            .await
            .unwrap();
        tb.create(&paid, json!({"region": code}))
            .await
            .error(503, "peer apply failed; node may be disconnected");
    }
    tb.advance(61.0).await;
    // fsn had two nodes: one is left and takes sessions; ash had one: it is gone.
    let a = tb.call(Method::GET, "/regions", None, None).await;
    assert_eq!(
        a.ok(200)["regions"],
        json!([{"code": "fsn", "node_count": 1}, {"code": "sin", "node_count": 1}])
    );
    tb.create(&paid, json!({"region": "fsn"})).await.ok(201);
    let a = tb.create(&paid, json!({"region": "ash"})).await;
    a.error(503, "no active node in region ash");
}

#[tokio::test]
async fn status_shows_counters_quota_and_cost_only_on_paid() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let paid = tb.token("paid");
    let fid = tb.session(&free, "fsn").await;
    let st = tb.status(&free, &fid).await;
    let s = st.ok(200);
    assert_eq!(s["id"], fid.as_str());
    assert_eq!(s["tier"], "free");
    assert!(
        s.get("terminated_at").is_none() && s.get("terminated_reason").is_none(),
        "{s}"
    );
    for f in [
        "bytes_in",
        "bytes_out",
        "quota_bytes_used",
        "quota_seconds_used",
    ] {
        assert!(s[f].is_u64(), "{f} in {s}");
    }
    assert_eq!(s["quota_bytes_limit"], 5 * GIB);
    assert_eq!(s["quota_seconds_limit"], 7200);
    for f in [
        "cost_time_millicents",
        "cost_bytes_millicents",
        "cost_currency",
    ] {
        assert!(s.get(f).is_none(), "{f} only on paid: {s}");
    }
    unix(&s["created_at"]);

    // Another token's session, and an unknown id, are not found.
    tb.status(&paid, &fid).await.error(404, "session not found");
    tb.status(&free, "tbs_nope")
        .await
        .error(404, "session not found");

    // Paid: time leg at 1000 millicents per minute: ~21 minutes ≈ 21000.
    let pid = tb.session(&paid, "fsn").await;
    tb.keep_alive(&pid).await;
    tb.advance(21.0 * 60.0).await;
    let p = tb.status(&paid, &pid).await;
    let p = p.ok(200);
    assert_eq!(p["tier"], "paid");
    assert_eq!(p["cost_currency"], "eur");
    let time = p["cost_time_millicents"].as_u64().unwrap();
    assert!((21_000..21_200).contains(&time), "{p}");
    assert_eq!(p["cost_bytes_millicents"], 0, "no traffic yet: {p}");
    assert_eq!(p["quota_bytes_limit"], 0);
    assert_eq!(p["quota_seconds_limit"], 0);
    let used = p["quota_seconds_used"].as_u64().unwrap();
    assert!(
        (1260..1275).contains(&used),
        "seconds accrue on every tier: {p}"
    );
}

#[tokio::test]
async fn session_seconds_accrue_in_the_time_window_while_live() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let id = tb.session(&free, "fsn").await;
    tb.keep_alive(&id).await;
    tb.advance(600.0).await;
    let u = tb.usage(&free).await;
    let secs = u["session_seconds"].as_u64().unwrap();
    assert!((600..615).contains(&secs), "{u}");
    let st = tb.status(&free, &id).await;
    assert_eq!(st.ok(200)["quota_seconds_used"], secs);
    // Ended sessions stop accruing.
    tb.call(
        Method::DELETE,
        &format!("/sessions/{id}"),
        Some(&free),
        None,
    )
    .await
    .ok(200);
    tb.advance(600.0).await;
    let after = tb.usage(&free).await["session_seconds"].as_u64().unwrap();
    assert!(after < secs + 5, "{secs} -> {after}");
}

#[tokio::test]
async fn idle_after_five_minutes_without_a_handshake() {
    let tb = Tb::launch().await;
    let anon = tb.token("anonymous");
    let id = tb.session(&anon, "fsn").await;
    tb.advance(240.0).await;
    let s = tb.status(&anon, &id).await;
    assert!(
        s.ok(200).get("terminated_at").is_none(),
        "live at 4 min: {}",
        s.body
    );
    tb.advance(120.0).await;
    let s = tb.status(&anon, &id).await;
    let s = s.ok(200);
    assert_eq!(s["terminated_reason"], "idle", "{s}");
    let ended = unix(&s["terminated_at"]) - unix(&s["created_at"]);
    assert!(
        (300..=301).contains(&ended),
        "idle counts from created_at: {s}"
    );
    // Time stops accruing at the idle cut, not when it was noticed.
    let used = s["quota_seconds_used"].as_u64().unwrap();
    assert!((300..=301).contains(&used), "{s}");

    // A handshake resets the idle clock.
    let id = tb.session(&anon, "fsn").await;
    tb.advance(240.0).await;
    tb.lab
        .control_post("/tunnelbyte/handshake", json!({"id": id}))
        .await
        .unwrap();
    tb.advance(240.0).await;
    let s = tb.status(&anon, &id).await;
    assert!(s.ok(200).get("terminated_at").is_none(), "{}", s.body);
    tb.advance(70.0).await;
    assert_eq!(
        tb.status(&anon, &id).await.ok(200)["terminated_reason"],
        "idle"
    );
}

#[tokio::test]
async fn quota_402_carries_the_breakdown_and_windows_reset_after_24h_and_7d() {
    let tb = Tb::launch().await;
    let anon = tb.token("anonymous");

    // Time window: 1800 s per 24 h.
    tb.set_usage(&anon, None, Some(1800)).await;
    let a = tb.create(&anon, json!({"region": "fsn"})).await;
    let q = a.error(402, "quota exceeded");
    assert_eq!(q["tier"], "anonymous");
    assert_eq!(q["bytes_used"], 0);
    assert_eq!(q["bytes_limit"], GIB);
    assert_eq!(q["session_seconds"], 1800);
    assert_eq!(q["session_limit"], 1800);
    assert!(q["hint"].as_str().is_some_and(|h| !h.is_empty()), "{q}");
    assert_eq!(
        q["resets_at"], q["seconds_window_resets_at"],
        "the time window tripped"
    );
    unix(&q["bytes_window_resets_at"]);
    let now = tb.now_s().await;
    let wait = unix(&q["resets_at"]) - now;
    assert!((86_390..=86_400).contains(&wait), "{q}");
    tb.advance(86_000.0).await;
    tb.create(&anon, json!({"region": "fsn"}))
        .await
        .error(402, "quota exceeded");
    tb.advance(410.0).await;
    let id = tb.session(&anon, "fsn").await;
    assert_eq!(tb.usage(&anon).await["session_seconds"], 0, "window reset");
    tb.call(
        Method::DELETE,
        &format!("/sessions/{id}"),
        Some(&anon),
        None,
    )
    .await
    .ok(200);

    // Bytes window: 5 GiB per 7 days on free.
    let free = tb.token("free");
    tb.set_usage(&free, Some(5 * GIB), None).await;
    let a = tb.create(&free, json!({"region": "fsn"})).await;
    let q = a.error(402, "quota exceeded");
    assert_eq!(q["tier"], "free");
    assert_eq!(q["bytes_used"], 5 * GIB);
    assert_eq!(q["bytes_limit"], 5 * GIB);
    assert_eq!(q["session_limit"], 7200);
    assert_eq!(
        q["resets_at"], q["bytes_window_resets_at"],
        "the bytes window tripped"
    );
    tb.advance(6.0 * 86_400.0).await;
    tb.create(&free, json!({"region": "fsn"}))
        .await
        .error(402, "quota exceeded");
    tb.advance(86_400.0 + 10.0).await;
    tb.create(&free, json!({"region": "fsn"})).await.ok(201);
    assert_eq!(tb.usage(&free).await["bytes_used"], 0);

    // Paid is unmetered.
    let paid = tb.token("paid");
    tb.set_usage(&paid, Some(100 * GIB), Some(100_000)).await;
    tb.create(&paid, json!({"region": "fsn"})).await.ok(201);
}

#[tokio::test]
async fn quota_exceeded_mid_session_ends_it_where_the_window_was_crossed() {
    let tb = Tb::launch().await;
    let anon = tb.token("anonymous");
    tb.set_usage(&anon, None, Some(1700)).await;
    let id = tb.session(&anon, "fsn").await;
    tb.advance(200.0).await;
    let s = tb.status(&anon, &id).await;
    let s = s.ok(200);
    assert_eq!(s["terminated_reason"], "quota_exceeded", "{s}");
    let at = unix(&s["terminated_at"]) - unix(&s["created_at"]);
    assert!((99..=101).contains(&at), "crossed 100 s in: {s}");
    assert_eq!(s["quota_seconds_used"], 1800);
    assert_eq!(s["quota_seconds_limit"], 1800);

    // Bytes crossing mid-session (node-agent counters, here set through the control API).
    let free = tb.token("free");
    let id = tb.session(&free, "fsn").await;
    tb.set_usage(&free, Some(5 * GIB + 1), None).await;
    let s = tb.status(&free, &id).await;
    assert_eq!(
        s.ok(200)["terminated_reason"],
        "quota_exceeded",
        "{}",
        s.body
    );
}

#[tokio::test]
async fn a_session_expires_at_the_30_day_ceiling() {
    let tb = Tb::launch().await;
    let paid = tb.token("paid");
    let a = tb.create(&paid, json!({"region": "sin"})).await;
    let expires = a.ok(201)["expires_at"].clone();
    let id = a.body["id"].as_str().unwrap().to_owned();
    tb.keep_alive(&id).await;
    tb.advance(29.0 * 86_400.0).await;
    assert!(tb
        .status(&paid, &id)
        .await
        .ok(200)
        .get("terminated_at")
        .is_none());
    tb.advance(86_400.0 + 5.0).await;
    let s = tb.status(&paid, &id).await;
    let s = s.ok(200);
    assert_eq!(s["terminated_reason"], "expired", "{s}");
    assert_eq!(unix(&s["terminated_at"]), unix(&expires));
    let time = s["cost_time_millicents"].as_u64().unwrap();
    assert_eq!(time, 30 * 24 * 60 * 1000, "cost stops at the end: {s}");
}

#[tokio::test]
async fn delete_ends_the_session_and_is_idempotent() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let paid = tb.token("paid");
    let id = tb.session(&free, "fsn").await;
    tb.call(
        Method::DELETE,
        &format!("/sessions/{id}"),
        Some(&paid),
        None,
    )
    .await
    .error(404, "session not found");
    let a = tb
        .call(
            Method::DELETE,
            &format!("/sessions/{id}"),
            Some(&free),
            None,
        )
        .await;
    let s = a.ok(200).clone();
    assert_eq!(s["terminated_reason"], "client");
    let again = tb
        .call(
            Method::DELETE,
            &format!("/sessions/{id}"),
            Some(&free),
            None,
        )
        .await;
    assert_eq!(again.ok(200)["terminated_at"], s["terminated_at"]);
    tb.advance(3600.0).await;
    let st = tb.status(&free, &id).await;
    assert_eq!(
        st.ok(200)["terminated_at"],
        s["terminated_at"],
        "ended sessions keep answering"
    );
}

#[tokio::test]
async fn control_terminate_sets_the_reason_text() {
    let tb = Tb::launch().await;
    let free = tb.token("free");
    let id = tb.session(&free, "ash").await;
    tb.lab
        .control_post(
            "/sessions/terminate",
            json!({"service": "tunnelbyte", "id": id, "reason": "abuse report"}),
        )
        .await
        .unwrap();
    let s = tb.status(&free, &id).await;
    assert_eq!(s.ok(200)["terminated_reason"], "abuse report");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_envelope() {
    let tb = Tb::launch().await;
    tb.call(Method::GET, "/nope", None, None)
        .await
        .error(404, "not found");
    tb.call(Method::PUT, "/regions", None, None)
        .await
        .error(405, "method not allowed");
}

/// A minimal WireGuard client: handshakes with the lab's exit node and sends one IPv4/UDP packet
/// from its tunnel address, so the exit node's counters and handshake time feed the session.
async fn wireguard_client_sends(
    endpoint: &str,
    server_key: &str,
    secret: StaticSecret,
    tunnel_ip: [u8; 4],
    payload: usize,
) {
    let server: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(server_key)
        .unwrap()
        .try_into()
        .unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(endpoint).await.unwrap();
    let mut tunn = Tunn::new(secret, PublicKey::from(server), None, None, 7, None);
    let mut out = vec![0u8; 4096];
    let mut buf = vec![0u8; 4096];
    match tunn.format_handshake_initiation(&mut out, false) {
        TunnResult::WriteToNetwork(d) => {
            sock.send(d).await.unwrap();
        }
        _ => panic!("no handshake initiation"),
    }
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("handshake response within 5 s")
        .unwrap();
    let mut input: &[u8] = &buf[..n];
    while let TunnResult::WriteToNetwork(d) = tunn.decapsulate(None, input, &mut out) {
        sock.send(d).await.unwrap();
        input = &[];
    }
    // IPv4 + UDP to 127.0.0.1:9 (discard) from the tunnel address.
    let total = 20 + 8 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&tunnel_ip);
    p[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let mut sum: u32 = 0;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    match tunn.encapsulate(&p, &mut out) {
        TunnResult::WriteToNetwork(d) => {
            sock.send(d).await.unwrap();
        }
        _ => panic!("cannot encapsulate after the handshake"),
    }
}

#[tokio::test]
async fn bytes_and_handshakes_come_from_the_exit_node() {
    let tb = Tb::launch().await;
    let paid = tb.token("paid");
    let secret = StaticSecret::from([42u8; 32]);
    let public = PublicKey::from(&secret);
    let a = tb
        .create(
            &paid,
            json!({"region": "fsn", "client_public_key": b64(public.as_bytes())}),
        )
        .await;
    let s = a.ok(201).clone();
    let id = s["id"].as_str().unwrap().to_owned();
    let cfg = s["wg_config"].as_str().unwrap();
    let addr = wg_field(cfg, "Address").unwrap().trim_end_matches("/32");
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();
    // Four minutes without a handshake, then a real one: the idle clock restarts from it.
    tb.advance(240.0).await;
    wireguard_client_sends(
        wg_field(cfg, "Endpoint").unwrap(),
        wg_field(cfg, "PublicKey").unwrap(),
        secret,
        ip.octets(),
        1000,
    )
    .await;
    let mut st = Value::Null;
    for _ in 0..100 {
        st = tb.status(&paid, &id).await.body;
        if st["bytes_out"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        st["bytes_out"], 1028,
        "the client's IP packet, counted by the exit node: {st}"
    );
    let total = st["bytes_in"].as_u64().unwrap() + 1028;
    assert_eq!(st["quota_bytes_used"], total, "both directions count: {st}");
    tb.advance(240.0).await;
    let st = tb.status(&paid, &id).await;
    assert!(
        st.ok(200).get("terminated_at").is_none(),
        "the handshake at 4 min keeps it live at 8 min: {}",
        st.body
    );
    tb.advance(120.0).await;
    assert_eq!(
        tb.status(&paid, &id).await.ok(200)["terminated_reason"],
        "idle"
    );
}
