//! The connection state machine: `step(state, input, now) -> (state, actions)`. Pure; the
//! supervisor executes the actions and feeds their results back as inputs.

use std::net::SocketAddr;

use serde::Serialize;

use crate::clock::BootInstant;
use crate::meter::credits_driver::DisconnectReason;

/// How many times a lost connection is re-established before giving up.
pub const MAX_RECONNECTS: u32 = 3;

/// The list of other regions the server offered, for the message (empty when none).
fn alternatives_hint(a: &[String]) -> String {
    if a.is_empty() {
        String::new()
    } else {
        format!("; regions with capacity: {}", a.join(", "))
    }
}

/// Why a session failed or was ended, typed so the CLI can map it to an exit code and the UI to
/// a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ErrorCause {
    /// Not enough OrbNET credits to connect.
    #[error("not enough credits to connect: {0}")]
    CreditsExhausted(String),
    /// A tunnelbyte quota window is used up.
    #[error("quota exhausted: {0}")]
    QuotaExhausted(String),
    /// The region has no node; `alternatives` are the region ids the service suggests instead.
    #[error("region unavailable: {message}{}", alternatives_hint(.alternatives))]
    RegionUnavailable {
        /// The service's words.
        message: String,
        /// Other region ids of the same service that the server offered (may be empty).
        alternatives: Vec<String>,
    },
    /// Another session is active on the account and is not ours to end.
    #[error("{0}")]
    SessionConflict(String),
    /// Credits ran out while connected.
    #[error("credits depleted: the server ended the session")]
    CreditsDepleted,
    /// The server ended the session while connected.
    #[error("the server ended the session: {0}")]
    TerminatedByServer(String),
    /// The tunnel could not be brought up or died.
    #[error("tunnel failed: {0}")]
    Tunnel(String),
    /// System mode needs rights this process lacks (CAP_NET_ADMIN); retrying will not help.
    #[error("routing all traffic needs administrator rights: {0}")]
    NoPrivileges(String),
    /// A service call failed.
    #[error("service error: {0}")]
    Service(String),
    /// Ferry ended the session (or refused it) because a spend cap would have been passed.
    #[error("{cap} reached; {resets}")]
    CapReached {
        /// Which cap, in words ("day cap of 5 credits").
        cap: String,
        /// When it resets, in words ("resets at 2026-12-07 00:00 CET", "reset n/a ...").
        resets: String,
        /// When it resets (`None` for a session cap).
        resets_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Refused before the session started (exit 2) rather than ended by the cap (exit 4).
        at_start: bool,
    },
}

impl ErrorCause {
    /// Whether retrying may help (network and tunnel trouble, not money or conflicts).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Tunnel(_) | Self::Service(_))
    }

    /// The `ferry connect` exit code: 2 exhausted at start, 3 ended by the server or depleted
    /// credits while running, 4 ended by a spend cap (2 when a cap refused the start), 1 any other
    /// error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CreditsExhausted(_) | Self::QuotaExhausted(_) => 2,
            Self::CreditsDepleted | Self::TerminatedByServer(_) => 3,
            Self::CapReached { at_start: true, .. } => 2,
            Self::CapReached { .. } => 4,
            _ => 1,
        }
    }

    /// The OrbNET `disconnect_reason` to end a session with for this cause.
    pub fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            Self::CreditsDepleted | Self::CreditsExhausted(_) => DisconnectReason::CreditsDepleted,
            Self::TerminatedByServer(_) => DisconnectReason::Timeout,
            Self::CapReached { .. } => DisconnectReason::UserInitiated,
            _ => DisconnectReason::Error,
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Nothing running.
    Disconnected,
    /// Bringing the tunnel up and starting the server session.
    Connecting,
    /// Tunnel up, server session started, meter running.
    Connected {
        /// Boot-clock time of the connection (ms).
        #[serde(skip)]
        since: BootInstant,
    },
    /// The connection was lost; establishing it again.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Tearing down; then `Disconnected`, or `Error` when a cause is kept.
    Disconnecting {
        /// The error state to settle in after the teardown, if any.
        then: Option<ErrorCause>,
    },
    /// Stopped because of this cause.
    Error {
        /// The cause.
        cause: ErrorCause,
    },
    /// The machine is about to sleep: the session is being ended and the tunnel taken down
    /// (logind waits for this behind Ferry's delay inhibitor).
    Suspending {
        /// Connect again on resume (the user was connected or connecting, and has not
        /// disconnected since).
        resume: bool,
        /// The resume already happened (the teardown was slower than the sleep).
        woke: bool,
    },
    /// Asleep with nothing running; a new session starts on resume.
    Asleep,
}

