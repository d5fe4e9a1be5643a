//! Disk sources: NoCloud `cidata` (ISO9660 or FAT, then any `/dev/sr*`) and OpenStack ConfigDrive
//! (`config-2`). Devices are found by reading their label from the device itself and their files are
//! read in user space ([`crate::disk`]), with size limits: nothing is mounted.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::time::Instant;

use super::{BoxFut, Env, Locality, Provider, ProviderError};
use crate::apply::MAX_USERDATA;
use crate::label::{self, FsType, PROBE_LEN};
use crate::model::Metadata;

/// Which layout to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    NoCloud,
    ConfigDrive,
}

/// The device a scan is reading at the moment (`None` between devices and after the scan).
type Reading = Arc<Mutex<Option<PathBuf>>>;

/// A disk source. Its scans run on their own thread, so that a device that never answers (a hung
/// block device, a filesystem the reader cannot finish) is abandoned at the deadline instead of
/// holding up the whole run; [`Provider::stalled`] then names the device.
#[derive(Debug)]
pub struct Cdrom {
    scanner: Scanner,
    reading: Reading,
    found: Mutex<Option<Metadata>>,
}

/// Everything a scan needs, owned, so that it can move to the scanning thread.
#[derive(Debug, Clone)]
struct Scanner {
    layout: Layout,
    sysfs: PathBuf,
    dev: PathBuf,
}

/// A device worth mounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `/dev/sr0`.
    pub device: PathBuf,
    /// Detected filesystem.
    pub fs: FsType,
}

impl Cdrom {
    /// NoCloud `cidata`/`CIDATA` devices, then `/dev/sr*`.
    pub fn nocloud(env: &Env) -> Self {
        Self::new(env, Layout::NoCloud)
    }
    /// OpenStack `config-2` devices.
    pub fn configdrive(env: &Env) -> Self {
        Self::new(env, Layout::ConfigDrive)
    }
    fn new(env: &Env, layout: Layout) -> Self {
        Self {
            scanner: Scanner {
                layout,
                sysfs: env.sysfs.clone(),
                dev: env.dev.clone(),
            },
            reading: Reading::default(),
            found: Mutex::new(None),
        }
    }

    /// Labelled devices first, then (NoCloud only) `sr*` devices with a filesystem, de-duplicated.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.scanner.candidates(&self.reading)
    }

    /// Scans on a new thread and waits for it until `deadline`; past it the thread is left behind
    /// (it ends with the process) and the device it was reading is named in the error.
    async fn scan_until(&self, deadline: Instant) -> Result<Option<Metadata>, ProviderError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let scanner = self.scanner.clone();
        let reading = Arc::clone(&self.reading);
        std::thread::Builder::new()
            .name(format!("{}-scan", self.name()))
            .spawn(move || {
                let _ = tx.send(scanner.scan(&reading));
            })
            .map_err(|source| ProviderError::Io {
                provider: self.name(),
                what: "starting the disk scan".into(),
                source,
            })?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProviderError::Missing {
                provider: self.name(),
                what: "an answer from the disk scan".into(),
            }),
            Err(_) => Err(ProviderError::Io {
                provider: self.name(),
                what: self
                    .stalled()
                    .unwrap_or_else(|| "the disk scan did not finish before the deadline".into()),
                source: std::io::ErrorKind::TimedOut.into(),
            }),
        }
    }
}

fn set_reading(reading: &Mutex<Option<PathBuf>>, device: Option<&Path>) {
    if let Ok(mut slot) = reading.lock() {
        *slot = device.map(Path::to_path_buf);
    }
}

impl Scanner {
    fn wanted(&self, label: &str) -> bool {
        match self.layout {
            Layout::NoCloud => label.eq_ignore_ascii_case("cidata"),
            Layout::ConfigDrive => label.eq_ignore_ascii_case("config-2"),
        }
    }

    fn candidates(&self, reading: &Mutex<Option<PathBuf>>) -> Vec<Candidate> {
        let mut names: Vec<String> = std::fs::read_dir(self.sysfs.join("class/block"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut labelled = Vec::new();
        let mut optical = Vec::new();
        for name in names
            .iter()
            .filter(|n| !n.starts_with("ram") && !n.starts_with("zram"))
        {
            let device = self.dev.join(name);
            set_reading(reading, Some(&device));
            let Some((fs, label)) = read_head(&device).as_deref().and_then(label::detect) else {
                continue;
            };
            let cand = Candidate { device, fs };
            if self.wanted(&label) {
                labelled.push(cand);
            } else if self.layout == Layout::NoCloud && name.starts_with("sr") {
                optical.push(cand);
            }
        }
        set_reading(reading, None);
        labelled.extend(optical);
        labelled
    }

    fn scan(&self, reading: &Mutex<Option<PathBuf>>) -> Result<Option<Metadata>, ProviderError> {
        let mut last_err = None;
        for cand in self.candidates(reading) {
            set_reading(reading, Some(&cand.device));
            let result = self.read_candidate(&cand);
            set_reading(reading, None);
            match result {
                Ok(Some(meta)) => return Ok(Some(meta)),
                Ok(None) => log::debug!("{}: nothing usable", cand.device.display()),
                Err(e) => {
                    log::warn!("{}", crate::apply::chain(&e));
                    last_err = Some(e);
                }
            }
        }
        last_err.map_or(Ok(None), Err)
    }

    fn read_candidate(&self, cand: &Candidate) -> Result<Option<Metadata>, ProviderError> {
        let mut reader = DeviceReader {
            device: &cand.device,
            fs: cand.fs,
        };
        match self.layout {
            Layout::NoCloud => read_nocloud(&mut reader),
            Layout::ConfigDrive => read_configdrive(&mut reader),
        }
    }
}

/// Reads named files from one device.
struct DeviceReader<'a> {
    device: &'a Path,
    fs: FsType,
}

impl DeviceReader<'_> {
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ProviderError> {
        crate::disk::read_file(self.device, self.fs, name, MAX_USERDATA).map_err(|e| {
            ProviderError::Io {
                provider: "cdrom",
                what: crate::apply::chain(&e),
                source: std::io::ErrorKind::InvalidData.into(),
            }
        })
    }
}

