//! Reconnect backoff: while connects fail, the pool makes one attempt at a time, spaced
//! by a delay that doubles from `base` up to `cap` (each drawn between half and all of
//! it, so pools restarted together do not knock in step), and every caller waiting for
//! a connection meanwhile gets that one attempt's result instead of connecting itself.
//!
//! While connects work the gate is open: any number of connects run at once (bounded by
//! the pool's slots). The first failure closes it; the next attempt is due after the
//! delay, made by the first caller to come for it (the *probe*); a success opens the
//! gate again and wakes everyone.

use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::jitter_fraction;
use super::status::ConnectFailure;
use crate::error::Error;

/// The defaults of `PoolBuilder::connect_backoff`.
pub(crate) const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(50);
pub(crate) const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(1);

/// What the last attempt that settled came to, as waiters see it.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// Nothing settled yet.
    None,
    /// A connect succeeded: the gate is open.
    Opened,
    /// A connect failed; every caller that waited for it gets a copy.
    Failed(Arc<Error>),
    /// The probe was dropped unfinished (runtime shutdown): look again.
    Abandoned,
}

#[derive(Default)]
struct State {
    /// Failed attempts since the last success; 0 = the gate is open.
    failures: u32,
    /// Which delay comes next: 1 after the first failure (however many connects that
    /// were under way failed with it), one more after each failed probe.
    step: u32,
    /// When the next attempt is due (while failing).
    next_at: Option<Instant>,
    /// Whether a probe is under way.
    probing: bool,
    last_error: Option<ConnectFailure>,
}

/// The pool's connect gate (see the module docs).
pub(crate) struct Gate {
    state: StdMutex<State>,
    outcome: watch::Sender<Outcome>,
    base: Duration,
    cap: Duration,
}

/// What a caller may do about connecting.
pub(crate) enum Turn {
    /// Connects work: go ahead.
    Free,
    /// Connects fail and the next attempt is due: this caller makes it and must settle it.
    Probe(Probe),
}

/// The one attempt allowed while connects fail. Dropped unsettled, it frees the gate
/// for the next caller.
pub(crate) struct Probe {
    gate: Arc<Gate>,
    settled: bool,
}

