//! The supervisor: one task that owns the connection, runs [`step`] on every input and executes
//! the actions through a [`Provider`] (the service-specific part), publishing [`SessionEvent`]s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, info_span, warn, Instrument};

use super::event::SessionEvent;
use super::machine::{step, Action, ErrorCause, Input, State};
use super::sleep::{slept_through, SleepGuard, SleepSignal, SleepSignals};
use crate::clock::SharedClock;
use crate::meter::credits_driver::DisconnectReason;

/// Where providers publish events.
pub type EventSink = broadcast::Sender<SessionEvent>;

/// How a provider's metering ended by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterEnd {
    /// It was told to stop.
    Stopped,
    /// The server ended the session for good.
    Ended(ErrorCause),
    /// The connection was lost and may be re-established.
    Lost(String),
}

/// Tells a provider's [`Provider::establish`] that the attempt was given up on (the user
/// disconnected while connecting). Cancellation is cooperative: the supervisor never drops an
/// attempt half-way, so whatever the attempt created on the server is ended by the attempt.
#[derive(Debug, Clone)]
pub struct Cancel(Option<watch::Receiver<bool>>);

impl Cancel {
    /// A cancel signal and its trigger (send `true`; dropping the sender cancels too).
    pub fn pair() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(Some(rx)))
    }

    /// A signal that never fires (direct calls, tests).
    pub fn never() -> Self {
        Self(None)
    }

    /// Whether the attempt was given up on.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|rx| *rx.borrow() || rx.has_changed().is_err())
    }

    /// The error a cancelled attempt returns (the supervisor ignores it).
    pub fn error() -> ErrorCause {
        ErrorCause::Service("the connection attempt was cancelled".into())
    }

    /// Resolves once the attempt is given up on (never for [`Cancel::never`]).
    pub async fn cancelled(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                let _ = rx.wait_for(|c| *c).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// How long a teardown waits for a cancelled attempt to clean up (its requests are bounded by
/// the HTTP timeouts) before aborting it.
pub const CANCEL_GRACE: Duration = Duration::from_secs(120);

/// The service-specific half of a connection (OrbNET credits, tunnelbyte quota).
pub trait Provider: Send + Sync + 'static {
    /// What is up once established (tunnel handle, server session).
    type Live: Send + Sync + 'static;
    /// Brings the tunnel up, waits for its first handshake and starts the server session.
    /// On failure it cleans up what it brought up. When `cancel` fires it stops at the next
    /// safe point, ends any server session it created, closes its history row and returns an
    /// error (which the supervisor then ignores).
    fn establish(
        &self,
        events: EventSink,
        cancel: Cancel,
    ) -> impl Future<Output = Result<Self::Live, ErrorCause>> + Send;
    /// Ends a connection that was established but never metered (given up on just as it came
    /// up): ends the server session, closes the history row, brings the tunnel down and sends
    /// [`SessionEvent::SessionEnded`] (a front end sees every server session end).
    fn abandon(&self, live: Arc<Self::Live>, events: EventSink) -> impl Future<Output = ()> + Send;
    /// Meters the live session until `stop` carries a reason (then ends the server session
    /// with it) or until the server ends it.
    fn meter(
        &self,
        live: Arc<Self::Live>,
        stop: watch::Receiver<Option<DisconnectReason>>,
        events: EventSink,
    ) -> impl Future<Output = MeterEnd> + Send;
    /// Resolves when the tunnel dies on its own, with a reason.
    fn tunnel_closed(&self, live: Arc<Self::Live>) -> impl Future<Output = String> + Send;
    /// Brings the tunnel down.
    fn tear_down(&self, live: Arc<Self::Live>) -> impl Future<Output = ()> + Send;
    /// After a network change: replaces the tunnel while the server session (and its meter)
    /// goes on. An error means it cannot (the default: not supported by the service); the
    /// connection is then treated as lost (its session ended, then a new one started).
    fn renew_tunnel(
        &self,
        live: Arc<Self::Live>,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = live;
        async { Err("this service's session cannot move to a new tunnel".to_string()) }
    }
}

/// Commands to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Connect.
    Connect,
    /// Disconnect.
    Disconnect,
}

/// The handle front ends hold.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: EventSink,
    state: watch::Receiver<State>,
}

impl SupervisorHandle {
    /// Asks to connect.
    pub fn connect(&self) {
        let _ = self.commands.send(Command::Connect);
    }