fn read_head(dev: &Path) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(PROBE_LEN);
    File::open(dev)
        .ok()?
        .take(PROBE_LEN as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

/// NoCloud `meta-data` (`key: value` lines): hostname and instance id.
pub fn parse_nocloud_meta(text: &str, meta: &mut Metadata) {
    for (key, value) in text.lines().filter_map(|l| l.split_once(':')) {
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        match key.trim() {
            "local-hostname" | "hostname" => meta.hostname = Some(value),
            "instance-id" => meta.file("instance_id", Some(value)),
            _ => {}
        }
    }
}

/// `user-data`, falling back to `config` (LinuxKit's ISO), plus `meta-data`.
fn read_nocloud(dev: &mut DeviceReader<'_>) -> Result<Option<Metadata>, ProviderError> {
    let mut meta = Metadata::new(format!("CDROM {}", dev.device.display()));
    meta.userdata = match dev.read("user-data")? {
        Some(u) => Some(u),
        None => dev.read("config")?,
    }
    .filter(|u| !u.is_empty());
    if let Some(m) = dev.read("meta-data")? {
        parse_nocloud_meta(&String::from_utf8_lossy(&m), &mut meta);
    }
    Ok((meta.userdata.is_some() || meta.hostname.is_some()).then_some(meta))
}

/// OpenStack `meta_data.json`: hostname, uuid, availability zone, public keys.
pub fn parse_configdrive_meta(body: &[u8], meta: &mut Metadata) -> Result<(), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let s = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    meta.hostname = s("hostname").or_else(|| s("name"));
    meta.file("instance_id", s("uuid"));
    meta.file("availability_zone", s("availability_zone"));
    if let Some(Value::Object(keys)) = doc.get("public_keys") {
        meta.keys(keys.values().filter_map(Value::as_str).map(str::to_string));
    }
    Ok(())
}

fn read_configdrive(dev: &mut DeviceReader<'_>) -> Result<Option<Metadata>, ProviderError> {
    let mut meta = Metadata::new(format!("ConfigDrive {}", dev.device.display()));
    let Some(body) = dev.read("openstack/latest/meta_data.json")? else {
        return Ok(None);
    };
    parse_configdrive_meta(&body, &mut meta).map_err(|detail| ProviderError::Parse {
        provider: "configdrive",
        what: "meta_data.json".into(),
        detail,
    })?;
    meta.userdata = dev
        .read("openstack/latest/user_data")?
        .filter(|u| !u.is_empty());
    Ok(Some(meta))
}

impl Provider for Cdrom {
    fn name(&self) -> &'static str {
        match self.scanner.layout {
            Layout::NoCloud => "cdrom",
            Layout::ConfigDrive => "configdrive",
        }
    }
    fn locality(&self) -> Locality {
        Locality::Local
    }
    fn stalled(&self) -> Option<String> {
        let device = self.reading.lock().ok()?.clone()?;
        Some(format!(
            "still reading {} at the deadline; abandoned",
            device.display()
        ))
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            let found = self.scan_until(deadline).await?;
            let present = found.is_some();
            if let Ok(mut slot) = self.found.lock() {
                *slot = found;
            }
            Ok(present)
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let cached = self.found.lock().ok().and_then(|mut slot| slot.take());
            match cached {
                Some(meta) => Ok(meta),
                None => self
                    .scan_until(deadline)
                    .await?
                    .ok_or(ProviderError::Missing {
                        provider: self.name(),
                        what: "a readable device".into(),
                    }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nocloud_meta_data() {
        let mut m = Metadata::new("x");
        parse_nocloud_meta("instance-id: iid-1\nlocal-hostname: 'vm1'\n", &mut m);
        assert_eq!(m.hostname.as_deref(), Some("vm1"));
        assert_eq!(
            m.files.get("instance_id").map(Vec::as_slice),
            Some(&b"iid-1"[..])
        );
    }

    #[test]
    fn configdrive_meta_data() {
        let mut m = Metadata::new("x");
        parse_configdrive_meta(
            br#"{"uuid":"u","hostname":"h","public_keys":{"k":"ssh-rsa A"}}"#,
            &mut m,
        )
        .unwrap();
        assert_eq!(m.hostname.as_deref(), Some("h"));
        assert_eq!(m.ssh_keys, ["ssh-rsa A"]);
        assert!(parse_configdrive_meta(b"{", &mut m).is_err());
    }
}
