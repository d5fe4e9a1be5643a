use super::*;

const SAMPLE: &str = r#"
kernel:
  image: guestkit/kernel:6.1
  cmdline: "console=ttyS0"
init:
  - guestkit/init
  - guestkit/runc:v1
onboot:
  - name: sysctl
    image: guestkit/sysctl
    readonly: true
    capabilities: [CAP_SYS_ADMIN, CAP_NET_ADMIN]
    rlimits: ["nofile,100,unlimited"]
  - name: dhcpcd
    image: guestkit/dhcpcd
    binds.add: ["/run/resolvconf:/etc"]
    capabilities.add: [CAP_NET_RAW]
    runtime:
      mkdir: [/var/lib/x]
      interfaces:
        - name: wg0
          add: wireguard
          createInRoot: true
      bindNS:
        net: /run/netns/wg0
onshutdown:
  - name: bye
    image: guestkit/busybox
    command: ["/bin/echo", "bye"]
services:
  - name: getty
    image: guestkit/getty
    env: [INSECURE=true]
    uid: dhcpcd
    additionalGids: [0, bye]
    devices:
      - path: /dev/console
        type: c
        major: 5
        minor: 1
        mode: "0600"
      - path: all
        type: b
    mounts:
      - type: cgroup
        options: [rw]
    resources:
      memory:
        limit: 1000000
    sysctl:
      net.ipv4.ip_forward: "1"
    uidMappings:
      - containerID: 0
        hostID: 1000
        size: 1
    platforms: [linux/amd64]
files:
  - path: etc/motd
    contents: "hello"
    mode: "0644"
    uid: getty
  - path: etc/dir
    directory: true
  - path: etc/link
    symlink: motd
volumes:
  - name: data
    image: guestkit/busybox
    readonly: true
"#;

fn err(text: &str) -> String {
    match text.parse::<Blueprint>() {
        Ok(bp) => panic!("expected an error, parsed {bp:?}"),
        Err(e) => e.to_string(),
    }
}

fn with_service(body: &str) -> String {
    format!(
        "services:\n  - name: first\n    image: a/b\n  - name: getty\n    image: a/getty\n{body}"
    )
}

#[test]
fn the_sample_parses_with_every_section() {
    let bp: Blueprint = SAMPLE.parse().expect("sample parses");
    assert_eq!(
        bp.kernel.as_ref().map(|k| k.cmdline.as_str()),
        Some("console=ttyS0")
    );
    assert_eq!(bp.init, ["guestkit/init", "guestkit/runc:v1"]);
    assert_eq!(bp.onboot.len(), 2);
    assert_eq!(bp.onboot[0].config.readonly, Some(true));
    let dhcpcd = &bp.onboot[1].config;
    assert_eq!(
        dhcpcd.binds_add.as_deref(),
        Some(&["/run/resolvconf:/etc".to_string()][..])
    );
    let runtime = dhcpcd.runtime.as_ref().expect("runtime");
    assert_eq!(runtime.bind_ns.net.as_deref(), Some("/run/netns/wg0"));
    assert!(
        runtime
            .interfaces
            .as_ref()
            .is_some_and(|i| i[0].create_in_root)
    );
    let getty = &bp.services[0];
    assert_eq!(getty.config.uid, Some(Id::Name("dhcpcd".into())));
    assert_eq!(
        getty.platforms.as_deref(),
        Some(&["linux/amd64".to_string()][..])
    );
    assert_eq!(bp.files.len(), 3);
    assert!(bp.volumes[0].readonly);
}

#[test]
fn the_id_map_counts_from_100_in_section_order() {
    let bp: Blueprint = SAMPLE.parse().expect("sample parses");
    let ids = bp.id_map();
    assert_eq!(ids.get("sysctl"), Some(&100));
    assert_eq!(ids.get("dhcpcd"), Some(&101));
    assert_eq!(ids.get("bye"), Some(&102));
    assert_eq!(ids.get("getty"), Some(&103));
}

#[test]
fn an_unknown_key_names_the_entry_and_the_key() {
    let e = err(&with_service("    bindz: [\"/a:/a\"]\n"));
    assert!(
        e.starts_with("services[1] (name \"getty\"): unknown key \"bindz\""),
        "{e}"
    );
}

#[test]
fn unknown_nested_and_top_level_keys_are_errors() {
    let e = err(&with_service("    runtime:\n      mkdirs: [/x]\n"));
    assert!(
        e.contains("services[1] (name \"getty\")") && e.contains("\"mkdirs\""),
        "{e}"
    );
    let e = err("kernel:\n  image: a/k\n  cmdlin: x\n");
    assert!(e.contains("kernel") && e.contains("\"cmdlin\""), "{e}");
    let e = err("trusted:\n  org: [a]\n");
    assert!(e.contains("unknown key \"trusted\""), "{e}");
    assert!(
        "trust:\n  org: [linuxkit]\n".parse::<Blueprint>().is_ok(),
        "deprecated trust is ignored"
    );
    let e = err("trust:\n  orgs: [a]\n");
    assert!(e.contains("trust: unknown key \"orgs\""), "{e}");
    let e = err("files:\n  - path: a\n    contents: x\n    owner: 1\n");
    assert!(e.contains("files[0]") && e.contains("\"owner\""), "{e}");
}

