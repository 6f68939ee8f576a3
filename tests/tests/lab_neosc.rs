//! NeoSC conformance: the lab, run as a separate `ferry lab` process, checked over HTTP against
//! seed page 002 (sessions) and the vendor reference §3 (auth, workspaces, errors).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferry_tests::lab::LabProcess;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    body: Value,
}

impl Answer {
    fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        &self.body
    }

    /// Asserts `{"detail": text}` with `status`.
    fn detail(&self, status: u16, text: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body, json!({ "detail": text }));
    }
}

struct Neo {
    lab: LabProcess,
    users: Vec<(String, String)>,
}

impl Neo {
    async fn launch() -> Self {
        let lab = LabProcess::start().unwrap();
        let users = lab.accounts().await["neosc"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["email"].as_str().unwrap().to_owned(),
                    u["password"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        Self { lab, users }
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
            .request(method, format!("{}{path}", self.lab.urls.neosc));
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
        let www_authenticate = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text:?}"));
        Answer {
            status,
            www_authenticate,
            body,
        }
    }

    async fn login_as(&self, i: usize) -> (String, Value) {
        let (email, password) = &self.users[i];
        let body = json!({"email": email, "password": password}).to_string();
        let a = self
            .call(Method::POST, "/auth/login", None, Some(&body))
            .await;
        let v = a.ok().clone();
        (v["access_token"].as_str().unwrap().to_owned(), v)
    }

    async fn launch_ws(&self, token: &str, ws: &str) -> Value {
        self.call(
            Method::POST,
            &format!("/workspaces/{ws}/launch"),
            Some(token),
            None,
        )
        .await
        .ok()
        .clone()
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.call(Method::GET, path, Some(token), None)
            .await
            .ok()
            .clone()
    }

    async fn workspace_status(&self, token: &str, ws: &str) -> String {
        let all = self.get(token, "/workspaces").await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == ws)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Checks a timestamp is ISO 8601 UTC in one of the two documented styles.
fn is_iso_utc(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let ok_prefix = s.len() >= 19
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && s.as_bytes()[13] == b':';
    ok_prefix && (s.ends_with('Z') || s.ends_with("+00:00"))
}

const SESSION_FIELDS: [&str; 12] = [
    "id",
    "user_id",
    "user_email",
    "workspace_id",
    "workspace_name",
    "workspace_type",
    "status",
    "started_at",
    "ended_at",
    "ip_address",
    "tunnel_status",
    "mfa_verified",
];

#[tokio::test]
async fn login_me_and_auth_errors() {
    let neo = Neo::launch().await;
    assert!(neo.users.len() >= 2, "two seeded users");
    let (token, v) = neo.login_as(0).await;
    assert_eq!(v["token_type"], "bearer");
    assert!(token.len() >= 40, "opaque token_urlsafe(32): {token}");
    let user = &v["user"];
    assert_eq!(user["email"], neo.users[0].0.as_str());
    for f in ["id", "name", "organization", "role"] {
        assert!(user[f].is_string(), "{f} in {user}");
    }
    assert_eq!(user["mfa_enabled"], true);
    assert!(user.get("password").is_none());
    let me = neo.get(&token, "/auth/me").await;
    assert_eq!(&me, user);

    let bad = json!({"email": neo.users[0].0, "password": "wrong"}).to_string();
    neo.call(Method::POST, "/auth/login", None, Some(&bad))
        .await
        .detail(401, "Invalid credentials");
    let nobody = json!({"email": "nobody@acme.com", "password": "x"}).to_string();
    neo.call(Method::POST, "/auth/login", None, Some(&nobody))
        .await
        .detail(401, "Invalid credentials");

    let a = neo.call(Method::GET, "/auth/me", None, None).await;
    a.detail(401, "Not authenticated");
    assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"));
    neo.call(Method::GET, "/auth/me", Some("not-a-token"), None)
        .await
        .detail(401, "Invalid token");

    // FastAPI-style 422 for a body that is missing fields or is not JSON.
    let a = neo
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(r#"{"email":"x@y.z"}"#),
        )
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["detail"][0]["loc"], json!(["body", "password"]));
    assert_eq!(a.body["detail"][0]["type"], "missing");
    let a = neo
        .call(Method::POST, "/auth/login", None, Some("{nope"))
        .await;
    assert_eq!(a.status, 422);
    assert!(a.body["detail"].is_array());
}

#[tokio::test]
async fn every_bearer_route_needs_a_token() {
    let neo = Neo::launch().await;
    for (method, path) in [
        (Method::GET, "/auth/me"),
        (Method::POST, "/auth/logout"),
        (Method::GET, "/workspaces"),
        (Method::POST, "/workspaces/ws-linux-desktop/launch"),
        (Method::POST, "/workspaces/ws-linux-desktop/stop"),
        (Method::GET, "/sessions"),
        (Method::GET, "/sessions/active"),
        (
            Method::GET,
            "/sessions/f47ac10b-58cc-4372-a567-0e02b2c3d479",
        ),
        (
            Method::POST,
            "/sessions/f47ac10b-58cc-4372-a567-0e02b2c3d479/disconnect",
        ),
    ] {
        neo.call(method.clone(), path, None, None)
            .await
            .detail(401, "Not authenticated");
        neo.call(method, path, Some("bogus"), None)
            .await
            .detail(401, "Invalid token");
    }
}

#[tokio::test]
async fn workspaces_are_the_default_seed() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(0).await;
    let all = neo.get(&token, "/workspaces").await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    for id in [
        "ws-sap-neogenesys",
        "ws-remote-desktop",
        "ws-1panel",
        "ws-linux-desktop",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let sap = all
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "ws-sap-neogenesys")
        .unwrap();
    assert_eq!(sap["name"], "SAP Neogénesys");
    assert_eq!(sap["type"], "html5");
    assert_eq!(sap["status"], "available");
    assert_eq!(sap["cpu"], "4 vCPU");
    assert_eq!(sap["memory"], "8 GB");
    assert_eq!(sap["storage"], "100 GB");
    assert_eq!(sap["url"], "http://tsplus.intranet.neosc/");
    assert_eq!(sap["requires_netbird"], true);
    for w in all.as_array().unwrap() {
        for f in [
            "name",
            "description",
            "type",
            "status",
            "cpu",
            "memory",
            "storage",
            "url",
            "connection_type",
            "icon",
        ] {
            assert!(w[f].is_string(), "{f} in {w}");
        }
    }
}

