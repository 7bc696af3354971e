//! The data model shared by every history format: the values found in EDN, JSON and Jepsen log
//! lines, before a model turns them into its own compact operations.

use std::fmt;

/// One value as written in a history file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// A string; in JSON, also what stands for an EDN keyword.
    Str(String),
    /// An EDN keyword, without its colon.
    Keyword(String),
    /// An EDN vector, list or set, or a JSON array.
    List(Vec<Value>),
    /// An EDN map or a JSON object, in file order.
    Map(Vec<(Value, Value)>),
    /// What no model reads but a file may hold in other fields: a float, a symbol, a character;
    /// kept as its text.
    Other(String),
}

impl Value {
    /// The text of a string or keyword: the names of functions, keys and outcomes.
    pub fn as_name(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Keyword(s) => Some(s),
            _ => None,
        }
    }

    /// The entry of a map whose key is the keyword or string `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| k.as_name() == Some(name)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// EDN-like text, short enough for a timeline label.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Keyword(k) => write!(f, ":{k}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Other(text) => write!(f, "{text}"),
            Value::Map(entries) => {
                write!(f, "{{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn display_is_edn_like() {
        let v = Value::List(vec![Value::Keyword("read".into()), Value::Nil, Value::Int(-3)]);
        assert_eq!(v.to_string(), "[:read nil -3]");
    }

    #[test]
    fn map_lookup_accepts_keywords_and_strings() {
        let m = Value::Map(vec![
            (Value::Keyword("f".into()), Value::Int(1)),
            (Value::Str("key".into()), Value::Int(2)),
        ]);
        assert_eq!(m.get("f"), Some(&Value::Int(1)));
        assert_eq!(m.get("key"), Some(&Value::Int(2)));
        assert_eq!(m.get("value"), None);
    }
}
