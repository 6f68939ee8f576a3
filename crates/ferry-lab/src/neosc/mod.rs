//! NeoSC (workspaces) as documented: auth, workspaces, sessions, audit.
//!
//! Built from the vendor's sessions page (seed 002) and the reference (§3): opaque bearer tokens
//! in a map, per-user filtering (another user's session is "not found"), launch/stop/disconnect/
//! logout with their side effects on sessions and workspaces, and an audit entry per action.
//! NeoSC documents no timing rules, so nothing here expires on its own.

mod body;
mod error;
pub mod model;
mod routes;

pub use error::NeoError;
pub use routes::router;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use model::{AuditEntry, Session, User, Workspace};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use uuid::Uuid;

/// `GET /sessions` answers at most this many (the vendor's code caps its query at 100).
const SESSIONS_CAP: usize = 100;
/// `GET /audit-logs` answers at most this many, newest first.
const AUDIT_CAP: usize = 500;
/// Audit entries kept in memory.
const AUDIT_KEEP: usize = 10_000;

/// The seeded logins: (email, password, name, role).
const SEED_USERS: [(&str, &str, &str, &str); 3] = [
    ("john.doe@acme.com", "neosc-demo-john", "John Doe", "user"),
    ("jane.roe@acme.com", "neosc-demo-jane", "Jane Roe", "user"),
    ("admin@acme.com", "neosc-demo-admin", "Acme Admin", "admin"),
];

/// NeoSC's users, tokens, workspaces and sessions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NeoState {
    /// Users by id.
    pub users: HashMap<String, User>,
    /// User ids by email.
    pub by_email: HashMap<String, String>,
    /// Seeded user ids in order, for `GET /_lab/accounts`.
    pub seeded_users: Vec<String>,
    /// Access tokens → user id.
    pub tokens: HashMap<String, String>,
    /// Workspaces in listing order.
    pub workspaces: Vec<Workspace>,
    /// Sessions by id.
    pub sessions: HashMap<String, Session>,
    /// Each user's session ids, oldest first.
    pub by_user: HashMap<String, Vec<String>>,
    /// Audit log, oldest first.
    pub audit: VecDeque<AuditEntry>,
}

