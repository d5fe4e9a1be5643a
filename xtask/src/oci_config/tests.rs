use serde_json::{Value, json};

use super::*;
use crate::blueprint::{Blueprint, Id};

fn entry_config(yaml: &str) -> ImageConfig {
    let bp: Blueprint = format!("services:\n  - name: svc\n    image: a/b\n{yaml}")
        .parse()
        .expect("blueprint");
    bp.services[0].config.clone()
}

fn spec_json(config: &ImageConfig, ctx: &BuildContext) -> Value {
    let image = ImageDefaults {
        entrypoint: vec!["/bin/sh".into()],
        cmd: vec!["-c".into(), "true".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: String::new(),
    };
    let spec = config_json("svc", &image, config, ctx).expect("config.json");
    serde_json::from_slice(&to_pretty_json(&spec).expect("json")).expect("reparse")
}

#[test]
fn defaults_match_linuxkit() {
    let v = spec_json(&ImageConfig::default(), &BuildContext::default());
    assert_eq!(v["root"], json!({"path": "rootfs"}));
    assert_eq!(v["process"]["args"], json!(["/bin/sh", "-c", "true"]));
    assert_eq!(v["process"]["env"], json!(["PATH=/bin"]));
    assert_eq!(v["process"]["cwd"], json!("/"));
    assert_eq!(v["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(v["process"]["capabilities"], json!({}));
    assert_eq!(
        v["linux"]["namespaces"],
        json!([{"type": "pid"}, {"type": "mount"}])
    );
    assert_eq!(v["linux"]["resources"], json!({}));
    let dests: Vec<&str> = v["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(
        dests,
        ["/dev", "/dev/pts", "/proc", "/sys", "/sys/fs/cgroup"]
    );
    assert_eq!(
        v["mounts"][0],
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]})
    );
    assert!(v.get("hostname").is_none() && v.get("annotations").is_none());
}

#[test]
fn readonly_adds_ro_to_dev_and_sys() {
    let v = spec_json(
        &entry_config("    readonly: true\n"),
        &BuildContext::default(),
    );
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(v["mounts"][0]["options"][4], json!("ro"));
    assert_eq!(
        v["mounts"][3]["options"],
        json!(["nosuid", "noexec", "nodev", "ro"])
    );
}

#[test]
fn capabilities_all_none_and_sorted_sets() {
    let v = spec_json(
        &entry_config("    capabilities: [CAP_SYS_ADMIN, CAP_CHOWN]\n    ambient: [CAP_NET_RAW]\n"),
        &BuildContext::default(),
    );
    let caps = &v["process"]["capabilities"];
    assert_eq!(caps["effective"], json!(["CAP_SYS_ADMIN", "CAP_CHOWN"]));
    assert_eq!(
        caps["bounding"],
        json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"])
    );
    assert_eq!(caps["permitted"], caps["bounding"]);
    assert_eq!(caps["inheritable"], caps["bounding"]);
    assert_eq!(caps["ambient"], json!(["CAP_NET_RAW"]));
    let v = spec_json(
        &entry_config("    capabilities: [all]\n"),
        &BuildContext::default(),
    );
    assert_eq!(
        v["process"]["capabilities"]["effective"]
            .as_array()
            .map(Vec::len),
        Some(41)
    );
    let v = spec_json(
        &entry_config("    capabilities: [None]\n"),
        &BuildContext::default(),
    );
    assert_eq!(v["process"]["capabilities"], json!({}));
}

#[test]
fn a_merged_capability_list_is_checked_again() {
    let label = ImageConfig {
        capabilities: Some(vec!["all".into()]),
        ..Default::default()
    };
    let yaml = ImageConfig {
        capabilities_add: Some(vec!["CAP_CHOWN".into()]),
        ..Default::default()
    };
    let merged = merge_layers(&label, &yaml);
    let err = config_json(
        "svc",
        &ImageDefaults::default(),
        &merged,
        &BuildContext::default(),
    )
    .expect_err("all+cap");
    assert!(
        err.to_string()
            .contains("container \"svc\": key \"capabilities\": unknown capability \"all\""),
        "{err}"
    );
}

