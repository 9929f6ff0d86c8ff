//! The run's clock: the machine's, or a virtual one (`runbook test`), on which a sleep, an
//! analysis window or a command's duration is a step of the clock rather than a wait. Everything
//! a run times or stamps reads it here, so a simulated run is deterministic: the same scenario
//! gives the same journal.
//!
//! The virtual clock belongs to the thread that runs the script (a scenario runs on one thread,
//! and in simulation nothing acts on another).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a virtual clock starts: 2030-01-01T00:00:00Z, a date no real run has, so a simulated
/// journal is never mistaken for a real one by its times.
pub const VIRTUAL_EPOCH_SECS: u64 = 1_893_456_000;

thread_local! {
    /// Time passed on the virtual clock, when this thread runs on one.
    static VIRTUAL: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Put this thread on a virtual clock at its epoch (until `real()`).
pub fn start_virtual() {
    VIRTUAL.with(|v| v.set(Some(Duration::ZERO)));
}

/// Back to the machine's clock.
pub fn real() {
    VIRTUAL.with(|v| v.set(None));
}

/// Whether this thread's clock is virtual.
pub fn is_virtual() -> bool {
    VIRTUAL.with(|v| v.get().is_some())
}

/// Time passed on the virtual clock (zero on the machine's clock).
pub fn virtual_elapsed() -> Duration {
    VIRTUAL.with(|v| v.get().unwrap_or_default())
}

/// Move the virtual clock on by `d`; false (and nothing moves) on the machine's clock.
pub fn advance(d: Duration) -> bool {
    VIRTUAL.with(|v| match v.get() {
        Some(t) => {
            v.set(Some(t.saturating_add(d)));
            true
        }
        None => false,
    })
}

/// The wall-clock time now.
pub fn now() -> SystemTime {
    match VIRTUAL.with(|v| v.get()) {
        Some(t) => UNIX_EPOCH + Duration::from_secs(VIRTUAL_EPOCH_SECS) + t,
        None => SystemTime::now(),
    }
}

/// Now as RFC 3339 with milliseconds (the journal's time stamps).
pub fn rfc3339() -> String {
    humantime::format_rfc3339_millis(now()).to_string()
}

/// A point in time for measuring durations and deadlines: the machine's monotonic clock, or the
/// virtual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Instant {
    Real(std::time::Instant),
    Virtual(Duration),
}

impl Instant {
    pub fn now() -> Instant {
        match VIRTUAL.with(|v| v.get()) {
            Some(t) => Instant::Virtual(t),
            None => Instant::Real(std::time::Instant::now()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }

    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        match (self, earlier) {
            (Instant::Real(a), Instant::Real(b)) => a.saturating_duration_since(b),
            (Instant::Virtual(a), Instant::Virtual(b)) => a.saturating_sub(b),
            // A clock changed under a running timer: nothing is known to have passed.
            _ => Duration::ZERO,
        }
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        match self {
            Instant::Real(i) => Instant::Real(i + d),
            Instant::Virtual(t) => Instant::Virtual(t.saturating_add(d)),
        }
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_clock_moves_only_when_advanced() {
        start_virtual();
        let t0 = Instant::now();
        assert_eq!(rfc3339(), "2030-01-01T00:00:00.000Z");
        assert!(advance(Duration::from_secs(90)));
        assert_eq!(t0.elapsed(), Duration::from_secs(90));
        assert_eq!(rfc3339(), "2030-01-01T00:01:30.000Z");
        real();
        assert!(!advance(Duration::from_secs(1)));
        assert!(!is_virtual());
    }
}
