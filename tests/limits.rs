//! Every resource limit (README, "Limits"): just under it is accepted, just over it is a clear
//! error. The budgets are counted (bytes, nodes, levels, items), never timed.

use std::io::Write;

use cloudcfg::config;
use cloudcfg::decode::{Limits, MIB};

fn errors(bytes: &[u8]) -> Vec<String> {
    let loaded = config::load(bytes, &Limits::default());
    loaded
        .report
        .diagnostics
        .iter()
        .filter(|d| d.severity == cloudcfg::diag::Severity::Error)
        .map(|d| d.message.clone())
        .collect()
}

fn assert_ok(bytes: &[u8]) {
    let errs = errors(bytes);
    assert!(errs.is_empty(), "expected no errors, got {errs:?}");
}

fn assert_err(bytes: &[u8], needle: &str) {
    let errs = errors(bytes);
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?}, got {errs:?}"
    );
}

/// A cloud-config of exactly `size` bytes: a short document padded with a comment.
fn padded(size: usize) -> Vec<u8> {
    let mut doc = b"#cloud-config\npackages: [hello]\n#".to_vec();
    doc.resize(size - 1, b'x');
    doc.push(b'\n');
    doc
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn input_size() {
    let limit = Limits::default().max_input_bytes;
    assert_eq!(limit, 16 * MIB);
    assert_ok(&padded(limit));
    assert_err(&padded(limit + 1), "more than the 16777216 allowed");
}

#[test]
fn decompressed_size() {
    let limit = Limits::default().max_decompressed_bytes;
    assert_ok(&gzip(&padded(limit)));
    assert_err(
        &gzip(&padded(limit + 1)),
        "more than 16777216 bytes once decompressed",
    );
}

#[test]
fn gzip_bomb_stops_at_the_decompressed_limit() {
    // 64 MiB of zeros compress to about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 * MIB]);
    assert!(bomb.len() < MIB);
    assert_err(&bomb, "once decompressed");
}

fn nested(levels: usize) -> Vec<u8> {
    // The top-level mapping is one level; the list adds the rest.
    let inner = levels - 1;
    format!(
        "#cloud-config\nx: {}{}\n",
        "[".repeat(inner),
        "]".repeat(inner)
    )
    .into_bytes()
}

#[test]
fn nesting_depth() {
    let limit = Limits::default().max_depth;
    assert_eq!(limit, 64);
    assert_ok(&nested(limit));
    assert_err(&nested(limit + 1), "nesting deeper than 64 levels");
}

/// `width` anchors-and-aliases levels of fan-out 10 over a 10-item list: 10^(levels+1) nodes.
fn aliases(total_nodes_wanted: usize) -> Vec<u8> {
    // A flat list of `n` aliases to a 1-node anchor gives 1 (map) + key/anchor nodes + n nodes.
    let mut doc = String::from("#cloud-config\na: &a x\nb: [");
    doc.push_str(&vec!["*a"; total_nodes_wanted].join(", "));
    doc.push_str("]\n");
    doc.into_bytes()
}

#[test]
fn node_budget_counts_alias_expansions() {
    let limit = Limits::default().max_nodes;
    // Nodes besides the aliases: the top mapping, keys a and b, the anchored scalar, the list.
    let fixed = 5;
    let under = aliases(limit - fixed);
    let errs = errors(&under);
    assert!(errs.iter().all(|e| !e.contains("nodes")), "{errs:?}");
    assert_err(&aliases(limit - fixed + 1), "more than 100000 nodes");
}

#[test]
fn billion_laughs_is_refused() {
    let mut doc =
        String::from("#cloud-config\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        doc.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    assert_err(doc.as_bytes(), "more than 100000 nodes");
}

#[test]
fn value_length() {
    let limit = Limits::default().max_value_bytes;
    let doc =
        |n: usize| format!("#cloud-config\napt:\n  conf: \"{}\"\n", "x".repeat(n)).into_bytes();
    assert_ok(&doc(limit));
    assert_err(&doc(limit + 1), "value too long");
}

#[test]
fn package_count() {
    let limit = Limits::default().max_packages;
    let doc = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        format!("#cloud-config\npackages: [{}]\n", names.join(", ")).into_bytes()
    };
    assert_ok(&doc(limit));
    assert_err(&doc(limit + 1), "packages: at most 20000");
}

#[test]
fn source_count() {
    let limit = Limits::default().max_sources;
    let doc = |n: usize| {
        let mut d = String::from("#cloud-config\napt_sources:\n");
        for i in 0..n {
            d.push_str(&format!(
                "  - source: \"deb http://m{i}.example.org/debian bookworm main\"\n    filename: s{i}\n"
            ));
        }
        d.into_bytes()
    };
    assert_ok(&doc(limit));
    assert_err(&doc(limit + 1), "apt sources: at most 5000");
}

#[test]
fn mime_parts() {
    let limit = Limits::default().max_parts;
    let doc = |n: usize| {
        let mut d =
            String::from("Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n");
        for i in 0..n {
            d.push_str(&format!(
                "--B\nContent-Type: text/cloud-config\n\n#cloud-config\npackages: [p{i}]\n"
            ));
        }
        d.push_str("--B--\n");
        d.into_bytes()
    };
    assert_ok(&doc(limit));
    assert_err(&doc(limit + 1), "more than 100 MIME parts");
}

#[test]
fn alias_bytes() {
    let limit = Limits::default().max_alias_bytes;
    assert_eq!(limit, MIB);
    // A 1 KiB scalar aliased n times repeats n KiB of text.
    let doc = |n: usize| {
        format!(
            "#cloud-config\na: &a {}\nb: [{}]\n",
            "x".repeat(1024),
            vec!["*a"; n].join(", ")
        )
        .into_bytes()
    };
    assert_ok(&doc(limit / 1024));
    assert_err(
        &doc(limit / 1024 + 1),
        "aliases repeat more than 1048576 bytes of text",
    );
}