#[test]
fn missing_image_and_name_are_errors() {
    let e = err("onboot:\n  - name: x\n");
    assert_eq!(e, "onboot[0] (name \"x\"): missing required key \"image\"");
    let e = err("onboot:\n  - image: a/b\n");
    assert_eq!(e, "onboot[0]: missing required key \"name\"");
    let e = err("onboot:\n  - name: x\n    image: \"\"\n");
    assert!(e.contains("missing required key \"image\""), "{e}");
}

#[test]
fn duplicate_service_names_are_errors() {
    let e = err("services:\n  - name: a\n    image: x/a\n  - name: a\n    image: x/b\n");
    assert!(
        e.starts_with("services[1] (name \"a\"): duplicate service name \"a\""),
        "{e}"
    );
    let e = err("volumes:\n  - name: v\n  - name: v\n");
    assert!(e.contains("duplicate volume name"), "{e}");
}

#[test]
fn bad_capability_names_are_errors_naming_the_key() {
    let e = err(&with_service(
        "    capabilities: [CAP_SYS_ADMIN, NET_ADMIN]\n",
    ));
    assert!(
        e.starts_with(
            "services[1] (name \"getty\"): key \"capabilities\": unknown capability \"NET_ADMIN\""
        ),
        "{e}"
    );
    assert!(e.contains("did you mean \"CAP_NET_ADMIN\""), "{e}");
    let e = err(&with_service("    capabilities.add: [CAP_FLY]\n"));
    assert!(
        e.contains("key \"capabilities.add\": unknown capability \"CAP_FLY\""),
        "{e}"
    );
    let e = err(&with_service("    ambient: [cap_net_raw]\n"));
    assert!(
        e.contains("key \"ambient\"") && e.contains("CAP_NET_RAW"),
        "{e}"
    );
    let e = err(&with_service("    capabilities: [all, CAP_NET_RAW]\n"));
    assert!(e.contains("must be the only entry"), "{e}");
    for ok in ["[all]", "[ALL]", "[none]", "[]", "[CAP_CHECKPOINT_RESTORE]"] {
        let text = with_service(&format!("    capabilities: {ok}\n"));
        assert!(text.parse::<Blueprint>().is_ok(), "{ok}");
    }
}

#[test]
fn type_errors_name_the_key() {
    let e = err(&with_service("    capabilities: CAP_SYS_ADMIN\n"));
    assert!(
        e.starts_with("services[1] (name \"getty\"): key \"capabilities\":"),
        "{e}"
    );
    let e = err(&with_service("    readonly: maybe\n"));
    assert!(e.contains("key \"readonly\""), "{e}");
    let e = err("onboot: 3\n");
    assert!(e.contains("onboot: expected a list"), "{e}");
}

#[test]
fn bad_modes_binds_rlimits_and_ids_are_errors() {
    let e = err("files:\n  - path: etc/x\n    contents: y\n    mode: \"0999\"\n");
    assert!(
        e.starts_with("files[0] (path \"etc/x\"): key \"mode\""),
        "{e}"
    );
    let e = err(&with_service(
        "    devices:\n      - path: /dev/x\n        type: c\n        mode: rw\n",
    ));
    assert!(e.contains("key \"devices\"") && e.contains("\"rw\""), "{e}");
    let e = err(&with_service("    binds: [/a]\n"));
    assert!(
        e.contains("key \"binds\"") && e.contains("missing ':'"),
        "{e}"
    );
    let e = err(&with_service("    rlimits: [\"nofiles,1,2\"]\n"));
    assert!(
        e.contains("key \"rlimits\"") && e.contains("unknown rlimit"),
        "{e}"
    );
    let e = err(&with_service("    uid: nobody-here\n"));
    assert!(
        e.contains("key \"uid\"") && e.contains("nobody-here"),
        "{e}"
    );
    let e = err(&with_service("    tmpfs: [\"/a:b:c\"]\n"));
    assert!(e.contains("key \"tmpfs\""), "{e}");
}

