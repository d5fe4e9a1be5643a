//! From a YAML value to the blueprint model, one section and one entry at a time so that every error names
//! the entry (`services[1] (name "getty")`) and the key.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::{Blueprint, BlueprintError, FileEntry, ImageConfig, ImageEntry, Kernel, Volume};

const TOP_KEYS: &[&str] = &[
    "kernel",
    "init",
    "onboot",
    "onshutdown",
    "services",
    "files",
    "volumes",
    "trust",
];

/// Every key an image entry accepts besides `name`, `image` and `platforms`.
pub(crate) const CONFIG_KEYS: &[&str] = &[
    "capabilities",
    "capabilities.add",
    "ambient",
    "mounts",
    "binds",
    "binds.add",
    "devices",
    "tmpfs",
    "command",
    "env",
    "cwd",
    "net",
    "pid",
    "ipc",
    "uts",
    "userns",
    "hostname",
    "readonly",
    "maskedPaths",
    "readonlyPaths",
    "uid",
    "gid",
    "additionalGids",
    "noNewPrivileges",
    "oomScoreAdj",
    "rootfsPropagation",
    "cgroupsPath",
    "resources",
    "sysctl",
    "rlimits",
    "uidMappings",
    "gidMappings",
    "annotations",
    "runtime",
];

/// The deprecated `trust:` section, checked for shape and then ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Trust {
    #[serde(default)]
    image: Vec<String>,
    #[serde(default)]
    org: Vec<String>,
}

pub(crate) fn parse_blueprint(value: Value) -> Result<Blueprint, BlueprintError> {
    let map = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        other => {
            return Err(BlueprintError::invalid(
                "blueprint",
                format!("expected a mapping, found {}", kind(&other)),
            ));
        }
    };
    let mut bp = Blueprint::default();
    for (key, value) in map {
        let key = key_text(&key, "blueprint")?;
        match key.as_str() {
            "kernel" => bp.kernel = Some(typed::<Kernel>(value, "kernel", None)?),
            "init" => bp.init = typed::<Vec<String>>(value, "init", None)?,
            "onboot" => bp.onboot = image_section(value, "onboot")?,
            "onshutdown" => bp.onshutdown = image_section(value, "onshutdown")?,
            "services" => bp.services = image_section(value, "services")?,
            "files" => bp.files = list_section::<FileEntry>(value, "files")?,
            "volumes" => bp.volumes = list_section::<Volume>(value, "volumes")?,
            // Deprecated in LinuxKit (content trust); its schema still accepts it, the build ignores it.
            "trust" => {
                typed::<Trust>(value, "trust", None)?;
                log::warn!("blueprint: \"trust\" is deprecated and ignored");
            }
            other => return Err(unknown_key("blueprint", other, TOP_KEYS)),
        }
    }
    Ok(bp)
}

fn image_section(value: Value, section: &str) -> Result<Vec<ImageEntry>, BlueprintError> {
    section_items(value, section)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| image_entry(item, &format!("{section}[{i}]")))
        .collect()
}

fn list_section<T: DeserializeOwned>(
    value: Value,
    section: &str,
) -> Result<Vec<T>, BlueprintError> {
    section_items(value, section)?
        .into_iter()
        .enumerate()
        .map(|(i, item)| typed::<T>(item, &format!("{section}[{i}]"), None))
        .collect()
}

fn section_items(value: Value, section: &str) -> Result<Vec<Value>, BlueprintError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => Ok(items),
        other => Err(BlueprintError::invalid(
            section,
            format!("expected a list, found {}", kind(&other)),
        )),
    }
}