    /// Asks to disconnect.
    pub fn disconnect(&self) {
        let _ = self.commands.send(Command::Disconnect);
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// The current state, updated on every transition.
    pub fn state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }
}

/// Starts a supervisor task for `provider` that is told nothing about sleep (tests, front ends
/// without a session); it runs until every handle is dropped.
pub fn spawn<P: Provider>(provider: P, clock: SharedClock) -> (SupervisorHandle, JoinHandle<()>) {
    spawn_with_sleep(provider, clock, None)
}

/// Starts a supervisor task for `provider` that ends the session for sleep and starts a new one
/// on resume, as `sleep` reports (see [`crate::session::sleep`]); it runs until every handle is
/// dropped.
pub fn spawn_with_sleep<P: Provider>(
    provider: P,
    clock: SharedClock,
    sleep: Option<SleepSignals>,
) -> (SupervisorHandle, JoinHandle<()>) {
    spawn_watching(provider, clock, sleep, None)
}

/// Starts a supervisor task for `provider` told about sleep (see [`crate::session::sleep`]) and
/// about network changes (each message on `network` is a new default route: the session moves
/// to a new tunnel, see [`Provider::renew_tunnel`]); it runs until every handle is dropped.
pub fn spawn_watching<P: Provider>(
    provider: P,
    clock: SharedClock,
    sleep: Option<SleepSignals>,
    network: Option<mpsc::UnboundedReceiver<NetworkChange>>,
) -> (SupervisorHandle, JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(1024);
    let (state_tx, state_rx) = watch::channel(State::Disconnected);
    let sup = Supervisor {
        provider: Arc::new(provider),
        clock,
        events: events.clone(),
        state_tx,
        live: None,
        bring_up: None,
        meter: None,
        watcher: None,
        inputs: mpsc::unbounded_channel(),
        sleep,
        sleep_guard: None,
        asleep_at_connect: Duration::ZERO,
        network,
        renewal: None,
    };
    let task = tokio::spawn(sup.run(cmd_rx).instrument(info_span!("supervisor")));
    (
        SupervisorHandle {
            commands: cmd_tx,
            events,
            state: state_rx,
        },
        task,
    )
}