#[test]
fn namespaces_follow_the_rules() {
    let config =
        entry_config("    net: host\n    pid: host\n    ipc: new\n    uts: /proc/1/ns/uts\n");
    let v = spec_json(&config, &BuildContext::default());
    assert_eq!(
        v["linux"]["namespaces"],
        json!([{"type": "ipc"}, {"type": "uts", "path": "/proc/1/ns/uts"}, {"type": "mount"}])
    );
    let v = spec_json(
        &entry_config("    net: none\n    userns: new\n"),
        &BuildContext::default(),
    );
    assert_eq!(
        v["linux"]["namespaces"],
        json!([{"type": "network"}, {"type": "pid"}, {"type": "user"}, {"type": "mount"}])
    );
    let v = spec_json(
        &entry_config("    net: /run/netns/wg0\n"),
        &BuildContext::default(),
    );
    assert_eq!(
        v["linux"]["namespaces"][0],
        json!({"type": "network", "path": "/run/netns/wg0"})
    );
}

#[test]
fn binds_tmpfs_and_mounts_replace_by_destination_and_sort() {
    let config = entry_config(concat!(
        "    binds: [\"/var:/var\", \"/dev:/dev:ro\", \"data:/data:ro\"]\n",
        "    tmpfs: [\"/tmp:size=1m,mode=1777\"]\n",
        "    mounts:\n      - source: mqueue\n      - type: bind\n        source: /etc\n        destination: /host/etc\n        options: [ro]\n",
    ));
    let ctx = BuildContext {
        volumes: [("data".to_string(), true)].into(),
        ..Default::default()
    };
    let v = spec_json(&config, &ctx);
    let mounts = v["mounts"].as_array().expect("mounts");
    let dests: Vec<&str> = mounts
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(
        dests,
        [
            "/data",
            "/dev",
            "/dev/mqueue",
            "/dev/pts",
            "/host/etc",
            "/proc",
            "/sys",
            "/sys/fs/cgroup",
            "/tmp",
            "/var"
        ]
    );
    assert_eq!(
        mounts[0],
        json!({"destination": "/data", "type": "bind", "source": "/containers/volumes/data/merged", "options": ["ro", "rbind"]})
    );
    assert_eq!(
        mounts[1],
        json!({"destination": "/dev", "type": "bind", "source": "/dev", "options": ["ro", "rbind"]})
    );
    assert_eq!(
        mounts[2],
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"})
    );
    assert_eq!(mounts[8]["options"], json!(["size=1m", "mode=1777"]));
    assert_eq!(
        mounts[9],
        json!({"destination": "/var", "type": "bind", "source": "/var", "options": ["rw", "rbind", "rshared"]})
    );
}

#[test]
fn a_read_only_volume_bound_read_write_is_an_error() {
    let ctx = BuildContext {
        volumes: [("data".to_string(), true)].into(),
        ..Default::default()
    };
    let config = entry_config("    binds: [\"data:/data\"]\n");
    let err = config_json("svc", &ImageDefaults::default(), &config, &ctx)
        .expect_err("rw bind of ro volume");
    assert!(
        err.to_string().contains("volume \"data\" is read-only"),
        "{err}"
    );
    let config = entry_config("    binds: [\"nosuch:/data\"]\n");
    let err =
        config_json("svc", &ImageDefaults::default(), &config, &ctx).expect_err("unknown volume");
    assert!(err.to_string().contains("\"nosuch\""), "{err}");
}

