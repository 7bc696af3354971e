//! Arakoon's texts of updates, as 1.9 writes them into error messages: an update over the buffer
//! limit is named by its text (rc 0x26), and a failed `assert_range` names the assertion and the
//! keys it found (rc 0x07). Clients show these texts to operators, so they follow Arakoon's
//! layout byte for byte: OCaml's `%S` quoting, the column each update's name is padded to, and
//! values shown as `"..."` (their length is given, their bytes never are).

use crate::value::Update;
use std::fmt::Write;

/// A sequence's text names at most this many of its updates (Arakoon: 100).
const SEQUENCE_SHOWN: usize = 100;

/// `bytes` quoted as OCaml's `%S` quotes a string: in double quotes, with `"` and `\` escaped,
/// `\n \t \r \b` by name, other bytes outside the printable ASCII range as `\ddd` (decimal).
pub fn ocaml_quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

/// The text of an `assert_range` assertion: `ContainsExactly [ "k1; k2" ]` (the keys joined by
/// `; ` and then quoted as one string, as Arakoon does).
pub fn range_assertion_text(keys: &[Vec<u8>]) -> String {
    let joined = keys.join(&b"; "[..]);
    format!("ContainsExactly [ {} ]", ocaml_quoted(&joined))
}

/// What a failed `assert_range` answers: the assertion, then the keys found, joined by `,`
/// (raw bytes, not quoted: Arakoon concatenates them).
pub fn range_assertion_failure(keys: &[Vec<u8>], actual: &[Vec<u8>]) -> Vec<u8> {
    let mut out = range_assertion_text(keys).into_bytes();
    out.extend_from_slice(b" actual: ");
    out.extend_from_slice(&actual.join(&b","[..]));
    out
}

/// The text Arakoon gives an update (its `update2s` without values).
pub fn update_text(update: &Update) -> String {
    let q = |b: &[u8]| ocaml_quoted(b);
    let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
    let shown = |v: &Option<Vec<u8>>| q(if v.is_some() { b"..." } else { b"None" });
    match update {
        Update::Set { key, value } => {
            format!("Set            ;{};{};{}", q(key), value.len(), q(b"..."))
        }
        Update::Delete { key } => format!("Delete         ;{}", q(key)),
        // Arakoon's lease start is a float printed with `%f`; ours is whole milliseconds.
        Update::MasterSet { master, lease_start } => {
            format!("MasterSet      ;{};{}.000000", q(master.as_bytes()), lease_start)
        }
        Update::TestAndSet { key, wanted, .. } => {
            format!("TestAndSet     ;{};{};{}", q(key), size(wanted), shown(wanted))
        }
        Update::Sequence(updates) => sequence_text("Sequence", updates),
        Update::SyncedSequence(updates) => sequence_text("SyncedSequence", updates),
        // The nursery's interval (public begin and end, private begin and end) as Arakoon's
        // `Interval.to_string` writes it: bounds unquoted, `_` for an open one.
        Update::SetInterval { bounds } => {
            let [pu_b, pu_e, pr_b, pr_e] =
                bounds.each_ref().map(|b| b.as_deref().map_or("_".into(), String::from_utf8_lossy));
            format!("SetInterval     ;({pu_b},{pu_e}),({pr_b},{pr_e})")
        }
        Update::SetRoutingDelta { left, sep, right } => format!(
            "SetRoutingDelta {} < '{}' <= {}",
            String::from_utf8_lossy(left),
            String::from_utf8_lossy(sep),
            String::from_utf8_lossy(right)
        ),
        Update::Nop => "NOP".to_string(),
        Update::Assert { key, value } => format!("Assert          ;{};{}", q(key), size(value)),
        Update::AssertExists { key } => format!("Assert_exists   ;{}", q(key)),
        Update::AssertRange { prefix, keys } => {
            format!("Assert_range({}, {})", q(prefix), range_assertion_text(keys))
        }
        Update::UserFunction { name, arg } => format!("UserFunction;{name};{}", size(arg)),
        Update::AdminSet { key, value } => {
            format!("AdminSet        ;{};{};{}", q(key), size(value), shown(value))
        }
        Update::DeletePrefix { prefix } => format!("DeletePrefix    ;{}", q(prefix)),
        Update::Replace { key, value } => format!("Replace            ;{};{}", q(key), size(value)),
    }
}

