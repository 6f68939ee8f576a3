//! The state shared by every handler of the lab.

use crate::clock::LabClock;
use crate::exit::ExitPeers;
use crate::faults::Faults;
use crate::reqlog::RequestLog;
use crate::server::LabUrls;
use crate::{neosc, orbnet, tunnelbyte};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where tests and handlers find everything: clock, faults, request log, each service's state.
pub struct LabCtx {
    /// The lab's clock.
    pub clock: LabClock,
    /// Armed fault rules.
    pub faults: Faults,
    /// Received requests.
    pub requests: RequestLog,
    /// OrbNET's accounts, tokens and sessions.
    pub orbnet: Mutex<orbnet::OrbState>,
    /// tunnelbyte's tokens, regions and sessions.
    pub tunnelbyte: Mutex<tunnelbyte::TbState>,
    /// NeoSC's users, workspaces and sessions.
    pub neosc: Mutex<neosc::NeoState>,
    /// The WireGuard exit node.
    pub exit: Arc<dyn ExitPeers>,
    /// The base URLs the lab serves.
    pub urls: LabUrls,
    /// Where state is saved after each change, when asked to.
    pub state_file: Option<PathBuf>,
}

/// Everything `--state FILE` saves and restores.
#[derive(Serialize, Deserialize, Default)]
pub struct PersistedState {
    /// The clock's offset from real time.
    pub clock_offset_ms: i64,
    /// OrbNET state.
    pub orbnet: orbnet::OrbState,
    /// tunnelbyte state.
    pub tunnelbyte: tunnelbyte::TbState,
    /// NeoSC state.
    pub neosc: neosc::NeoState,
}

/// Locks a service state, recovering it if a handler panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LabCtx {
    /// Applies every time-based rule (watchdogs, idle reaper, windows) at the current lab time.
    pub fn tick_all(&self) {
        let now = self.clock.now();
        lock(&self.orbnet).tick(now, self.exit.as_ref());
        lock(&self.tunnelbyte).tick(now, &self.clock, self.exit.as_ref());
        lock(&self.neosc).tick(now);
    }

    /// A snapshot of all state for `--state`.
    pub fn snapshot(&self) -> Result<String, serde_json::Error> {
        let orb = lock(&self.orbnet);
        let tb = lock(&self.tunnelbyte);
        let neo = lock(&self.neosc);
        #[derive(Serialize)]
        struct View<'a> {
            clock_offset_ms: i64,
            orbnet: &'a orbnet::OrbState,
            tunnelbyte: &'a tunnelbyte::TbState,
            neosc: &'a neosc::NeoState,
        }
        serde_json::to_string(&View {
            clock_offset_ms: self.clock.offset_ms(),
            orbnet: &orb,
            tunnelbyte: &tb,
            neosc: &neo,
        })
    }

    /// Writes the state file (owner-only, atomically), if one was configured.
    pub fn save(&self) {
        let Some(path) = &self.state_file else { return };
        let json = match self.snapshot() {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialise lab state");
                return;
            }
        };
        if let Err(e) = write_private(path, json.as_bytes()) {
            tracing::warn!(error = %e, path = %path.display(), "cannot save lab state");
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
