//! The user data people send, applied with `cloudcfg apply --root --run-scripts` to an overlay
//! of the debootstrapped bookworm root: a multipart message of a cloud-config (bootcmd,
//! write_files now and deferred, runcmd), a shell script and a boothook; users, groups, sudo
//! rules and SSH keys. Real chroot, real /bin/sh, useradd, usermod, chpasswd and visudo; no
//! network.

mod support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::root::{self, Overlay};

const TOOLS: &[&str] = &["debootstrap", "chroot", "mount"];

struct Env {
    overlay: Overlay,
    scratch: tempfile::TempDir,
}

fn setup(test: &str) -> Option<Env> {
    if !root::can_run(test, TOOLS) {
        return None;
    }
    Some(Env {
        overlay: Overlay::new(&root::bookworm()),
        scratch: tempfile::tempdir().unwrap(),
    })
}

impl Env {
    fn run_dir(&self) -> PathBuf {
        self.scratch.path().join("run")
    }

    fn apply(
        &self,
        user_data: &str,
        instance: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let ud = self.scratch.path().join("user-data");
        std::fs::write(&ud, user_data).unwrap();
        std::fs::create_dir_all(self.run_dir()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .args(["apply", "--instance-id", instance, "--user-data"])
            .arg(&ud)
            .arg("--root")
            .arg(&self.overlay.root)
            .args(args)
            .env("CLOUDCFG_RUNTIME_DIR", self.run_dir())
            .envs(env.iter().copied())
            .output()
            .expect("cloudcfg runs");
        eprintln!(
            "apply {instance} {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn modules(&self) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(self.run_dir().join("cloudcfg/status.json")).unwrap();
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        status["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                (field("name"), field("status"), field("reason"))
            })
            .collect()
    }

    fn state_of(&self, module: &str) -> String {
        self.modules()
            .into_iter()
            .find(|(name, ..)| name == module)
            .map(|(_, state, _)| state)
            .unwrap_or_else(|| panic!("{module} is not reported"))
    }

    fn read_or_empty(&self, target: &str) -> String {
        std::fs::read_to_string(self.overlay.path(target)).unwrap_or_default()
    }

    fn id_of(&self, file: &str, name: &str) -> u32 {
        self.overlay
            .read(file)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0] == name).then(|| f[2].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} not in {file}"))
    }
}

/// A cloud-config part, a shell-script part and a boothook, as EC2 launch templates send
/// them. bootcmd
/// creates the account that write_files then gives its file to (init stage, in that order).
fn multipart(script: &str, runcmd_extra: &str) -> String {
    format!(
        "Content-Type: multipart/mixed; boundary=\"==BOUNDARY==\"\nMIME-Version: 1.0\n\n\
--==BOUNDARY==\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n\n\
#cloud-config
bootcmd:
  - echo \"boot $INSTANCE_ID\" >> /var/log/boot-ids
  - [sh, -c, 'id app >/dev/null 2>&1 || useradd --system --user-group app']
write_files:
  - path: /etc/app/config.ini
    content: |
      [app]
      name = demo
    owner: app:app
    permissions: '0640'
  - path: /etc/app/banner
    encoding: b64
    content: aGVsbG8gZnJvbSBiNjQK
  - path: /etc/app/deferred
    content: written in the final stage
    defer: true
runcmd:
  - [sh, -c, 'echo \"runcmd sees $(cat /etc/app/banner)\" >> /var/log/order']
{runcmd_extra}
--==BOUNDARY==\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\n\n\
{script}
--==BOUNDARY==\nContent-Type: text/cloud-boothook; charset=\"us-ascii\"\n\n\
#cloud-boothook
echo \"boothook $INSTANCE_ID\" >> /var/log/boothooks
--==BOUNDARY==--\n"
    )
}

const GOOD_SCRIPT: &str = "#!/bin/sh\necho part >> /var/log/order\necho script says hello";

fn mode_uid_gid(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid(), meta.gid())
}