#[test]
fn file_entries_need_exactly_one_content_kind() {
    let e = err("files:\n  - path: a\n");
    assert!(
        e.contains("exactly one of contents, source or metadata"),
        "{e}"
    );
    let e = err("files:\n  - path: a\n    directory: true\n    contents: x\n");
    assert!(e.contains("directory cannot have contents"), "{e}");
    let e = err("files:\n  - contents: x\n");
    assert!(e.contains("missing required key \"path\""), "{e}");
    let e = err("files:\n  - path: a\n    metadata: toml\n");
    assert!(e.contains("key \"metadata\""), "{e}");
}

#[test]
fn volume_names_are_checked() {
    let e = err("volumes:\n  - name: Data\n");
    assert!(e.contains("volumes[0] (name \"Data\")"), "{e}");
    assert!(
        "volumes:\n  - name: d\n    format: filesystem\n"
            .parse::<Blueprint>()
            .is_ok()
    );
    let e = err("volumes:\n  - name: d\n    format: qcow2\n");
    assert!(
        e.contains("key \"format\": unknown format \"qcow2\""),
        "{e}"
    );
}

#[test]
fn labels_parse_into_the_same_model_and_refuse_name_and_image() {
    let config = parse_image_config(
        r#"{"pid":"host","readonly":true,"capabilities":["CAP_SYS_BOOT"]}"#,
        "label",
    )
    .expect("label parses");
    assert_eq!(config.pid.as_deref(), Some("host"));
    assert_eq!(config.capabilities, Some(vec!["CAP_SYS_BOOT".to_string()]));
    let e =
        parse_image_config(r#"{"name":"x"}"#, "label of image \"a/b\"").expect_err("name refused");
    assert!(e.to_string().contains("\"name\" cannot be set"), "{e}");
    let e =
        parse_image_config(r#"{"bindz":[]}"#, "label of image \"a/b\"").expect_err("unknown key");
    assert!(
        e.to_string()
            .contains("label of image \"a/b\": unknown key \"bindz\""),
        "{e}"
    );
    assert!(parse_image_config("[1]", "label").is_err());
}

#[test]
fn odd_documents_give_errors_not_panics() {
    let docs = [
        "",
        "---",
        "[]",
        "3",
        "kernel: []",
        "init: [1, {a: b}]",
        "onboot: [[]]",
        "onboot: [{name: 1, image: 2}]",
        "services: [{name: a, image: b, uid: -1}]",
        "services: [{name: a, image: b, oomScoreAdj: 99999999999}]",
        "files: [{path: /, contents: x}]",
        "files: [{path: ../x, contents: x}]",
        "{? [a] : b}",
        "services: [{name: ., image: b}]",
        "services: [{name: a/b, image: b}]",
        "onboot: [{name: a, image: \"b c\"}]",
        "volumes: [{name: v, format: qcow}]",
        "services: [{name: a, image: b, resources: {memory: {limit: x}}}]",
        "onboot: [{name: a, image: b, runtime: 7}]",
    ];
    for doc in docs {
        let result = doc.parse::<Blueprint>();
        if let Err(e) = &result {
            assert!(!e.to_string().is_empty());
        }
        if !doc.is_empty() && doc != "---" {
            assert!(result.is_err(), "{doc:?} should be rejected");
        }
    }
}

#[test]
fn every_prefix_and_every_line_dropped_of_the_sample_parses_or_errors_without_panicking() {
    let mut outcomes = (0, 0);
    for end in (0..=SAMPLE.len()).filter(|i| SAMPLE.is_char_boundary(*i)) {
        match SAMPLE[..end].parse::<Blueprint>() {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                outcomes.1 += 1;
            }
        }
    }
    let lines: Vec<&str> = SAMPLE.lines().collect();
    for skip in 0..lines.len() {
        let text: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        let _ = text.join("\n").parse::<Blueprint>();
    }
    assert!(
        outcomes.0 > 0 && outcomes.1 > 0,
        "both outcomes seen: {outcomes:?}"
    );
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let text = r#"
onboot:
  - &base
    name: one
    image: a/b
    capabilities: [CAP_SYS_ADMIN]
  - <<: *base
    name: two
"#;
    let bp: Blueprint = text.parse().expect("merge keys");
    assert_eq!(bp.onboot[1].name, "two");
    assert_eq!(bp.onboot[1].image, "a/b");
    assert_eq!(
        bp.onboot[1].config.capabilities,
        Some(vec!["CAP_SYS_ADMIN".to_string()])
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "services:\n  - name: a\n").expect("write");
    let e = Blueprint::from_path(&path).expect_err("missing image");
    assert_eq!(e.to_string(), format!("blueprint {}", path.display()));
    let source = std::error::Error::source(&e).map(|s| s.to_string());
    assert_eq!(
        source.as_deref(),
        Some("services[0] (name \"a\"): missing required key \"image\"")
    );
    let e = Blueprint::from_path(&dir.path().join("none.yml")).expect_err("missing file");
    assert!(e.to_string().contains("none.yml"), "{e}");
}
