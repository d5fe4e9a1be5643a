//! One run: build the providers, select one, fetch, write `/run/config`, set the hostname, apply
//! network set-up, report ready, and produce a one-line [`Summary`].

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::apply::{self, chain};
use crate::confined::ConfigDir;
use crate::dmi::Dmi;
use crate::http::Http;
use crate::providers::{self, Env, Provider};
use crate::select::{self, Strategy};

/// What to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Provider tokens in order.
    pub providers: Vec<String>,
    /// Where to write (`/run/config`).
    pub config_root: PathBuf,
    /// Roots, endpoints and HTTP limits.
    pub env: Env,
    /// Overall probe deadline (and, once a provider is chosen, the fetch budget).
    pub deadline: Duration,
    /// Probe strategy.
    pub strategy: Strategy,
    /// Call sethostname.
    pub set_hostname: bool,
    /// Apply network set-up the provider asks for.
    pub configure_network: bool,
    /// Other paths that must resolve to `config_root` (`/var/config`), as symlinks.
    pub links: Vec<PathBuf>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// A provider answered and its data was written.
    Applied {
        provider: String,
        name: &'static str,
        files: usize,
        hostname: Option<String>,
        warnings: Vec<String>,
    },
    /// No provider answered.
    NoneFound { reasons: Vec<String> },
    /// A provider answered but its data could not be fetched or written.
    Failed { name: String, error: String },
}

impl Summary {
    /// Process exit status: 0 applied, 2 nothing found, 3 failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Summary::Applied { .. } => 0,
            Summary::NoneFound { .. } => 2,
            Summary::Failed { .. } => 3,
        }
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        match self {
            Summary::Applied {
                provider,
                name,
                files,
                hostname,
                warnings,
            } => format!(
                "{name} answered: provider {provider:?}, {files} paths written{}{}",
                hostname
                    .as_ref()
                    .map(|h| format!(", hostname {h}"))
                    .unwrap_or_default(),
                if warnings.is_empty() {
                    String::new()
                } else {
                    format!(", {} warnings", warnings.len())
                }
            ),
            Summary::NoneFound { reasons } => {
                format!("no provider answered: {}", reasons.join("; "))
            }
            Summary::Failed { name, error } => {
                format!("{name} answered but failed: {error}")
            }
        }
    }
}

/// Carries out `plan`.
pub async fn run(plan: &Plan) -> Summary {
    let failed = |name: &str, error: String| Summary::Failed {
        name: name.to_string(),
        error,
    };
    let http = match Http::new(plan.env.policy) {
        Ok(h) => h,
        Err(e) => return failed("metadata", chain(&e)),
    };
    let mut list: Vec<Box<dyn Provider>> = Vec::new();
    for token in &plan.providers {
        match providers::build(token, &plan.env, &http) {
            Ok(p) => list.push(p),
            Err(e) => return failed("metadata", e.to_string()),
        }
    }
    let dmi = Dmi::read(&plan.env.sysfs).cloud();
    if let Some(cloud) = dmi {
        log::info!("DMI/SMBIOS says {cloud:?}");
    }
    let deadline = Instant::now() + plan.deadline;
    let selection = select::select(&list, dmi, deadline, plan.strategy).await;
    let Some(winner) = selection.winner.and_then(|i| list.get(i)) else {
        clear_stale(plan);
        return Summary::NoneFound {
            reasons: selection.reasons(&list),
        };
    };
    log::info!("{}: Probe succeeded", winner.name());
    let fetch_deadline = Instant::now() + plan.deadline;
    let meta = match winner.fetch(fetch_deadline).await {
        Ok(m) => m,
        Err(e) => {
            clear_stale(plan);
            return failed(winner.name(), chain(&e));
        }
    };
    let applied = match apply::apply(&meta, &plan.config_root) {
        Ok(a) => a,
        Err(e) => return failed(winner.name(), chain(&e)),
    };
    let mut warnings = applied.warnings.clone();
    for link in &plan.links {
        match crate::alias::link(link, &plan.config_root) {
            Ok(crate::alias::Linked::Created) => log::info!(
                "{} now resolves to {}",
                link.display(),
                plan.config_root.display()
            ),
            Ok(crate::alias::Linked::Unchanged) => {}
            Err(e) => warnings.push(chain(&e)),
        }
    }
    for line in warning_lines(&warnings) {
        log::warn!("{line}");
    }
    if plan.set_hostname
        && let Some(h) = &applied.hostname
    {
        match nix::unistd::sethostname(h) {
            Ok(()) => log::info!("Set hostname to: {h}"),
            Err(e) => warnings.push(format!("sethostname {h}: {e}")),
        }
    }
    if let (true, Some(net)) = (plan.configure_network, &meta.network)
        && let Err(e) = crate::network::configure(net).await
    {
        warnings.push(chain(&e));
    }
    if let Err(e) = winner.report_ready(Instant::now() + plan.deadline).await {
        return failed(winner.name(), chain(&e));
    }
    Summary::Applied {
        provider: meta.provider,
        name: winner.name(),
        files: applied.written.len(),
        hostname: applied.hostname,
        warnings,
    }
}

/// Most warnings printed one per line: a megabyte of bad userdata keys must not keep a 115200-baud
/// console busy for minutes.
pub const MAX_WARNING_LINES: usize = 20;

/// The console lines for `warnings`: the first [`MAX_WARNING_LINES`], then a count of the rest.
pub fn warning_lines(warnings: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = warnings.iter().take(MAX_WARNING_LINES).cloned().collect();
    if warnings.len() > MAX_WARNING_LINES {
        lines.push(format!(
            "... and {} more warnings not shown",
            warnings.len() - MAX_WARNING_LINES
        ));
    }
    lines
}

/// With no new data, what an earlier run wrote is removed so it cannot pass for this boot's.
fn clear_stale(plan: &Plan) {
    match ConfigDir::open(&plan.config_root)
        .map_err(apply::ApplyError::from)
        .and_then(|d| apply::remove_stale(&d))
    {
        Ok(removed) if !removed.is_empty() => {
            log::info!("Removed {} files left by an earlier run", removed.len())
        }
        Ok(_) => {}
        Err(e) => log::warn!("{}", chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_capped_with_a_count() {
        let many: Vec<String> = (0..92_000).map(|i| format!("w{i}")).collect();
        let lines = warning_lines(&many);
        assert_eq!(lines.len(), MAX_WARNING_LINES + 1);
        assert_eq!(lines[0], "w0");
        assert_eq!(
            lines[MAX_WARNING_LINES],
            "... and 91980 more warnings not shown"
        );
        let few: Vec<String> = (0..MAX_WARNING_LINES).map(|i| format!("w{i}")).collect();
        assert_eq!(warning_lines(&few), few);
        assert!(warning_lines(&[]).is_empty());
    }
}