#[test]
fn scripts_and_files_of_a_multipart_user_data_run_in_cloud_inits_order() {
    let Some(env) = setup("scripts_and_files_of_a_multipart_user_data") else {
        return;
    };
    let user_data = multipart(GOOD_SCRIPT, "");

    // Without --run-scripts an image root keeps the scripts for its first boot.
    let out = env.apply(&user_data, "i-image", &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--run-scripts"), "{stderr}");
    assert_eq!(env.state_of("bootcmd"), "skipped");
    assert_eq!(env.state_of("scripts_user"), "skipped");
    assert_eq!(env.read_or_empty("/var/log/order"), "");
    let runcmd = env
        .overlay
        .path("/var/lib/cloudcfg/instances/i-image/scripts/runcmd");
    assert_eq!(
        mode_uid_gid(&runcmd),
        (0o700, 0, 0),
        "runcmd's script is kept"
    );
    // write_files needs the account bootcmd creates, which did not run: it fails, naming it,
    // and writes none of its files (the banner, root's, comes after the missing owner's).
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(env.state_of("write_files"), "failed");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no account \"app\""),
        "the error names the owner"
    );
    assert!(!env.overlay.path("/etc/app/banner").exists());
    assert!(!env.overlay.path("/etc/app/config.ini").exists());

    // First boot, run for real.
    let out = env.apply(&user_data, "i-first", &["--run-scripts"], &[]);
    assert!(out.status.success(), "first boot failed");
    for module in [
        "bootcmd",
        "write_files",
        "runcmd",
        "write_files_deferred",
        "scripts_user",
    ] {
        assert_eq!(env.state_of(module), "ok", "{module}");
    }
    // The script part runs before runcmd (name order), after write_files made the banner.
    assert_eq!(
        env.overlay.read("/var/log/order"),
        "part\nruncmd sees hello from b64\n"
    );
    assert_eq!(env.overlay.read("/var/log/boot-ids"), "boot i-first\n");
    assert_eq!(env.overlay.read("/var/log/boothooks"), "boothook i-first\n");
    let (uid, gid) = (
        env.id_of("/etc/passwd", "app"),
        env.id_of("/etc/group", "app"),
    );
    assert_ne!(uid, 0);
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/etc/app/config.ini")),
        (0o640, uid, gid)
    );
    assert_eq!(
        env.overlay.read("/etc/app/config.ini"),
        "[app]\nname = demo\n"
    );
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/etc/app/banner")),
        (0o644, 0, 0)
    );
    assert_eq!(
        env.overlay.read("/etc/app/deferred"),
        "written in the final stage"
    );
    let part = env
        .overlay
        .path("/var/lib/cloudcfg/instances/i-first/scripts/part-002");
    assert_eq!(mode_uid_gid(&part), (0o700, 0, 0));
    // Outputs go to the log, which is private.
    let log = env.overlay.read("/var/log/cloudcfg.log");
    assert!(log.contains("script says hello"), "{log}");
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/var/log/cloudcfg.log")).0,
        0o600
    );

    // The next boot of the same instance: bootcmd again, nothing else.
    let out = env.apply(&user_data, "i-first", &["--run-scripts"], &[]);
    assert!(out.status.success());
    assert_eq!(
        env.overlay.read("/var/log/boot-ids"),
        "boot i-first\nboot i-first\n"
    );
    assert_eq!(
        env.overlay.read("/var/log/boothooks"),
        "boothook i-first\nboothook i-first\n"
    );
    assert_eq!(
        env.overlay.read("/var/log/order"),
        "part\nruncmd sees hello from b64\n"
    );
    assert_eq!(env.state_of("scripts_user"), "skipped");
}

#[test]
fn a_failing_script_fails_its_module_and_runs_again_alone_at_the_next_boot() {
    let Some(env) = setup("a_failing_script_fails_its_module") else {
        return;
    };
    // The script part fails until /etc/app/fixed exists; runcmd after it still runs.
    let script = "#!/bin/sh\necho part-attempt >> /var/log/order\ntest -e /etc/app/fixed";
    let user_data = multipart(script, "  - [sh, -c, 'echo later >> /var/log/order']");
    let out = env.apply(&user_data, "i-fail", &["--run-scripts"], &[]);
    assert_eq!(out.status.code(), Some(1), "a failed script is exit 1");
    assert_eq!(env.state_of("scripts_user"), "failed");
    assert_eq!(env.state_of("write_files_deferred"), "ok");
    // The module after the failed one still ran.
    assert_eq!(env.state_of("final_message"), "ok");
    assert_eq!(
        env.overlay.read("/var/log/order"),
        "part-attempt\nruncmd sees hello from b64\nlater\n"
    );

    // Next boot: only the failed script runs again; runcmd, which succeeded, does not.
    env.overlay.write("/etc/app/fixed", "");
    let out = env.apply(&user_data, "i-fail", &["--run-scripts"], &[]);
    assert!(out.status.success());
    assert_eq!(env.state_of("scripts_user"), "ok");
    assert_eq!(
        env.overlay.read("/var/log/order"),
        "part-attempt\nruncmd sees hello from b64\nlater\npart-attempt\n"
    );
}