/// A sequence's text: its kind, then the first [`SEQUENCE_SHOWN`] updates joined by `; `, then
/// how many more there are (Arakoon writes the count even when it is 0).
fn sequence_text(kind: &str, updates: &[Update]) -> String {
    let shown = updates.len().min(SEQUENCE_SHOWN);
    let mut out = format!("{kind}([");
    if updates.is_empty() {
        out.push_str("])");
        return out;
    }
    for (c, u) in updates.iter().take(shown).enumerate() {
        out.push_str(&update_text(u));
        if c + 1 < updates.len() {
            out.push_str("; ");
        }
    }
    let _ = write!(out, "... ({} more) ])", updates.len() - shown);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_ocamls() {
        assert_eq!(ocaml_quoted(b"ab"), "\"ab\"");
        assert_eq!(ocaml_quoted(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(ocaml_quoted(b"\n\t\r\x08"), "\"\\n\\t\\r\\b\"");
        assert_eq!(ocaml_quoted(b"\x00\x7f\xff"), "\"\\000\\127\\255\"");
    }

    /// The nursery's updates as Arakoon's `update2s` writes them: an interval by
    /// `Interval.to_string` (`(%s,%s),(%s,%s)`, `_` for an open bound), a routing delta as
    /// `SetRoutingDelta %s < '%s' <= %s`.
    #[test]
    fn nursery_updates_read_as_arakoons() {
        let b = |s: &str| Some(s.as_bytes().to_vec());
        let interval = Update::SetInterval { bounds: [b("a"), None, None, b("z")] };
        assert_eq!(update_text(&interval), "SetInterval     ;(a,_),(_,z)");
        let open = Update::SetInterval { bounds: [None, None, None, None] };
        assert_eq!(update_text(&open), "SetInterval     ;(_,_),(_,_)");
        let delta = Update::SetRoutingDelta {
            left: b"left".to_vec(),
            sep: b"m".to_vec(),
            right: b"right".to_vec(),
        };
        assert_eq!(update_text(&delta), "SetRoutingDelta left < 'm' <= right");
    }

    /// The 4 x 10 MB sequence Arakoon's Python client sends, as Arakoon 1.9 names it in its
    /// "has size" refusal (`update.ml`, `update2s`): 12 spaces after `Set`, the last update
    /// followed directly by the count of the ones not shown.
    #[test]
    fn a_sequence_of_sets_reads_as_arakoons() {
        let set = |k: &str| Update::Set { key: k.as_bytes().to_vec(), value: vec![0; 10] };
        let seq = Update::Sequence(vec![set("big:0"), set("big:1")]);
        assert_eq!(
            update_text(&seq),
            "Sequence([Set            ;\"big:0\";10;\"...\"; \
             Set            ;\"big:1\";10;\"...\"... (0 more) ])"
        );
        assert_eq!(update_text(&Update::Sequence(vec![])), "Sequence([])");
        let many = Update::SyncedSequence((0..102).map(|_| Update::Nop).collect());
        let text = update_text(&many);
        assert!(text.starts_with("SyncedSequence([NOP; NOP; "), "{text}");
        assert!(text.ends_with("NOP; ... (2 more) ])"), "{text}");
        assert_eq!(text.matches("NOP").count(), 100);
    }

    #[test]
    fn every_kind_has_arakoons_column() {
        let k = b"k".to_vec();
        let cases = [
            (Update::Delete { key: k.clone() }, "Delete         ;\"k\""),
            (
                Update::TestAndSet { key: k.clone(), expected: None, wanted: None },
                "TestAndSet     ;\"k\";0;\"None\"",
            ),
            (
                Update::Assert { key: k.clone(), value: Some(vec![1, 2]) },
                "Assert          ;\"k\";2",
            ),
            (Update::AssertExists { key: k.clone() }, "Assert_exists   ;\"k\""),
            (Update::DeletePrefix { prefix: k.clone() }, "DeletePrefix    ;\"k\""),
            (Update::Replace { key: k.clone(), value: None }, "Replace            ;\"k\";0"),
            (Update::UserFunction { name: "f".into(), arg: Some(vec![0; 3]) }, "UserFunction;f;3"),
            (
                Update::AssertRange {
                    prefix: b"p".to_vec(),
                    keys: vec![b"a".to_vec(), b"b".to_vec()],
                },
                "Assert_range(\"p\", ContainsExactly [ \"a; b\" ])",
            ),
        ];
        for (update, text) in cases {
            assert_eq!(update_text(&update), text);
        }
    }

    /// Arakoon's message for a failed assert_range, with its client's reversed list.
    #[test]
    fn a_failed_range_assertion_names_both_lists() {
        let keys = [b"ar:2".to_vec(), b"ar:1".to_vec()];
        let actual = [b"ar:1".to_vec(), b"ar:2".to_vec()];
        assert_eq!(
            range_assertion_failure(&keys, &actual),
            b"ContainsExactly [ \"ar:2; ar:1\" ] actual: ar:1,ar:2".to_vec()
        );
    }
}
