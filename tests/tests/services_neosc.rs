//! The NeoSC client against the lab process: login, workspaces, launch, list, disconnect,
//! another user's session, stop and logout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_core::http::HttpSettings;
use ferry_core::secrets::Secret;
use ferry_core::services::neosc::NeoscClient;
use ferry_core::services::ApiError;
use ferry_tests::lab::LabProcess;

async fn user(lab: &LabProcess, i: usize) -> NeoscClient {
    let acc = lab.accounts().await;
    let u = &acc["neosc"][i];
    let mut c = NeoscClient::new(&lab.urls.neosc, HttpSettings::default()).unwrap();
    let auth = c
        .login(
            u["email"].as_str().unwrap(),
            &Secret::new(u["password"].as_str().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(auth.user.email, u["email"].as_str().unwrap());
    assert!(!format!("{auth:?}").contains(auth.access_token.expose()));
    c
}

/// True when this lab build serves NeoSC (skips with a printed reason otherwise, e.g. while
/// the lab's NeoSC routes are still being built).
async fn serves(lab: &LabProcess) -> bool {
    let status = lab
        .http()
        .get(format!("{}/workspaces", lab.urls.neosc))
        .send()
        .await
        .map(|r| r.status().as_u16());
    if matches!(status, Ok(404) | Err(_)) {
        eprintln!("SKIP: this lab build does not serve NeoSC yet ({status:?})");
        return false;
    }
    true
}

#[tokio::test]
async fn launch_list_disconnect_stop_logout() {
    let lab = LabProcess::start().unwrap();
    if !serves(&lab).await {
        return;
    }
    let alice = user(&lab, 0).await;
    let bob = user(&lab, 1).await;
    assert!(!alice.me().await.unwrap().email.is_empty());

    let ws = alice.workspaces().await.unwrap();
    assert!(ws.iter().any(|w| w.id == "ws-linux-desktop"));

    let l = alice.launch("ws-linux-desktop").await.unwrap();
    assert!(!l.session_id.is_empty());
    let active = alice.active_sessions().await.unwrap();
    let mine = active.iter().find(|s| s.id == l.session_id).unwrap();
    assert!(mine.is_active());
    assert_eq!(mine.workspace_id, "ws-linux-desktop");
    assert!(mine.started_at.is_some());
    assert!(mine.ended_at.is_none());

    // Another user's session looks like a missing one.
    let e = bob.disconnect(&l.session_id).await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e:?}");
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(bob
        .active_sessions()
        .await
        .unwrap()
        .iter()
        .all(|s| s.id != l.session_id));

    let ans = alice.disconnect(&l.session_id).await.unwrap();
    assert!(!ans.message.is_empty());
    let s = alice.session(&l.session_id).await.unwrap();
    assert_eq!(s.status, "disconnected");
    assert!(s.ended_at.is_some());
    assert!(alice
        .active_sessions()
        .await
        .unwrap()
        .iter()
        .all(|x| x.id != l.session_id));
    assert!(alice
        .sessions()
        .await
        .unwrap()
        .iter()
        .any(|x| x.id == l.session_id));

    let e = alice.launch("ws-does-not-exist").await.unwrap_err();
    assert_eq!(e.status(), Some(404));

    // Stop terminates the active session on that workspace.
    let l2 = alice.launch("ws-linux-desktop").await.unwrap();
    alice.stop("ws-linux-desktop").await.unwrap();
    assert_eq!(
        alice.session(&l2.session_id).await.unwrap().status,
        "terminated"
    );

    // Logout ends every active session and invalidates the token.
    alice.launch("ws-1panel").await.unwrap();
    let out = alice.logout().await.unwrap();
    assert_eq!(out.sessions_terminated, Some(1));
    let e = alice.workspaces().await.unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
}
