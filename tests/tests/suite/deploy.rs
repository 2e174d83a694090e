//! The files under `deploy/` for running one kernel per node are checked, not only shipped:
//!
//! - `systemd/agentos-kernel.service` passes `systemd-analyze verify` without a single warning,
//!   and the restrictions it puts on the kernel's process (a user that is not root,
//!   `NoNewPrivileges`, an empty capability bounding set, no ambient capabilities) are applied
//!   with `setpriv` to a real kernel that must still jail an agent with every layer but the
//!   cgroup (which needs a delegated group) active.
//! - `kubernetes/agentos.yaml` validates against the Kubernetes API schema
//!   (`kubernetes-validate --strict`, installed by `.ci/run` into `target/deploy-venv`), and the
//!   policy its ConfigMap carries loads and lints clean.
//! - `container/Containerfile` ships the binaries the kernel needs and runs as a user that is
//!   not root, with the runtime options it documents; and the image is built with podman (from
//!   Debian, installed by `.ci/run` with runc and debootstrap) and runs the hello agent with
//!   every jail layer but the cgroup active. No registry is reachable here, so its two
//!   images come from this machine: the base is a Debian bookworm made with debootstrap from
//!   the Debian mirror, the builder that base with this build's binaries in place (the
//!   Containerfile's `BASE` and `BUILDER` arguments).

use std::path::{Path, PathBuf};
use std::process::Command;

use agentos_tests::{is_root, repo_root, target_dir, wait_until, write_policy, TestKernel};

fn deploy(file: &str) -> PathBuf {
    repo_root().join("deploy").join(file)
}

/// The values of `key=` lines of a unit file's `[Service]` section.
fn directive(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .take_while(|l| !l.starts_with('[') || l.trim() == "[Service]")
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_its_restrictions_still_jail_an_agent() {
    let unit = std::fs::read_to_string(deploy("systemd/agentos-kernel.service")).expect("unit");
    // `systemd-analyze verify` checks that ExecStart's binary exists: a copy runs this build's.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("agentos-kernel.service");
    let kernel = agentos_tests::binary("agentos-kernel");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/agentos-kernel",
            kernel.to_str().expect("utf-8"),
        ),
    )
    .expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It exits 0 on unknown keys and values it cannot parse: any output is a finding.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );

    // What the unit gives the process: the test applies exactly these.
    assert_eq!(directive(&unit, "User"), ["agentos"]);
    assert_eq!(directive(&unit, "NoNewPrivileges"), ["yes"]);
    assert_eq!(directive(&unit, "CapabilityBoundingSet"), [""]);
    assert_eq!(directive(&unit, "AmbientCapabilities"), [""]);
    assert_eq!(
        directive(&unit, "RestrictNamespaces"),
        ["user pid net ipc uts mnt"]
    );
    // Options that would break the jail are not there (the unit's comment says why).
    for key in [
        "ProtectKernelTunables",
        "ProtectProc",
        "ProcSubset",
        "ProtectHostname",
        "SystemCallFilter",
        "MemoryDenyWriteExecute",
        "PrivateUsers",
        "PrivateNetwork",
    ] {
        assert!(directive(&unit, key).is_empty(), "{key} breaks the jail");
    }
    let k = TestKernel::start_as(
        true,
        &["--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"],
        &[],
    );
    assert!(k.unprivileged || !is_root());
    let policy = write_policy(&k.work, "service", "strict", &["SIGTERM"], "");
    let id = k.spawn(&policy, &["park"]);
    k.wait_for_line(id, "ready");
    let info = k.info(id);
    let layers = info["sandbox"].as_array().expect("layers");
    assert!(layers.len() >= 12, "{info:#}");
    for layer in layers {
        if layer["layer"] == "cgroup" {
            continue; // a group of its own needs Delegate= on a cgroup v2 host
        }
        assert_eq!(layer["status"], "active", "{layer}");
    }
    k.ctl_ok(&["kill", &id.to_string()]);
    wait_until("the agent ends", || k.info(id)["state"] == "exited");
}

/// `kubernetes-validate`: on PATH, or where `.ci/run` installs it.
fn kubernetes_validate() -> PathBuf {
    // `target/deploy-venv`, beside the profile directories.
    let target = target_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(target_dir);
    let venv = target.join("deploy-venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubernetes-validate"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is missing: `python3 -m venv {0} && {0}/bin/pip install kubernetes-validate` (.ci/run does this)",
            target.join("deploy-venv").display()
        )
    })
}