#[test]
fn a_run_killed_at_any_point_runs_each_script_once() {
    let Some(probe) = setup("a_run_killed_at_any_point_runs_each_script_once") else {
        return;
    };
    let user_data = multipart(GOOD_SCRIPT, "");
    let plan = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args([
            "plan",
            "--format",
            "json",
            "--instance-id",
            "i-kill",
            "--user-data",
            "-",
        ])
        .arg("--root")
        .arg(&probe.overlay.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(user_data.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let actions = plan["actions"].as_array().unwrap().len();
    assert!(actions >= 9, "{actions} actions");
    drop(probe);
    for point in 1..actions {
        let env = setup("a_run_killed_at_any_point_runs_each_script_once").unwrap();
        let n = point.to_string();
        let out = env.apply(
            &user_data,
            "i-kill",
            &["--run-scripts"],
            &[("CLOUDCFG_TEST_KILL_AFTER_ACTION", &n)],
        );
        assert_eq!(out.status.signal(), Some(9), "killed after action {point}");
        let out = env.apply(&user_data, "i-kill", &["--run-scripts"], &[]);
        assert!(out.status.success(), "rerun after a kill at {point}");
        assert_eq!(
            env.overlay.read("/var/log/order"),
            "part\nruncmd sees hello from b64\n",
            "killed after action {point}"
        );
    }
}

const ALICE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKt9vWqlO3X9UFJ6dJkH0RqM4nYk2m6Hc4pVx1bD0aQe alice@laptop";
const ADMIN_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkl8Jv0yKp3yQ0d2m5Qz6b0m9Hq1bS1Xz0kVq3WmZcB admin@ops";
const HASH: &str = "$6$rounds=4096$saltsalt$3xOmQmqbHTNAX2yEkIJm5yyWUJJgX8yOnc9CdwGc6Mm4HQV4Fb8sVe1OLzdeuArwm3JC6PYS5ILYB8v0z/Oyt.";

fn users_data(alice_sudo: &str) -> String {
    format!(
        "#cloud-config
groups:
  - admingroup: [root]
users:
  - default
  - name: alice
    gecos: Alice Example
    groups: users, admingroup
    sudo: \"{alice_sudo}\"
    lock_passwd: false
    hashed_passwd: {HASH}
    ssh_authorized_keys: [\"{ALICE_KEY}\"]
ssh_authorized_keys: [\"{ADMIN_KEY}\"]
write_files:
  - path: /home/alice/notes.txt
    content: written once alice exists
    owner: alice:alice
    permissions: '0600'
    defer: true
"
    )
}

fn shadow_hash(env: &Env, user: &str) -> String {
    env.overlay
        .read("/etc/shadow")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[1].to_owned())
        })
        .unwrap_or_else(|| panic!("{user} not in /etc/shadow"))
}

fn members(env: &Env, group: &str) -> Vec<String> {
    env.overlay
        .read("/etc/group")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == group).then(|| {
                f[3].split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        })
        .unwrap_or_else(|| panic!("no group {group}"))
}