#[tokio::test]
async fn launch_creates_an_active_session_and_runs_the_workspace() {
    let neo = Neo::launch().await;
    let (token, login) = neo.login_as(0).await;
    let user = &login["user"];
    let l = neo.launch_ws(&token, "ws-linux-desktop").await;
    let sid = l["session_id"].as_str().unwrap().to_owned();
    assert_eq!(sid.len(), 36, "UUID: {sid}");
    assert_eq!(sid.as_bytes()[14], b'4', "UUID v4: {sid}");
    assert_eq!(l["stream_url"], format!("/viewer/{sid}"));
    assert_eq!(l["tunnel_status"], "encrypted");
    assert!(l["security"].is_object(), "{l}");
    assert_eq!(l["workspace"]["id"], "ws-linux-desktop");
    assert_eq!(l["workspace"]["status"], "running");
    assert_eq!(
        neo.workspace_status(&token, "ws-linux-desktop").await,
        "running"
    );

    let s = neo.get(&token, &format!("/sessions/{sid}")).await;
    for f in SESSION_FIELDS {
        assert!(s.get(f).is_some(), "{f} in {s}");
    }
    assert_eq!(s["user_id"], user["id"]);
    assert_eq!(s["user_email"], user["email"]);
    assert_eq!(s["workspace_id"], "ws-linux-desktop");
    assert_eq!(s["workspace_name"], "Linux Desktop");
    assert_eq!(s["workspace_type"], "linux");
    assert_eq!(s["status"], "active");
    assert_eq!(s["ended_at"], Value::Null);
    assert_eq!(s["ip_address"], "10.0.0.1");
    assert_eq!(s["tunnel_status"], "encrypted");
    assert_eq!(s["mfa_verified"], true);
    let started = s["started_at"].as_str().unwrap();
    assert!(
        started.ends_with('Z') && started.len() == 24,
        "docs style .000Z: {started}"
    );

    let active = neo.get(&token, "/sessions/active").await;
    assert!(active
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["status"] == "active"));
    assert!(active
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == sid.as_str()));

    neo.call(
        Method::POST,
        "/workspaces/ws-nope/launch",
        Some(&token),
        None,
    )
    .await
    .detail(404, "Workspace not found");
}

