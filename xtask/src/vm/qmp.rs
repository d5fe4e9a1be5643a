//! A minimal QMP client: capabilities negotiation, synchronous commands, and the events qemu sends
//! (`SHUTDOWN` carries the reason a guest ended).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::VmError;

/// A QMP connection.
#[derive(Debug)]
pub struct Qmp {
    writer: UnixStream,
    replies: Receiver<Value>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Qmp {
    /// Connects to the socket (retrying until `timeout`, since qemu creates it while starting) and
    /// negotiates capabilities.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, VmError> {
        let until = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= until => {
                    return Err(VmError::Qmp(format!("connect: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let reader = stream
            .try_clone()
            .map_err(|e| VmError::Qmp(format!("clone: {e}")))?;
        let (tx, replies) = channel();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if msg.get("event").is_some() {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
                } else if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let mut qmp = Self {
            writer: stream,
            replies,
            events,
        };
        qmp.reply(Duration::from_secs(10))?; // the greeting
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        let mut msg = serde_json::json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| VmError::Qmp(format!("{command}: {e}")))?;
        let reply = self.reply(Duration::from_secs(10))?;
        match reply.get("error") {
            Some(err) => Err(VmError::Qmp(format!("{command}: {err}"))),
            None => Ok(reply.get("return").cloned().unwrap_or(Value::Null)),
        }
    }

    fn reply(&mut self, timeout: Duration) -> Result<Value, VmError> {
        self.replies
            .recv_timeout(timeout)
            .map_err(|e| VmError::Qmp(format!("no reply: {e}")))
    }

    /// The events received so far.
    pub fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `reason` of the last `SHUTDOWN` event, or `guest-panic` after a `GUEST_PANICKED` event.
    pub fn shutdown_reason(&mut self) -> Option<String> {
        std::thread::sleep(Duration::from_millis(50));
        let events = self.events();
        if events.iter().any(|e| e["event"] == "GUEST_PANICKED") {
            return Some("guest-panic".into());
        }
        events
            .iter()
            .rev()
            .find(|e| e["event"] == "SHUTDOWN")
            .and_then(|e| e["data"]["reason"].as_str())
            .map(str::to_string)
    }
}
