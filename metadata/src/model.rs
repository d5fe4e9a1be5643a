//! What a provider found: plain data, written to disk only by [`crate::apply`].

use std::collections::BTreeMap;

use crate::network::BondConfig;

/// Everything one provider returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The `/run/config/provider` string (`AWS`, `CDROM /dev/sr0`, ...).
    pub provider: String,
    /// The hostname as the provider gave it (validated and trimmed when applied).
    pub hostname: Option<String>,
    /// Extra top-level files (`public_ipv4`, `instance_id`, ...), written 0644.
    pub files: BTreeMap<String, Vec<u8>>,
    /// SSH public keys for `ssh/authorized_keys` (0600), one per line.
    pub ssh_keys: Vec<String>,
    /// Raw userdata, written to `userdata` and expanded as a JSON tree when it is one.
    pub userdata: Option<Vec<u8>>,
    /// Network set-up the provider asks for (Equinix Metal bonding).
    pub network: Option<BondConfig>,
}

impl Metadata {
    /// Empty metadata for `provider`.
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            ..Self::default()
        }
    }

    /// Adds a top-level file when `value` is present and not empty (after trimming).
    pub fn file(&mut self, name: &str, value: Option<String>) {
        if let Some(v) = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        {
            self.files.insert(name.to_string(), v.into_bytes());
        }
    }

    /// Adds SSH keys, one per non-empty line of each string.
    pub fn keys<I: IntoIterator<Item = String>>(&mut self, keys: I) {
        for k in keys {
            self.ssh_keys.extend(
                k.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
    }
}

/// Checks a hostname: trimmed, letters/digits/`-`/`.`, labels of 1–63 characters not starting or
/// ending with `-`. A name longer than 64 bytes (the kernel's limit) is cut to its first label, as
/// Afterburn does. Returns the name to use or why it was refused.
pub fn validate_hostname(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.');
    if name.is_empty() {
        return Err("hostname is empty".into());
    }
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "hostname {name:?} is not a valid DNS name (label {label:?})"
            ));
        }
    }
    if name.len() > 64 {
        return Ok(name.split('.').next().unwrap_or(name).to_string());
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_trimmed_and_checked() {
        assert_eq!(validate_hostname("host-1\n"), Ok("host-1".into()));
        assert_eq!(
            validate_hostname(" ip-10-0-0-1.ec2.internal. "),
            Ok("ip-10-0-0-1.ec2.internal".into())
        );
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("bad host").is_err());
        assert!(validate_hostname("-x").is_err());
        assert!(validate_hostname("a/../b").is_err());
        let long = format!("{}.{}.example.com", "a".repeat(40), "b".repeat(40));
        assert_eq!(validate_hostname(&long), Ok("a".repeat(40)));
    }

    #[test]
    fn keys_are_split_into_lines() {
        let mut m = Metadata::new("x");
        m.keys(["ssh-rsa A\n\nssh-ed25519 B\n".to_string()]);
        assert_eq!(m.ssh_keys, ["ssh-rsa A", "ssh-ed25519 B"]);
    }
}
