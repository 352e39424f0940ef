//! Detection against fixture hosts: kernel command line, DMI, seed directories and labels, all
//! in temporary directories. No network: nothing here fetches.

use super::*;
use crate::system;

/// A fake machine: a root, a kernel command line, DMI files, a by-label directory.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for d in ["root", "dmi", "by-label"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("cmdline"),
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, p: &str, text: &str) -> &Fixture {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn host(&self) -> Host {
        Host {
            root: self.path("root"),
            proc_cmdline: Some(self.path("cmdline")),
            dmi_dir: Some(self.path("dmi")),
            by_label_dir: Some(self.path("by-label")),
            blkid: false,
        }
    }
}

fn config(text: &str) -> SystemConfig {
    system::parse(text, "cloudcfg.yaml").unwrap()
}

fn detect_in(
    f: &Fixture,
    requested: Option<DatasourceName>,
    system: &str,
) -> Result<Detected, DatasourceError> {
    detect(requested, &f.host(), &config(system))
}

#[test]
fn kernel_command_line_syntax() {
    let k = parse_cmdline("quiet ds=nocloud;s=http://10.0.0.2/seed/;h=web1 console=ttyS0")
        .unwrap()
        .unwrap();
    assert_eq!(k.name, DatasourceName::Nocloud);
    assert_eq!(k.via, "ds");
    assert_eq!(k.param(&["s", "seedfrom"]), Some("http://10.0.0.2/seed/"));
    assert_eq!(k.param(&["h"]), Some("web1"));

    // GRUB's escaped semicolon, the -net alias, quotes, and ours winning over cloud-init's.
    let k = parse_cmdline(
        r#"ds=nocloud-net\;seedfrom=file:///seed/ "cloudcfg.ds=ec2;url=http://127.0.0.1:8169""#,
    )
    .unwrap()
    .unwrap();
    assert_eq!((k.name, k.via), (DatasourceName::Ec2, "cloudcfg.ds"));
    assert_eq!(k.param(&["url"]), Some("http://127.0.0.1:8169"));
    let k = parse_cmdline(r"ds=nocloud-net\;seedfrom=file:///seed/")
        .unwrap()
        .unwrap();
    assert_eq!(k.param(&["s", "seedfrom"]), Some("file:///seed/"));

    assert_eq!(parse_cmdline("root=/dev/vda ro").unwrap(), None);
    // cloud-init's other datasources are cloud-init's business; ours must be known.
    assert_eq!(parse_cmdline("ds=azure").unwrap(), None);
    assert!(matches!(
        parse_cmdline("cloudcfg.ds=azure"),
        Err(DatasourceError::Cmdline(_))
    ));
}

#[test]
fn hostnames_are_checked() {
    for good in [
        "web1",
        "ip-10-0-0-1.ec2.internal",
        "web1.example.org.",
        "10.0.0.1",
        "a_b",
    ] {
        assert_eq!(hostname_problem(good), None, "{good}");
    }
    for bad in [
        "",
        "web 1",
        "web1\nx",
        "-web",
        "a..b",
        "web1/..",
        &"a".repeat(64),
    ] {
        assert!(hostname_problem(bad).is_some(), "{bad:?}");
    }
}

#[test]
fn facts_from_instance_data() {
    let mut data = InstanceData {
        datasource: "ec2",
        source: "x".into(),
        instance_id: "i-0abc".into(),
        local_hostname: Some("ip-10-0-0-1.ec2.internal".into()),
        hostname: None,
        availability_zone: None,
        public_keys: Vec::new(),
        user_data: None,
        meta_data: serde_json::json!({}),
        identity: None,
    };
    assert_eq!(data.short_hostname().as_deref(), Some("ip-10-0-0-1"));
    assert_eq!(data.fqdn().as_deref(), Some("ip-10-0-0-1.ec2.internal"));
    data.hostname = Some("web1.example.org".into());
    assert_eq!(data.fqdn().as_deref(), Some("web1.example.org"));
    data.local_hostname = Some("10.1.2.3".into());
    data.hostname = None;
    assert_eq!(data.short_hostname().as_deref(), Some("ip-10-1-2-3"));
    assert_eq!(data.fqdn().as_deref(), Some("ip-10-1-2-3"));
    data.local_hostname = None;
    let args = data.fact_args();
    assert_eq!(args.instance_id.as_deref(), Some("i-0abc"));
    assert_eq!((args.hostname, args.fqdn, args.release), (None, None, None));
}

