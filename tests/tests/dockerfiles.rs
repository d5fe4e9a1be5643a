//! Each `pkg/*/Dockerfile` lays out the same files as the Docker-less build (`cargo xtask images`).
//!
//! No OCI builder can run these Dockerfiles here: their base images (`rust:1-alpine`, `alpine`,
//! `debian:bookworm-slim`) come from a registry this machine cannot reach. So the test plays each
//! Dockerfile itself, stage by stage, each stage in a chroot of its own:
//! - a stage's base is replaced by what its install steps would bring: `apt-get install X` and
//!   `apk add busybox-static` unpack Debian's packages into the chroot (Alpine's `busybox.static` is
//!   Debian's busybox-static), and the Rust build stage gets the release binaries `cargo xtask images`
//!   built at the paths `cargo build` writes them to; the `apt-get`, `apk` and `cargo` commands are
//!   dropped, a `go build -o PATH` places the static runc or ctr `cargo xtask images` built with the same
//!   command (`xtask/src/static_go.rs`) at `PATH`, and every other command of each `RUN` runs with the
//!   chroot's busybox `sh`;
//! - `COPY` from the build context copies from the package directory (the `workspace/` source tree is
//!   only cargo's input and is not copied), `COPY --from` copies from an earlier stage's chroot;
//! - the last stage's tree is compared with the package image in the store: the same paths, kinds and
//!   symlink targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use system_tests::{paths, require_images, scratch};
use xtask::assemble::NodeKind;
use xtask::debian::PackageCache;
use xtask::images::GUEST_TARGET;
use xtask::packages::BuildYml;
use xtask::static_go::StaticTools;
use xtask::store::{ImageStore, tree_from_dir};

/// One instruction of a Dockerfile, continuation lines joined.
#[derive(Debug, Clone, PartialEq)]
enum Instruction {
    From(String),
    Run(String),
    Copy {
        from: Option<String>,
        src: String,
        dest: String,
    },
    Workdir(String),
    Other,
}

fn parse(text: &str) -> Result<Vec<Instruction>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    logical.iter().map(|l| instruction(l)).collect()
}

fn instruction(line: &str) -> Result<Instruction> {
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    Ok(match word.to_ascii_uppercase().as_str() {
        "FROM" => Instruction::From(rest.to_string()),
        "RUN" => Instruction::Run(rest.to_string()),
        "WORKDIR" => Instruction::Workdir(rest.to_string()),
        "COPY" => {
            let mut words: Vec<&str> = rest.split_whitespace().collect();
            let from = match words.first().and_then(|w| w.strip_prefix("--from=")) {
                Some(stage) => {
                    let stage = stage.to_string();
                    words.remove(0);
                    Some(stage)
                }
                None => None,
            };
            let [src, dest] = words[..] else {
                bail!("COPY with other than one source and one destination: {line}");
            };
            Instruction::Copy {
                from,
                src: src.into(),
                dest: dest.into(),
            }
        }
        "CMD" | "ENTRYPOINT" | "ENV" | "LABEL" | "ARG" => Instruction::Other,
        other => bail!("unsupported instruction {other}: {line}"),
    })
}

/// The Debian packages that stand in for an install command's packages.
fn debian_packages(segment: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for word in segment.split_whitespace() {
        match word {
            "runc" => out.extend(["runc", "libc6", "libseccomp2"]),
            "containerd" => out.extend(["containerd", "libc6"]),
            "busybox-static" => out.push("busybox-static"),
            _ => {}
        }
    }
    out
}

/// A stage being played: its chroot and working directory.
struct Stage {
    name: Option<String>,
    root: PathBuf,
    workdir: String,
}

struct Player<'a> {
    cache: &'a PackageCache,
    tools: &'a StaticTools,
    context: PathBuf,
    bins: PathBuf,
    work: PathBuf,
    stages: Vec<Stage>,
}

