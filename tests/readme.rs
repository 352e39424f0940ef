//! Every `$ cloudcfg ...` transcript in the README is what the binary prints today, so what a
//! new user reads first cannot drift from what they get.

use std::process::Command;

#[test]
fn the_readme_transcripts_are_what_cloudcfg_prints() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let mut checked = 0;
    for block in readme.split("```").skip(1).step_by(2) {
        let block = block.strip_prefix('\n').unwrap_or(block);
        let Some(rest) = block.strip_prefix("$ cloudcfg ") else {
            continue;
        };
        let (command, expected) = rest.split_once('\n').unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cloudcfg"))
            .args(command.split_whitespace())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            printed, expected,
            "README transcript of `cloudcfg {command}`"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} transcripts found");
}
