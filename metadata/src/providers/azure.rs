//! Azure: IMDS (`Metadata: true`, `api-version`) for hostname, keys and userdata, then the
//! WireServer "Ready" health report (goal state → incarnation, container and instance ids), without
//! which Azure marks provisioning as failed.

use base64::Engine;
use serde::Deserialize;
use tokio::time::Instant;

use super::{BoxFut, Locality, Provider, ProviderError, fetch_err};
use crate::dmi::Cloud;
use crate::http::{Http, Reply, Request};
use crate::model::Metadata;

const INSTANCE: &str = "/metadata/instance?api-version=2021-02-01";
const USERDATA: &str = "/metadata/instance/compute/userData?api-version=2021-01-01&format=text";
const WIRE_VERSION: &str = "2012-11-30";

/// Azure IMDS plus WireServer.
#[derive(Debug)]
pub struct Azure {
    http: Http,
    imds: String,
    wireserver: String,
}

/// The parts of the IMDS instance document we use.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Instance {
    compute: Compute,
    network: Network,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Compute {
    name: String,
    os_profile: OsProfile,
    public_keys: Vec<PublicKey>,
    vm_id: String,
    location: String,
    vm_size: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OsProfile {
    computer_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PublicKey {
    key_data: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Network {
    interface: Vec<Interface>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Interface {
    ipv4: Ipv4,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Ipv4 {
    ip_address: Vec<IpPair>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IpPair {
    private_ip_address: String,
    public_ip_address: String,
}

/// Parses the IMDS instance document into metadata (without userdata).
pub fn parse_instance(body: &[u8]) -> Result<Metadata, String> {
    let doc: Instance = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let c = doc.compute;
    let mut meta = Metadata::new("Azure");
    let host = if c.os_profile.computer_name.is_empty() {
        c.name
    } else {
        c.os_profile.computer_name
    };
    meta.hostname = Some(host).filter(|h| !h.is_empty());
    meta.file("instance_id", Some(c.vm_id));
    meta.file("region", Some(c.location));
    meta.file("instance_type", Some(c.vm_size));
    let ip = doc
        .network
        .interface
        .into_iter()
        .next()
        .and_then(|i| i.ipv4.ip_address.into_iter().next())
        .unwrap_or_default();
    meta.file("local_ipv4", Some(ip.private_ip_address));
    meta.file("public_ipv4", Some(ip.public_ip_address));
    meta.keys(c.public_keys.into_iter().map(|k| k.key_data));
    Ok(meta)
}

/// The goal-state values the health report needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalState {
    /// `<Incarnation>`.
    pub incarnation: String,
    /// `<ContainerId>`.
    pub container_id: String,
    /// `<InstanceId>` of the role instance.
    pub instance_id: String,
}

/// Text of the first `<tag>…</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = xml.get(start..)?.find(&format!("</{tag}>"))?;
    xml.get(start..start + len).map(str::trim)
}

/// Parses the WireServer goal state XML.
pub fn parse_goal_state(xml: &str) -> Result<GoalState, String> {
    let get = |tag: &str| {
        element(xml, tag)
            .map(str::to_string)
            .ok_or_else(|| format!("no <{tag}> in goal state"))
    };
    Ok(GoalState {
        incarnation: get("Incarnation")?,
        container_id: get("ContainerId")?,
        instance_id: get("InstanceId")?,
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `Ready` health report for `goal`.
pub fn ready_report(goal: &GoalState) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
            "<Health xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">",
            "<GoalStateIncarnation>{}</GoalStateIncarnation><Container><ContainerId>{}</ContainerId>",
            "<RoleInstanceList><Role><InstanceId>{}</InstanceId><Health><State>Ready</State></Health></Role>",
            "</RoleInstanceList></Container></Health>"
        ),
        xml_escape(&goal.incarnation),
        xml_escape(&goal.container_id),
        xml_escape(&goal.instance_id)
    )
}

impl Azure {
    /// Azure with IMDS at `imds` and the WireServer at `wireserver`.
    pub fn new(http: Http, imds: String, wireserver: String) -> Self {
        Self {
            http,
            imds,
            wireserver,
        }
    }

    async fn imds(&self, path: &str, deadline: Instant) -> Result<Reply, ProviderError> {
        let req = Request::get(format!("{}{path}", self.imds)).header("metadata", "true");
        self.http
            .send(&req, deadline)
            .await
            .map_err(fetch_err("azure", path))
    }

    async fn report(&self, deadline: Instant) -> Result<(), ProviderError> {
        let url = format!("{}/machine/?comp=goalstate", self.wireserver);
        let req = Request::get(url)
            .header("x-ms-version", WIRE_VERSION)
            .header("x-ms-agent-name", "guestkit-metadata");
        let body = self
            .http
            .send(&req, deadline)
            .await
            .map_err(fetch_err("azure", "the WireServer goal state"))?;
        let text = body.text().ok_or(ProviderError::Missing {
            provider: "azure",
            what: "goal state".into(),
        })?;
        let goal = parse_goal_state(&text).map_err(|detail| ProviderError::Parse {
            provider: "azure",
            what: "goal state".into(),
            detail,
        })?;
        let mut post = Request::get(format!("{}/machine/?comp=health", self.wireserver))
            .header("x-ms-version", WIRE_VERSION)
            .header("x-ms-agent-name", "guestkit-metadata")
            .header("content-type", "text/xml;charset=utf-8");
        post.method = reqwest::Method::POST;
        post.body = Some(ready_report(&goal).into_bytes());
        self.http
            .send(&post, deadline)
            .await
            .map_err(fetch_err("azure", "the ready report"))?;
        log::info!("azure: reported Ready (incarnation {})", goal.incarnation);
        Ok(())
    }
}

impl Provider for Azure {
    fn name(&self) -> &'static str {
        "azure"
    }
    fn locality(&self) -> Locality {
        Locality::Network
    }
    fn cloud(&self) -> Option<Cloud> {
        Some(Cloud::Azure)
    }
    fn probe(&self, deadline: Instant) -> BoxFut<'_, Result<bool, ProviderError>> {
        Box::pin(async move {
            Ok(match self.imds(INSTANCE, deadline).await? {
                Reply::Body(b) => serde_json::from_slice::<serde_json::Value>(&b)
                    .is_ok_and(|v| v.get("compute").is_some()),
                Reply::Missing(_) => false,
            })
        })
    }
    fn fetch(&self, deadline: Instant) -> BoxFut<'_, Result<Metadata, ProviderError>> {
        Box::pin(async move {
            let body =
                self.imds(INSTANCE, deadline)
                    .await?
                    .body()
                    .ok_or(ProviderError::Missing {
                        provider: "azure",
                        what: "instance document".into(),
                    })?;
            let mut meta = parse_instance(&body).map_err(|detail| ProviderError::Parse {
                provider: "azure",
                what: "instance document".into(),
                detail,
            })?;
            if let Ok(Some(text)) = self.imds(USERDATA, deadline).await.map(Reply::text) {
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(data) if !data.is_empty() => meta.userdata = Some(data),
                    Ok(_) => {}
                    Err(e) => log::warn!("azure: userData is not base64: {e}"),
                }
            }
            Ok(meta)
        })
    }
    fn report_ready(&self, deadline: Instant) -> BoxFut<'_, Result<(), ProviderError>> {
        Box::pin(self.report(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_state_and_report() {
        let xml = "<GoalState><Incarnation>3</Incarnation><Container><ContainerId>c-1</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i&lt;1</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>";
        let goal = parse_goal_state(xml).unwrap();
        assert_eq!(goal.incarnation, "3");
        assert!(ready_report(&goal).contains("<State>Ready</State>"));
        assert!(parse_goal_state("<x/>").is_err());
    }

    #[test]
    fn instance_document() {
        let doc = br#"{"compute":{"name":"vm","osProfile":{"computerName":"host1"},"publicKeys":[{"keyData":"ssh-rsa A"}],"vmId":"id"},
            "network":{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.0.0.4","publicIpAddress":""}]}}]}}"#;
        let m = parse_instance(doc).unwrap();
        assert_eq!(m.hostname.as_deref(), Some("host1"));
        assert_eq!(m.ssh_keys, ["ssh-rsa A"]);
        assert_eq!(
            m.files.get("local_ipv4").map(Vec::as_slice),
            Some(&b"10.0.0.4"[..])
        );
        assert!(!m.files.contains_key("public_ipv4"));
    }
}
