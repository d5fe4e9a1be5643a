//! The "Done when" list for `init`, each proved in a booted VM (Debian 6.1 kernel, TCG): the docs/linuxkit.md §4.2
//! mount table and cgroups, cold plug, orphan reaping, every shutdown trigger with onshutdown and an ext4
//! disk checked from the host, the bounded wait for TERM-ignoring processes, and the boot timeline with
//! its SVG. Guest hooks report on the console as `initvm: ...` lines (see `init/guest.rs`).

#[path = "init/guest.rs"]
mod guest;
#[path = "init/mounts.rs"]
mod mounts;
#[path = "init/shutdown.rs"]
mod shutdown;
#[path = "init/xml.rs"]
mod xml;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use guest::{Blueprint, Report, Stack, console_container};
use system_tests::{EXIT_TIMEOUT, LINE_TIMEOUT, Vm, VmConfig, VmExit, assemble_yaml, boot};

/// Boots `blueprint` as test `name` with `memory` MiB and `extra` qemu arguments.
fn start(
    name: &str,
    blueprint: &Blueprint,
    memory: u32,
    extra: &[String],
) -> Result<(Vm, VmConfig)> {
    let mut config = assemble_yaml(&blueprint.yaml(), name)?;
    config.memory_mib = memory;
    // Line waits have their own deadlines; this only caps the orphan storm's long boot.
    config.timeout = std::time::Duration::from_secs(420);
    config.extra_args.extend(extra.iter().cloned());
    Ok((boot(&config)?, config))
}

/// Waits for `initvm: <kind>` and returns everything reported so far.
fn report_after(vm: &mut Vm, kind: &str) -> Result<Report> {
    vm.wait_for_line(&format!("initvm: {kind}"), LINE_TIMEOUT)?;
    Ok(Report::parse(&vm.console().text()))
}

/// Presses the power button and expects a clean power-off.
fn power_off(vm: &mut Vm) -> Result<()> {
    vm.power_button()?;
    let exit = vm.wait_exit(EXIT_TIMEOUT);
    ensure!(
        exit == VmExit::PoweredOff,
        "guest ended {exit:?}; console log: {}",
        vm.console().log_path().display()
    );
    Ok(())
}

const MOUNT_REPORT: &str = r#"while read -r l; do r "mount $l"; done < /proc/mounts
while read -r l; do r "mountinfo $l"; done < /proc/self/mountinfo
while read -r l; do r "fs $l"; done < /proc/filesystems
r "meminfo $(grep MemTotal /proc/meminfo)"
for d in /tmp /var/tmp /dev/shm /run /var /var/empty /var/lib /var/log /dev/pts /sys/fs/cgroup; do
  r "mode $d $(stat -c %a $d)"
done
for l in /var/run /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/kcore; do r "link $l $(readlink $l)"; done
for n in /dev/console /dev/tty1 /dev/tty /dev/null /dev/kmsg; do r "dev $n $(stat -c '%F %t:%T' $n)"; done
r "sigblk $(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/self/status)"
r "report-done"
"#;

/// The expected `mode`, `link` and `dev` report lines: docs/linuxkit.md §4.2 rows 6–11 (with `/var/tmp` sticky, a
/// deliberate divergence) and the tmpfs roots.
const MODES: &[(&str, &str)] = &[
    ("/tmp", "1777"),
    ("/var/tmp", "1777"),
    ("/dev/shm", "1777"),
    ("/run", "755"),
    ("/var", "755"),
    ("/var/empty", "555"),
    ("/var/lib", "755"),
    ("/var/log", "755"),
    ("/dev/pts", "755"),
];
const LINKS: &[(&str, &str)] = &[
    ("/var/run", "/run"),
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/kcore", "/proc/kcore"),
];
const DEVICES: &[(&str, &str)] = &[
    ("/dev/console", "5:1"),
    ("/dev/tty1", "4:1"),
    ("/dev/tty", "5:0"),
    ("/dev/null", "1:3"),
    ("/dev/kmsg", "1:b"),
];

