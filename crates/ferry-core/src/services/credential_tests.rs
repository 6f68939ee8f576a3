//! Against in-process labs: credentials go only where they belong (plain http only to loopback,
//! a token only to the origin that issued it, no redirects), and concurrent 401s from OrbNET
//! clients of one process spend the rotating refresh token exactly once.

use std::sync::Arc;

use ferry_lab::{Lab, LabConfig};
use serde_json::{json, Value};

use super::neosc::NeoscClient;
use super::orbnet::{LoginOutcome, LoginRequest, OrbnetClient, OrbnetTokens, StoreTokenSink};
use super::tunnelbyte::TunnelbyteClient;
use super::{ApiError, Delivery, Origin, ServiceKind};
use crate::http::{HttpSettings, RetryPolicy};
use crate::secrets::{MemoryStore, Secret, SharedSecretStore};

fn settings() -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy::none(),
        ..HttpSettings::default()
    }
}

async fn lab() -> Lab {
    Lab::start_without_data_plane(LabConfig::default())
        .await
        .unwrap()
}

/// `GET {control}/requests`: every request the lab received, oldest first.
async fn requests(lab: &Lab) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/requests", lab.urls().control))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_array().cloned().unwrap_or_default()
}

async fn clear_requests(lab: &Lab) {
    reqwest::Client::new()
        .delete(format!("{}/requests", lab.urls().control))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// `POST {control}/clock/advance`.
async fn advance(lab: &Lab, seconds: f64) {
    reqwest::Client::new()
        .post(format!("{}/clock/advance", lab.urls().control))
        .json(&json!({ "seconds": seconds }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

async fn control_post(lab: &Lab, route: &str, body: Value) {
    reqwest::Client::new()
        .post(format!("{}/{route}", lab.urls().control))
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

fn count_path(reqs: &[Value], suffix: &str) -> usize {
    reqs.iter()
        .filter(|r| r["path"].as_str().unwrap_or("").ends_with(suffix))
        .count()
}

/// Requests the lab recorded with an `Authorization` header (its value is redacted).
fn with_authorization(reqs: &[Value]) -> Vec<Value> {
    reqs.iter()
        .filter(|r| {
            r["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("authorization")))
        })
        .cloned()
        .collect()
}

/// The requests to the service APIs (not the control API).
fn service_requests(reqs: &[Value]) -> Vec<Value> {
    reqs.iter()
        .filter(|r| !r["path"].as_str().unwrap_or("").starts_with("/_lab"))
        .cloned()
        .collect()
}

async fn orbnet_login(client: &OrbnetClient) -> OrbnetTokens {
    let out = client
        .login(&LoginRequest {
            email: "demo@orbnet.lab".into(),
            password: Secret::new("orbnet-demo-pass"),
            totp_code: None,
            device_id: None,
        })
        .await
        .unwrap();
    match out {
        LoginOutcome::SignedIn { tokens, .. } => tokens,
        other => panic!("{other:?}"),
    }
}

async fn tunnelbyte_token(lab: &Lab, tier: &str) -> Secret {
    let v: Value = reqwest::get(format!("{}/accounts", lab.urls().control))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = v["tunnelbyte"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tier"] == tier)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    Secret::new(t)
}

fn origin_of(url: &str) -> Origin {
    url.parse().unwrap()
}

fn assert_mismatch(e: &ApiError, issued_by: &Origin, requested: &Origin) {
    match e {
        ApiError::TokenOriginMismatch {
            issued_by: i,
            requested: r,
            ..
        } => {
            assert_eq!((i, r), (issued_by, requested));
            assert_eq!(e.delivery(), Delivery::NotSent);
            assert!(
                e.to_string()
                    .contains(&format!("sign in again for {requested}")),
                "{e}"
            );
        }
        other => panic!("expected TokenOriginMismatch, got {other:?}"),
    }
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_request() {
    // 192.0.2.1 is TEST-NET-1: the check is made while building, so nothing ever connects.
    let url = "http://192.0.2.1/api/v1";
    let errors = [
        OrbnetClient::new(url, settings()).err(),
        TunnelbyteClient::new(url, settings()).err(),
        NeoscClient::new(url, settings()).err(),
    ];
    for e in errors {
        match e {
            Some(e @ ApiError::InsecureUrl { .. }) => {
                assert!(e.to_string().contains("plain http to 192.0.2.1"), "{e}");
                assert_eq!(e.delivery(), Delivery::NotSent);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(TunnelbyteClient::new("https://192.0.2.1/v1", settings()).is_ok());
    assert!(NeoscClient::new("http://localhost:8000/api", settings()).is_ok());
    assert!(matches!(
        OrbnetClient::new("ftp://127.0.0.1/", settings()),
        Err(ApiError::BadUrl { .. })
    ));
}

#[tokio::test]
async fn a_token_issued_by_one_origin_is_never_sent_to_another() {
    let (a, b) = (lab().await, lab().await);
    let (oa, ob) = (origin_of(&a.urls().orbnet), origin_of(&b.urls().orbnet));
    assert_ne!(oa, ob, "two ports, two origins");

    // OrbNET: the login at A records A; a client for B holding that stored value refuses to
    // send the access token, the refresh token or the logout.
    let at_a = OrbnetClient::new(&a.urls().orbnet, settings()).unwrap();
    let tokens = orbnet_login(&at_a).await;
    assert_eq!(tokens.origin.as_ref(), Some(&oa));
    let stored = tokens.to_stored();
    let at_b = OrbnetClient::new(&b.urls().orbnet, settings())
        .unwrap()
        .with_tokens(Some(OrbnetTokens::from_stored(&stored)));
    assert_mismatch(&at_b.servers().await.unwrap_err(), &oa, &ob);
    assert_mismatch(&at_b.refresh().await.unwrap_err(), &oa, &ob);
    assert_mismatch(&at_b.logout().await.unwrap_err(), &oa, &ob);
    assert!(at_a.servers().await.is_ok(), "still good at its own origin");

    // tunnelbyte: a pasted token, checked at A, is stored bound to A.
    let tb_a = TunnelbyteClient::new(&a.urls().tunnelbyte, settings())
        .unwrap()
        .with_token(Some(tunnelbyte_token(&a, "paid").await));
    tb_a.usage().await.unwrap();
    let tb_stored = tb_a.stored_token().unwrap();
    assert!(tb_stored.expose().contains(oa.as_str()));
    let tb_b = TunnelbyteClient::new(&b.urls().tunnelbyte, settings())
        .unwrap()
        .with_token(Some(tb_stored));
    assert_mismatch(&tb_b.usage().await.unwrap_err(), &oa, &ob);
    assert!(tb_b.regions().await.is_ok(), "public calls carry no token");

    // NeoSC: the login's token is bound to A.
    let mut neo_a = NeoscClient::new(&a.urls().neosc, settings()).unwrap();
    neo_a
        .login("john.doe@acme.com", &Secret::new("neosc-demo-john"))
        .await
        .unwrap();
    let neo_b = NeoscClient::new(&b.urls().neosc, settings())
        .unwrap()
        .with_token(neo_a.stored_token());
    assert_mismatch(&neo_b.me().await.unwrap_err(), &oa, &ob);
    assert_mismatch(&neo_b.workspaces().await.unwrap_err(), &oa, &ob);

    let seen = requests(&b).await;
    assert_eq!(
        with_authorization(&seen),
        Vec::<Value>::new(),
        "lab B saw a credential"
    );
    assert_eq!(count_path(&seen, "/auth/refresh"), 0, "{seen:?}");
    assert_eq!(count_path(&seen, "/auth/logout"), 0, "{seen:?}");

    // Backward compatibility: a bare token (today's stored format, FERRY_*_TOKEN) has no issuer
    // and is used with whatever base URL the client has.
    let bare = TunnelbyteClient::new(&b.urls().tunnelbyte, settings())
        .unwrap()
        .with_token(Some(tunnelbyte_token(&b, "paid").await));
    bare.usage().await.unwrap();
    assert_eq!(with_authorization(&requests(&b).await).len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_stays_at_its_origin() {
    let (a, b) = (lab().await, lab().await);
    let token = tunnelbyte_token(&a, "paid").await;
    control_post(
        &a,
        "faults",
        json!({
            "path": "/tunnelbyte/v1/usage",
            "status": 307,
            "body": "",
            "headers": { "Location": format!("{}/usage", b.urls().tunnelbyte) },
        }),
    )
    .await;
    let client = TunnelbyteClient::new(&a.urls().tunnelbyte, settings())
        .unwrap()
        .with_token(Some(token));
    let e = client.usage().await.unwrap_err();
    assert_eq!(e.status(), Some(307), "{e:?}");
    assert_eq!(service_requests(&requests(&b).await), Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_refresh_once_across_clones_and_separate_clients() {
    let lab = lab().await;
    let url = &lab.urls().orbnet;
    // As the app does: tokens in a secret store, every client built from its value with a
    // sink that writes rotated pairs back.
    let store: SharedSecretStore = Arc::new(MemoryStore::new());
    let from_store = || async {
        let stored = store.get(ServiceKind::Orbnet).await.unwrap().unwrap();
        OrbnetClient::new(url, settings())
            .unwrap()
            .with_tokens(Some(OrbnetTokens::from_stored(&stored)))
            .with_token_sink(Arc::new(StoreTokenSink(store.clone())))
    };
    let first = OrbnetClient::new(url, settings())
        .unwrap()
        .with_token_sink(Arc::new(StoreTokenSink(store.clone())));
    let login_pair = orbnet_login(&first).await;

    // Clones of one client: three requests see 401 together.
    advance(&lab, 16.0 * 60.0).await;
    clear_requests(&lab).await;
    let clone = first.clone();
    let (s1, s2, act) = tokio::join!(first.servers(), clone.servers(), clone.active_session());
    assert!(
        s1.is_ok() && s2.is_ok() && act.is_ok(),
        "{s1:?} {s2:?} {act:?}"
    );
    let seen = requests(&lab).await;
    assert_eq!(count_path(&seen, "/auth/refresh"), 1, "{seen:#?}");
    let rotated =
        OrbnetTokens::from_stored(&store.get(ServiceKind::Orbnet).await.unwrap().unwrap());
    assert_ne!(rotated, login_pair, "the sink stored the new pair");
    assert_eq!(rotated.origin.as_ref(), Some(first.origin()));

    // Separate clients built from the same stored value, as the app builds one per command.
    advance(&lab, 16.0 * 60.0).await;
    clear_requests(&lab).await;
    let (x, y, z) = (from_store().await, from_store().await, from_store().await);
    let (rx, ry, rz) = tokio::join!(x.servers(), y.servers(), z.active_session());
    assert!(
        rx.is_ok() && ry.is_ok() && rz.is_ok(),
        "{rx:?} {ry:?} {rz:?}"
    );
    let seen = requests(&lab).await;
    assert_eq!(count_path(&seen, "/auth/refresh"), 1, "{seen:#?}");
    assert_eq!(
        count_path(&seen, "/vpn/servers"),
        4,
        "two 401s and two resends"
    );

    // A client still holding the pair from before that refresh (built earlier, like a running
    // session) reuses its outcome instead of spending the old refresh token again.
    advance(&lab, 16.0 * 60.0).await;
    let stale = from_store().await;
    let fresh = from_store().await;
    fresh.refresh().await.unwrap();
    clear_requests(&lab).await;
    stale.servers().await.unwrap();
    let seen = requests(&lab).await;
    assert_eq!(count_path(&seen, "/auth/refresh"), 0, "{seen:#?}");
    // The store holds the newest pair, which still works from a new client.
    from_store().await.servers().await.unwrap();
}