/// What happened: a user command or the result of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The user asked to connect.
    Connect,
    /// The tunnel had its first handshake and the server session started.
    Established,
    /// Bringing the connection up failed.
    ConnectFailed(ErrorCause),
    /// The connection was lost but may come back (tunnel died, server forgot the session).
    Lost(String),
    /// The server ended the session for good (credits depleted, terminated, quota).
    Ended(ErrorCause),
    /// The user asked to disconnect.
    Disconnect,
    /// The teardown finished.
    TornDown,
    /// The machine is about to sleep (logind's `PrepareForSleep(true)`).
    Sleep,
    /// The machine resumed, and the session (if any) did not sleep through it.
    Wake,
    /// The machine resumed and the running session slept through it unprepared (no logind, or
    /// the inhibitor was not honoured): end it with its awake time and start a new one.
    Slept,
    /// The default route changed (new network): move the session to a new tunnel.
    NetworkChanged,
}

/// What the supervisor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bring the tunnel up and start the server session; answer with `Established` or
    /// `ConnectFailed`.
    BringUp,
    /// Start metering the established session.
    StartMeter,
    /// Stop metering and end the server session with this reason.
    StopMeter(DisconnectReason),
    /// Tear down whatever is up (also aborts a connection in progress); answer `TornDown`.
    TearDown,
    /// Re-establish after a loss: tear down, then bring up again.
    Reconnect {
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Replace the tunnel, keeping the server session and its meter (after a network change);
    /// a service that cannot answers `Lost`, and the session is ended before a new one starts.
    RenewTunnel,
}

impl State {
    /// Whether the meter runs in this state (only when connected).
    pub fn meters(&self) -> bool {
        matches!(self, State::Connected { .. })
    }

    /// A short name for status lines and logs.
    pub fn name(&self) -> &'static str {
        match self {
            State::Disconnected => "disconnected",
            State::Connecting => "connecting",
            State::Connected { .. } => "connected",
            State::Reconnecting { .. } => "reconnecting",
            State::Disconnecting { .. } => "disconnecting",
            State::Error { .. } => "error",
            State::Suspending { .. } => "suspending",
            State::Asleep => "asleep",
        }
    }
}

/// How the connection's tunnel is brought up, as far as the network policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum TunnelMode {
    /// App mode: a local proxy; the system's routes are never touched, so nothing is blocked.
    App,
    /// System mode: a TUN device carries all traffic.
    System {
        /// The WireGuard endpoint of the connection, once known (it comes with the server's
        /// config, so `None` before the first connection's config arrived).
        endpoint: Option<SocketAddr>,
    },
}

/// What the network must allow in a state: the data a kill switch (or any other enforcer)
/// applies. It is about other programs' traffic; Ferry's own API calls are the enforcer's to
/// exempt (for example by the tunnel's fwmark), since the machine does not know those hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Nothing special: traffic goes wherever the routes send it.
    Open,
    /// No tunnel carries traffic yet (or any more) but one is wanted: block everything except
    /// the WireGuard endpoint, so nothing leaks while connecting, reconnecting or after a
    /// failure, until the user disconnects.
    TunnelEndpointOnly {
        /// The endpoint to let through; `None` when not known yet (then nothing is let through).
        endpoint: Option<SocketAddr>,
    },
    /// Connected: traffic may leave only through the tunnel.
    TunnelOnly,
}