fn check_mount_report(report: &Report) -> Result<()> {
    let parsed: Vec<mounts::Mount> = report
        .all("mount")
        .into_iter()
        .map(mounts::Mount::parse)
        .collect::<Result<_>>()?;
    let filesystems: BTreeSet<String> = report
        .all("fs")
        .into_iter()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    let mem: u64 = report
        .one("meminfo")?
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .context("no MemTotal in the meminfo line")?;
    let mut problems = mounts::check(&parsed, &filesystems, mem);
    // Not a mount, but the same report: hooks must not inherit PID 1's blocked signals.
    let blocked = report.one("sigblk")?;
    if blocked != "0000000000000000" {
        problems.push(format!(
            "the hook runs with blocked signals {blocked} (PID 1's mask leaked)"
        ));
    }
    for (path, want) in MODES {
        let got = report.keyed("mode", path)?;
        if got != *want {
            problems.push(format!("{path} has mode {got}, want {want}"));
        }
    }
    for (link, want) in LINKS {
        let got = report.keyed("link", link)?;
        if got != *want {
            problems.push(format!("{link} -> {got:?}, want {want}"));
        }
    }
    for (node, want) in DEVICES {
        let got = report.keyed("dev", node)?;
        if got != format!("character special file {want}") {
            problems.push(format!(
                "{node} is {got:?}, want character device {want} (hex)"
            ));
        }
    }
    // Row 18 makes every mount of the table shared (later container mounts are the runtime's business).
    let table: BTreeSet<&str> = mounts::TABLE
        .iter()
        .map(|r| r.target)
        .chain(["/"])
        .collect();
    for line in report.all("mountinfo") {
        let optional = line.split(" - ").next().unwrap_or("");
        let target = optional.split_whitespace().nth(4).unwrap_or("");
        if table.contains(target) && !optional.contains("shared:") {
            problems.push(format!("not shared (row 18 make-rshared): {line}"));
        }
    }
    ensure!(
        problems.is_empty(),
        "the guest's mounts differ from docs/linuxkit.md §4.2:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// The musl `init` that `cargo xtask images` built (it runs on the host too).
fn init_binary() -> Result<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| system_tests::paths().workspace.join("target"));
    let path = target
        .join(xtask::images::GUEST_TARGET)
        .join("release/init");
    ensure!(
        path.is_file(),
        "{} is missing: run `cargo xtask images` with the same CARGO_TARGET_DIR first",
        path.display()
    );
    Ok(path)
}

/// Checks the timeline the guest printed: valid JSON lines with every phase, then renders it on the host
/// with `init timeline-svg` and checks the SVG.
fn check_timeline(report: &Report, dir: &std::path::Path) -> Result<()> {
    let lines = report.all("timeline");
    let mut events = Vec::new();
    let mut last_ms = 0;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("timeline line {line:?}"))?;
        let ms = v["ms"]
            .as_u64()
            .with_context(|| format!("no ms in {line}"))?;
        let src = v["src"].as_str().unwrap_or_default().to_string();
        let event = v["event"]
            .as_str()
            .with_context(|| format!("no event in {line}"))?
            .to_string();
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if src == "init" {
            ensure!(ms >= last_ms, "init's timeline goes backwards at {line}");
            last_ms = ms;
        }
        events.push((src, event, name));
    }
    let has = |src: &str, event: &str, name: &str| {
        events
            .iter()
            .any(|(s, e, n)| s == src && e == event && (name.is_empty() || n == name))
    };
    let wanted = [
        ("init", "init", ""),
        ("init", "mounts-start", ""),
        ("init", "mounts-end", ""),
        ("init", "modules-start", ""),
        ("init", "modules-end", ""),
        ("init", "hook-start", "/etc/init.d/010-onboot"),
        ("init", "hook-end", "/etc/init.d/010-onboot"),
        ("init", "hook-start", "/etc/init.d/020-containerd"),
        ("init", "hook-end", "/etc/init.d/020-containerd"),
        ("service", "onboot-start", "000-hello"),
        ("service", "onboot-exit", "000-hello"),
        ("service", "containerd-ready", "containerd"),
        ("service", "service-start", "greeter"),
        ("init", "boot-end", ""),
    ];
    let missing: Vec<_> = wanted.iter().filter(|(s, e, n)| !has(s, e, n)).collect();
    ensure!(
        missing.is_empty(),
        "timeline lacks {missing:?}; it has {events:?}"
    );
    let jsonl = dir.join("boot-timeline.jsonl");
    std::fs::write(&jsonl, lines.join("\n") + "\n")?;
    let init = init_binary()?;
    let out = std::process::Command::new(&init)
        .arg("timeline-svg")
        .arg(&jsonl)
        .output()
        .with_context(|| format!("running {} timeline-svg", init.display()))?;
    ensure!(
        out.status.success(),
        "timeline-svg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8(out.stdout).context("the SVG is not UTF-8")?;
    std::fs::write(dir.join("boot-timeline.svg"), &svg)?;
    let elements = xml::elements(&svg).context("the SVG is not well-formed XML")?;
    ensure!(
        elements.first().map(String::as_str) == Some("svg"),
        "root element is {:?}",
        elements.first()
    );
    for label in ["mounts", "modules", "010-onboot", "greeter"] {
        ensure!(svg.contains(label), "the SVG does not mention {label}");
    }
    Ok(())
}