#[test]
fn users_groups_sudo_and_keys_with_the_targets_own_tools() {
    let Some(env) = setup("users_groups_sudo_and_keys") else {
        return;
    };
    assert!(
        env.overlay.path("/usr/sbin/visudo").exists(),
        "the cached root lacks sudo (tests/e2e/bookworm-root.sh)"
    );
    let user_data = users_data("ALL=(ALL) NOPASSWD:/usr/bin/systemctl");
    let out = env.apply(&user_data, "i-users", &[], &[]);
    assert!(out.status.success(), "apply failed");
    assert_eq!(env.state_of("users_groups"), "ok");

    // The default user: Debian's name, groups and shell, password locked, the admin key.
    let debian = env.id_of("/etc/passwd", "debian");
    let debian_group = env.id_of("/etc/group", "debian");
    let passwd = env.overlay.read("/etc/passwd");
    assert!(
        passwd.contains(&format!(
            "debian:x:{debian}:{debian_group}:Debian:/home/debian:/bin/bash\n"
        )),
        "{passwd}"
    );
    assert!(members(&env, "sudo").contains(&"debian".to_owned()));
    assert!(members(&env, "netdev").contains(&"debian".to_owned()));
    assert!(shadow_hash(&env, "debian").starts_with('!'), "locked");
    let keys = env.overlay.path("/home/debian/.ssh/authorized_keys");
    assert_eq!(mode_uid_gid(&keys), (0o600, debian, debian_group));
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/home/debian/.ssh")),
        (0o700, debian, debian_group)
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        format!("{ADMIN_KEY}\n")
    );

    // alice: her hash in /etc/shadow, her groups, her key, her sudo rule checked by visudo.
    assert_eq!(shadow_hash(&env, "alice"), HASH);
    assert!(members(&env, "admingroup").contains(&"alice".to_owned()));
    assert!(members(&env, "admingroup").contains(&"root".to_owned()));
    assert!(members(&env, "users").contains(&"alice".to_owned()));
    assert_eq!(
        env.overlay.read("/home/alice/.ssh/authorized_keys"),
        format!("{ALICE_KEY}\n")
    );
    let sudoers = env.overlay.path("/etc/sudoers.d/90-cloud-init-users");
    assert_eq!(mode_uid_gid(&sudoers), (0o440, 0, 0));
    let rules = env.overlay.read("/etc/sudoers.d/90-cloud-init-users");
    assert!(rules.contains("debian ALL=(ALL) NOPASSWD:ALL\n"), "{rules}");
    assert!(
        rules.contains("alice ALL=(ALL) NOPASSWD:/usr/bin/systemctl\n"),
        "{rules}"
    );
    let visudo = env.overlay.chroot(&["visudo", "-c"]);
    assert!(visudo.status.success(), "{visudo:?}");
    // A deferred file of write_files, owned by the account the users module made.
    let notes = env.overlay.path("/home/alice/notes.txt");
    assert_eq!(
        mode_uid_gid(&notes),
        (
            0o600,
            env.id_of("/etc/passwd", "alice"),
            env.id_of("/etc/group", "alice")
        )
    );
    // The hash is a secret: not in the log.
    assert!(!env.overlay.read("/var/log/cloudcfg.log").contains(HASH));

    // A new instance id (a clone): accounts are amended, never recreated; keys not doubled.
    env.overlay.write("/home/debian/.ssh/authorized_keys", &format!("{ADMIN_KEY}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnKeyOfTheUserHimselfXXXXXXXXXXXXXXXXXXXX own\n"));
    let out = env.apply(&user_data, "i-users-2", &[], &[]);
    assert!(out.status.success(), "second instance failed");
    assert_eq!(env.id_of("/etc/passwd", "debian"), debian);
    let kept = env.overlay.read("/home/debian/.ssh/authorized_keys");
    assert_eq!(kept.matches(ADMIN_KEY).count(), 1, "{kept}");
    assert!(
        kept.contains(" own\n"),
        "the user's own key was kept: {kept}"
    );

    // A rule visudo refuses is never moved into place: the module fails, the old file stays.
    let out = env.apply(&users_data("ALL=(ALL) NOPASSWD ALL"), "i-users-3", &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(env.state_of("users_groups"), "failed");
    assert_eq!(
        env.overlay.read("/etc/sudoers.d/90-cloud-init-users"),
        rules
    );
    assert!(
        !env.overlay
            .path("/etc/sudoers.d/90-cloud-init-users.cloudcfg-check")
            .exists()
    );
}

