//! Which desktop notification to show, decided by a pure policy from observed state changes:
//! each kind can be switched off, repeats are de-duplicated and noisy kinds are throttled.

use std::collections::{BTreeMap, BTreeSet};

use crate::contract::{NotifySettings, WarningKind, WarningView};

/// A state change worth considering.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A new metered session started (forgets what was already said).
    SessionStarted,
    /// The core warned (credits run out soon, a quota nearly used): computed once, in the core.
    Warning(WarningView),
    /// The service ended the session because the credits ran out.
    CreditsDepleted,
    /// A quota window's use (fraction of its limit, 1.0 = full): notified when used up.
    Quota {
        /// The window's name.
        label: String,
        /// Used ÷ limit.
        fraction: f64,
        /// When it resets (unix ms), when known.
        resets_at_ms: Option<i64>,
    },
    /// The server ended the session for another reason (`timeout`, `idle`, `expired`, ...).
    SessionEnded {
        /// The reason as the service gave it.
        reason: String,
    },
    /// The tunnel or the service stopped answering.
    ConnectionLost,
    /// It answers again.
    ConnectionRestored,
    /// A NeoSC session of this user ended elsewhere.
    WorkspaceSessionEnded {
        /// Session id.
        id: String,
        /// Its workspace name.
        workspace: String,
    },
}

/// Kinds of notification (each switchable in settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoticeKind {
    /// Credits run out soon.
    CreditsLow,
    /// Credits ran out.
    CreditsDepleted,
    /// Quota at 80 %, 95 % or exceeded.
    Quota,
    /// Session ended by the server.
    SessionEnded,
    /// Connection lost or restored.
    Connection,
    /// Workspace session ended elsewhere.
    WorkspaceEnded,
}

impl NoticeKind {
    /// Shortest time between two notices of this kind (ms); extra ones are dropped.
    pub fn min_interval_ms(self) -> i64 {
        match self {
            NoticeKind::Connection => 60_000,
            NoticeKind::WorkspaceEnded => 5_000,
            _ => 0,
        }
    }

    fn enabled(self, s: &NotifySettings) -> bool {
        match self {
            NoticeKind::CreditsLow => s.credits_low,
            NoticeKind::CreditsDepleted => s.credits_depleted,
            NoticeKind::Quota => s.quota,
            NoticeKind::SessionEnded => s.session_ended,
            NoticeKind::Connection => s.connection,
            NoticeKind::WorkspaceEnded => s.workspace_ended,
        }
    }
}

/// A button on a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeAction {
    /// Bring the window up (also what clicking the notification does).
    Open,
    /// End the metered session.
    Disconnect,
}

impl NoticeAction {
    /// The D-Bus action key (`default` is the click on the notification itself).
    pub fn key(self) -> &'static str {
        match self {
            NoticeAction::Open => "default",
            NoticeAction::Disconnect => "disconnect",
        }
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            NoticeAction::Open => "Open Ferry",
            NoticeAction::Disconnect => "Disconnect",
        }
    }

    /// The action a key names.
    pub fn from_key(key: &str) -> Option<NoticeAction> {
        [NoticeAction::Open, NoticeAction::Disconnect]
            .into_iter()
            .find(|a| a.key() == key)
    }
}

impl NoticeKind {
    /// The buttons: a warning while metering offers to disconnect; every notice opens Ferry.
    pub fn actions(self) -> &'static [NoticeAction] {
        match self {
            NoticeKind::CreditsLow | NoticeKind::Quota | NoticeKind::Connection => {
                &[NoticeAction::Open, NoticeAction::Disconnect]
            }
            NoticeKind::CreditsDepleted | NoticeKind::SessionEnded | NoticeKind::WorkspaceEnded => {
                &[NoticeAction::Open]
            }
        }
    }
}

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its kind.
    pub kind: NoticeKind,
    /// Title line.
    pub summary: String,
    /// Body text.
    pub body: String,
}

/// What the policy remembers between observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    said: BTreeSet<String>,
    last_at: BTreeMap<NoticeKind, i64>,
    lost_notified: bool,
}

fn reset_time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| format!(" It resets at {} UTC.", t.format("%Y-%m-%d %H:%M")))
        .unwrap_or_default()
}