struct BringUp {
    cancel: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BringUp {
    /// Cancels the attempt and waits (bounded) until it has cleaned up.
    async fn cancel_and_wait(self) {
        let _ = self.cancel.send(true);
        let mut task = self.task;
        if tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_err() {
            warn!("a cancelled connection attempt did not finish in time; aborting it");
            task.abort();
        }
    }
}

struct RunningMeter {
    stop: watch::Sender<Option<DisconnectReason>>,
    task: JoinHandle<()>,
}

struct Supervisor<P: Provider> {
    provider: Arc<P>,
    clock: SharedClock,
    events: EventSink,
    state_tx: watch::Sender<State>,
    live: Option<Arc<P::Live>>,
    bring_up: Option<BringUp>,
    meter: Option<RunningMeter>,
    watcher: Option<JoinHandle<()>>,
    inputs: (
        mpsc::UnboundedSender<Msg<P>>,
        mpsc::UnboundedReceiver<Msg<P>>,
    ),
    /// Sleep and resume reports, when watched.
    sleep: Option<SleepSignals>,
    /// Held from `PrepareForSleep(true)` until nothing runs any more (then the machine sleeps).
    sleep_guard: Option<SleepGuard>,
    /// [`crate::clock::Clock::asleep`] when the state last became `Connected`.
    asleep_at_connect: Duration,
    /// Network changes, when watched.
    network: Option<mpsc::UnboundedReceiver<NetworkChange>>,
    /// The tunnel renewal in progress, if any.
    renewal: Option<JoinHandle<()>>,
}

/// A new default route (a Wi-Fi switch, a cable plugged in): what a route watcher reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkChange;

async fn next_network_change(
    network: &mut Option<mpsc::UnboundedReceiver<NetworkChange>>,
) -> Option<NetworkChange> {
    match network {
        Some(rx) => match rx.recv().await {
            Some(c) => Some(c),
            None => {
                *network = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Waits for a tunnel renewal to finish before a teardown, so it cannot bring a tunnel up
/// behind the teardown's back.
async fn finish_renewal(renewal: Option<JoinHandle<()>>) {
    if let Some(r) = renewal {
        let _ = r.await;
    }
}

async fn next_sleep_signal(sleep: &mut Option<SleepSignals>) -> Option<SleepSignal> {
    match sleep {
        Some(rx) => match rx.recv().await {
            Some(s) => Some(s),
            None => {
                // The sources are gone: stop polling them.
                *sleep = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

enum Msg<P: Provider> {
    Input(Input),
    Up(Arc<P::Live>),
    /// The tunnel was renewed; the session goes on.
    Renewed,
}

impl<P: Provider> Supervisor<P> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            let input = tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Connect) => Input::Connect,
                    Some(Command::Disconnect) => Input::Disconnect,
                    None => break,
                },
                Some(msg) = self.inputs.1.recv() => match msg {
                    Msg::Input(i) => i,
                    Msg::Up(live) => {
                        self.live = Some(live);
                        Input::Established
                    }
                    Msg::Renewed => {
                        self.renewal = None;
                        self.watch_tunnel();
                        continue;
                    }
                },
                Some(NetworkChange) = next_network_change(&mut self.network) => {
                    Input::NetworkChanged
                }
                Some(signal) = next_sleep_signal(&mut self.sleep) => match signal {
                    SleepSignal::Preparing(guard) => {
                        self.sleep_guard = Some(guard);
                        Input::Sleep
                    }
                    SleepSignal::Resumed => {
                        // Resumed: whatever was held for the sleep is of no use any more.
                        self.sleep_guard = None;
                        let connected = matches!(*self.state_tx.borrow(), State::Connected { .. });
                        if connected && slept_through(self.asleep_at_connect, self.clock.asleep()) {
                            Input::Slept
                        } else {
                            Input::Wake
                        }
                    }
                },
            };
            self.handle(input).await;
            self.release_sleep_when_idle();
        }
        // Every handle is gone: leave nothing running.
        self.handle(Input::Disconnect).await;
        while !matches!(
            *self.state_tx.borrow(),
            State::Disconnected | State::Error { .. }
        ) {
            match self.inputs.1.recv().await {
                Some(Msg::Input(i)) => self.handle(i).await,
                Some(Msg::Up(live)) => self.provider.abandon(live, self.events.clone()).await,
                Some(Msg::Renewed) => self.renewal = None,
                None => break,
            }
        }
    }

    /// Watches the live tunnel (again, after a renewal): its death is a loss.
    fn watch_tunnel(&mut self) {
        if !matches!(*self.state_tx.borrow(), State::Connected { .. }) {
            return;
        }
        let Some(live) = self.live.clone() else {
            return;
        };
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let (p, tx) = (self.provider.clone(), self.inputs.0.clone());
        self.watcher = Some(tokio::spawn(async move {
            let why = p.tunnel_closed(live).await;
            let _ = tx.send(Msg::Input(Input::Lost(why)));
        }));
    }

    /// Lets the machine sleep once nothing runs: no session, no tunnel, no attempt.
    fn release_sleep_when_idle(&mut self) {
        let idle = matches!(
            *self.state_tx.borrow(),
            State::Disconnected | State::Error { .. } | State::Asleep
        );
        if idle {
            if let Some(guard) = self.sleep_guard.take() {
                info!("ready for sleep");
                guard.release();
            }
        }
    }

    async fn handle(&mut self, input: Input) {
        let current = self.state_tx.borrow().clone();
        debug!(?input, state = current.name(), "input");
        let (next, actions) = step(&current, input.clone(), self.clock.now());
        if next != current {
            info!(from = current.name(), to = next.name(), "state");
            // Events first, then the state: a listener that stops at a final state has
            // already been sent every event that led to it.
            let _ = self.events.send(SessionEvent::State {
                state: next.clone(),
            });
            if let State::Error { cause } = &next {
                let _ = self.events.send(SessionEvent::Failed {
                    message: cause.to_string(),
                    cause: cause.clone(),
                });
            }
            if matches!(next, State::Connected { .. }) {
                self.asleep_at_connect = self.clock.asleep();
            }
            self.state_tx.send_replace(next.clone());
        } else if matches!(input, Input::Established) {
            // A connection that finished after the user gave up on it: end it before the
            // teardown's completion (queued behind this) can settle the state.
            if let Some(live) = self.live.take() {
                self.provider.abandon(live, self.events.clone()).await;
            }
        }
        for action in actions {
            self.execute(action);
        }
    }

    fn execute(&mut self, action: Action) {
        debug!(?action, "action");
        let tx = self.inputs.0.clone();
        let p = self.provider.clone();
        let events = self.events.clone();
        match action {
            Action::BringUp => {
                let (cancel_tx, cancel) = Cancel::pair();
                let task = tokio::spawn(async move {
                    if let Some(msg) = try_establish(&*p, events, cancel).await {
                        let _ = tx.send(msg);
                    }
                });
                self.bring_up = Some(BringUp {
                    cancel: cancel_tx,
                    task,
                });
            }
            Action::StartMeter => {
                let Some(live) = self.live.clone() else {
                    let _ = tx.send(Msg::Input(Input::Lost("no live connection".into())));
                    return;
                };
                let (stop, stop_rx) = watch::channel(None);
                let task = tokio::spawn(async move {
                    match p.meter(live, stop_rx, events).await {
                        MeterEnd::Stopped => {}
                        MeterEnd::Ended(cause) => {
                            let _ = tx.send(Msg::Input(Input::Ended(cause)));
                        }
                        MeterEnd::Lost(why) => {
                            let _ = tx.send(Msg::Input(Input::Lost(why)));
                        }
                    }
                });
                self.meter = Some(RunningMeter { stop, task });
                self.watch_tunnel();
            }
            Action::StopMeter(reason) => {
                if let Some(w) = self.watcher.take() {
                    w.abort();
                }
                if let Some(m) = &self.meter {
                    let _ = m.stop.send(Some(reason));
                }
            }
            Action::TearDown => {
                let (bring_up, meter, live) =
                    (self.bring_up.take(), self.meter.take(), self.live.take());
                let renewal = self.renewal.take();
                if let Some(w) = self.watcher.take() {
                    w.abort();
                }
                tokio::spawn(async move {
                    if let Some(b) = bring_up {
                        b.cancel_and_wait().await;
                    }
                    finish_renewal(renewal).await;
                    if let Some(m) = meter {
                        let _ = m.task.await;
                    }
                    if let Some(live) = live {
                        p.tear_down(live).await;
                    }
                    let _ = tx.send(Msg::Input(Input::TornDown));
                });
            }
            Action::RenewTunnel => {
                let Some(live) = self.live.clone() else {
                    return;
                };
                if self.renewal.is_some() {
                    debug!("a tunnel renewal is already running");
                    return;
                }
                // The old tunnel goes down on purpose: that is not a loss.
                if let Some(w) = self.watcher.take() {
                    w.abort();
                }
                let _ = events.send(SessionEvent::Notice {
                    message: "the network changed; moving the session to a new tunnel".into(),
                });
                self.renewal = Some(tokio::spawn(async move {
                    match p.renew_tunnel(live).await {
                        Ok(()) => {
                            let _ = tx.send(Msg::Renewed);
                        }
                        Err(why) => {
                            warn!(%why, "the session cannot move to a new tunnel");
                            let _ = tx.send(Msg::Input(Input::Lost(why)));
                        }
                    }
                }));
            }
            Action::Reconnect { attempt } => {
                let (meter, live) = (self.meter.take(), self.live.take());
                let renewal = self.renewal.take();
                let clock = self.clock.clone();
                let (cancel_tx, mut cancel) = Cancel::pair();
                let task = tokio::spawn(async move {
                    finish_renewal(renewal).await;
                    if let Some(m) = meter {
                        let _ = m.task.await;
                    }
                    if let Some(live) = live {
                        p.tear_down(live).await;
                    }
                    let wait = Duration::from_secs(1u64 << attempt.min(5));
                    let _ = events.send(SessionEvent::Notice {
                        message: format!("connection lost; reconnecting (attempt {attempt})"),
                    });
                    tokio::select! {
                        _ = clock.sleep_until(clock.now() + wait) => {}
                        _ = cancel.cancelled() => return,
                    }
                    if let Some(msg) = try_establish(&*p, events, cancel).await {
                        let _ = tx.send(msg);
                    }
                });
                self.bring_up = Some(BringUp {
                    cancel: cancel_tx,
                    task,
                });
            }
        }
    }
}

/// One connection attempt: the message to feed back, or `None` when it was cancelled (then
/// whatever it established is abandoned here, before the teardown completes).
async fn try_establish<P: Provider>(p: &P, events: EventSink, cancel: Cancel) -> Option<Msg<P>> {
    match p.establish(events.clone(), cancel.clone()).await {
        Ok(live) if cancel.is_cancelled() => {
            p.abandon(Arc::new(live), events).await;
            None
        }
        Ok(live) => Some(Msg::Up(Arc::new(live))),
        Err(cause) if cancel.is_cancelled() => {
            debug!(%cause, "cancelled connection attempt ended");
            None
        }
        Err(cause) => Some(Msg::Input(Input::ConnectFailed(cause))),
    }
}

/// Waits until the state satisfies `done`, or `timeout` passes.
pub async fn wait_for_state(
    state: &mut watch::Receiver<State>,
    timeout: Duration,
    done: impl Fn(&State) -> bool,
) -> Option<State> {
    tokio::time::timeout(timeout, async {
        loop {
            let s = state.borrow_and_update().clone();
            if done(&s) {
                return Some(s);
            }
            if state.changed().await.is_err() {
                return None;
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::sync::Notify;

    /// A provider whose establish results, meter ends and tunnel deaths a test controls.
    #[derive(Default)]
    struct Fake {
        establish_results: Mutex<Vec<Result<(), ErrorCause>>>,
        meter_end: Mutex<Option<MeterEnd>>,
        meter_end_now: Notify,
        tunnel_dies: Notify,
        stopped_with: Mutex<Vec<DisconnectReason>>,
        ups: AtomicUsize,
        downs: AtomicUsize,
        /// `establish` waits for its cancel signal, then fails (`Some(false)`) or succeeds
        /// anyway (`Some(true)`, as if it finished at that very moment).
        hang_until_cancel: Mutex<Option<bool>>,
        entered: Notify,
        cleaned_up_on_cancel: AtomicUsize,
        abandons: AtomicUsize,
    }

    struct Live;

    impl Provider for Arc<Fake> {
        type Live = Live;
        async fn establish(&self, _: EventSink, mut cancel: Cancel) -> Result<Live, ErrorCause> {
            self.ups.fetch_add(1, Ordering::SeqCst);
            let hang = *self.hang_until_cancel.lock().unwrap();
            if let Some(succeed) = hang {
                self.entered.notify_one();
                cancel.cancelled().await;
                if succeed {
                    return Ok(Live);
                }
                self.cleaned_up_on_cancel.fetch_add(1, Ordering::SeqCst);
                return Err(ErrorCause::Tunnel("cancelled".into()));
            }
            let r = {
                let mut q = self.establish_results.lock().unwrap();
                if q.is_empty() {
                    Ok(())
                } else {
                    q.remove(0)
                }
            };
            r.map(|()| Live)
        }
        async fn meter(
            &self,
            _: Arc<Live>,
            mut stop: watch::Receiver<Option<DisconnectReason>>,
            _: EventSink,
        ) -> MeterEnd {
            tokio::select! {
                res = stop.wait_for(|s| s.is_some()) => {
                    let r = (*res.unwrap()).unwrap();
                    self.stopped_with.lock().unwrap().push(r);
                    MeterEnd::Stopped
                }
                _ = self.meter_end_now.notified() => self.meter_end.lock().unwrap().take().unwrap(),
            }
        }
        async fn tunnel_closed(&self, _: Arc<Live>) -> String {
            self.tunnel_dies.notified().await;
            "tunnel died".into()
        }
        async fn tear_down(&self, _: Arc<Live>) {
            self.downs.fetch_add(1, Ordering::SeqCst);
        }
        async fn abandon(&self, _: Arc<Live>, _: EventSink) {
            self.abandons.fetch_add(1, Ordering::SeqCst);
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    async fn settle(h: &SupervisorHandle, f: impl Fn(&State) -> bool) -> State {
        wait_for_state(&mut h.state(), WAIT, f)
            .await
            .expect("state not reached")
    }

    #[tokio::test]
    async fn connect_then_user_disconnect_ends_with_user_initiated() {
        let fake = Arc::new(Fake::default());
        let (h, _t) = spawn(fake.clone(), ManualClock::at_fixed_date().shared());
        let mut events = h.subscribe();
        h.connect();
        settle(&h, State::meters).await;
        h.disconnect();
        settle(&h, |s| *s == State::Disconnected).await;
        assert_eq!(
            *fake.stopped_with.lock().unwrap(),
            vec![DisconnectReason::UserInitiated]
        );
        assert_eq!(fake.downs.load(Ordering::SeqCst), 1);
        let mut names = vec![];
        while let Ok(SessionEvent::State { state }) = events.try_recv() {
            names.push(state.name());
        }
        assert_eq!(
            names,
            vec!["connecting", "connected", "disconnecting", "disconnected"]
        );
    }

    #[tokio::test]
    async fn disconnect_while_connecting_lets_the_attempt_clean_up_before_disconnected() {
        let fake = Arc::new(Fake::default());
        *fake.hang_until_cancel.lock().unwrap() = Some(false);
        let (h, _t) = spawn(fake.clone(), ManualClock::at_fixed_date().shared());
        h.connect();
        fake.entered.notified().await;
        h.disconnect();
        settle(&h, |s| *s == State::Disconnected).await;
        // Not aborted: the attempt saw the cancel and cleaned up, before the teardown settled.
        assert_eq!(fake.cleaned_up_on_cancel.load(Ordering::SeqCst), 1);
        assert_eq!(fake.abandons.load(Ordering::SeqCst), 0);
        assert_eq!(fake.downs.load(Ordering::SeqCst), 0);
        assert!(fake.stopped_with.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_attempt_that_succeeds_as_it_is_cancelled_is_abandoned_not_metered() {
        let fake = Arc::new(Fake::default());
        *fake.hang_until_cancel.lock().unwrap() = Some(true);
        let (h, _t) = spawn(fake.clone(), ManualClock::at_fixed_date().shared());
        let mut events = h.subscribe();
        h.connect();
        fake.entered.notified().await;
        h.disconnect();
        settle(&h, |s| *s == State::Disconnected).await;
        assert_eq!(fake.abandons.load(Ordering::SeqCst), 1);
        assert_eq!(fake.downs.load(Ordering::SeqCst), 0);
        let mut names = vec![];
        while let Ok(ev) = events.try_recv() {
            if let SessionEvent::State { state } = ev {
                names.push(state.name());
            }
        }
        assert_eq!(names, vec!["connecting", "disconnecting", "disconnected"]);
    }

    #[tokio::test]
    async fn server_end_lands_in_error_with_its_cause() {
        let fake = Arc::new(Fake::default());
        let (h, _t) = spawn(fake.clone(), ManualClock::at_fixed_date().shared());
        h.connect();
        settle(&h, State::meters).await;
        *fake.meter_end.lock().unwrap() = Some(MeterEnd::Ended(ErrorCause::CreditsDepleted));
        fake.meter_end_now.notify_one();
        let s = settle(&h, |s| matches!(s, State::Error { .. })).await;
        assert_eq!(
            s,
            State::Error {
                cause: ErrorCause::CreditsDepleted
            }
        );
        assert_eq!(fake.downs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failed_connect_reports_the_cause() {
        let fake = Arc::new(Fake::default());
        fake.establish_results
            .lock()
            .unwrap()
            .push(Err(ErrorCause::QuotaExhausted("bytes".into())));
        let (h, _t) = spawn(fake.clone(), ManualClock::at_fixed_date().shared());
        h.connect();
        let s = settle(&h, |s| matches!(s, State::Error { .. })).await;
        assert_eq!(s.name(), "error");
        assert_eq!(fake.downs.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn tunnel_death_reconnects_with_a_fresh_session() {
        let fake = Arc::new(Fake::default());
        let clock = ManualClock::at_fixed_date();
        let (h, _t) = spawn(fake.clone(), clock.shared());
        h.connect();
        settle(&h, State::meters).await;
        fake.tunnel_dies.notify_one();
        settle(&h, |s| matches!(s, State::Reconnecting { .. })).await;
        // The reconnect waits 2 s on the (manual) clock.
        for _ in 0..100 {
            clock.advance(Duration::from_millis(100));
            tokio::task::yield_now().await;
            if fake.ups.load(Ordering::SeqCst) == 2 {
                break;
            }
        }
        settle(&h, State::meters).await;
        assert_eq!(
            *fake.stopped_with.lock().unwrap(),
            vec![DisconnectReason::Error]
        );
        assert_eq!(fake.ups.load(Ordering::SeqCst), 2);
        assert_eq!(fake.downs.load(Ordering::SeqCst), 1);
        h.disconnect();
        settle(&h, |s| *s == State::Disconnected).await;
        assert_eq!(fake.downs.load(Ordering::SeqCst), 2);
    }
}