/// `secrets.token_urlsafe(32)`: 43 characters of URL-safe base64.
fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl NeoState {
    /// The seeded users (two users and an admin), the default workspaces, and one ended session
    /// in the first user's history (like the docs' example list).
    pub fn seeded() -> Self {
        let mut s = Self {
            workspaces: model::default_workspaces(),
            ..Self::default()
        };
        for (email, password, name, role) in SEED_USERS {
            let id = s.add_user(email, password, name, "Acme Corp", role);
            s.seeded_users.push(id);
        }
        if let Some(uid) = s.seeded_users.first().cloned() {
            let started = Utc::now() - Duration::days(1);
            if let (Some(u), Some(w)) = (
                s.users.get(&uid).cloned(),
                s.workspaces.iter().find(|w| w.id == "ws-linux-desktop"),
            ) {
                let session = Session {
                    id: Uuid::new_v4().to_string(),
                    user_id: u.id.clone(),
                    user_email: u.email.clone(),
                    workspace_id: w.id.clone(),
                    workspace_name: w.name.clone(),
                    workspace_type: w.kind.clone(),
                    status: "terminated".to_owned(),
                    started_at: started,
                    ended_at: Some(started + Duration::minutes(510)),
                };
                s.insert_session(session);
            }
        }
        s
    }

    fn add_user(
        &mut self,
        email: &str,
        password: &str,
        name: &str,
        organization: &str,
        role: &str,
    ) -> String {
        let id = Uuid::new_v4().to_string();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                email: email.to_owned(),
                password: password.to_owned(),
                name: name.to_owned(),
                organization: organization.to_owned(),
                role: role.to_owned(),
                mfa_enabled: true,
            },
        );
        self.by_email.insert(email.to_owned(), id.clone());
        id
    }

    fn insert_session(&mut self, s: Session) {
        self.by_user
            .entry(s.user_id.clone())
            .or_default()
            .push(s.id.clone());
        self.sessions.insert(s.id.clone(), s);
    }

    /// Seeded users for `GET /_lab/accounts`: `[{email, password, role}]`.
    pub fn accounts(&self) -> Value {
        let list: Vec<Value> = self
            .seeded_users
            .iter()
            .filter_map(|id| self.users.get(id))
            .map(|u| json!({"email": u.email, "password": u.password, "role": u.role}))
            .collect();
        Value::Array(list)
    }

    /// Applies timing rules at `now` (none are documented for NeoSC).
    pub fn tick(&mut self, _now: DateTime<Utc>) {}

    fn audit(
        &mut self,
        uid: &str,
        action: &str,
        resource: &str,
        details: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) {
        let email = self
            .users
            .get(uid)
            .map(|u| u.email.clone())
            .unwrap_or_default();
        if self.audit.len() >= AUDIT_KEEP {
            self.audit.pop_front();
        }
        self.audit.push_back(AuditEntry {
            id: Uuid::new_v4().to_string(),
            user_id: uid.to_owned(),
            user_email: email,
            action: action.to_owned(),
            resource: resource.to_owned(),
            details: details.to_owned(),
            ip_address: ip.to_owned(),
            timestamp: now,
            success: true,
        });
    }

    /// The user id behind a bearer token.
    pub fn user_for(&self, bearer: Option<&str>) -> Result<String, NeoError> {
        let token = bearer.ok_or(NeoError::NotAuthenticated)?;
        self.tokens
            .get(token)
            .filter(|uid| self.users.contains_key(*uid))
            .cloned()
            .ok_or(NeoError::InvalidToken)
    }

    fn user(&self, uid: &str) -> Result<&User, NeoError> {
        self.users.get(uid).ok_or(NeoError::InvalidToken)
    }

    fn auth_answer(&mut self, uid: &str) -> Result<Value, NeoError> {
        let token = new_token();
        self.tokens.insert(token.clone(), uid.to_owned());
        let user = self.user(uid)?.to_json();
        Ok(json!({"access_token": token, "token_type": "bearer", "user": user}))
    }

    /// `POST /auth/login`.
    pub fn login(&mut self, body: &[u8], ip: &str, now: DateTime<Utc>) -> Result<Value, NeoError> {
        let f = body::fields(body, &["email", "password"], &[])?;
        let (email, password) = (f.get("email"), f.get("password"));
        let uid = self
            .by_email
            .get(email)
            .filter(|uid| self.users.get(*uid).is_some_and(|u| u.password == password))
            .cloned()
            .ok_or(NeoError::InvalidCredentials)?;
        self.audit(&uid, "login", "auth", "User logged in", ip, now);
        self.auth_answer(&uid)
    }

    /// `POST /auth/register`: a new `user` account, logged in.
    pub fn register(
        &mut self,
        body: &[u8],
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        let f = body::fields(body, &["email", "password", "name"], &["organization"])?;
        if self.by_email.contains_key(f.get("email")) {
            return Err(NeoError::EmailRegistered);
        }
        let org = f.opt("organization").unwrap_or("Default Organization");
        let uid = self.add_user(
            f.get("email"),
            f.get("password"),
            f.get("name"),
            org,
            "user",
        );
        self.audit(&uid, "register", "auth", "User registered", ip, now);
        self.auth_answer(&uid)
    }

    /// `POST /auth/logout`: ends every active session of the user (`terminated`), frees their
    /// workspaces, and forgets the token.
    pub fn logout(&mut self, uid: &str, token: &str, ip: &str, now: DateTime<Utc>) -> Value {
        let ids = self.by_user.get(uid).cloned().unwrap_or_default();
        let mut n = 0u64;
        for id in ids {
            if self.end_session(&id, "terminated", now) {
                n += 1;
            }
        }
        self.tokens.remove(token);
        self.audit(
            uid,
            "logout",
            "auth",
            &format!("{n} sessions terminated"),
            ip,
            now,
        );
        json!({"message": "Logged out successfully", "sessions_terminated": n})
    }

    /// `GET /auth/me`.
    pub fn me(&self, uid: &str) -> Result<Value, NeoError> {
        Ok(self.user(uid)?.to_json())
    }

    /// `GET /workspaces` (re-seeds the defaults when empty, as the vendor does).
    pub fn workspaces_json(&mut self) -> Value {
        if self.workspaces.is_empty() {
            self.workspaces = model::default_workspaces();
        }
        Value::Array(self.workspaces.iter().map(Workspace::to_json).collect())
    }

    fn set_workspace_status(&mut self, id: &str, status: &str) {
        if let Some(w) = self.workspaces.iter_mut().find(|w| w.id == id) {
            w.status = status.to_owned();
        }
    }

    /// Ends an active session with `status`; false if it was not active.
    fn end_session(&mut self, id: &str, status: &str, now: DateTime<Utc>) -> bool {
        let Some(s) = self.sessions.get_mut(id) else {
            return false;
        };
        if !s.is_active() {
            return false;
        }
        s.status = status.to_owned();
        s.ended_at = Some(now);
        let ws = s.workspace_id.clone();
        self.set_workspace_status(&ws, "available");
        true
    }

    /// `POST /workspaces/{id}/launch`: a new active session; the workspace goes `running`.
    pub fn launch(
        &mut self,
        uid: &str,
        ws_id: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        let user = self.user(uid)?.clone();
        let w = self
            .workspaces
            .iter_mut()
            .find(|w| w.id == ws_id)
            .ok_or(NeoError::WorkspaceNotFound)?;
        if w.status == "coming_soon" {
            return Err(NeoError::WorkspaceNotAvailable);
        }
        w.status = "running".to_owned();
        let w = w.clone();
        let id = Uuid::new_v4().to_string();
        self.insert_session(Session {
            id: id.clone(),
            user_id: user.id.clone(),
            user_email: user.email.clone(),
            workspace_id: w.id.clone(),
            workspace_name: w.name.clone(),
            workspace_type: w.kind.clone(),
            status: "active".to_owned(),
            started_at: now,
            ended_at: None,
        });
        self.audit(
            uid,
            "launch_workspace",
            &format!("workspace:{}", w.id),
            &format!("Launched {}", w.name),
            ip,
            now,
        );
        Ok(json!({
            "session_id": id,
            "workspace": w.to_json(),
            "stream_url": format!("/viewer/{id}"),
            "tunnel_status": "encrypted",
            "connection_url": w.url,
            "connection_type": w.connection_type,
            "requires_netbird": w.requires_netbird,
            "security": {
                "encrypted_tunnel": true,
                "identity_verified": true,
                "mfa_enforced": true,
                "session_recording": true,
                "no_open_ports": true,
                "zero_trust": true,
                "pomerium_protected": true,
            },
        }))
    }

    /// `POST /workspaces/{id}/stop`: terminates the caller's (first) active session on that
    /// workspace, if any, and sets the workspace `available`. 200 even with nothing to stop.
    pub fn stop(&mut self, uid: &str, ws_id: &str, ip: &str, now: DateTime<Utc>) -> Value {
        let active = self.by_user.get(uid).and_then(|ids| {
            ids.iter()
                .find(|id| {
                    self.sessions
                        .get(*id)
                        .is_some_and(|s| s.is_active() && s.workspace_id == ws_id)
                })
                .cloned()
        });
        if let Some(id) = active {
            self.end_session(&id, "terminated", now);
        }
        self.set_workspace_status(ws_id, "available");
        self.audit(
            uid,
            "stop_workspace",
            &format!("workspace:{ws_id}"),
            "Workspace stopped",
            ip,
            now,
        );
        json!({"message": "Workspace stopped successfully"})
    }

    /// `GET /sessions` (`active_only`: `GET /sessions/active`): the caller's own sessions,
    /// oldest first, at most 100.
    pub fn sessions_json(&self, uid: &str, active_only: bool) -> Value {
        let list: Vec<Value> = self
            .by_user
            .get(uid)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.sessions.get(id))
                    .filter(|s| !active_only || s.is_active())
                    .take(SESSIONS_CAP)
                    .map(Session::to_json)
                    .collect()
            })
            .unwrap_or_default();
        Value::Array(list)
    }

    fn own_session(&self, uid: &str, id: &str) -> Result<&Session, NeoError> {
        self.sessions
            .get(id)
            .filter(|s| s.user_id == uid)
            .ok_or(NeoError::SessionNotFound)
    }

    /// `GET /sessions/{id}`: only the caller's own.
    pub fn session_json(&self, uid: &str, id: &str) -> Result<Value, NeoError> {
        Ok(self.own_session(uid, id)?.to_json())
    }

    /// `POST /sessions/{id}/disconnect`: status `disconnected`, `ended_at` now, workspace
    /// `available`. Like the vendor's code it does not look at the current status (a second
    /// disconnect rewrites `ended_at`).
    pub fn disconnect(
        &mut self,
        uid: &str,
        id: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        let ws = self.own_session(uid, id)?.workspace_id.clone();
        if let Some(s) = self.sessions.get_mut(id) {
            s.status = "disconnected".to_owned();
            s.ended_at = Some(now);
        }
        self.set_workspace_status(&ws, "available");
        self.audit(
            uid,
            "disconnect_session",
            &format!("session:{id}"),
            "Session disconnected",
            ip,
            now,
        );
        Ok(json!({"message": "Session disconnected"}))
    }

    /// `GET /audit-logs`: admins see every entry, users their own; newest first, at most 500.
    pub fn audit_json(&self, uid: &str) -> Result<Value, NeoError> {
        let admin = self.user(uid)?.role == "admin";
        let list: Vec<Value> = self
            .audit
            .iter()
            .rev()
            .filter(|e| admin || e.user_id == uid)
            .take(AUDIT_CAP)
            .map(AuditEntry::to_json)
            .collect();
        Ok(Value::Array(list))
    }

    /// `GET /stats`.
    pub fn stats_json(&self) -> Value {
        json!({
            "active_sessions": self.sessions.values().filter(|s| s.is_active()).count(),
            "total_workspaces": self.workspaces.len(),
            "total_users": self.users.len(),
            "security_score": 98,
            "uptime": "99.9%",
        })
    }

    fn require_admin(&self, uid: &str) -> Result<(), NeoError> {
        if self.user(uid)?.role == "admin" {
            Ok(())
        } else {
            Err(NeoError::AdminRequired)
        }
    }

    /// `POST /workspaces` (admin), with the docs' defaults for omitted fields.
    pub fn create_workspace(
        &mut self,
        uid: &str,
        body: &[u8],
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        self.require_admin(uid)?;
        let v = body::object(body)?;
        let name = body::required_str(&v, "name")?;
        let kind = body::required_str(&v, "type")?;
        let mut rnd = [0u8; 4];
        rand::rngs::OsRng.fill_bytes(&mut rnd);
        let id = format!(
            "ws-{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let s = |k: &str, d: &str| v.get(k).and_then(Value::as_str).unwrap_or(d).to_owned();
        let w = Workspace {
            id,
            name,
            description: s("description", ""),
            kind,
            status: s("status", "available"),
            cpu: s("cpu", "2 vCPU"),
            memory: s("memory", "4 GB"),
            storage: s("storage", "50 GB"),
            url: s("url", ""),
            connection_type: s("connection_type", "web"),
            requires_netbird: v
                .get("requires_netbird")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            icon: s("icon", "default"),
            image_url: s("image_url", ""),
        };
        self.audit(
            uid,
            "create_workspace",
            &format!("workspace:{}", w.id),
            &format!("Created {}", w.name),
            ip,
            now,
        );
        let out = w.to_json();
        self.workspaces.push(w);
        Ok(json!({"message": "Workspace created", "workspace": out}))
    }

    /// `PUT /workspaces/{id}` (admin): partial update of the given fields.
    pub fn update_workspace(
        &mut self,
        uid: &str,
        ws_id: &str,
        body: &[u8],
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        self.require_admin(uid)?;
        let patch = body::object(body)?;
        let w = self
            .workspaces
            .iter_mut()
            .find(|w| w.id == ws_id)
            .ok_or(NeoError::WorkspaceNotFound)?;
        let mut current = w.to_json();
        if let Some(obj) = current.as_object_mut() {
            for (k, val) in patch.iter().filter(|(k, _)| k.as_str() != "id") {
                obj.insert(k.clone(), val.clone());
            }
        }
        let updated: Workspace = serde_json::from_value(current).map_err(|e| {
            NeoError::Validation(vec![
                json!({"type": "value_error", "loc": ["body"], "msg": e.to_string()}),
            ])
        })?;
        *w = updated.clone();
        self.audit(
            uid,
            "update_workspace",
            &format!("workspace:{ws_id}"),
            "Workspace updated",
            ip,
            now,
        );
        Ok(json!({"message": "Workspace updated", "workspace": updated.to_json()}))
    }

    /// `DELETE /workspaces/{id}` (admin).
    pub fn delete_workspace(
        &mut self,
        uid: &str,
        ws_id: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        self.require_admin(uid)?;
        let idx = self
            .workspaces
            .iter()
            .position(|w| w.id == ws_id)
            .ok_or(NeoError::WorkspaceNotFound)?;
        self.workspaces.remove(idx);
        self.audit(
            uid,
            "delete_workspace",
            &format!("workspace:{ws_id}"),
            "Workspace deleted",
            ip,
            now,
        );
        Ok(json!({"message": "Workspace deleted"}))
    }

    /// `POST /workspaces/reset` (admin): back to the defaults.
    pub fn reset_workspaces(
        &mut self,
        uid: &str,
        ip: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, NeoError> {
        self.require_admin(uid)?;
        self.workspaces = model::default_workspaces();
        self.audit(
            uid,
            "reset_workspaces",
            "workspaces",
            "Workspaces reset to defaults",
            ip,
            now,
        );
        Ok(json!({"message": "Workspaces reset to defaults", "count": self.workspaces.len()}))
    }

    /// Ends a session server-side (control API): an active one becomes `terminated`.
    pub fn terminate(&mut self, id: &str, _reason: &str, now: DateTime<Utc>) -> Result<(), String> {
        if !self.sessions.contains_key(id) {
            return Err(format!("no NeoSC session {id}"));
        }
        self.end_session(id, "terminated", now);
        Ok(())
    }
}