#[tokio::test]
async fn stop_terminates_the_callers_session_and_is_200_without_one() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(0).await;
    let sid = neo.launch_ws(&token, "ws-sap-neogenesys").await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = neo
        .call(
            Method::POST,
            "/workspaces/ws-sap-neogenesys/stop",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        a.ok(),
        &json!({"message": "Workspace stopped successfully"})
    );
    let s = neo.get(&token, &format!("/sessions/{sid}")).await;
    assert_eq!(s["status"], "terminated");
    assert!(is_iso_utc(&s["ended_at"]), "{s}");
    assert_eq!(
        neo.workspace_status(&token, "ws-sap-neogenesys").await,
        "available"
    );
    assert!(!neo
        .get(&token, "/sessions/active")
        .await
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == sid.as_str()));
    // Nothing active on it any more: still 200.
    neo.call(
        Method::POST,
        "/workspaces/ws-sap-neogenesys/stop",
        Some(&token),
        None,
    )
    .await
    .ok();
}

#[tokio::test]
async fn disconnect_marks_disconnected_and_frees_the_workspace() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(1).await;
    let sid = neo.launch_ws(&token, "ws-1panel").await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    neo.lab.advance(90.0).await.unwrap();
    let a = neo
        .call(
            Method::POST,
            &format!("/sessions/{sid}/disconnect"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(a.ok(), &json!({"message": "Session disconnected"}));
    let s = neo.get(&token, &format!("/sessions/{sid}")).await;
    assert_eq!(s["status"], "disconnected");
    let ended = s["ended_at"].as_str().unwrap();
    assert!(ended.ends_with("+00:00"), "isoformat style: {ended}");
    assert!(ended[..19] > s["started_at"].as_str().unwrap()[..19], "{s}");
    assert_eq!(neo.workspace_status(&token, "ws-1panel").await, "available");
    neo.call(
        Method::POST,
        "/sessions/nope/disconnect",
        Some(&token),
        None,
    )
    .await
    .detail(404, "Session not found");
}

#[tokio::test]
async fn another_users_session_is_not_found() {
    let neo = Neo::launch().await;
    let (john, _) = neo.login_as(0).await;
    let (jane, _) = neo.login_as(1).await;
    let sid = neo.launch_ws(&john, "ws-remote-desktop").await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    neo.call(Method::GET, &format!("/sessions/{sid}"), Some(&jane), None)
        .await
        .detail(404, "Session not found");
    neo.call(
        Method::POST,
        &format!("/sessions/{sid}/disconnect"),
        Some(&jane),
        None,
    )
    .await
    .detail(404, "Session not found");
    // Jane's stop does not touch John's session.
    neo.call(
        Method::POST,
        "/workspaces/ws-remote-desktop/stop",
        Some(&jane),
        None,
    )
    .await
    .ok();
    assert_eq!(
        neo.get(&john, &format!("/sessions/{sid}")).await["status"],
        "active"
    );
    // Lists are filtered by user.
    let janes = neo.get(&jane, "/sessions").await;
    assert!(janes
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["user_email"] == neo.users[1].0.as_str()));
    let johns = neo.get(&john, "/sessions").await;
    assert!(johns
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == sid.as_str()));
    neo.call(
        Method::GET,
        "/sessions/00000000-0000-4000-8000-000000000000",
        Some(&john),
        None,
    )
    .await
    .detail(404, "Session not found");
}