impl State {
    /// What the network must allow in this state. In app mode every state is
    /// [`NetworkPolicy::Open`]. In system mode: `Connected` is [`NetworkPolicy::TunnelOnly`];
    /// `Connecting`, `Reconnecting`, `Error`, a `Disconnecting` that ends in an error, and a
    /// sleep the tunnel comes back from (`Suspending` to resume, `Asleep`) are
    /// [`NetworkPolicy::TunnelEndpointOnly`] (fail closed until the user disconnects);
    /// `Disconnected` and a user's `Disconnecting` are [`NetworkPolicy::Open`].
    pub fn network_policy(&self, mode: TunnelMode) -> NetworkPolicy {
        let TunnelMode::System { endpoint } = mode else {
            return NetworkPolicy::Open;
        };
        match self {
            State::Disconnected
            | State::Disconnecting { then: None }
            | State::Suspending { resume: false, .. } => NetworkPolicy::Open,
            // The tunnel comes back on resume: nothing leaks before it does.
            State::Suspending { resume: true, .. } | State::Asleep => {
                NetworkPolicy::TunnelEndpointOnly { endpoint }
            }
            State::Connected { .. } => NetworkPolicy::TunnelOnly,
            State::Connecting
            | State::Reconnecting { .. }
            | State::Disconnecting { then: Some(_) }
            | State::Error { .. } => NetworkPolicy::TunnelEndpointOnly { endpoint },
        }
    }
}

