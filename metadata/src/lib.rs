//! `metadata`: finds the cloud or local metadata source a LinuxKit-style guest was started with and
//! writes what it offers under `/run/config` (LinuxKit's `pkg/metadata` contract).
//!
//! Flow ([`run::run`]): the command line ([`cli`]) names providers in order; [`providers::build`]
//! turns each name into a [`providers::Provider`] (one module per source), which only returns
//! data ([`model::Metadata`]). [`select`] chooses one (DMI → local → parallel network probes under
//! one deadline, [`http`] bounding every request). [`apply::apply`] is the one place that writes,
//! through [`confined`] (no symlink following, nothing outside the root, atomic renames), including
//! the JSON userdata tree planned by [`tree`]. [`network`] applies Equinix Metal's bond set-up.
#![forbid(unsafe_code)]

pub mod alias;
pub mod apply;
pub mod cli;
pub mod confined;
pub mod disk;
pub mod dmi;
pub mod fat_chains;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod iso9660;
pub mod label;
pub mod model;
pub mod network;
pub mod providers;
pub mod run;
pub mod select;
pub mod tree;