fn image_entry(value: Value, index: &str) -> Result<ImageEntry, BlueprintError> {
    let Value::Mapping(mut map) = value else {
        return Err(BlueprintError::invalid(
            index,
            format!("expected a mapping, found {}", kind(&value)),
        ));
    };
    let name = take_string(&mut map, "name", index)?;
    let location = match &name {
        Some(name) => format!("{index} (name {name:?})"),
        None => index.to_string(),
    };
    let image = take_string(&mut map, "image", &location)?;
    let platforms = match map.remove("platforms") {
        Some(v) => Some(typed::<Vec<String>>(v, &location, Some("platforms"))?),
        None => None,
    };
    let config = config_from_map(map, &location)?;
    let name = name.filter(|n| !n.is_empty());
    let name =
        name.ok_or_else(|| BlueprintError::invalid(&location, "missing required key \"name\""))?;
    let image = image.filter(|i| !i.is_empty());
    let image = image
        .ok_or_else(|| BlueprintError::invalid(&location, "missing required key \"image\""))?;
    Ok(ImageEntry {
        name,
        image,
        platforms,
        config,
    })
}

/// Parses the `org.mobyproject.config` label (JSON or YAML) of an image into the image-entry model.
/// `location` names the image in errors. `name` and `image` are refused, as in LinuxKit.
pub fn parse_image_config(text: &str, location: &str) -> Result<ImageConfig, BlueprintError> {
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        BlueprintError::invalid(location, format!("label is not valid JSON or YAML: {e}"))
    })?;
    let map = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(map) => map,
        other => {
            return Err(BlueprintError::invalid(
                location,
                format!("label: expected an object, found {}", kind(&other)),
            ));
        }
    };
    for forbidden in ["name", "image"] {
        if map.contains_key(forbidden) {
            return Err(BlueprintError::invalid(
                location,
                format!("{forbidden:?} cannot be set in the label"),
            ));
        }
    }
    config_from_map(map, location)
}

/// Checks every key, deserialises each on its own (so a type error names its key), then the whole.
fn config_from_map(map: Mapping, location: &str) -> Result<ImageConfig, BlueprintError> {
    for (key, value) in &map {
        let key = key_text(key, location)?;
        if !CONFIG_KEYS.contains(&key.as_str()) {
            let mut known = vec!["name", "image", "platforms"];
            known.extend_from_slice(CONFIG_KEYS);
            return Err(unknown_key(location, &key, &known));
        }
        let mut single = Mapping::new();
        single.insert(Value::String(key.clone()), value.clone());
        typed::<ImageConfig>(Value::Mapping(single), location, Some(&key))?;
    }
    typed::<ImageConfig>(Value::Mapping(map), location, None)
}

fn take_string(
    map: &mut Mapping,
    key: &str,
    location: &str,
) -> Result<Option<String>, BlueprintError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(BlueprintError::invalid(
            location,
            format!("key {key:?}: expected a string, found {}", kind(&other)),
        )),
    }
}

/// Deserialises `value`, naming the location (and key) in the error; unknown keys get a clear message.
fn typed<T: DeserializeOwned>(
    value: Value,
    location: &str,
    key: Option<&str>,
) -> Result<T, BlueprintError> {
    serde_yaml::from_value(value).map_err(|e| {
        let message = e.to_string();
        let problem = match unknown_field_name(&message) {
            Some(field) => format!("unknown key {field:?}"),
            None => message,
        };
        let problem = match key {
            Some(key) => format!("key {key:?}: {problem}"),
            None => problem,
        };
        BlueprintError::invalid(location, problem)
    })
}

/// serde reports unknown fields as "unknown field `x`, expected ..."; pull out `x`.
fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    rest.split('`').next()
}

fn key_text(key: &Value, location: &str) -> Result<String, BlueprintError> {
    match key {
        Value::String(s) => Ok(s.clone()),
        other => Err(BlueprintError::invalid(
            location,
            format!("keys must be strings, found {}", kind(other)),
        )),
    }
}

fn unknown_key(location: &str, key: &str, known: &[&str]) -> BlueprintError {
    BlueprintError::invalid(
        location,
        format!("unknown key {key:?} (known keys: {})", known.join(", ")),
    )
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