#[test]
fn dmi_evidence() {
    for (file, value, ec2) in [
        ("sys_vendor", "Amazon EC2\n", true),
        ("product_version", "4.11.amazon\n", true),
        ("board_asset_tag", "i-0123456789abcdef0\n", true),
        ("sys_vendor", "QEMU\n", false),
        ("board_asset_tag", "\n", false),
    ] {
        let f = Fixture::new();
        f.write(&format!("dmi/{file}"), value);
        assert_eq!(f.host().dmi_ec2().is_some(), ec2, "{file}={value:?}");
    }
}

/// A name, the fixture, the system config, `--datasource`, the datasource or error reason.
type Case<'a> = (
    &'a str,
    fn(&Fixture),
    &'a str,
    Option<DatasourceName>,
    Result<&'a str, &'a str>,
);

/// One row per detection rule: the fixture, the system config, `--datasource`, the expected
/// choice (or the error's reason).
#[test]
fn detection_order() {
    type Setup = fn(&Fixture);
    let seed: Setup = |f| {
        f.write(
            "root/var/lib/cloud/seed/nocloud/meta-data",
            "instance-id: iid-1\n",
        );
    };
    let dmi: Setup = |f| {
        f.write("dmi/sys_vendor", "Amazon EC2\n");
    };
    let both: Setup = |f| {
        f.write(
            "root/var/lib/cloud/seed/nocloud/meta-data",
            "instance-id: iid-1\n",
        );
        f.write("dmi/sys_vendor", "Amazon EC2\n");
    };
    let label: Setup = |f| {
        f.write("dev/sr0", "");
        std::os::unix::fs::symlink(f.path("dev/sr0"), f.path("by-label/CIDATA")).unwrap();
    };
    let kernel_ec2: Setup = |f| {
        f.write(
            "root/var/lib/cloud/seed/nocloud/meta-data",
            "instance-id: iid-1\n",
        );
        f.write("cmdline", "ro cloudcfg.ds=ec2;url=http://127.0.0.1:9\n");
    };
    let kernel_nocloud: Setup = |f| {
        f.write("cmdline", "ro ds=nocloud;s=file:///srv/seed/\n");
    };
    let kernel_ids_only: Setup = |f| {
        f.write("cmdline", "ro ds=nocloud;i=iid-k;h=web1\n");
    };
    let kernel_nocloud_no_seed: Setup = |f| {
        f.write("cmdline", "ro ds=nocloud\n");
    };
    let net_dir: Setup = |f| {
        f.write(
            "root/var/lib/cloud/seed/nocloud-net/meta-data",
            "instance-id: iid-1\n",
        );
    };
    let nothing: Setup = |_| {};
    let cases: &[Case] = &[
        ("seed dir", seed, "", None, Ok("nocloud")),
        ("nocloud-net seed dir", net_dir, "", None, Ok("nocloud")),
        ("cidata label", label, "", None, Ok("nocloud")),
        ("DMI", dmi, "", None, Ok("ec2")),
        (
            "default list: seed before DMI",
            both,
            "",
            None,
            Ok("nocloud"),
        ),
        (
            "list order: ec2 first",
            both,
            "datasource_list: [ec2, nocloud]\n",
            None,
            Ok("ec2"),
        ),
        (
            "list excludes nocloud",
            seed,
            "datasource_list: [ec2]\n",
            None,
            Ok("ec2"),
        ),
        (
            "list excludes ec2",
            dmi,
            "datasource_list: [nocloud]\n",
            None,
            Err("no-datasource"),
        ),
        (
            "nothing, default list: no probe",
            nothing,
            "",
            None,
            Err("no-datasource"),
        ),
        (
            "nothing, ec2 configured",
            nothing,
            "datasource_list: [nocloud, ec2]\n",
            None,
            Ok("ec2"),
        ),
        ("kernel beats seed", kernel_ec2, "", None, Ok("ec2")),
        (
            "kernel beats list",
            kernel_nocloud,
            "datasource_list: [ec2]\n",
            None,
            Ok("nocloud"),
        ),
        (
            "kernel ids without seed",
            kernel_ids_only,
            "",
            None,
            Ok("nocloud"),
        ),
        (
            "kernel nocloud without seed",
            kernel_nocloud_no_seed,
            "",
            None,
            Err("no-datasource"),
        ),
        (
            "--datasource beats kernel",
            kernel_ec2,
            "",
            Some(DatasourceName::Nocloud),
            Ok("nocloud"),
        ),
        (
            "--datasource ec2 without evidence",
            nothing,
            "",
            Some(DatasourceName::Ec2),
            Ok("ec2"),
        ),
        (
            "--datasource nocloud without seed",
            nothing,
            "",
            Some(DatasourceName::Nocloud),
            Err("no-datasource"),
        ),
    ];
    for (name, setup, system, requested, expected) in cases {
        let f = Fixture::new();
        setup(&f);
        let got = detect_in(&f, *requested, system);
        match (&got, expected) {
            (Ok(d), Ok(want)) => assert_eq!(d.choice.name(), *want, "{name}: {}", d.why),
            (Err(e), Err(want)) => assert_eq!(e.reason(), *want, "{name}: {e}"),
            _ => panic!("{name}: got {got:?}, want {expected:?}"),
        }
    }
}