#[test]
fn boot_reaches_services_with_the_linuxkit_mounts_and_a_timeline() -> Result<()> {
    let blueprint = Blueprint::new(Stack::Full)
        .section(&format!("onboot:\n{}", console_container("hello", "echo initvm: onboot-ran")))
        .section(&format!(
            "services:\n{}",
            console_container("greeter", "echo initvm: service-up; trap 'exit 0' TERM; while :; do sleep 1; done")
        ))
        .hook("030-report", MOUNT_REPORT)
        .hook(
            "031-timeline",
            "( wait_boot_end; while read -r l; do r \"timeline $l\"; done < /run/boot-timeline.jsonl; r timeline-done ) &\n",
        );
    let (mut vm, config) = start("init-boot", &blueprint, 768, &[])?;
    vm.wait_for_line("initvm: service-up", LINE_TIMEOUT)?;
    let report = report_after(&mut vm, "timeline-done")?;
    report.one("onboot-ran")?;
    check_mount_report(&report)?;
    check_timeline(&report, &config.workdir)?;
    power_off(&mut vm)
}

fn cgroup_mounts(report: &Report) -> Result<Vec<mounts::Mount>> {
    let all: Vec<mounts::Mount> = report
        .all("mount")
        .into_iter()
        .map(mounts::Mount::parse)
        .collect::<Result<_>>()?;
    Ok(all
        .into_iter()
        .filter(|m| m.target.starts_with("/sys/fs/cgroup"))
        .collect())
}

