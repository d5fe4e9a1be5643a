//! Unit tests of the service logic against [`crate::fake_runtime::FakeRuntime`].

use super::*;
use crate::fake_runtime::FakeRuntime;

const NS: &str = "services.linuxkit";

fn bundle(dir: &Path, name: &str, runtime_json: Option<&str>) {
    let bundle = dir.join(name);
    std::fs::create_dir_all(bundle.join("rootfs")).expect("bundle");
    std::fs::write(
        bundle.join("config.json"),
        r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}"#,
    )
    .expect("config");
    if let Some(text) = runtime_json {
        std::fs::write(bundle.join("runtime.json"), text).expect("runtime.json");
    }
}

fn run<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(f)
}

struct Fixture {
    _tmp: tempfile::TempDir,
    layout: Layout,
    fake: FakeRuntime,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::under(tmp.path());
        Fixture {
            _tmp: tmp,
            layout,
            fake: FakeRuntime::default(),
        }
    }

    fn services(&self) -> Services<'_, FakeRuntime> {
        Services {
            runtime: &self.fake,
            layout: &self.layout,
            services_dir: self.layout.services_dir.clone(),
            namespace: NS.into(),
            dump_spec: None,
            grace: None,
            lock_timeout: crate::state::DEFAULT_LOCK_TIMEOUT,
        }
    }
}

#[test]
fn start_creates_task_with_log_paths_then_starts() {
    let f = Fixture::new();
    bundle(&f.layout.services_dir, "web", None);
    let pid = run(f.services().start("web")).expect("start");
    assert!(pid > 0);
    // A leftover container of the same name is removed first (none here).
    assert_eq!(
        f.fake.calls(),
        vec![
            "delete_container services.linuxkit/web",
            "create_container services.linuxkit/web",
            "create_task services.linuxkit/web",
            "start_task services.linuxkit/web"
        ]
    );
    let containers = f.fake.containers.lock().expect("lock");
    let stdio = containers
        .get(&(NS.to_owned(), "web".to_owned()))
        .and_then(|c| c.stdio.clone())
        .expect("stdio");
    assert_eq!(
        stdio.stdout,
        f.layout.var_log_dir.join("web.out.log").to_string_lossy()
    );
    assert_eq!(
        stdio.stderr,
        f.layout.var_log_dir.join("web.log").to_string_lossy()
    );
    assert_eq!(stdio.stdin, "/dev/null");
}

#[test]
fn runtime_namespace_overrides_the_global_one() {
    let f = Fixture::new();
    bundle(
        &f.layout.services_dir,
        "x",
        Some(r#"{"namespace": "other"}"#),
    );
    run(f.services().start("x")).expect("start");
    assert_eq!(f.fake.calls()[1], "create_container other/x");
    assert_eq!(
        f.services().namespaces(),
        vec![NS.to_owned(), "other".to_owned()]
    );
}

#[test]
fn stop_sends_term_and_kills_only_after_the_grace_period() {
    let f = Fixture::new();
    bundle(
        &f.layout.services_dir,
        "polite",
        Some(r#"{"stopGracePeriod": 5}"#),
    );
    bundle(
        &f.layout.services_dir,
        "stubborn",
        Some(r#"{"stopGracePeriod": 0.05}"#),
    );
    f.fake
        .ignores_term
        .lock()
        .expect("lock")
        .insert("stubborn".into());
    let services = f.services();
    run(async {
        services.start("polite").await.expect("start");
        services.start("stubborn").await.expect("start");
        assert_eq!(services.stop("polite").await.expect("stop"), Some(143));
        assert_eq!(services.stop("stubborn").await.expect("stop"), Some(137));
    });
    let kills: Vec<String> = f
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("kill_task"))
        .collect();
    assert_eq!(
        kills,
        vec![
            "kill_task services.linuxkit/polite 15",
            "kill_task services.linuxkit/stubborn 15",
            "kill_task services.linuxkit/stubborn 9"
        ]
    );
    assert!(f.fake.containers.lock().expect("lock").is_empty());
    assert_eq!(
        state::load(&f.layout.state_dir, "stubborn").desired,
        Desired::Stopped
    );
}

#[test]
fn crashed_service_can_be_started_and_restarted_again() {
    let f = Fixture::new();
    bundle(&f.layout.services_dir, "crashy", None);
    let services = f.services();
    run(async {
        services.start("crashy").await.expect("start");
        f.fake.crash(NS, "crashy", 2);
        services
            .start("crashy")
            .await
            .expect("start over a crashed leftover");
        f.fake.crash(NS, "crashy", 2);
        services
            .restart("crashy")
            .await
            .expect("restart a crashed service");
        assert!(matches!(
            services.start("crashy").await,
            Err(ServiceError::AlreadyRunning { .. })
        ));
        assert!(matches!(
            services.stop("missing").await,
            Err(ServiceError::NotRunning { .. })
        ));
    });
}

#[test]
fn bad_bundles_fail_with_named_errors_and_create_nothing() {
    let f = Fixture::new();
    bundle(&f.layout.services_dir, "bad", Some(r#"{"mkdir": 3}"#));
    let err = run(f.services().start("bad")).expect_err("bad runtime.json");
    assert!(
        crate::describe(&err).contains("runtime.json: field `mkdir`"),
        "{}",
        crate::describe(&err)
    );
    assert!(matches!(
        run(f.services().start("../etc")),
        Err(ServiceError::InvalidName { .. })
    ));
    assert!(matches!(
        run(f.services().start("none")),
        Err(ServiceError::NoBundle { .. })
    ));
    assert!(f.fake.calls().is_empty());
}

#[test]
fn shutdown_stops_everything_concurrently() {
    let f = Fixture::new();
    for name in ["a", "b", "c"] {
        bundle(
            &f.layout.services_dir,
            name,
            Some(r#"{"stopGracePeriod": 0.3}"#),
        );
        f.fake
            .ignores_term
            .lock()
            .expect("lock")
            .insert(name.into());
    }
    let services = f.services();
    run(async {
        for name in ["a", "b", "c"] {
            services.start(name).await.expect("start");
        }
        assert!(services.shutdown().await.is_empty());
    });
    assert!(f.fake.containers.lock().expect("lock").is_empty());
    // Concurrent: every service got its SIGTERM before any grace period ran out.
    let signals: Vec<String> = f
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("kill_task"))
        .map(|c| c.rsplit(' ').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(signals, vec!["15", "15", "15", "9", "9", "9"]);
}