#[test]
fn the_kubernetes_manifest_validates_and_its_policy_loads() {
    let manifest = deploy("kubernetes/agentos.yaml");
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "-k", "1.33.0"])
        .arg(&manifest)
        .output()
        .expect("run kubernetes-validate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for kind in [
        "namespace/agentos",
        "configmap/agentos-policies",
        "daemonset/agentos",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // The validator can fail: the same manifest with a port that is not a number does.
    let broken = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(
        broken.path(),
        std::fs::read_to_string(&manifest)
            .expect("manifest")
            .replace("containerPort: 9464", "containerPort: metrics-port"),
    )
    .expect("write");
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "-k", "1.33.0"])
        .arg(broken.path())
        .output()
        .expect("run kubernetes-validate");
    assert!(!out.status.success());

    // The ConfigMap's policy is one the kernel loads, without a warning.
    let yaml = std::fs::read_to_string(&manifest).expect("manifest");
    let start = yaml
        .find("  hello.md: |\n")
        .expect("the ConfigMap's policy")
        + "  hello.md: |\n".len();
    let policy: String = yaml[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), &policy).expect("write");
    let out = Command::new(agentos_tests::binary("agentctl"))
        .args(["policy", "lint", "--deny-warnings"])
        .arg(file.path())
        .output()
        .expect("agentctl policy lint");
    assert!(
        out.status.success(),
        "{policy}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_containerfile_ships_the_kernel_as_a_user_that_is_not_root() {
    let text = std::fs::read_to_string(deploy("container/Containerfile")).expect("Containerfile");
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let last_from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("FROM");
    let runtime = &instructions[last_from..];
    let joined = runtime.join("\n");
    for binary in [
        "agentos-kernel",
        "agentos-launch",
        "agentctl",
        "hello-agent",
    ] {
        assert!(
            joined.contains(&format!("/src/target/release/{binary}")),
            "the image lacks {binary}"
        );
        assert!(repo_root().join(binary_package(binary)).exists());
    }
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert_ne!(user.trim(), "root");
    assert!(joined.contains("ENTRYPOINT [\"/usr/local/bin/agentos-kernel\""));
    // The policy it copies exists and the runtime options it needs are written down.
    assert!(Path::new(&repo_root().join("examples/hello-agent/.agents/security.md")).is_file());
    for option in [
        "seccomp=unconfined",
        "apparmor=unconfined",
        "unmask=ALL",
        "--cap-drop=ALL",
    ] {
        assert!(text.contains(option), "{option} is not documented");
    }
    // Never `--privileged` in the commands it shows (only in the sentence that forbids it).
    assert!(!text
        .lines()
        .any(|l| l.contains("--privileged") && !l.contains("never --privileged")));
}

/// The package directory that builds `binary`.
fn binary_package(binary: &str) -> &'static str {
    match binary {
        "agentos-kernel" => "kernel",
        "agentos-launch" => "userspace",
        "agentctl" => "agentctl",
        _ => "examples/hello-agent",
    }
}

/// podman as this host needs it: runc and cgroupfs (crun refuses a host whose v2 hierarchy is
/// empty beside v1 controllers: "cgroups in hybrid mode not supported"), and limits under the
/// host's hard ones (podman's default `nofile` is above them).
fn podman(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--runtime", "runc", "--cgroup-manager", "cgroupfs"];
    all.extend_from_slice(args);
    Command::new("podman")
        .args(&all)
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const LIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
];