#[test]
fn cgroup_v1_is_mounted_only_when_the_command_line_opts_out() -> Result<()> {
    let script = "while read -r l; do r \"mount $l\"; done < /proc/mounts\nwhile read -r l; do r \"cgroups $l\"; done < /proc/cgroups\nr report-done\n";
    let blueprint = Blueprint::new(Stack::Init)
        .cmdline("linuxkit.unified_cgroup_hierarchy=0")
        .hook("030-report", script);
    let (mut vm, _) = start("init-cgroup-v1", &blueprint, 512, &[])?;
    let report = report_after(&mut vm, "report-done")?;
    let cgroups = cgroup_mounts(&report)?;
    let root = cgroups
        .iter()
        .find(|m| m.target == "/sys/fs/cgroup")
        .context("no /sys/fs/cgroup mount")?;
    ensure!(
        root.fstype == "tmpfs" && root.source == "cgroup_root",
        "v1 root is {root:?}"
    );
    ensure!(
        !cgroups.iter().any(|m| m.fstype == "cgroup2"),
        "cgroup2 mounted in v1 mode: {cgroups:?}"
    );
    let enabled: Vec<&str> = report
        .all("cgroups")
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split_whitespace().nth(3) == Some("1"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ensure!(
        !enabled.is_empty(),
        "the guest reported no enabled controllers"
    );
    let mut problems = Vec::new();
    for controller in enabled.iter().chain(&["systemd"]) {
        let target = format!("/sys/fs/cgroup/{controller}");
        match cgroups.iter().find(|m| m.target == target) {
            Some(m) if m.fstype == "cgroup" => {}
            other => problems.push(format!("{target}: {other:?}")),
        }
    }
    ensure!(
        problems.is_empty(),
        "v1 hierarchies missing or wrong: {problems:?}; cgroup mounts: {cgroups:?}"
    );
    power_off(&mut vm)
}

/// Reports the loaded modules once `/dev/<wait_for>` exists (or at once), without loading anything.
/// Then runs `then` (shell) before saying `report-done`.
fn modules_script(wait_for: &str, then: &str) -> String {
    format!(
        "i=0\nwhile [ -n \"{wait_for}\" ] && [ ! -e \"/sys/block/{wait_for}\" ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done\nwhile read -r name rest; do r \"module $name\"; done < /proc/modules\nfor b in /sys/block/*; do r \"block ${{b##*/}}\"; done\n{then}r report-done\n"
    )
}

/// Mounts the CD-ROM: the kernel asks `/sbin/modprobe` (init's modprobe personality) for `fs-iso9660`.
const MOUNT_CD: &str = r#"mkdir -p /run/cd
if mount -t iso9660 -o ro /dev/sr0 /run/cd; then r "cd $(cat /run/cd/hello.txt)"; else r "cd mount-failed"; fi
grep -q '^isofs ' /proc/modules && r "isofs-after-mount"
"#;

/// A small ISO 9660 image holding `hello.txt`.
fn make_iso(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let content = dir.join("iso");
    std::fs::create_dir_all(&content)?;
    std::fs::write(content.join("hello.txt"), "hello-from-the-cd\n")?;
    let iso = dir.join("cd.iso");
    let out = std::process::Command::new("genisoimage")
        .args(["-quiet", "-r", "-V", "INITVM", "-o"])
        .arg(&iso)
        .arg(&content)
        .output()
        .context("running genisoimage (install genisoimage)")?;
    ensure!(
        out.status.success(),
        "genisoimage: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(iso)
}

fn loaded_modules(report: &Report) -> BTreeSet<String> {
    report
        .all("module")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn cold_plug_loads_the_drivers_of_present_devices_only_and_mounting_a_cd_loads_isofs() -> Result<()>
{
    let dir = system_tests::scratch("init-coldplug-disks")?;
    let disk = dir.join("disk.img");
    std::fs::File::create(&disk)?.set_len(8 << 20)?;
    let extra: Vec<String> = [
        "-drive".to_string(),
        format!("file={},if=virtio,format=raw", disk.display()),
        "-drive".into(),
        format!(
            "if=none,id=cd,media=cdrom,format=raw,file={}",
            make_iso(&dir)?.display()
        ),
        "-device".into(),
        "ide-cd,drive=cd,bus=ide.1".into(),
    ]
    .to_vec();
    let with = Blueprint::new(Stack::Init).hook("030-modules", &modules_script("sr0", MOUNT_CD));
    let (mut vm, _) = start("init-coldplug-with", &with, 512, &extra)?;
    let report = report_after(&mut vm, "report-done")?;
    power_off(&mut vm)?;
    let loaded = loaded_modules(&report);
    let blocks = report.all("block");
    ensure!(
        blocks.contains(&"vda") && blocks.contains(&"sr0"),
        "block devices {blocks:?}; modules {loaded:?}"
    );
    for module in ["virtio_pci", "virtio_blk", "sr_mod", "cdrom"] {
        ensure!(
            loaded.contains(module),
            "{module} not loaded with the device present: {loaded:?}"
        );
    }
    // A file system has no modalias: cold plug leaves isofs alone, mounting the CD loads it on demand.
    ensure!(
        !loaded.contains("isofs"),
        "cold plug loaded isofs: {loaded:?}"
    );
    ensure!(
        report.one("cd")? == "hello-from-the-cd",
        "the CD-ROM read {:?}",
        report.one("cd")?
    );
    report
        .one("isofs-after-mount")
        .context("isofs not loaded by mounting the CD")?;

    let without = Blueprint::new(Stack::Init).hook("030-modules", &modules_script("", ""));
    let (mut vm, _) = start("init-coldplug-without", &without, 512, &[])?;
    let report = report_after(&mut vm, "report-done")?;
    power_off(&mut vm)?;
    let loaded = loaded_modules(&report);
    for module in ["virtio_blk", "sr_mod", "cdrom"] {
        ensure!(
            !loaded.contains(module),
            "{module} loaded without its device: {loaded:?}"
        );
    }
    ensure!(
        loaded.contains("button") && loaded.contains("evdev"),
        "power button drivers missing: {loaded:?}"
    );
    Ok(())
}

/// 5000 orphans while init waits for this boot hook, 5000 more once it is in its steady state.
const ORPHANS: &str = r#"storm() { i=0; while [ $i -lt 5000 ]; do ( : & ); i=$((i+1)); done; r "orphans-$1 $i"; }
storm during-boot
(
  wait_boot_end
  storm steady
  ( sleep 30 & echo $! > /run/orphan.pid )
  r "orphan-parent $(sed -n 's/^PPid:[[:space:]]*//p' /proc/$(cat /run/orphan.pid)/status)"
  n=1; tries=0
  while [ $n -gt 0 ] && [ $tries -lt 300 ]; do
    n=$(cat /proc/[0-9]*/stat 2>/dev/null | grep -c ') Z ')
    tries=$((tries+1)); sleep 0.2
  done
  r "zombies $n"
) &
"#;

#[test]
fn five_thousand_orphans_during_boot_and_after_are_all_reaped() -> Result<()> {
    let blueprint = Blueprint::new(Stack::Init).hook("030-orphans", ORPHANS);
    let (mut vm, _) = start("init-orphans", &blueprint, 512, &[])?;
    vm.wait_for_line("initvm: zombies", LINE_TIMEOUT * 3)?;
    let report = Report::parse(&vm.console().text());
    for phase in ["orphans-during-boot", "orphans-steady"] {
        ensure!(
            report.one(phase)? == "5000",
            "{phase}: spawned {:?}",
            report.one(phase)?
        );
    }
    ensure!(
        report.one("orphan-parent")? == "1",
        "orphans are not PID 1's: {:?}",
        report.one("orphan-parent")
    );
    ensure!(
        report.one("zombies")? == "0",
        "zombies left: {}",
        report.one("zombies")?
    );
    power_off(&mut vm)
}

#[test]
fn power_button_powers_off_after_onshutdown_with_the_disk_written() -> Result<()> {
    shutdown::run(shutdown::Trigger::PowerButton)
}

#[test]
fn ctrl_alt_del_reboots_after_onshutdown_with_the_disk_written() -> Result<()> {
    shutdown::run(shutdown::Trigger::CtrlAltDel)
}

#[test]
fn busybox_poweroff_powers_off_after_onshutdown_with_the_disk_written() -> Result<()> {
    shutdown::run(shutdown::Trigger::Poweroff)
}

#[test]
fn busybox_reboot_reboots_after_onshutdown_with_the_disk_written() -> Result<()> {
    shutdown::run(shutdown::Trigger::Reboot)
}

#[test]
fn a_term_ignoring_process_is_killed_at_the_bound() -> Result<()> {
    shutdown::term_ignorer()
}

#[test]
fn a_hanging_shutdown_hook_and_a_stopped_containerd_still_end_in_power_off() -> Result<()> {
    shutdown::wedged()
}
