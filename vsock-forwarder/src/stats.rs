//! Connection and byte counters, per live connection and in total, reported at exit and on SIGUSR1.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::copy::Counters;

/// One live connection's bytes and the listener it came from.
#[derive(Debug)]
pub struct LiveConnection {
    /// The listener label (the vsudd port text, or the listening endpoint).
    pub label: String,
    /// Bytes copied so far.
    pub counters: Counters,
}

/// Totals since start plus the live connections.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    failed_dials: AtomicU64,
    closed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<LiveConnection>>>,
}

impl Stats {
    /// Records an accepted connection and returns its counters.
    pub fn open(&self, id: u64, label: &str) -> Arc<LiveConnection> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(LiveConnection {
            label: label.to_owned(),
            counters: Counters::default(),
        });
        self.lock().insert(id, Arc::clone(&conn));
        conn
    }

    /// Records that a connection's target could not be dialled.
    pub fn dial_failed(&self) {
        self.failed_dials.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves a finished connection's bytes into the totals.
    pub fn close(&self, id: u64) {
        let Some(conn) = self.lock().remove(&id) else {
            return;
        };
        let (read, written) = conn.counters.get();
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(read, Ordering::Relaxed);
        self.bytes_out.fetch_add(written, Ordering::Relaxed);
    }

    /// How many connections are open now.
    pub fn active(&self) -> usize {
        self.lock().len()
    }

    /// How many connections were accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The report: one line per live connection, then the totals (live bytes included).
    pub fn report(&self) -> Vec<String> {
        let live = self.lock();
        let mut lines = Vec::with_capacity(live.len() + 1);
        let (mut read, mut written) = (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        );
        for (id, conn) in live.iter() {
            let (r, w) = conn.counters.get();
            read += r;
            written += w;
            lines.push(format!(
                "{id} Active on {}. read: {r} written: {w}",
                conn.label
            ));
        }
        lines.push(format!(
            "Totals: connections: {} active: {} closed: {} failed to connect: {}; bytes read: {read} written: {written}",
            self.accepted.load(Ordering::Relaxed),
            live.len(),
            self.closed.load(Ordering::Relaxed),
            self.failed_dials.load(Ordering::Relaxed),
        ));
        lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<LiveConnection>>> {
        // The map holds no invariant a panicking holder could break.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lists_live_connections_and_totals() {
        let stats = Stats::default();
        let first = stats.open(1, "2374");
        first.counters.a_to_b.fetch_add(10, Ordering::Relaxed);
        first.counters.b_to_a.fetch_add(3, Ordering::Relaxed);
        stats.close(1);
        let second = stats.open(2, "2374");
        second.counters.a_to_b.fetch_add(5, Ordering::Relaxed);
        stats.dial_failed();
        assert_eq!(stats.active(), 1);
        assert_eq!(
            stats.report(),
            vec![
                "2 Active on 2374. read: 5 written: 0".to_owned(),
                "Totals: connections: 2 active: 1 closed: 1 failed to connect: 1; bytes read: 15 written: 3".to_owned(),
            ]
        );
    }
}
