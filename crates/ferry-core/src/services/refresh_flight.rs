//! Process-wide single flight for OrbNET token refreshes.
//!
//! OrbNET refresh tokens work once. Clones of one [`OrbnetClient`](super::orbnet::OrbnetClient)
//! already serialise on their shared token state, but the app and the CLI also build separate
//! clients from the same stored value (one per command, one per session), and two of them
//! hitting 401 together would each spend the same refresh token: the second gets 401 and the
//! user is signed out. So every refresh goes through here, keyed by (origin, refresh token):
//! the first caller sends `POST /auth/refresh`, later callers with the same key wait for it and
//! get the pair it obtained, following later rotations done in this process, without another
//! request. Failures are not remembered (the next caller tries again). The table is small and
//! bounded; it holds only pairs this process already holds in its clients.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use super::orbnet::OrbnetTokens;
use super::origin::Origin;
use super::ApiError;
use crate::secrets::Secret;

/// How many refresh outcomes are remembered; the oldest go first.
const CAPACITY: usize = 32;

type Key = (Origin, String);
type Slot = Arc<tokio::sync::Mutex<Option<OrbnetTokens>>>;

#[derive(Default)]
struct Flights {
    slots: HashMap<Key, Slot>,
    order: VecDeque<Key>,
}

impl Flights {
    fn slot(&mut self, key: &Key) -> Slot {
        if let Some(s) = self.slots.get(key) {
            return s.clone();
        }
        while self.order.len() >= CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.slots.remove(&old);
            }
        }
        let s = Slot::default();
        self.slots.insert(key.clone(), s.clone());
        self.order.push_back(key.clone());
        s
    }

    /// The newest pair reachable from `tokens` through rotations already finished here.
    fn newest(&self, origin: &Origin, mut tokens: OrbnetTokens) -> OrbnetTokens {
        for _ in 0..CAPACITY {
            let Some(next) = tokens.refresh_token.as_ref().and_then(|r| {
                let slot = self.slots.get(&(origin.clone(), r.expose().to_string()))?;
                slot.try_lock().ok().and_then(|s| s.clone())
            }) else {
                break;
            };
            tokens = next;
        }
        tokens
    }
}

fn flights() -> &'static Mutex<Flights> {
    static FLIGHTS: OnceLock<Mutex<Flights>> = OnceLock::new();
    FLIGHTS.get_or_init(Mutex::default)
}

/// Whether [`refresh_once`] sent the refresh itself or reused another caller's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This call refreshed: its caller persists the pair.
    Refreshed,
    /// Another caller in this process already refreshed this token: already persisted.
    Reused,
}

/// Runs `refresh` unless another caller in this process already refreshed `refresh_token` at
/// `origin` (or is doing so: then waits for it) and returns the pair to use now.
pub(crate) async fn refresh_once<F, Fut>(
    origin: &Origin,
    refresh_token: &Secret,
    refresh: F,
) -> Result<(OrbnetTokens, Outcome), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<OrbnetTokens, ApiError>>,
{
    let key = (origin.clone(), refresh_token.expose().to_string());
    let slot = match flights().lock() {
        Ok(mut f) => f.slot(&key),
        // A poisoned table only loses sharing, never correctness of this call.
        Err(_) => Slot::default(),
    };
    let mut held = slot.lock().await;
    if let Some(done) = held.clone() {
        drop(held);
        let newest = match flights().lock() {
            Ok(f) => f.newest(origin, done),
            Err(_) => done,
        };
        return Ok((newest, Outcome::Reused));
    }
    let tokens = refresh().await?;
    *held = Some(tokens.clone());
    Ok((tokens, Outcome::Refreshed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pair(access: &str, refresh: &str) -> OrbnetTokens {
        OrbnetTokens {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            origin: None,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh_and_follow_rotations() {
        let origin: Origin = "http://127.0.0.1:1/unit-test-flight".parse().unwrap();
        let calls = AtomicUsize::new(0);
        let r1 = Secret::new("flight-r1");
        let run = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(pair("a2", "flight-r2"))
        };
        let (x, y, z) = tokio::join!(
            refresh_once(&origin, &r1, run),
            refresh_once(&origin, &r1, run),
            refresh_once(&origin, &r1, run),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let outcomes = [x.unwrap(), y.unwrap(), z.unwrap()];
        assert!(outcomes
            .iter()
            .all(|(t, _)| t.access_token.expose() == "a2"));
        let refreshed = outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Refreshed)
            .count();
        assert_eq!(refreshed, 1);

        // r2 is rotated too; a late holder of r1 gets the newest pair without a request.
        let r2 = Secret::new("flight-r2");
        refresh_once(&origin, &r2, || async { Ok(pair("a3", "flight-r3")) })
            .await
            .unwrap();
        let (late, o) = refresh_once(&origin, &r1, run).await.unwrap();
        assert_eq!((late.access_token.expose(), o), ("a3", Outcome::Reused));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let origin: Origin = "http://127.0.0.1:2/unit-test-flight".parse().unwrap();
        let r = Secret::new("flight-fail");
        let e = refresh_once(&origin, &r, || async {
            Err(ApiError::NoToken {
                service: crate::services::ServiceKind::Orbnet,
            })
        })
        .await;
        assert!(e.is_err());
        let (t, o) = refresh_once(&origin, &r, || async { Ok(pair("ok", "flight-next")) })
            .await
            .unwrap();
        assert_eq!((t.access_token.expose(), o), ("ok", Outcome::Refreshed));
    }
}