#[test]
fn users_rlimits_devices_and_pass_through_fields() {
    let config = entry_config(concat!(
        "    uid: 5\n    gid: root\n    additionalGids: [7]\n",
        "    rlimits: [\"NOFILE, 10, unlimited\", \"RLIMIT_CORE,0,0\"]\n",
        "    devices:\n      - {path: /dev/kmsg, type: c, major: 1, minor: 11, mode: \"0644\"}\n      - {path: all, type: b}\n",
        "    hostname: box\n    cwd: /work\n    command: [/bin/true]\n    env: [A=1]\n    noNewPrivileges: true\n    oomScoreAdj: -100\n",
        "    sysctl: {net.ipv4.ip_forward: \"1\"}\n    cgroupsPath: /x\n    rootfsPropagation: shared\n",
        "    maskedPaths: [/proc/kcore]\n    readonlyPaths: [/proc/sys]\n    annotations: {a: b}\n",
    ));
    let v = spec_json(&config, &BuildContext::default());
    let p = &v["process"];
    assert_eq!(
        p["user"],
        json!({"uid": 5, "gid": 0, "additionalGids": [7]})
    );
    assert_eq!(
        p["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": u64::MAX, "soft": 10}, {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}])
    );
    assert_eq!(
        (p["cwd"].clone(), p["args"].clone(), p["env"].clone()),
        (json!("/work"), json!(["/bin/true"]), json!(["A=1"]))
    );
    assert_eq!(
        (p["noNewPrivileges"].clone(), p["oomScoreAdj"].clone()),
        (json!(true), json!(-100))
    );
    assert_eq!(v["hostname"], json!("box"));
    assert_eq!(v["annotations"], json!({"a": "b"}));
    let l = &v["linux"];
    assert_eq!(
        l["devices"],
        json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644}])
    );
    assert_eq!(
        l["resources"]["devices"],
        json!([{"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"}, {"allow": true, "type": "b", "access": "rwm"}])
    );
    assert_eq!(
        (l["sysctl"].clone(), l["cgroupsPath"].clone()),
        (json!({"net.ipv4.ip_forward": "1"}), json!("/x"))
    );
    assert_eq!(
        (l["rootfsPropagation"].clone(), l["maskedPaths"].clone()),
        (json!("shared"), json!(["/proc/kcore"]))
    );
}

#[test]
fn ids_resolve_by_container_name() {
    let ctx = BuildContext {
        ids: [("getty".to_string(), 103)].into(),
        ..Default::default()
    };
    let config = ImageConfig {
        uid: Some(Id::Name("getty".into())),
        gid: Some(Id::Name(String::new())),
        ..Default::default()
    };
    let v = spec_json(&config, &ctx);
    assert_eq!(v["process"]["user"], json!({"uid": 103, "gid": 0}));
}

#[test]
fn runtime_json_always_has_every_key_and_the_rootfs_mounts_first() {
    let config = entry_config(
        "    runtime:\n      mounts:\n        - {destination: /x, type: tmpfs, source: tmpfs, uidmappings: [{containerID: 0, hostID: 1000, size: 1}]}\n      cgroups: [a]\n",
    );
    let runtime = runtime_json(
        &config,
        rootfs_mounts(
            "containers/onboot/000-x",
            "containers/onboot/000-x/lower",
            false,
        ),
    );
    let text = String::from_utf8(to_pretty_json(&runtime).expect("json")).expect("utf8");
    assert!(
        text.starts_with("{\n    \"cgroups\": [\n        \"a\"\n    ],\n    \"mounts\": ["),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).expect("reparse");
    assert_eq!(v["mounts"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        v["mounts"][0],
        json!({"destination": "/containers/onboot/000-x/tmp", "type": "tmpfs", "source": "tmpfs"})
    );
    assert_eq!(
        v["mounts"][1],
        json!({"destination": "/containers/onboot/000-x/tmp", "options": ["remount", "private"]})
    );
    assert_eq!(v["mounts"][3]["destination"], json!("/x"));
    assert_eq!(
        v["mounts"][3]["uidMappings"],
        json!([{"containerID": 0, "hostID": 1000, "size": 1}])
    );
    assert_eq!(v["mkdir"], json!([]));
    assert_eq!(v["interfaces"], json!([]));
    assert_eq!(v["namespace"], json!(""));
    assert_eq!(
        v["bindNS"],
        json!({"cgroup": "", "ipc": "", "mnt": "", "net": "", "pid": "", "user": "", "uts": ""})
    );
    let ro = rootfs_mounts(
        "containers/services/s",
        "containers/onboot/001-a/rootfs",
        true,
    );
    let ro: Value = serde_json::to_value(&ro).expect("value");
    assert_eq!(
        ro,
        json!([{"destination": "/containers/services/s/rootfs", "source": "/containers/onboot/001-a/rootfs", "options": ["bind"]}])
    );
}

#[test]
fn json_escapes_like_go() {
    let text = to_pretty_json(&json!({"a": "x && y <z>"})).expect("json");
    assert_eq!(
        String::from_utf8_lossy(&text),
        "{\n    \"a\": \"x \\u0026\\u0026 y \\u003cz\\u003e\"\n}"
    );
}