/// One transition. Inputs that do not apply to a state leave it unchanged with no actions.
pub fn step(state: &State, input: Input, now: BootInstant) -> (State, Vec<Action>) {
    use Action as A;
    use Input as I;
    use State as S;
    let unchanged = || (state.clone(), Vec::new());
    match (state, input) {
        (S::Disconnected | S::Error { .. }, I::Connect) => (S::Connecting, vec![A::BringUp]),
        (S::Connecting | S::Reconnecting { .. }, I::Established) => {
            (S::Connected { since: now }, vec![A::StartMeter])
        }
        (S::Connecting, I::ConnectFailed(cause)) => {
            (S::Disconnecting { then: Some(cause) }, vec![A::TearDown])
        }
        (S::Reconnecting { attempt }, I::ConnectFailed(cause)) => {
            if cause.is_transient() && *attempt < MAX_RECONNECTS {
                let attempt = attempt + 1;
                (S::Reconnecting { attempt }, vec![A::Reconnect { attempt }])
            } else {
                (S::Disconnecting { then: Some(cause) }, vec![A::TearDown])
            }
        }
        (S::Connected { .. }, I::Lost(_)) => (
            S::Reconnecting { attempt: 1 },
            vec![
                A::StopMeter(DisconnectReason::Error),
                A::Reconnect { attempt: 1 },
            ],
        ),
        (S::Connected { .. }, I::Ended(cause)) => {
            let reason = cause.disconnect_reason();
            (
                S::Disconnecting { then: Some(cause) },
                vec![A::StopMeter(reason), A::TearDown],
            )
        }
        (S::Connecting | S::Reconnecting { .. }, I::Ended(cause)) => {
            (S::Disconnecting { then: Some(cause) }, vec![A::TearDown])
        }
        (S::Connected { .. }, I::Disconnect) => (
            S::Disconnecting { then: None },
            vec![A::StopMeter(DisconnectReason::UserInitiated), A::TearDown],
        ),
        (S::Connecting | S::Reconnecting { .. }, I::Disconnect) => {
            (S::Disconnecting { then: None }, vec![A::TearDown])
        }
        (S::Disconnecting { .. }, I::Disconnect) => (S::Disconnecting { then: None }, vec![]),
        (S::Disconnecting { then }, I::TornDown) => match then {
            Some(cause) => (
                S::Error {
                    cause: cause.clone(),
                },
                vec![],
            ),
            None => (S::Disconnected, vec![]),
        },
        (S::Error { .. }, I::Disconnect) => (S::Disconnected, vec![]),
        // Sleep: end the session and take the tunnel down before the machine sleeps.
        (S::Connected { .. }, I::Sleep) => (
            S::Suspending {
                resume: true,
                woke: false,
            },
            vec![A::StopMeter(DisconnectReason::Sleep), A::TearDown],
        ),
        (S::Connecting | S::Reconnecting { .. }, I::Sleep) => (
            S::Suspending {
                resume: true,
                woke: false,
            },
            vec![A::TearDown],
        ),
        (S::Suspending { resume, .. }, I::Wake | I::Slept) => (
            S::Suspending {
                resume: *resume,
                woke: true,
            },
            vec![],
        ),
        (S::Suspending { woke, .. }, I::Disconnect) => (
            S::Suspending {
                resume: false,
                woke: *woke,
            },
            vec![],
        ),
        (S::Suspending { woke, .. }, I::Connect) => (
            S::Suspending {
                resume: true,
                woke: *woke,
            },
            vec![],
        ),
        (S::Suspending { resume, woke }, I::TornDown) => match (resume, woke) {
            (false, _) => (S::Disconnected, vec![]),
            (true, false) => (S::Asleep, vec![]),
            (true, true) => (S::Connecting, vec![A::BringUp]),
        },
        // Resume: a new session, as a new connection.
        (S::Asleep, I::Wake | I::Slept | I::Connect) => (S::Connecting, vec![A::BringUp]),
        (S::Asleep, I::Disconnect) => (S::Disconnected, vec![]),
        // A new network: the same session on a new tunnel, where the service allows it.
        (S::Connected { since }, I::NetworkChanged) => {
            (S::Connected { since: *since }, vec![A::RenewTunnel])
        }
        // Slept unprepared: end the session (its awake time only) and start a new one.
        (S::Connected { .. }, I::Slept) => (
            S::Reconnecting { attempt: 1 },
            vec![
                A::StopMeter(DisconnectReason::Sleep),
                A::Reconnect { attempt: 1 },
            ],
        ),
        _ => unchanged(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: BootInstant = BootInstant::from_millis(42);

    fn connected() -> State {
        State::Connected { since: T }
    }

    #[test]
    fn transition_table() {
        use Action as A;
        use Input as I;
        use State as S;
        let tunnel = ErrorCause::Tunnel("no handshake".into());
        let depleted = ErrorCause::CreditsDepleted;
        let cases: Vec<(S, I, S, Vec<A>)> = vec![
            (S::Disconnected, I::Connect, S::Connecting, vec![A::BringUp]),
            (
                S::Connecting,
                I::Established,
                connected(),
                vec![A::StartMeter],
            ),
            (
                S::Connecting,
                I::ConnectFailed(tunnel.clone()),
                S::Disconnecting {
                    then: Some(tunnel.clone()),
                },
                vec![A::TearDown],
            ),
            (
                connected(),
                I::Disconnect,
                S::Disconnecting { then: None },
                vec![A::StopMeter(DisconnectReason::UserInitiated), A::TearDown],
            ),
            (
                connected(),
                I::Ended(depleted.clone()),
                S::Disconnecting {
                    then: Some(depleted.clone()),
                },
                vec![A::StopMeter(DisconnectReason::CreditsDepleted), A::TearDown],
            ),
            (
                connected(),
                I::Lost("tunnel died".into()),
                S::Reconnecting { attempt: 1 },
                vec![
                    A::StopMeter(DisconnectReason::Error),
                    A::Reconnect { attempt: 1 },
                ],
            ),
            (
                S::Reconnecting { attempt: 1 },
                I::ConnectFailed(tunnel.clone()),
                S::Reconnecting { attempt: 2 },
                vec![A::Reconnect { attempt: 2 }],
            ),
            (
                S::Reconnecting {
                    attempt: MAX_RECONNECTS,
                },
                I::ConnectFailed(tunnel.clone()),
                S::Disconnecting {
                    then: Some(tunnel.clone()),
                },
                vec![A::TearDown],
            ),
            (
                S::Reconnecting { attempt: 1 },
                I::ConnectFailed(ErrorCause::CreditsExhausted("0".into())),
                S::Disconnecting {
                    then: Some(ErrorCause::CreditsExhausted("0".into())),
                },
                vec![A::TearDown],
            ),
            (
                S::Reconnecting { attempt: 2 },
                I::Established,
                connected(),
                vec![A::StartMeter],
            ),
            (
                S::Disconnecting {
                    then: Some(depleted.clone()),
                },
                I::TornDown,
                S::Error {
                    cause: depleted.clone(),
                },
                vec![],
            ),
            (
                S::Disconnecting { then: None },
                I::TornDown,
                S::Disconnected,
                vec![],
            ),
            (
                S::Error {
                    cause: depleted.clone(),
                },
                I::Connect,
                S::Connecting,
                vec![A::BringUp],
            ),
            (
                S::Error {
                    cause: depleted.clone(),
                },
                I::Disconnect,
                S::Disconnected,
                vec![],
            ),
            (S::Disconnected, I::Established, S::Disconnected, vec![]),
            (connected(), I::Connect, connected(), vec![]),
            // Sleep with logind: end the session and go down, come back as a new session.
            (
                connected(),
                I::Sleep,
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                vec![A::StopMeter(DisconnectReason::Sleep), A::TearDown],
            ),
            (
                S::Reconnecting { attempt: 2 },
                I::Sleep,
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                vec![A::TearDown],
            ),
            (
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                I::TornDown,
                S::Asleep,
                vec![],
            ),
            (S::Asleep, I::Wake, S::Connecting, vec![A::BringUp]),
            (S::Asleep, I::Disconnect, S::Disconnected, vec![]),
            (
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                I::Wake,
                S::Suspending {
                    resume: true,
                    woke: true,
                },
                vec![],
            ),
            (
                S::Suspending {
                    resume: true,
                    woke: true,
                },
                I::TornDown,
                S::Connecting,
                vec![A::BringUp],
            ),
            (
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                I::Disconnect,
                S::Suspending {
                    resume: false,
                    woke: false,
                },
                vec![],
            ),
            (
                S::Suspending {
                    resume: false,
                    woke: false,
                },
                I::TornDown,
                S::Disconnected,
                vec![],
            ),
            // Nothing to do for a sleep while disconnected, or a wake that was not slept through.
            (S::Disconnected, I::Sleep, S::Disconnected, vec![]),
            (connected(), I::Wake, connected(), vec![]),
            (
                connected(),
                I::NetworkChanged,
                connected(),
                vec![A::RenewTunnel],
            ),
            (S::Connecting, I::NetworkChanged, S::Connecting, vec![]),
            // Slept without logind: the gap is found on resume.
            (
                connected(),
                I::Slept,
                S::Reconnecting { attempt: 1 },
                vec![
                    A::StopMeter(DisconnectReason::Sleep),
                    A::Reconnect { attempt: 1 },
                ],
            ),
        ];
        for (from, input, to, actions) in cases {
            let (s, a) = step(&from, input.clone(), T);
            assert_eq!((&s, &a), (&to, &actions), "{from:?} + {input:?}");
        }
    }

    #[test]
    fn network_policy_of_every_state() {
        use NetworkPolicy as P;
        use State as S;
        let ep: SocketAddr = "198.51.100.7:51820".parse().unwrap();
        let system = TunnelMode::System { endpoint: Some(ep) };
        let unknown = TunnelMode::System { endpoint: None };
        let only_ep = P::TunnelEndpointOnly { endpoint: Some(ep) };
        let cause = ErrorCause::CreditsDepleted;
        // (state, system mode with a known endpoint, system mode before the endpoint is known)
        let cases: Vec<(S, P, P)> = vec![
            (S::Disconnected, P::Open, P::Open),
            (
                S::Connecting,
                only_ep,
                P::TunnelEndpointOnly { endpoint: None },
            ),
            (connected(), P::TunnelOnly, P::TunnelOnly),
            (
                S::Reconnecting { attempt: 2 },
                only_ep,
                P::TunnelEndpointOnly { endpoint: None },
            ),
            (S::Disconnecting { then: None }, P::Open, P::Open),
            (
                S::Disconnecting {
                    then: Some(cause.clone()),
                },
                only_ep,
                P::TunnelEndpointOnly { endpoint: None },
            ),
            (
                S::Error { cause },
                only_ep,
                P::TunnelEndpointOnly { endpoint: None },
            ),
            // Asleep with a tunnel to come back to: nothing leaks on resume before it does.
            (S::Asleep, only_ep, P::TunnelEndpointOnly { endpoint: None }),
            (
                S::Suspending {
                    resume: true,
                    woke: false,
                },
                only_ep,
                P::TunnelEndpointOnly { endpoint: None },
            ),
            (
                S::Suspending {
                    resume: false,
                    woke: false,
                },
                P::Open,
                P::Open,
            ),
        ];
        for (state, sys, sys_unknown) in cases {
            assert_eq!(state.network_policy(TunnelMode::App), P::Open, "{state:?}");
            assert_eq!(state.network_policy(system), sys, "{state:?}");
            assert_eq!(state.network_policy(unknown), sys_unknown, "{state:?}");
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ErrorCause::QuotaExhausted("x".into()).exit_code(), 2);
        assert_eq!(ErrorCause::CreditsExhausted("x".into()).exit_code(), 2);
        assert_eq!(ErrorCause::CreditsDepleted.exit_code(), 3);
        assert_eq!(ErrorCause::TerminatedByServer("idle".into()).exit_code(), 3);
        assert_eq!(ErrorCause::Tunnel("x".into()).exit_code(), 1);
    }

    fn cause() -> impl Strategy<Value = ErrorCause> {
        prop_oneof![
            Just(ErrorCause::CreditsDepleted),
            Just(ErrorCause::Tunnel("t".into())),
            Just(ErrorCause::NoPrivileges("p".into())),
            Just(ErrorCause::Service("s".into())),
            Just(ErrorCause::QuotaExhausted("q".into())),
            Just(ErrorCause::TerminatedByServer("idle".into())),
        ]
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(Input::Connect),
            Just(Input::Established),
            cause().prop_map(Input::ConnectFailed),
            Just(Input::Lost("x".into())),
            cause().prop_map(Input::Ended),
            Just(Input::Disconnect),
            Just(Input::TornDown),
            Just(Input::Sleep),
            Just(Input::Wake),
            Just(Input::Slept),
            Just(Input::NetworkChanged),
        ]
    }

    proptest! {
        /// Whatever happened before: Disconnect, then the teardown's completion, ends in
        /// Disconnected; and the meter runs exactly while the state is Connected.
        #[test]
        fn disconnect_always_reaches_disconnected_and_meter_only_in_connected(
            inputs in proptest::collection::vec(input(), 0..60)
        ) {
            let mut state = State::Disconnected;
            let mut meter_running = false;
            let apply = |state: &State, input: Input, meter_running: &mut bool| {
                let (next, actions) = step(state, input, T);
                for a in &actions {
                    match a {
                        Action::StartMeter => {
                            assert!(!*meter_running, "meter started twice");
                            *meter_running = true;
                        }
                        Action::StopMeter(_) => {
                            assert!(*meter_running, "meter stopped while not running");
                            *meter_running = false;
                        }
                        _ => {}
                    }
                }
                next
            };
            for i in inputs {
                state = apply(&state, i, &mut meter_running);
                prop_assert_eq!(meter_running, state.meters(), "state {:?}", state);
            }
            let s1 = apply(&state, Input::Disconnect, &mut meter_running);
            prop_assert!(!meter_running);
            let s2 = if s1 == State::Disconnected { s1 } else {
                apply(&s1, Input::TornDown, &mut meter_running)
            };
            prop_assert_eq!(s2, State::Disconnected);
        }
    }
}
