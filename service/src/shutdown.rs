//! `shutdown` (run by init at poweroff when containerd's socket exists) and system-init's stale-container
//! cleanup: both act on every container in every namespace services use.

use crate::prepare::undo_mounts;
use crate::runtime::Runtime;
use crate::runtime_json::read_runtime_json;
use crate::services::{Services, valid_service_name};
use crate::state::{self, Desired};
use crate::timeline;

impl<R: Runtime> Services<'_, R> {
    /// The namespaces services live in: the global one plus every runtime.json `namespace`.
    pub fn namespaces(&self) -> Vec<String> {
        let mut namespaces = vec![self.namespace.clone()];
        for name in self.bundle_names() {
            if let Ok(config) = read_runtime_json(&self.services_dir.join(&name))
                && !config.namespace.is_empty()
                && !namespaces.contains(&config.namespace)
            {
                namespaces.push(config.namespace);
            }
        }
        namespaces
    }

    /// `shutdown`: stops every container in every service namespace concurrently (each with its own grace
    /// period) and deletes them. Returns the names that failed to stop (`namespace NS` for a namespace
    /// that could not be listed).
    pub async fn shutdown(&self) -> Vec<String> {
        let mut stops = Vec::new();
        let mut unlisted = Vec::new();
        for ns in self.namespaces() {
            let ids = match self.runtime.list_containers(&ns).await {
                Ok(ids) => ids,
                Err(err) => {
                    log::error!("{}", crate::describe(&err));
                    unlisted.push(format!("namespace {ns}"));
                    continue;
                }
            };
            for id in ids {
                stops.push(self.shutdown_one(ns.clone(), id));
            }
        }
        let failed = futures_util::future::join_all(stops)
            .await
            .into_iter()
            .flatten();
        unlisted.into_iter().chain(failed).collect()
    }

    async fn shutdown_one(&self, ns: String, id: String) -> Option<String> {
        log::info!("Stopping service: {id:?}");
        let _lock = state::lock(&self.layout.state_dir, &id, self.lock_timeout).await;
        state::update(&self.layout.state_dir, &id, |r| {
            r.desired = Desired::Stopped
        });
        let bundle = valid_service_name(&id).then(|| self.services_dir.join(&id));
        let config = bundle
            .as_deref()
            .and_then(|b| read_runtime_json(b).ok())
            .unwrap_or_default();
        let result = self.stop_container(&ns, &id, self.grace_of(&config)).await;
        if let Some(bundle) = &bundle {
            undo_mounts(bundle, &config);
        }
        timeline::record(&self.layout.timeline, "service-stop", &id, &[]);
        match result {
            Ok(_) => None,
            Err(err) => {
                log::error!("{}", crate::describe(&err));
                Some(id)
            }
        }
    }

    /// Removes every container in the namespaces (system-init's stale cleanup), printing
    /// `Cleaning up stale service: "ID"`.
    pub async fn clean_stale(&self) {
        for ns in self.namespaces() {
            let Ok(ids) = self.runtime.list_containers(&ns).await else {
                continue;
            };
            for id in ids {
                log::info!("Cleaning up stale service: {id:?}");
                self.remove(&ns, &id).await;
            }
        }
    }
}
