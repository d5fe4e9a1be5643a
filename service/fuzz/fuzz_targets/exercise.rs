//! What the supervisor and `stop` do with an accepted configuration's durations.

use std::time::{Duration, Instant};

use service::runtime_json::{GRACE_LIMIT, RuntimeConfig};
use service::state::Desired;
use service::supervisor::{Backoff, decide};

pub fn exercise(config: &RuntimeConfig) {
    let policy = &config.restart;
    let now = Instant::now();
    for attempt in [0, 1, 10, 31, u32::MAX] {
        let _ = now + policy.delay(attempt);
    }
    let mut backoff = Backoff::default();
    let task = Some((service::runtime::TaskStatus::Stopped, 1));
    let _ = decide(policy, Desired::Running, task, Duration::MAX, &mut backoff, now);
    let running = Some((service::runtime::TaskStatus::Running, 0));
    let _ = decide(policy, Desired::Running, running, Duration::MAX, &mut backoff, now);
    if let Some(grace) = config.stop_grace_period {
        let grace = GRACE_LIMIT.seconds(grace).expect("accepted grace is in range");
        let _ = now + grace;
    }
}