impl Player<'_> {
    fn stage(&mut self) -> Result<&mut Stage> {
        self.stages.last_mut().context("instruction before FROM")
    }

    fn from(&mut self, spec: &str) -> Result<()> {
        let words: Vec<&str> = spec.split_whitespace().collect();
        let (image, name) = match words[..] {
            [image] => (image, None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image, Some(name.to_string())),
            _ => bail!("FROM {spec}"),
        };
        let root = self.work.join(format!("stage{}", self.stages.len()));
        std::fs::create_dir_all(&root)?;
        if image != "scratch" {
            self.tools(&root)?;
        }
        if image.starts_with("rust:") {
            let release = root.join("src/target").join(GUEST_TARGET).join("release");
            std::fs::create_dir_all(&release)?;
            for bin in xtask::images::GUEST_CRATES {
                std::fs::copy(self.bins.join(bin), release.join(bin))
                    .with_context(|| format!("{bin}: run `cargo xtask images` first"))?;
            }
        }
        self.stages.push(Stage {
            name,
            root,
            workdir: "/".into(),
        });
        Ok(())
    }

    /// busybox with its applets (the stage's shell and tools), outside `/out`.
    fn tools(&self, root: &Path) -> Result<()> {
        let busybox = self.cache.unpacked("busybox-static")?.join("bin/busybox");
        std::fs::create_dir_all(root.join("bin"))?;
        std::fs::copy(&busybox, root.join("bin/busybox"))?;
        let list = Command::new(&busybox).arg("--list-full").output()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = root.join(applet.trim());
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if !link.exists() {
                std::os::unix::fs::symlink("/bin/busybox", &link)?;
            }
        }
        Ok(())
    }

    fn install(&mut self, packages: &[&str]) -> Result<()> {
        let root = self.stage()?.root.clone();
        for package in packages {
            let tree = self.cache.unpacked(package)?;
            run(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", tree.display()))
                .arg(&root))?;
            if *package == "busybox-static" {
                // Alpine's busybox-static installs /bin/busybox.static.
                std::fs::copy(tree.join("bin/busybox"), root.join("bin/busybox.static"))?;
            }
        }
        Ok(())
    }

    /// Runs a `RUN`'s commands in order: shell commands in the chroot, the stand-ins for the rest.
    fn run_instruction(&mut self, script: &str) -> Result<()> {
        let mut kept = Vec::new();
        for segment in script.split("&&").map(str::trim) {
            let first = segment.split_whitespace().next().unwrap_or_default();
            let special =
                matches!(first, "apt-get" | "apk" | "cargo") || segment.contains(" go build ");
            if !special {
                kept.push(segment.to_string());
                continue;
            }
            self.shell(&std::mem::take(&mut kept))?;
            match first {
                "apt-get" | "apk" => self.install(&debian_packages(segment))?,
                "cargo" => {}
                _ => self.go_build(segment)?,
            }
        }
        self.shell(&kept)
    }

    fn shell(&mut self, commands: &[String]) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        let stage = self.stage()?;
        let script = format!("cd {} && {}", stage.workdir, commands.join(" && "));
        run(Command::new("chroot")
            .arg(&stage.root)
            .args(["/bin/sh", "-e", "-c", &script]))
    }

    /// Places the static binary `go build -o PATH` names (by its file name) at `PATH`.
    fn go_build(&mut self, segment: &str) -> Result<()> {
        let words: Vec<&str> = segment.split_whitespace().collect();
        let output = words
            .windows(2)
            .find(|w| w[0] == "-o")
            .map(|w| w[1])
            .with_context(|| format!("go build without -o: {segment}"))?;
        let built = match Path::new(output).file_name().and_then(|n| n.to_str()) {
            Some("runc") => &self.tools.runc,
            Some("ctr") => &self.tools.ctr,
            _ => bail!("go build of an unknown tool: {segment}"),
        };
        let dest = self.stage()?.root.join(output.trim_start_matches('/'));
        std::fs::copy(built, &dest).with_context(|| format!("placing {}", dest.display()))?;
        Ok(())
    }

    fn copy(&mut self, from: Option<&str>, src: &str, dest: &str) -> Result<()> {
        if from.is_none() && src.trim_end_matches('/') == "workspace" {
            return Ok(());
        }
        let source_root = match from {
            Some(name) => self
                .stages
                .iter()
                .find(|s| s.name.as_deref() == Some(name))
                .with_context(|| format!("no stage {name}"))?
                .root
                .clone(),
            None => self.context.clone(),
        };
        let stage = self.stage()?;
        let source = source_root.join(src.trim_start_matches('/'));
        let dest = match dest.starts_with('/') {
            true => stage.root.join(dest.trim_start_matches('/')),
            false => stage
                .root
                .join(stage.workdir.trim_start_matches('/'))
                .join(dest),
        };
        if source.is_dir() {
            std::fs::create_dir_all(&dest)?;
            run(Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", source.display()))
                .arg(&dest))
        } else {
            let target = match dest.to_string_lossy().ends_with('/') {
                true => dest.join(source.file_name().context("source without a name")?),
                false => dest,
            };
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            run(Command::new("cp").arg("-a").arg(&source).arg(&target))
        }
    }

    fn play(&mut self, instructions: &[Instruction]) -> Result<PathBuf> {
        for instruction in instructions {
            match instruction {
                Instruction::From(spec) => self.from(spec)?,
                Instruction::Run(script) => self.run_instruction(script)?,
                Instruction::Copy { from, src, dest } => self.copy(from.as_deref(), src, dest)?,
                Instruction::Workdir(dir) => self.stage()?.workdir = dir.clone(),
                Instruction::Other => {}
            }
        }
        Ok(self.stage()?.root.clone())
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Path → kind (`dir`, `file`, `-> target`) of a tree.
fn listing(tree: &xtask::assemble::Tree) -> BTreeMap<String, String> {
    tree.iter()
        .map(|(path, node)| {
            let kind = match &node.kind {
                NodeKind::Dir => "dir".to_string(),
                NodeKind::File { .. } => "file".to_string(),
                NodeKind::Symlink(target) => format!("-> {target}"),
                other => format!("{other:?}"),
            };
            (path.to_string(), kind)
        })
        .collect()
}

#[test]
fn every_dockerfile_lays_out_the_files_of_the_docker_less_build() -> Result<()> {
    let store = ImageStore::new(require_images()?);
    let paths = paths();
    let cache = PackageCache::new(paths.debs());
    let tools = xtask::static_go::build(&paths.static_go())?;
    let mut differences = Vec::new();
    for entry in std::fs::read_dir(paths.pkg())? {
        let dir = entry?.path();
        if !dir.is_dir() {
            continue;
        }
        let Some(package) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let text = std::fs::read_to_string(dir.join("Dockerfile"))
            .with_context(|| format!("{}: no Dockerfile", dir.display()))?;
        let mut player = Player {
            cache: &cache,
            tools: &tools,
            context: dir.clone(),
            bins: paths
                .workspace
                .join("target")
                .join(GUEST_TARGET)
                .join("release"),
            work: scratch(&format!("dockerfile-{package}"))?,
            stages: Vec::new(),
        };
        let root = player
            .play(&parse(&text)?)
            .with_context(|| format!("playing pkg/{package}/Dockerfile"))?;
        let played = listing(&tree_from_dir(&root)?);
        let reference = BuildYml::read(&dir)?.reference();
        let built = listing(&store.open(&reference, Path::new("."))?.fs);
        for (path, kind) in &built {
            if played.get(path) != Some(kind) {
                differences.push(format!(
                    "pkg/{package}: the Dockerfile has {:?} for {path}, xtask {kind}",
                    played.get(path)
                ));
            }
        }
        for path in played.keys().filter(|p| !built.contains_key(*p)) {
            differences.push(format!("pkg/{package}: only the Dockerfile has {path}"));
        }
    }
    ensure!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(())
}

#[test]
fn dockerfile_instructions_are_parsed_with_continuations_and_stages() -> Result<()> {
    let text = "# c\nFROM a:1 AS build\nRUN x \\\n\t&& y\nCOPY --from=build /o/ /\nCMD [\"/z\"]\n";
    assert_eq!(
        parse(text)?,
        [
            Instruction::From("a:1 AS build".into()),
            Instruction::Run("x  && y".into()),
            Instruction::Copy {
                from: Some("build".into()),
                src: "/o/".into(),
                dest: "/".into()
            },
            Instruction::Other,
        ]
    );
    assert!(
        parse("ADD x y\n").is_err(),
        "unknown instructions are refused"
    );
    Ok(())
}