impl Gate {
    pub(crate) fn new(base: Duration, cap: Duration) -> Gate {
        Gate {
            state: StdMutex::default(),
            outcome: watch::channel(Outcome::None).0,
            base,
            cap: cap.max(base),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches the outcomes of attempts settled from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Outcome> {
        self.outcome.subscribe()
    }

    /// Waits until this caller may connect: at once while connects work; otherwise until
    /// the next attempt is due (then this caller makes it) or settles (its failure is
    /// this caller's error too).
    ///
    /// # Cancel safety
    /// Cancel safe: the probe is claimed and returned with no await in between.
    pub(crate) async fn turn(self: &Arc<Self>) -> Result<Turn, Error> {
        let mut rx = self.subscribe();
        loop {
            let due = {
                let mut s = self.lock();
                rx.borrow_and_update();
                match self.claim(&mut s) {
                    Some(turn) => return Ok(turn),
                    None => (!s.probing).then_some(s.next_at).flatten(),
                }
            };
            let changed = match due {
                Some(t) => tokio::select! {
                    _ = tokio::time::sleep_until(t) => false,
                    r = rx.changed() => r.is_ok(),
                },
                None => rx.changed().await.is_ok(),
            };
            if !changed {
                continue;
            }
            if let Outcome::Failed(e) = &*rx.borrow_and_update() {
                return Err(e.duplicate());
            }
        }
    }

    /// A turn without waiting, if there is one (for background refills).
    pub(crate) fn try_turn(self: &Arc<Self>) -> Option<Turn> {
        let mut s = self.lock();
        self.claim(&mut s)
    }

    fn claim(self: &Arc<Self>, s: &mut State) -> Option<Turn> {
        if s.failures == 0 {
            return Some(Turn::Free);
        }
        let due = s.next_at.is_none_or(|t| Instant::now() >= t);
        if s.probing || !due {
            return None;
        }
        s.probing = true;
        Some(Turn::Probe(Probe {
            gate: self.clone(),
            settled: false,
        }))
    }

    /// A connect that was not the probe succeeded or failed.
    pub(crate) fn record(&self, result: Result<(), &Error>) {
        let mut s = self.lock();
        self.settle(&mut s, result, false);
    }

    /// A success opens the gate and wakes every waiter; a failure makes the next
    /// attempt wait out the delay, and every caller waiting now gets its error.
    fn settle(&self, s: &mut State, result: Result<(), &Error>, probe: bool) {
        let e = match result {
            Ok(()) => {
                if std::mem::take(&mut s.failures) > 0 {
                    tracing::info!("the pool can connect again");
                    s.next_at = None;
                    s.step = 0;
                    self.outcome.send_replace(Outcome::Opened);
                }
                return;
            }
            Err(e) => e,
        };
        s.failures = s.failures.saturating_add(1);
        if probe || s.step == 0 {
            s.step = s.step.saturating_add(1);
        }
        let delay = self.delay(s.step);
        s.next_at = Some(crate::transport::blocking::tokio_instant_after(delay));
        s.last_error = Some(ConnectFailure {
            message: e.to_string(),
            at: SystemTime::now(),
            consecutive_failures: s.failures,
        });
        tracing::warn!(error = %e, failures = s.failures, next_attempt_in = ?delay, "pool could not open a connection");
        self.outcome
            .send_replace(Outcome::Failed(Arc::new(e.duplicate())));
    }

    /// `min(cap, base × 2^(n-1))`, drawn between half and all of it.
    fn delay(&self, step: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1 << (step.saturating_sub(1)).min(20));
        let d = exp.min(self.cap);
        d.mul_f64(0.5 + 0.5 * jitter_fraction())
    }

    /// Consecutive failures now, and the last failure (kept after connects work again).
    pub(crate) fn report(&self) -> (u32, Option<ConnectFailure>) {
        let s = self.lock();
        (s.failures, s.last_error.clone())
    }
}

impl Probe {
    /// Records the probe's result (see [`Gate::record`]).
    pub(crate) fn settle(mut self, result: Result<(), &Error>) {
        self.settled = true;
        let mut s = self.gate.lock();
        s.probing = false;
        self.gate.settle(&mut s, result, true);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.settled {
            self.gate.lock().probing = false;
            self.gate.outcome.send_replace(Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap_and_never_fall_below_half() {
        let gate = Gate::new(Duration::from_millis(50), Duration::from_secs(2));
        for n in 1..40 {
            let full =
                Duration::from_millis(50 * (1u64 << (n - 1).min(20))).min(Duration::from_secs(2));
            let d = gate.delay(n);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?} of {full:?}");
        }
    }

    #[test]
    fn connects_that_fail_together_count_once_for_the_delay_and_each_in_the_status() {
        let gate = Arc::new(Gate::new(
            Duration::from_millis(100),
            Duration::from_secs(60),
        ));
        let e = Error::new(crate::ErrorKind::Io, "refused");
        for _ in 0..8 {
            gate.record(Err(&e));
        }
        let due = gate.lock().next_at.unwrap();
        assert!(due <= Instant::now() + Duration::from_millis(100));
        assert_eq!(gate.report().0, 8);
        assert!(
            gate.try_turn().is_none(),
            "not due yet, and nothing to probe"
        );
        std::thread::sleep(Duration::from_millis(110));
        let Some(Turn::Probe(probe)) = gate.try_turn() else {
            panic!("the probe is due");
        };
        assert!(gate.try_turn().is_none(), "one probe at a time");
        probe.settle(Err(&e));
        let due = gate.lock().next_at.unwrap();
        assert!(
            due > Instant::now() + Duration::from_millis(90),
            "the second delay: 100-200 ms"
        );
        gate.record(Ok(()));
        assert!(matches!(gate.try_turn(), Some(Turn::Free)));
        assert_eq!(gate.report().0, 0);
    }
}
