//! Executor tests that need no root: puppet.conf edits and their `.old`.

use super::*;

fn edit(section: &str, key: &str, value: &str) -> Action {
    Action {
        module: "puppet",
        stage: crate::action::Stage::Final,
        kind: ActionKind::EditIni {
            path: "/etc/puppet/puppet.conf".into(),
            section: section.into(),
            key: key.into(),
            value: value.into(),
        },
    }
}

fn executor<'o>(opts: &'o ApplyOptions) -> Executor<'o> {
    Executor {
        opts,
        writer: Writer::new(&opts.root),
        runner: Runner::new(RunnerConfig::default(), Vec::new()),
        keys: KeyFetcher::new("http://127.0.0.1:1", "http://127.0.0.1:1", None),
        log: RunLog::discard(),
        warnings: Vec::new(),
        final_message: None,
        power_state: None,
        sync_batch: SyncBatch::default(),
        user_file_owners: HashMap::new(),
        actions_done: 0,
        kill_after: None,
    }
}

fn options(root: &Path) -> ApplyOptions {
    ApplyOptions {
        stages: Vec::new(),
        root: root.to_path_buf(),
        image_root: true,
        force: false,
        run_scripts: false,
        datasource: "none".into(),
        instance_id: "i-test".into(),
        boot_id: "boot-test".into(),
        user_data: Vec::new(),
        instance_data: serde_json::Value::Null,
        runner: RunnerConfig::default(),
        launchpad_api: String::new(),
        default_keyserver: String::new(),
        runtime_dir: root.join("run"),
    }
}

fn run_module(opts: &ApplyOptions, actions: &[&Action]) {
    let writer = Writer::new(&opts.root);
    let state = InstanceState::open(&writer, &opts.instance_id, &opts.boot_id).unwrap();
    let module = ModuleEntry {
        name: "puppet",
        stage: crate::action::Stage::Final,
        frequency: Frequency::PerInstance,
    };
    executor(opts)
        .run_module(&module, actions, &state)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn puppet_conf_old_is_the_true_original_or_nothing() {
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let edits = [edit("agent", "server", "p"), edit("agent", "certname", "c")];
    let refs: Vec<&Action> = edits.iter().collect();
    // Created by the plan: no .old.
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    run_module(&opts, &refs);
    let conf = std::fs::read_to_string(dir.path().join("etc/puppet/puppet.conf")).unwrap();
    assert_eq!(conf, "[agent]\nserver = p\ncertname = c\n");
    assert!(!dir.path().join("etc/puppet/puppet.conf.old").exists());
    // Existing: the original is kept, and a rerun keeps it.
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let writer = Writer::new(dir.path());
    writer
        .write("/etc/puppet/puppet.conf", b"# Debian\n", 0o644, uid, gid)
        .unwrap();
    run_module(&opts, &refs);
    run_module(&opts, &refs);
    let old = std::fs::read_to_string(dir.path().join("etc/puppet/puppet.conf.old")).unwrap();
    assert_eq!(old, "# Debian\n");
}

#[test]
fn installed_packages_come_from_dpkg_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
    std::fs::write(
        dir.path().join("var/lib/dpkg/status"),
        "Package: tzdata\nStatus: install ok installed\n\nPackage: gone\nStatus: deinstall ok config-files\n\nPackage: half\nStatus: install ok half-configured\n",
    )
    .unwrap();
    let installed = installed_packages(dir.path()).unwrap();
    assert_eq!(installed.into_iter().collect::<Vec<_>>(), vec!["tzdata"]);
}

/// A plan of one init-stage file and one final-stage file.
fn two_stage_plan() -> Plan {
    let write = |module: &'static str, stage: Stage, path: &str| Action {
        module,
        stage,
        kind: ActionKind::WriteFile {
            path: path.into(),
            mode: "0644".into(),
            owner: "root".into(),
            group: "root".into(),
            content: crate::action::Text::plain("x\n"),
        },
    };
    let entry = |name, stage| ModuleEntry {
        name,
        stage,
        frequency: Frequency::PerInstance,
    };
    Plan {
        facts: Default::default(),
        modules: vec![
            entry("write_files", Stage::Init),
            entry("final_message", Stage::Final),
        ],
        actions: vec![
            write("write_files", Stage::Init, "/etc/early"),
            write("final_message", Stage::Final, "/etc/late"),
        ],
        warnings: Vec::new(),
    }
}

#[test]
fn the_init_unit_leaves_the_report_running_for_the_later_stages() {
    let dir = tempfile::tempdir().unwrap();
    let plan = two_stage_plan();
    let mut opts = options(dir.path());
    opts.stages = vec![Stage::Init];
    let outcome = apply(&plan, &opts).unwrap();
    assert_eq!(outcome.status.status, RunStatus::Running);
    assert!(dir.path().join("etc/early").exists());
    assert!(!dir.path().join("etc/late").exists());
    let between = crate::report::read_status(&opts.runtime_dir)
        .unwrap()
        .unwrap();
    assert_eq!(between.status, RunStatus::Running);
    assert_eq!(between.modules[0].status, ModuleState::Ok);
    assert_eq!(between.modules[1].status, ModuleState::Pending);

    opts.stages = vec![Stage::Config, Stage::Final];
    let outcome = apply(&plan, &opts).unwrap();
    assert_eq!(outcome.status.status, RunStatus::Done);
    assert!(dir.path().join("etc/late").exists());
    // The init stage's result is kept, not run again nor forgotten.
    assert_eq!(outcome.status.modules[0].status, ModuleState::Ok);
    assert_eq!(outcome.status.modules[0].reason, None);
    assert_eq!(outcome.status.modules[1].status, ModuleState::Ok);
}

#[test]
fn later_stages_alone_run_the_earlier_ones_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.stages = vec![Stage::Config, Stage::Final];
    let outcome = apply(&two_stage_plan(), &opts).unwrap();
    assert_eq!(outcome.status.status, RunStatus::Done);
    assert!(dir.path().join("etc/early").exists());
    assert!(dir.path().join("etc/late").exists());
}