#[tokio::test]
async fn logout_terminates_all_active_sessions_and_kills_the_token() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(0).await;
    let (other, _) = neo.login_as(1).await;
    let a = neo.launch_ws(&token, "ws-linux-desktop").await["session_id"].clone();
    let b = neo.launch_ws(&token, "ws-sap-neogenesys").await["session_id"].clone();
    let c = neo.launch_ws(&token, "ws-1panel").await["session_id"].clone();
    neo.call(
        Method::POST,
        &format!("/sessions/{}/disconnect", c.as_str().unwrap()),
        Some(&token),
        None,
    )
    .await
    .ok();
    let janes = neo.launch_ws(&other, "ws-remote-desktop").await["session_id"].clone();

    // A second login of the same user, to look after the first token is gone.
    let (second, _) = neo.login_as(0).await;
    let out = neo
        .call(Method::POST, "/auth/logout", Some(&token), None)
        .await;
    assert_eq!(
        out.ok(),
        &json!({"message": "Logged out successfully", "sessions_terminated": 2})
    );
    neo.call(Method::GET, "/auth/me", Some(&token), None)
        .await
        .detail(401, "Invalid token");
    for id in [&a, &b] {
        let s = neo
            .get(&second, &format!("/sessions/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(s["status"], "terminated");
        assert!(is_iso_utc(&s["ended_at"]), "{s}");
    }
    let s = neo
        .get(&second, &format!("/sessions/{}", c.as_str().unwrap()))
        .await;
    assert_eq!(
        s["status"], "disconnected",
        "already ended sessions stay as they were"
    );
    assert!(neo
        .get(&second, "/sessions/active")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        neo.workspace_status(&second, "ws-linux-desktop").await,
        "available"
    );
    // Another user's session is untouched.
    let j = neo
        .get(&other, &format!("/sessions/{}", janes.as_str().unwrap()))
        .await;
    assert_eq!(j["status"], "active");
}

#[tokio::test]
async fn session_list_has_history_in_both_timestamp_styles() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(0).await;
    let all = neo.get(&token, "/sessions").await;
    let list = all.as_array().unwrap();
    // The first seeded user has an ended session in their history, like the docs' example.
    let old = list
        .iter()
        .find(|s| s["status"] == "terminated")
        .expect("history");
    for f in SESSION_FIELDS {
        assert!(old.get(f).is_some(), "{f} in {old}");
    }
    assert!(old["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(old["ended_at"].as_str().unwrap().ends_with("+00:00"));
}

#[tokio::test]
async fn control_terminate_and_admin_routes() {
    let neo = Neo::launch().await;
    let (token, _) = neo.login_as(0).await;
    let sid = neo.launch_ws(&token, "ws-linux-desktop").await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    neo.lab
        .control_post(
            "/sessions/terminate",
            json!({"service": "neosc", "id": sid}),
        )
        .await
        .unwrap();
    assert_eq!(
        neo.get(&token, &format!("/sessions/{sid}")).await["status"],
        "terminated"
    );

    // Workspace CRUD is admin-only.
    let body = json!({"name": "Build Box", "type": "dev"}).to_string();
    neo.call(Method::POST, "/workspaces", Some(&token), Some(&body))
        .await
        .detail(403, "Admin access required");
    if neo.users.len() > 2 {
        let (admin, _) = neo.login_as(2).await;
        let a = neo
            .call(Method::POST, "/workspaces", Some(&admin), Some(&body))
            .await;
        let created = a.ok()["workspace"].clone();
        assert_eq!(a.body["message"], "Workspace created");
        assert!(created["id"].as_str().unwrap().starts_with("ws-"));
        assert_eq!(created["connection_type"], "web");
        let id = created["id"].as_str().unwrap().to_owned();
        let a = neo
            .call(
                Method::PUT,
                &format!("/workspaces/{id}"),
                Some(&admin),
                Some(r#"{"status":"coming_soon"}"#),
            )
            .await;
        assert_eq!(a.ok()["workspace"]["status"], "coming_soon");
        let a = neo
            .call(
                Method::POST,
                &format!("/workspaces/{id}/launch"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.body);
        neo.call(
            Method::DELETE,
            &format!("/workspaces/{id}"),
            Some(&admin),
            None,
        )
        .await
        .ok();
        neo.call(
            Method::DELETE,
            &format!("/workspaces/{id}"),
            Some(&admin),
            None,
        )
        .await
        .detail(404, "Workspace not found");
        let logs = neo.get(&admin, "/audit-logs").await;
        let actions: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(
            actions.contains(&"launch_workspace") && actions.contains(&"delete_workspace"),
            "{actions:?}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_answer_fastapi_style() {
    let neo = Neo::launch().await;
    neo.call(Method::GET, "/nope", None, None)
        .await
        .detail(404, "Not Found");
    neo.call(Method::DELETE, "/sessions/active", None, None)
        .await
        .detail(405, "Method Not Allowed");
}
