//! NeoSC's records (users, workspaces, sessions, audit entries), their JSON shapes, and the
//! default workspace seed.

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `2026-03-05T14:30:00.000Z`: the style of the vendor's docs (used for `started_at`).
pub fn ts_z(t: DateTime<Utc>) -> String {
    crate::clock::rfc3339_ms(t)
}

/// `2026-03-05T14:30:00.123456+00:00`: Python's `datetime.isoformat()`, which the vendor's code
/// stores (used for `ended_at` and audit timestamps). Like Python, it leaves out the fraction
/// when the microseconds are zero.
pub fn ts_py(t: DateTime<Utc>) -> String {
    let micros = t.nanosecond() / 1000 % 1_000_000;
    if micros == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!("{}.{micros:06}+00:00", t.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Login email (unique).
    pub email: String,
    /// The lab keeps seeded demo passwords as given (they are listed by `/_lab/accounts`).
    pub password: String,
    /// Display name.
    pub name: String,
    /// Organization name.
    pub organization: String,
    /// `user` or `admin`.
    pub role: String,
    /// Always true in NeoSC.
    pub mfa_enabled: bool,
}

impl User {
    /// The user dict as `auth/me` and login return it (no password).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "organization": self.organization,
            "role": self.role,
            "mfa_enabled": self.mfa_enabled,
        })
    }
}

/// A workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Workspace {
    /// Id, e.g. `ws-sap-neogenesys`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `html5` | `rdp` | `web` | `linux` | `browser` | …
    #[serde(rename = "type")]
    pub kind: String,
    /// `available` | `running` | `stopped` | `error` | `coming_soon`.
    pub status: String,
    /// e.g. "4 vCPU".
    pub cpu: String,
    /// e.g. "8 GB".
    pub memory: String,
    /// e.g. "100 GB".
    pub storage: String,
    /// Where the workspace is served.
    pub url: String,
    /// `html5` | `web` | `vnc` | `browser`.
    pub connection_type: String,
    /// Whether NetBird is needed to reach it.
    pub requires_netbird: bool,
    /// Icon name.
    pub icon: String,
    /// Image URL.
    pub image_url: String,
}

impl Workspace {
    /// The workspace as the API returns it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[allow(clippy::too_many_arguments)]
fn ws(
    id: &str,
    name: &str,
    description: &str,
    kind: &str,
    size: (&str, &str, &str),
    url: &str,
    connection_type: &str,
    requires_netbird: bool,
    icon: &str,
) -> Workspace {
    Workspace {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        kind: kind.to_owned(),
        status: "available".to_owned(),
        cpu: size.0.to_owned(),
        memory: size.1.to_owned(),
        storage: size.2.to_owned(),
        url: url.to_owned(),
        connection_type: connection_type.to_owned(),
        requires_netbird,
        icon: icon.to_owned(),
        image_url: String::new(),
    }
}

/// The default workspaces NeoSC creates when the collection is empty.
pub fn default_workspaces() -> Vec<Workspace> {
    vec![
        ws(
            "ws-sap-neogenesys",
            "SAP Neogénesys",
            "SAP ERP through TSPlus HTML5",
            "html5",
            ("4 vCPU", "8 GB", "100 GB"),
            "http://tsplus.intranet.neosc/",
            "html5",
            true,
            "sap",
        ),
        ws(
            "ws-remote-desktop",
            "Remote Desktop",
            "Windows remote desktop through TSPlus HTML5",
            "rdp",
            ("2 vCPU", "4 GB", "50 GB"),
            "http://10.100.10.152/",
            "html5",
            true,
            "monitor",
        ),
        ws(
            "ws-1panel",
            "1Panel Admin",
            "Server administration panel",
            "web",
            ("2 vCPU", "4 GB", "50 GB"),
            "http://1panel.intranet.neosc/",
            "web",
            true,
            "settings",
        ),
        ws(
            "ws-linux-desktop",
            "Linux Desktop",
            "Ubuntu 22.04 desktop over noVNC",
            "linux",
            ("2 vCPU", "4 GB", "50 GB"),
            "http://novnc.intranet.neosc/vnc.html",
            "vnc",
            true,
            "terminal",
        ),
        ws(
            "ws-secure-browser",
            "Secure Browser",
            "Isolated web browser",
            "browser",
            ("1 vCPU", "2 GB", "10 GB"),
            "http://browser.intranet.neosc/",
            "browser",
            false,
            "globe",
        ),
    ]
}

/// A session: one launch of a workspace by a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// UUID v4.
    pub id: String,
    /// Owner's id.
    pub user_id: String,
    /// Owner's email.
    pub user_email: String,
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name at launch.
    pub workspace_name: String,
    /// Workspace type at launch.
    pub workspace_type: String,
    /// `active` | `disconnected` | `terminated`.
    pub status: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, once ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl Session {
    /// The session as the API returns it: `started_at` in the docs' `.000Z` style, `ended_at` in
    /// Python's `isoformat()` style (`+00:00`), as the vendor's two sources disagree.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "user_email": self.user_email,
            "workspace_id": self.workspace_id,
            "workspace_name": self.workspace_name,
            "workspace_type": self.workspace_type,
            "status": self.status,
            "started_at": ts_z(self.started_at),
            "ended_at": self.ended_at.map(ts_py),
            "ip_address": "10.0.0.1",
            "tunnel_status": "encrypted",
            "mfa_verified": true,
        })
    }

    /// Whether it is still running.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UUID.
    pub id: String,
    /// Acting user.
    pub user_id: String,
    /// Acting user's email.
    pub user_email: String,
    /// e.g. `launch_workspace`.
    pub action: String,
    /// e.g. `workspace:ws-linux-desktop`.
    pub resource: String,
    /// Free text.
    pub details: String,
    /// Client address.
    pub ip_address: String,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Whether the action succeeded.
    pub success: bool,
}

impl AuditEntry {
    /// The entry as `GET /audit-logs` returns it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "user_email": self.user_email,
            "action": self.action,
            "resource": self.resource,
            "details": self.details,
            "ip_address": self.ip_address,
            "timestamp": ts_py(self.timestamp),
            "success": self.success,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_timestamp_styles() {
        let t = DateTime::parse_from_rfc3339("2026-03-05T14:30:00.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(ts_z(t), "2026-03-05T14:30:00.123Z");
        assert_eq!(ts_py(t), "2026-03-05T14:30:00.123456+00:00");
        let whole = DateTime::parse_from_rfc3339("2026-03-05T14:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(ts_z(whole), "2026-03-05T14:30:00.000Z");
        assert_eq!(ts_py(whole), "2026-03-05T14:30:00+00:00");
    }
}
