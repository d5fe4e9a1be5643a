//! Equinix Metal's network set-up over rtnetlink, inside a network namespace created here.

mod support;

use std::process::Command;

use metadata::network::{BondAddress, BondConfig, NetError, NetStep, configure};
use support::{Netns, run as sh};

fn ip(ns: &Netns, args: &[&str]) -> String {
    sh(Command::new("ip").args(["-n", &ns.name]).args(args))
}

#[test]
fn links_are_renamed_flushed_and_bonded() {
    let ns = Netns::new("bond", &[]);
    ip(
        &ns,
        &[
            "link",
            "add",
            "enp1s0",
            "address",
            "aa:00:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "peer0",
        ],
    );
    ip(&ns, &["addr", "add", "192.0.2.5/24", "dev", "enp1s0"]);
    let config = BondConfig {
        mode: 4,
        links: vec![("eth0".into(), "AA:00:00:00:00:01".into())],
        addresses: vec![BondAddress {
            ip: "147.75.1.3".parse().unwrap(),
            prefix: 31,
            gateway: Some("147.75.1.2".parse().unwrap()),
            public: true,
        }],
    };
    let name = ns.name.clone();
    let result = std::thread::spawn(move || {
        support::enter_netns(&name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(configure(&config))
    })
    .join()
    .unwrap();
    let links = ip(&ns, &["-br", "link"]);
    assert!(links.contains("eth0@peer0"), "renamed by MAC: {links}");
    assert!(
        !ip(&ns, &["-br", "addr", "show", "dev", "eth0"]).contains("192.0.2.5"),
        "old address flushed"
    );
    match result {
        Ok(steps) => {
            assert!(steps.contains(&NetStep::CreateBond { mode: 4 }));
            assert!(ip(&ns, &["-br", "addr", "show", "dev", "bond0"]).contains("147.75.1.3/31"));
            assert!(ip(&ns, &["route"]).contains("default via 147.75.1.2 dev bond0"));
        }
        // Kernels without bonding (this host's) stop at the bond, with the step named.
        Err(NetError::Step {
            step: NetStep::CreateBond { mode: 4 },
            source,
        }) => {
            assert!(
                source.to_string().contains("Operation not supported")
                    || source.to_string().contains("-95"),
                "{source}"
            );
        }
        Err(other) => panic!("unexpected: {other:?}"),
    }
}
