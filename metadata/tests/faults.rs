//! Faulty servers: each case ends (bounded by the deadline) with a clear result.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metadata::run::{Summary, run};
use support::{Answer, Handler, Seen, Server, clouds};

/// Probes a GCE-like server with `timeout` per request and `deadline` overall.
async fn probe_with(handler: Handler, timeout: Duration, deadline: Duration) -> (Summary, Server) {
    let server = Server::start("127.0.0.1:0", handler);
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = support::plan(&server.url(), server.addr, &["gcp"], tmp.path());
    plan.env.policy.request_timeout = timeout;
    plan.deadline = deadline;
    (run(&plan).await, server)
}

/// Short limits, for servers that never answer.
async fn quick(handler: Handler) -> (Summary, Server) {
    probe_with(
        handler,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    )
    .await
}

/// Normal request timeout, short deadline, for servers that answer badly.
async fn bounded(handler: Handler) -> (Summary, Server) {
    probe_with(handler, Duration::from_secs(2), Duration::from_secs(3)).await
}

/// A generous deadline, for servers that end up answering (success returns early).
async fn patient(handler: Handler) -> (Summary, Server) {
    probe_with(handler, Duration::from_secs(2), Duration::from_secs(10)).await
}

fn always(answer: Answer) -> Handler {
    Arc::new(move |_: &Seen| answer.clone())
}

/// Fails `n` times with `first`, then behaves like GCE.
fn flaky(n: usize, first: Answer) -> Handler {
    let count = AtomicUsize::new(0);
    let gcp = clouds::gcp();
    Arc::new(move |req: &Seen| {
        if count.fetch_add(1, Ordering::SeqCst) < n {
            first.clone()
        } else {
            gcp(req)
        }
    })
}

fn none_found_saying(summary: &Summary, needle: &str) {
    assert!(
        matches!(summary, Summary::NoneFound { .. }),
        "expected no provider: {}",
        summary.line()
    );
    assert!(
        summary.line().contains(needle),
        "summary should mention {needle:?}: {}",
        summary.line()
    );
}

#[tokio::test]
async fn stalled_server_ends_at_the_deadline() {
    let (summary, _) = quick(always(Answer::Stall)).await;
    none_found_saying(&summary, "timed out");
}

#[tokio::test]
async fn slow_body_is_cut_by_the_request_timeout() {
    let (summary, _) = quick(always(Answer::SlowBody(
        vec![b'x'; 200],
        Duration::from_millis(50),
    )))
    .await;
    none_found_saying(&summary, "timed out");
}

#[tokio::test]
async fn not_found_and_gone_mean_absent_at_once() {
    for code in [404, 410] {
        let (summary, server) = bounded(always(Answer::status(code))).await;
        none_found_saying(&summary, "gcp: not present");
        assert_eq!(server.requests().len(), 1, "{code} is not retried");
    }
}

#[tokio::test]
async fn too_many_requests_and_server_errors_are_retried() {
    for code in [429, 500, 503] {
        let (summary, _) = patient(flaky(2, Answer::status(code))).await;
        assert!(
            matches!(summary, Summary::Applied { .. }),
            "{code} then success: {}",
            summary.line()
        );
        let (summary, server) = bounded(always(Answer::status(code))).await;
        none_found_saying(&summary, &format!("HTTP {code}"));
        assert!(server.requests().len() > 2, "{code} was retried");
    }
}

#[tokio::test]
async fn forbidden_is_final() {
    let (summary, server) = bounded(always(Answer::status(403))).await;
    none_found_saying(&summary, "403");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn garbage_is_not_http() {
    let (summary, _) = bounded(always(Answer::Raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()))).await;
    none_found_saying(&summary, "gcp:");
    let (summary, _) = patient(flaky(1, Answer::Raw(b"\x00\x01garbage".to_vec()))).await;
    assert!(
        matches!(summary, Summary::Applied { .. }),
        "garbage once, then fine: {}",
        summary.line()
    );
}

#[tokio::test]
async fn oversized_replies_are_refused() {
    let (summary, _) = bounded(always(Answer::ok(vec![b'a'; 2 * 1024 * 1024]))).await;
    none_found_saying(&summary, "larger than");
}

#[tokio::test]
async fn oversized_userdata_is_dropped_not_fatal() {
    let big = vec![b'u'; 2 * 1024 * 1024];
    let gcp = clouds::gcp();
    let handler: Handler = Arc::new(move |req: &Seen| {
        if req.path.ends_with("user-data") {
            Answer::ok(big.clone())
        } else {
            gcp(req)
        }
    });
    let (summary, _) = patient(handler).await;
    assert!(
        matches!(summary, Summary::Applied { .. }),
        "{}",
        summary.line()
    );
}

#[tokio::test]
async fn token_that_keeps_expiring_fails_clearly() {
    let server = Server::start(
        "127.0.0.1:0",
        clouds::aws(clouds::Imds {
            token_uses: Some(0),
            ..Default::default()
        }),
    );
    let tmp = tempfile::tempdir().unwrap();
    let summary = run(&support::plan(
        &server.url(),
        server.addr,
        &["aws"],
        tmp.path(),
    ))
    .await;
    none_found_saying(&summary, "401");
}

#[tokio::test]
async fn nothing_listening_ends_within_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = support::plan(&format!("http://{port}"), port, &[], tmp.path());
    plan.providers = metadata::providers::DEFAULT_ORDER
        .iter()
        .map(|s| s.to_string())
        .collect();
    plan.deadline = Duration::from_secs(1);
    let summary = run(&plan).await;
    none_found_saying(&summary, "aws: ");
    assert_eq!(summary.exit_code(), 2);
}

/// IMDS never redirects: a redirect is refused, not followed (following it would carry the IMDSv2
/// token to wherever the Location points).
#[tokio::test]
async fn redirects_are_refused_not_followed() {
    let aws = clouds::aws(clouds::Imds::default());
    let handler: Handler = Arc::new(move |req: &Seen| {
        if req.method == "GET" && req.path.starts_with("/latest/") {
            Answer::Reply(
                302,
                vec![("Location".into(), "/elsewhere".into())],
                Vec::new(),
            )
        } else {
            aws(req)
        }
    });
    let server = Server::start("127.0.0.1:0", handler);
    let tmp = tempfile::tempdir().unwrap();
    let mut plan = support::plan(&server.url(), server.addr, &["aws"], tmp.path());
    plan.deadline = Duration::from_secs(3);
    let summary = run(&plan).await;
    none_found_saying(&summary, "302");
    let seen = server.requests();
    assert!(
        seen.iter().any(|s| s.method == "GET"),
        "the probe asked: {seen:#?}"
    );
    assert!(
        seen.iter().all(|s| s.path != "/elsewhere"),
        "the redirect was followed: {seen:#?}"
    );
}