#[test]
fn detection_carries_settings() {
    let f = Fixture::new();
    f.write("cmdline", "cloudcfg.ds=ec2;url=http://127.0.0.1:9/\n");
    let d = detect_in(
        &f,
        None,
        "ec2: {metadata_url: 'http://10.0.0.1', deadline_secs: 7}\n",
    )
    .unwrap();
    match d.choice {
        Choice::Ec2 { url, retry } => {
            assert_eq!(url, "http://127.0.0.1:9/");
            assert_eq!(retry.deadline, std::time::Duration::from_secs(7));
        }
        other => panic!("{other:?}"),
    }
    f.write(
        "cmdline",
        "ds=nocloud;s=file:///srv/seed;i=iid-9;local-hostname=web9\n",
    );
    let d = detect_in(&f, None, "").unwrap();
    assert_eq!(
        d.choice,
        Choice::NoCloud {
            seed: Some(Seed::Dir(PathBuf::from("/srv/seed"))),
            overrides: Overrides {
                instance_id: Some("iid-9".into()),
                local_hostname: Some("web9".into()),
            },
        }
    );
    f.write("cmdline", "cloudcfg.ds=ec2;url=not-a-url\n");
    assert_eq!(detect_in(&f, None, "").unwrap_err().reason(), "cmdline");
    f.write("cmdline", "ds=nocloud;s=ftp://x/\n");
    assert_eq!(detect_in(&f, None, "").unwrap_err().reason(), "cmdline");
}

/// With `--root`, the host's kernel command line, DMI and devices are not looked at.
#[test]
fn an_image_root_reads_only_its_own_files() {
    let f = Fixture::new();
    f.write("cmdline", "cloudcfg.ds=ec2\n");
    f.write("dmi/sys_vendor", "Amazon EC2\n");
    let host = Host::image(&f.path("root"));
    let err = detect(None, &host, &SystemConfig::default()).unwrap_err();
    assert_eq!(err.reason(), "no-datasource");
    assert!(err.to_string().contains("image root"), "{err}");
    f.write(
        "root/var/lib/cloud/seed/nocloud/meta-data",
        "instance-id: iid-1\n",
    );
    let d = detect(None, &host, &SystemConfig::default()).unwrap();
    assert_eq!(
        d.choice,
        Choice::NoCloud {
            seed: Some(Seed::Dir(f.path("root/var/lib/cloud/seed/nocloud"))),
            overrides: Overrides::default(),
        }
    );
}