/// The base image: Debian bookworm (minbase) from the Debian mirror, made once per machine.
fn base_image(work: &Path) -> &'static str {
    const BASE: &str = "localhost/agentos-test-base:bookworm";
    if podman(&["image", "exists", BASE]).status.success() {
        return BASE;
    }
    let rootfs = work.join("rootfs");
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&rootfs)
        .arg("http://deb.debian.org/debian")
        .output()
        .expect("debootstrap is missing: `apt-get install -y debootstrap` (.ci/run does this)");
    assert!(
        out.status.success(),
        "debootstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = work.join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .expect("tar");
    assert!(tar.success(), "tar of the base rootfs");
    let import = Command::new("podman")
        .arg("import")
        .arg(&tarball)
        .arg(BASE)
        .output()
        .expect("podman import");
    assert!(
        import.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    BASE
}

#[test]
fn the_container_image_builds_and_runs_the_hello_agent() {
    assert!(
        is_root(),
        "the image is built with rootful podman: run the suite as root (CI does)"
    );
    assert!(
        Command::new("podman").arg("--version").output().is_ok()
            && Command::new("runc").arg("--version").output().is_ok(),
        "podman and runc are missing: `apt-get install -y podman runc debootstrap` (.ci/run does this)"
    );
    let work = tempfile::Builder::new()
        .prefix("agentos-image-")
        .tempdir()
        .expect("tempdir");
    let base = base_image(work.path());
    // The builder: the base with this build's binaries where the Containerfile's build step
    // looks for them (it then compiles nothing).
    let builder_ctx = work.path().join("builder");
    let release = builder_ctx.join("src/target/release");
    std::fs::create_dir_all(&release).unwrap();
    for bin in [
        "agentos-kernel",
        "agentos-launch",
        "agentctl",
        "hello-agent",
    ] {
        let out = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(release.join(bin))
            .arg(agentos_tests::binary(bin))
            .output()
            .expect("strip (binutils)");
        assert!(out.status.success(), "strip {bin}");
    }
    std::fs::write(
        builder_ctx.join("Containerfile"),
        format!("FROM {base}\nCOPY src /src\n"),
    )
    .unwrap();
    let tag = format!("localhost/agentos-test:{}", std::process::id());
    let builder = format!("{tag}-builder");
    let name = format!("agentos-test-{}", std::process::id());
    let _cleanup = Cleanup {
        container: name.clone(),
        images: vec![tag.clone(), builder.clone()],
    };
    podman_ok(&["build", "-q", "-t", &builder, builder_ctx.to_str().unwrap()]);
    // The image, from the repository as the context (`.containerignore` keeps target/ out).
    let containerfile = deploy("container/Containerfile");
    let context = repo_root();
    let mut build = vec!["build", "-q", "--network", "host", "--build-arg"];
    let builder_arg = format!("BUILDER={builder}");
    let base_arg = format!("BASE={base}");
    build.extend_from_slice(&[&builder_arg, "--build-arg", &base_arg]);
    build.extend_from_slice(&LIMITS);
    build.extend_from_slice(&[
        "-f",
        containerfile.to_str().unwrap(),
        "-t",
        &tag,
        context.to_str().unwrap(),
    ]);
    podman_ok(&build);
    // Run it with exactly the options the Containerfile documents (no network: the metrics
    // port is not what is tested here).
    let mut run = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
        "--security-opt",
        "unmask=ALL",
        "--cap-drop=ALL",
    ];
    run.extend_from_slice(&LIMITS);
    run.push(&tag);
    podman_ok(&run);
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", name.as_str()];
        all.extend_from_slice(args);
        podman(&all)
    };
    wait_until("the kernel in the container answers", || {
        exec(&["agentctl", "kernel", "status"]).status.success()
    });
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let id = exec(&["id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "10001");
    let spawn = exec(&[
        "agentctl",
        "spawn",
        "--name",
        "hello",
        "--policy",
        "/usr/share/agentos/hello-agent/security.md",
        "--",
        "/usr/local/bin/hello-agent",
    ]);
    assert!(spawn.status.success(), "{}", text(&spawn));
    let wait = exec(&["agentctl", "wait", "hello"]);
    assert!(
        wait.status.success() && text(&wait).contains("exited with code 0"),
        "{}",
        text(&wait)
    );
    let logs = text(&exec(&["agentctl", "logs", "hello"]));
    assert!(logs.contains("hello-agent: done"), "{logs}");
    assert!(logs.contains("no-secrets"), "{logs}");
    let info = exec(&["agentctl", "inspect", "hello", "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("inspect --json");
    for layer in info["sandbox"].as_array().expect("sandbox layers") {
        let want = if layer["layer"] == "cgroup" {
            "missing"
        } else {
            "active"
        };
        assert_eq!(layer["status"], want, "{layer}");
    }
    let verify = exec(&["agentctl", "recorder", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

/// Removes the test's container and images, whatever the test's outcome (the base stays:
/// it is made once per machine).
struct Cleanup {
    container: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", &self.container]);
        // The build stage's image, left untagged, made after the test's builder.
        let mut images = self.images.clone();
        if let Some(builder) = self.images.last() {
            let since = format!("since={builder}");
            let stages = podman(&[
                "images",
                "-q",
                "--filter",
                "dangling=true",
                "--filter",
                &since,
            ]);
            images.extend(
                String::from_utf8_lossy(&stages.stdout)
                    .split_whitespace()
                    .map(String::from),
            );
        }
        for image in &images {
            let _ = podman(&["rmi", "-f", image]);
        }
    }
}
