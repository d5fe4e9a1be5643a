//! Choosing the provider. DMI/SMBIOS first (it rules out clouds this machine is not), local sources
//! next (disks, firmware, files), then every remaining network provider probed **in parallel** under
//! one deadline. The first provider in the configured order that answers wins; a provider earlier
//! in the order is waited for only until it answers "no", fails, or the deadline passes.
//!
//! A local source that answers wins at once unless DMI names a cloud whose provider is configured:
//! on a machine that is not a known cloud there is no network provider worth waiting for.
//!
//! [`Strategy::Sequential`] is LinuxKit's method (network providers then local ones, one after
//! another, each with its own short deadline), kept for comparison in the benchmark.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::apply::chain;
use crate::dmi::Cloud;
use crate::providers::{Locality, Provider};

/// How providers are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// DMI, local, then parallel network probes under one deadline.
    Parallel,
    /// LinuxKit: one provider after another, each with this budget.
    Sequential(Duration),
}

/// What a probe said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not probed yet, or still running.
    Pending,
    /// Present.
    Found,
    /// Definitely absent.
    Absent,
    /// Could not tell (error or deadline).
    Failed(String),
    /// Not probed, and why.
    Skipped(String),
}

/// The result of [`select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the winner.
    pub winner: Option<usize>,
    /// One state per provider.
    pub states: Vec<State>,
}

impl Selection {
    /// `name: state` for every provider that did not win, for the summary line.
    pub fn reasons(&self, providers: &[Box<dyn Provider>]) -> Vec<String> {
        providers
            .iter()
            .zip(&self.states)
            .map(|(p, s)| match s {
                State::Pending => match p.stalled() {
                    Some(why) => format!("{}: {why}", p.name()),
                    None => format!("{}: no answer before the deadline", p.name()),
                },
                State::Found => format!("{}: found", p.name()),
                State::Absent => format!("{}: not present", p.name()),
                State::Failed(e) => format!("{}: {e}", p.name()),
                State::Skipped(why) => format!("{}: skipped ({why})", p.name()),
            })
            .collect()
    }
}

/// Picks the provider to use.
pub async fn select(
    providers: &[Box<dyn Provider>],
    dmi: Option<Cloud>,
    deadline: Instant,
    strategy: Strategy,
) -> Selection {
    match strategy {
        Strategy::Parallel => parallel(providers, dmi, deadline).await,
        Strategy::Sequential(step) => sequential(providers, step).await,
    }
}

async fn probe(p: &dyn Provider, deadline: Instant) -> State {
    match tokio::time::timeout_at(deadline, p.probe(deadline)).await {
        Err(_) => State::Pending,
        Ok(Ok(true)) => State::Found,
        Ok(Ok(false)) => State::Absent,
        Ok(Err(e)) => State::Failed(chain(&e)),
    }
}

fn first_decided(states: &[State]) -> Option<Option<usize>> {
    for (i, s) in states.iter().enumerate() {
        match s {
            State::Found => return Some(Some(i)),
            State::Pending => return None,
            _ => {}
        }
    }
    Some(None)
}

async fn parallel(
    providers: &[Box<dyn Provider>],
    dmi: Option<Cloud>,
    deadline: Instant,
) -> Selection {
    let mut states = vec![State::Pending; providers.len()];
    for (p, s) in providers.iter().zip(states.iter_mut()) {
        if let (Some(want), Some(is)) = (p.cloud(), dmi)
            && want != is
        {
            *s = State::Skipped(format!("DMI says {is:?}"));
        }
    }
    for (i, p) in providers.iter().enumerate() {
        if p.locality() == Locality::Local && states[i] == State::Pending {
            states[i] = probe(p.as_ref(), deadline).await;
        }
    }
    let local_found = providers
        .iter()
        .zip(&states)
        .any(|(p, s)| p.locality() == Locality::Local && *s == State::Found);
    let dmi_cloud_configured = dmi.is_some()
        && providers
            .iter()
            .any(|p| p.locality() == Locality::Network && p.cloud() == dmi);
    if local_found && !dmi_cloud_configured {
        for (p, s) in providers.iter().zip(states.iter_mut()) {
            if p.locality() == Locality::Network && *s == State::Pending {
                *s = State::Skipped(
                    "a local source answered and DMI names no configured cloud".into(),
                );
            }
        }
    }
    let mut running: FuturesUnordered<_> = providers
        .iter()
        .enumerate()
        .filter(|(i, _)| states[*i] == State::Pending)
        .map(|(i, p)| async move { (i, probe(p.as_ref(), deadline).await) })
        .collect();
    while first_decided(&states).is_none() {
        match running.next().await {
            Some((i, state)) => states[i] = state,
            None => break,
        }
    }
    Selection {
        winner: first_decided(&states).flatten(),
        states,
    }
}

async fn sequential(providers: &[Box<dyn Provider>], step: Duration) -> Selection {
    let mut states = vec![State::Pending; providers.len()];
    let order = (0..providers.len())
        .filter(|i| providers[*i].locality() == Locality::Network)
        .chain((0..providers.len()).filter(|i| providers[*i].locality() == Locality::Local));
    for i in order.collect::<Vec<_>>() {
        let state = probe(providers[i].as_ref(), Instant::now() + step).await;
        let found = state == State::Found;
        states[i] = if state == State::Pending {
            State::Failed(format!("no answer within {step:?}"))
        } else {
            state
        };
        if found {
            return Selection {
                winner: Some(i),
                states,
            };
        }
    }
    Selection {
        winner: None,
        states,
    }
}
