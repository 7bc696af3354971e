//! The JSON file of updates that `arakoon-admin client sequence` applies atomically: an array of
//! objects, one per update, keys and values as strings (UTF-8 text):
//!
//! ```text
//! [{"op": "set", "key": K, "value": V}, {"op": "delete", "key": K},
//!  {"op": "assert", "key": K, "value": V or null}, {"op": "assert_exists", "key": K},
//!  {"op": "test_and_set", "key": K, "expected": V or null, "wanted": V or null},
//!  {"op": "replace", "key": K, "value": V or null}, {"op": "delete_prefix", "prefix": P}]
//! ```

use crate::value::Update;
use serde_json::Value as Json;
use thiserror::Error;

/// Why a sequence file's text is not a list of updates.
#[derive(Debug, Error)]
pub enum SequenceFileError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("expected an array of updates")]
    NotAnArray,
    /// The update at `index` (from 0) is not one.
    #[error("update {index}: {error}")]
    Update { index: usize, error: UpdateJsonError },
}

/// Why one object of a sequence file is not an update.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpdateJsonError {
    #[error("\"op\" must be a string")]
    OpNotString,
    #[error("\"{field}\" must be a string")]
    NotString { field: &'static str },
    #[error("\"{field}\" must be a string or null")]
    NotStringOrNull { field: &'static str },
    #[error(
        "unknown op {op:?}: say set, delete, assert, assert_exists, test_and_set, replace or \
         delete_prefix"
    )]
    UnknownOp {
        /// The file's own word for the operation.
        op: String,
    },
}

/// The updates of a sequence file's text.
pub fn parse_sequence(text: &str) -> Result<Vec<Update>, SequenceFileError> {
    let json: Json = serde_json::from_str(text).map_err(SequenceFileError::NotJson)?;
    let list = json.as_array().ok_or(SequenceFileError::NotAnArray)?;
    list.iter()
        .enumerate()
        .map(|(index, u)| {
            parse_update(u).map_err(|error| SequenceFileError::Update { index, error })
        })
        .collect()
}

/// One update of a sequence file.
pub fn parse_update(u: &Json) -> Result<Update, UpdateJsonError> {
    let text = |field: &'static str| -> Result<Vec<u8>, UpdateJsonError> {
        u.get(field)
            .and_then(Json::as_str)
            .map(|s| s.as_bytes().to_vec())
            .ok_or(UpdateJsonError::NotString { field })
    };
    let option = |field: &'static str| -> Result<Option<Vec<u8>>, UpdateJsonError> {
        match u.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_bytes().to_vec())),
            Some(_) => Err(UpdateJsonError::NotStringOrNull { field }),
        }
    };
    let op = u.get("op").and_then(Json::as_str).ok_or(UpdateJsonError::OpNotString)?;
    Ok(match op {
        "set" => Update::Set { key: text("key")?, value: text("value")? },
        "delete" => Update::Delete { key: text("key")? },
        "assert" => Update::Assert { key: text("key")?, value: option("value")? },
        "assert_exists" => Update::AssertExists { key: text("key")? },
        "test_and_set" => Update::TestAndSet {
            key: text("key")?,
            expected: option("expected")?,
            wanted: option("wanted")?,
        },
        "replace" => Update::Replace { key: text("key")?, value: option("value")? },
        "delete_prefix" => Update::DeletePrefix { prefix: text("prefix")? },
        other => return Err(UpdateJsonError::UnknownOp { op: other.to_string() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sequence_updates_parse_and_bad_ones_say_why() {
        let u = parse_update(&json!({"op": "set", "key": "k", "value": "v"})).unwrap();
        assert_eq!(u, Update::Set { key: b"k".to_vec(), value: b"v".to_vec() });
        let u = parse_update(&json!({"op": "assert", "key": "k", "value": null})).unwrap();
        assert_eq!(u, Update::Assert { key: b"k".to_vec(), value: None });
        let e = parse_update(&json!({"op": "set", "key": "k"})).unwrap_err();
        assert_eq!(e, UpdateJsonError::NotString { field: "value" });
        assert!(e.to_string().contains("\"value\""), "{e}");
        let e = parse_update(&json!({"op": "frobnicate"})).unwrap_err();
        assert!(e.to_string().contains("frobnicate"), "{e}");
        let e = parse_update(&json!({"op": "replace", "key": "k", "value": 3})).unwrap_err();
        assert_eq!(e, UpdateJsonError::NotStringOrNull { field: "value" });
    }

    #[test]
    fn a_file_is_an_array_and_a_bad_update_is_named_by_its_place() {
        let ok = parse_sequence(
            r#"[{"op": "delete", "key": "a"}, {"op": "delete_prefix", "prefix": "p/"}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(matches!(parse_sequence("{"), Err(SequenceFileError::NotJson(_))));
        assert!(matches!(parse_sequence("{}"), Err(SequenceFileError::NotAnArray)));
        let e = parse_sequence(r#"[{"op": "delete", "key": "a"}, {"op": 1}]"#).unwrap_err();
        assert!(matches!(
            e,
            SequenceFileError::Update { index: 1, error: UpdateJsonError::OpNotString }
        ));
        assert_eq!(e.to_string(), "update 1: \"op\" must be a string");
    }
}