/// A host key made on the build host, given to the instance in `ssh_keys`.
fn given_host_key(dir: &Path) -> (String, String) {
    let path = dir.join("given_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "given", "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs on the host");
    assert!(out.status.success(), "{out:?}");
    let private = std::fs::read_to_string(&path).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (
        private,
        public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn names_and_keys_data(ssh_keys: &str) -> String {
    format!(
        "#cloud-config
hostname: web-1
fqdn: web-1.example.test
manage_etc_hosts: localhost
ssh_pwauth: true
ssh_authorized_keys: [\"{ADMIN_KEY}\"]
{ssh_keys}
users:
  - default
  - name: bob
    lock_passwd: false
chpasswd:
  expire: true
  users:
    - {{name: debian, password: '{HASH}', type: hash}}
    - {{name: bob, password: {TEXT_PASSWORD}, type: text}}
    - {{name: root, type: RANDOM}}
"
    )
}

const TEXT_PASSWORD: &str = "correct-horse-battery-staple";

/// `/etc/ssh/ssh_host_*` of the root: name -> (mode, uid, gid, content).
fn host_keys(env: &Env) -> std::collections::BTreeMap<String, (u32, u32, u32, String)> {
    std::fs::read_dir(env.overlay.path("/etc/ssh"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ssh_host_"))
        .map(|e| {
            let (mode, uid, gid) = mode_uid_gid(&e.path());
            let content = std::fs::read_to_string(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (mode, uid, gid, content),
            )
        })
        .collect()
}

fn shadow_fields(env: &Env, user: &str) -> Vec<String> {
    env.overlay
        .read("/etc/shadow")
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .unwrap_or_else(|| panic!("{user} not in /etc/shadow"))
}

#[test]
fn host_keys_root_stub_names_and_passwords_in_a_real_root() {
    let Some(env) = setup("host_keys_root_stub_names_and_passwords") else {
        return;
    };
    assert!(
        env.overlay.path("/usr/bin/ssh-keygen").exists(),
        "the cached root lacks openssh-server (tests/e2e/bookworm-root.sh)"
    );
    let image_keys = host_keys(&env);
    assert!(
        image_keys.contains_key("ssh_host_rsa_key"),
        "the image has host keys to remove: {:?}",
        image_keys.keys()
    );
    let root_hash_before = shadow_fields(&env, "root")[1].clone();
    let (private, public) = given_host_key(env.scratch.path());
    let indented: String = private.lines().map(|l| format!("    {l}\n")).collect();
    let user_data = names_and_keys_data(&format!("ssh_keys:\n  ed25519_private: |\n{indented}"));

    // The plan shows neither the given private key nor a password.
    let ud = env.scratch.path().join("plan-user-data");
    std::fs::write(&ud, &user_data).unwrap();
    let plan = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
        .args([
            "plan",
            "--format",
            "json",
            "--instance-id",
            "i-names",
            "--user-data",
        ])
        .arg(&ud)
        .arg("--root")
        .arg(&env.overlay.root)
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{plan:?}");
    let key_body = private.lines().nth(1).unwrap();
    for secret in [key_body, TEXT_PASSWORD, HASH] {
        assert!(!plan_text.contains(secret), "the plan shows {secret}");
    }

    let out = env.apply(&user_data, "i-names", &[], &[]);
    assert!(out.status.success(), "apply failed");
    for module in [
        "set_hostname",
        "update_etc_hosts",
        "users_groups",
        "ssh",
        "set_passwords",
    ] {
        assert_eq!(env.state_of(module), "ok", "{module}");
    }

    // Host keys: the image's gone, the given one in place (0600 root), its public key derived.
    let keys = host_keys(&env);
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"],
        "with ssh_keys cloud-init makes no other keys"
    );
    assert_eq!(keys["ssh_host_ed25519_key"], (0o600, 0, 0, private.clone()));
    let (mode, uid, gid, derived) = &keys["ssh_host_ed25519_key.pub"];
    assert_eq!((*mode, *uid, *gid), (0o644, 0, 0));
    assert!(derived.starts_with(&public), "{derived} is not {public}");
    assert!(!env.overlay.path("/etc/ssh/.cloudcfg-host-keys").exists());

    // sshd accepts its keys and the pwauth drop-in (0600, as cloud-init writes it).
    let dropin = env
        .overlay
        .path("/etc/ssh/sshd_config.d/50-cloud-init.conf");
    assert_eq!(mode_uid_gid(&dropin), (0o600, 0, 0));
    assert_eq!(
        std::fs::read_to_string(&dropin)
            .unwrap()
            .trim_end()
            .lines()
            .last(),
        Some("PasswordAuthentication yes")
    );
    std::fs::create_dir_all(env.overlay.path("/run/sshd")).unwrap();
    let sshd = env.overlay.chroot(&["/usr/sbin/sshd", "-t"]);
    assert!(sshd.status.success(), "sshd -t: {sshd:?}");
    let effective = env.overlay.chroot(&["/usr/sbin/sshd", "-T"]);
    assert!(
        String::from_utf8_lossy(&effective.stdout).contains("\npasswordauthentication yes\n"),
        "sshd -T"
    );

    // The default user gets the key; root gets it behind cloud-init's stub.
    assert_eq!(
        env.overlay.read("/home/debian/.ssh/authorized_keys"),
        format!("{ADMIN_KEY}\n")
    );
    let root_keys = env.overlay.read("/root/.ssh/authorized_keys");
    assert_eq!(
        root_keys,
        format!(
            "no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=\"echo 'Please \
             login as the user \\\"debian\\\" rather than the user \\\"root\\\".';echo;sleep \
             10;exit 142\" {ADMIN_KEY}\n"
        )
    );
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/root/.ssh/authorized_keys")),
        (0o600, 0, 0)
    );

    // Names: /etc/hostname and the 127.0.1.1 line, the rest of Debian's file kept.
    assert_eq!(env.overlay.read("/etc/hostname"), "web-1\n");
    let hosts = env.overlay.read("/etc/hosts");
    assert!(
        hosts.contains("127.0.0.1\tlocalhost\n") || hosts.contains("127.0.0.1 localhost\n"),
        "{hosts}"
    );
    assert_eq!(
        hosts
            .lines()
            .filter(|l| l.starts_with("127.0.1.1"))
            .collect::<Vec<_>>(),
        ["127.0.1.1 web-1.example.test web-1"],
        "{hosts}"
    );

    // Passwords: the hash as given, the text one hashed by chpasswd, a random one for root;
    // all expired (last change 0), as cloud-init 22.3 and later do for hashes too.
    assert_eq!(shadow_fields(&env, "debian")[1], HASH);
    let bob = shadow_fields(&env, "bob");
    assert!(
        bob[1].starts_with('$') && !bob[1].contains(TEXT_PASSWORD),
        "{bob:?}"
    );
    let root = shadow_fields(&env, "root");
    assert_ne!(root[1], root_hash_before);
    for user in ["debian", "bob", "root"] {
        assert_eq!(shadow_fields(&env, user)[2], "0", "{user} expired");
    }
    // The random password is shown once, to whoever builds the image, and logged nowhere.
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let random = stderr
        .lines()
        .skip_while(|l| *l != "Set the following 'random' passwords")
        .nth(1)
        .and_then(|l| l.strip_prefix("root:"))
        .unwrap_or_else(|| panic!("no random password shown: {stderr}"))
        .to_owned();
    assert_eq!(random.len(), 20, "{random}");
    let log = env.overlay.read("/var/log/cloudcfg.log");
    for secret in [random.as_str(), TEXT_PASSWORD, HASH, key_body] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
    assert_eq!(
        mode_uid_gid(&env.overlay.path("/var/log/cloudcfg.log")).0,
        0o600
    );

    // The same instance again: nothing of it changes.
    let root_keys_before = root_keys.clone();
    let out = env.apply(&user_data, "i-names", &[], &[]);
    assert!(out.status.success());
    assert_eq!(host_keys(&env), keys);
    assert_eq!(
        env.overlay.read("/root/.ssh/authorized_keys"),
        root_keys_before
    );
    assert_eq!(
        env.overlay.read("/home/debian/.ssh/authorized_keys"),
        format!("{ADMIN_KEY}\n")
    );

    // A clone (new instance id) without ssh_keys: the old keys go, new ones of the asked types.
    let clone = names_and_keys_data("ssh_genkeytypes: [ecdsa, ed25519]\nssh_quiet_keygen: true");
    let out = env.apply(&clone, "i-names-2", &[], &[]);
    assert!(out.status.success(), "clone apply failed");
    let new_keys = host_keys(&env);
    assert_eq!(
        new_keys.keys().collect::<Vec<_>>(),
        [
            "ssh_host_ecdsa_key",
            "ssh_host_ecdsa_key.pub",
            "ssh_host_ed25519_key",
            "ssh_host_ed25519_key.pub"
        ]
    );
    assert_ne!(new_keys["ssh_host_ed25519_key"].3, private);
    assert!(
        new_keys["ssh_host_ecdsa_key.pub"]
            .3
            .trim_end()
            .ends_with(" root@web-1")
    );
    let sshd = env.overlay.chroot(&["/usr/sbin/sshd", "-t"]);
    assert!(sshd.status.success(), "sshd -t: {sshd:?}");
}
