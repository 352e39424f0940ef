//! User-data bytes -> decode (gzip, MIME multipart, YAML with anchors and merge keys).
//! Beyond "no crash": what decode returns respects its limits.
#![no_main]

use cloudcfg::decode::yaml::{Node, Value};
use cloudcfg::decode::{Limits, decode};
use libfuzzer_sys::fuzz_target;

fn walk(node: &Node, depth: usize, limits: &Limits, count: &mut usize) {
    *count += 1;
    assert!(depth <= limits.max_depth, "nesting {depth} over the limit");
    assert!(
        node.pos.line >= 1 && node.pos.col >= 1,
        "no position: {:?}",
        node.pos
    );
    match &node.value {
        Value::Scalar(s) => assert!(s.text.len() <= limits.max_value_bytes),
        Value::Seq(items) => items.iter().for_each(|n| walk(n, depth + 1, limits, count)),
        Value::Map(entries) => entries.iter().for_each(|e| {
            walk(&e.key, depth + 1, limits, count);
            walk(&e.value, depth + 1, limits, count);
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(user_data) = decode(data, &limits) else {
        return;
    };
    assert!(user_data.parts.len() <= limits.max_parts);
    if let Some(root) = &user_data.root {
        assert!(matches!(root.value, Value::Map(_)), "root is not a mapping");
        let mut count = 0;
        walk(root, 1, &limits, &mut count);
        // Merged parts may each use the whole node budget.
        assert!(count <= limits.max_nodes * user_data.parts.len().max(1));
    }
});