/// Decides whether `obs` at `now_ms` deserves a notification; returns the new state and the notice.
pub fn decide(
    state: &PolicyState,
    settings: &NotifySettings,
    obs: &Observation,
    now_ms: i64,
) -> (PolicyState, Option<Notice>) {
    let mut next = state.clone();
    let candidate: Option<(String, Notice)> = match obs {
        Observation::SessionStarted => {
            next.said.clear();
            next.lost_notified = false;
            None
        }
        Observation::Warning(w) => Some(match w.kind {
            WarningKind::CreditsLow => (
                format!("credits_low:{}", w.threshold),
                Notice {
                    kind: NoticeKind::CreditsLow,
                    summary: "OrbNET credits low".into(),
                    body: format!("{} Top up to stay connected.", w.message),
                },
            ),
            WarningKind::QuotaHigh => (
                format!(
                    "quota:{}:{}:{}",
                    w.message,
                    w.resets_at_ms.unwrap_or(0),
                    w.threshold
                ),
                Notice {
                    kind: NoticeKind::Quota,
                    summary: "tunnelbyte quota".into(),
                    body: format!("{}{}", w.message, reset_time(w.resets_at_ms)),
                },
            ),
            WarningKind::CapNear | WarningKind::CapStop => (
                format!("cap:{:?}:{}", w.kind, w.message),
                Notice {
                    kind: NoticeKind::Quota,
                    summary: "Spend cap".into(),
                    body: format!("{}{}", w.message, reset_time(w.resets_at_ms)),
                },
            ),
        }),
        Observation::CreditsDepleted => Some((
            "credits_depleted".into(),
            Notice {
                kind: NoticeKind::CreditsDepleted,
                summary: "OrbNET credits depleted".into(),
                body: "The session was ended because your credits ran out. Top up, then connect again."
                    .into(),
            },
        )),
        Observation::Quota {
            label,
            fraction,
            resets_at_ms,
        } => {
            (*fraction >= 1.0).then(|| {
                (
                    format!("quota:{label}:{}:exceeded", resets_at_ms.unwrap_or(0)),
                    Notice {
                        kind: NoticeKind::Quota,
                        summary: "tunnelbyte quota exceeded".into(),
                        body: format!("{label} quota used up.{}", reset_time(*resets_at_ms)),
                    },
                )
            })
        }
        Observation::SessionEnded { reason } => Some((
            format!("session_ended:{reason}"),
            Notice {
                kind: NoticeKind::SessionEnded,
                summary: "Session ended by the service".into(),
                body: format!("Reason: {reason}."),
            },
        )),
        Observation::ConnectionLost => Some((
            format!("lost:{now_ms}"),
            Notice {
                kind: NoticeKind::Connection,
                summary: "Connection lost".into(),
                body: "Ferry is trying to reconnect.".into(),
            },
        )),
        Observation::ConnectionRestored => {
            if state.lost_notified {
                next.lost_notified = false;
                Some((
                    format!("restored:{now_ms}"),
                    Notice {
                        kind: NoticeKind::Connection,
                        summary: "Connection restored".into(),
                        body: "You are connected again.".into(),
                    },
                ))
            } else {
                None
            }
        }
        Observation::WorkspaceSessionEnded { id, workspace } => Some((
            format!("workspace:{id}"),
            Notice {
                kind: NoticeKind::WorkspaceEnded,
                summary: "Workspace session ended".into(),
                body: format!("Your session on {workspace} was ended elsewhere."),
            },
        )),
    };
    let Some((key, notice)) = candidate else {
        return (next, None);
    };
    let kind = notice.kind;
    if !kind.enabled(settings) || next.said.contains(&key) {
        return (next, None);
    }
    // Restored is never throttled away once "lost" was shown, so the user is not left worried.
    let is_restored = matches!(obs, Observation::ConnectionRestored);
    if let Some(last) = next.last_at.get(&kind) {
        if !is_restored && now_ms - last < kind.min_interval_ms() {
            return (next, None);
        }
    }
    if matches!(obs, Observation::ConnectionLost) {
        next.lost_notified = true;
    }
    next.said.insert(key);
    next.last_at.insert(kind, now_ms);
    (next, Some(notice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_while_metering_offer_disconnect_and_every_notice_opens_ferry() {
        for kind in [
            NoticeKind::CreditsLow,
            NoticeKind::Quota,
            NoticeKind::Connection,
        ] {
            assert_eq!(
                kind.actions(),
                [NoticeAction::Open, NoticeAction::Disconnect]
            );
        }
        for kind in [
            NoticeKind::CreditsDepleted,
            NoticeKind::SessionEnded,
            NoticeKind::WorkspaceEnded,
        ] {
            assert_eq!(
                kind.actions(),
                [NoticeAction::Open],
                "{kind:?}: nothing to end"
            );
        }
        for a in [NoticeAction::Open, NoticeAction::Disconnect] {
            assert_eq!(NoticeAction::from_key(a.key()), Some(a));
        }
        assert_eq!(NoticeAction::Open.key(), "default", "a click opens Ferry");
        assert_eq!(NoticeAction::from_key("snooze"), None);
    }
    use crate::contract::Settings;

    fn settings() -> NotifySettings {
        Settings::default().notify
    }

    /// Runs observations in order and returns the summaries shown (or "-" for none).
    fn run(s: &NotifySettings, steps: &[(i64, Observation)]) -> Vec<String> {
        let mut st = PolicyState::default();
        steps
            .iter()
            .map(|(t, o)| {
                let (n, notice) = decide(&st, s, o, *t);
                st = n;
                notice.map(|x| x.summary).unwrap_or_else(|| "-".into())
            })
            .collect()
    }

    fn low(minutes: f64) -> Observation {
        Observation::Warning(WarningView {
            kind: WarningKind::CreditsLow,
            threshold: minutes,
            message: format!("OrbNET credits run out in about {minutes} min at this rate."),
            resets_at_ms: None,
        })
    }

    fn quota_warning(percent: f64, resets: i64) -> Observation {
        Observation::Warning(WarningView {
            kind: WarningKind::QuotaHigh,
            threshold: percent,
            message: format!("{percent}% of the tunnelbyte data quota is used."),
            resets_at_ms: Some(resets),
        })
    }

    fn quota(fraction: f64, resets: i64) -> Observation {
        Observation::Quota {
            label: "Data".into(),
            fraction,
            resets_at_ms: Some(resets),
        }
    }

    #[test]
    fn core_warnings_notify_once_each_per_session() {
        let got = run(
            &settings(),
            &[
                (0, low(10.0)),
                (1, low(10.0)),
                (2, low(2.0)),
                (3, Observation::CreditsDepleted),
                (4, Observation::CreditsDepleted),
                (5, Observation::SessionStarted),
                (6, low(10.0)),
            ],
        );
        let low = "OrbNET credits low";
        let dep = "OrbNET credits depleted";
        assert_eq!(got, [low, "-", low, dep, "-", "-", low]);
    }

    #[test]
    fn quota_warnings_with_reset_time_then_exceeded_once() {
        let reset = 1_700_000_000_000;
        let got = run(
            &settings(),
            &[
                (0, quota(0.5, reset)),
                (1, quota_warning(80.0, reset)),
                (2, quota_warning(80.0, reset)),
                (3, quota_warning(95.0, reset)),
                (4, quota(1.0, reset)),
                (5, quota(1.2, reset)),
                (6, quota_warning(80.0, reset + 86_400_000)),
            ],
        );
        let q = "tunnelbyte quota";
        assert_eq!(got, ["-", q, "-", q, "tunnelbyte quota exceeded", "-", q]);
        let (_, n) = decide(&PolicyState::default(), &settings(), &quota(1.0, reset), 0);
        assert!(n.unwrap().body.contains("resets at 2023-11-14 22:13 UTC"));
    }

    #[test]
    fn each_kind_can_be_switched_off() {
        type SwitchOff = fn(&mut NotifySettings);
        let table: [(Observation, SwitchOff); 6] = [
            (low(10.0), |s| s.credits_low = false),
            (Observation::CreditsDepleted, |s| s.credits_depleted = false),
            (quota_warning(80.0, 0), |s| s.quota = false),
            (
                Observation::SessionEnded {
                    reason: "timeout".into(),
                },
                |s| s.session_ended = false,
            ),
            (Observation::ConnectionLost, |s| s.connection = false),
            (
                Observation::WorkspaceSessionEnded {
                    id: "s1".into(),
                    workspace: "Dev".into(),
                },
                |s| s.workspace_ended = false,
            ),
        ];
        for (obs, off) in table {
            let on = settings();
            assert!(
                decide(&PolicyState::default(), &on, &obs, 0).1.is_some(),
                "{obs:?} on"
            );
            let mut s = settings();
            off(&mut s);
            assert!(
                decide(&PolicyState::default(), &s, &obs, 0).1.is_none(),
                "{obs:?} off"
            );
        }
    }

    #[test]
    fn connection_flapping_is_throttled_and_restored_follows_lost() {
        let got = run(
            &settings(),
            &[
                (0, Observation::ConnectionRestored),
                (1_000, Observation::ConnectionLost),
                (2_000, Observation::ConnectionRestored),
                (3_000, Observation::ConnectionLost),
                (4_000, Observation::ConnectionRestored),
                (70_000, Observation::ConnectionLost),
                (71_000, Observation::ConnectionRestored),
            ],
        );
        assert_eq!(
            got,
            [
                "-",
                "Connection lost",
                "Connection restored",
                "-",
                "-",
                "Connection lost",
                "Connection restored"
            ]
        );
    }

    #[test]
    fn server_end_and_workspace_end_are_deduplicated() {
        let ended = Observation::SessionEnded {
            reason: "idle".into(),
        };
        let ws = |id: &str| Observation::WorkspaceSessionEnded {
            id: id.into(),
            workspace: "Dev".into(),
        };
        let got = run(
            &settings(),
            &[
                (0, ended.clone()),
                (1, ended),
                (2, ws("a")),
                (3, ws("a")),
                (10_000, ws("b")),
            ],
        );
        assert_eq!(
            got,
            [
                "Session ended by the service",
                "-",
                "Workspace session ended",
                "-",
                "Workspace session ended"
            ]
        );
    }
}
