//! `config.json` of a bundle, read with the `oci-spec` types (docs/linuxkit.md §9, docs/linuxkit.md §11.2).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Root, Spec};

/// Errors reading or writing a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("reading {}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid OCI runtime spec.
    #[error("parsing {}: field `{field}`", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The offending field (`.` for the document).
        field: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// `-dump-spec` could not write its file.
    #[error("writing the spec to {}", file.display())]
    Dump {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `config.json` text; `file` is only used in errors.
pub fn parse_spec(text: &[u8], file: &Path) -> Result<Spec, SpecError> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| SpecError::Parse {
        file: file.to_owned(),
        field: err.path().to_string(),
        source: err.into_inner(),
    })
}

/// Reads `<bundle>/config.json` and points `root.path` at the absolute `<bundle>/rootfs`, keeping
/// `root.readonly`.
pub fn load_spec(bundle: &Path) -> Result<Spec, SpecError> {
    let file = bundle.join("config.json");
    let text = std::fs::read(&file).map_err(|source| SpecError::Read {
        file: file.clone(),
        source,
    })?;
    let mut spec = parse_spec(&text, &file)?;
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let mut root = Root::default();
    root.set_path(bundle.join("rootfs"));
    root.set_readonly(Some(readonly));
    spec.set_root(Some(root));
    Ok(spec)
}

/// `-dump-spec FILE`: the final spec as JSON with 4-space indentation.
pub fn dump_spec(spec: &Spec, file: &Path) -> Result<(), SpecError> {
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
    serde::Serialize::serialize(spec, &mut serializer).map_err(|e| SpecError::Dump {
        file: file.to_owned(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(file, text).map_err(|source| SpecError::Dump {
        file: file.to_owned(),
        source,
    })
}

/// Whether the spec joins namespaces by path (for example `/run/netns/x` bound by another container).
pub fn joins_namespace_paths(spec: &Spec) -> bool {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    namespaces.iter().any(|ns| ns.path().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_becomes_absolute() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true}}"#,
        )
        .expect("write");
        let spec = load_spec(dir.path()).expect("valid spec");
        let root = spec.root().as_ref().expect("root");
        assert_eq!(root.path(), &dir.path().join("rootfs"));
        assert_eq!(root.readonly(), Some(true));
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_spec(
            br#"{"ociVersion":"1.0.2","process":{"args":"sh"}}"#,
            Path::new("/b/config.json"),
        )
        .expect_err("args must be a list");
        let message = err.to_string();
        assert!(
            message.contains("/b/config.json") && message.contains("process.args"),
            "{message}"
        );
    }
}
