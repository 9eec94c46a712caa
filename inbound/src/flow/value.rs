//! Static and dynamic parameter values. A dynamic value is a JSONPath into the contact's flow data,
//! as in the Amazon Connect flow language: `$.Attributes.x`, `$.External.x.y`,
//! `$.CustomerEndpoint.Address`, `$.SystemEndpoint.Address`, `$.StoredCustomerInput`,
//! `$.ContactId`, `$.Channel`, `$.Queue.Name`. Text parameters may also embed references
//! ("Your balance is $.External.balance").

use std::fmt;

/// A parsed JSONPath reference into flow data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPath {
    Attribute(String),
    /// Nested keys below `$.External`.
    External(Vec<String>),
    CustomerAddress,
    SystemAddress,
    StoredCustomerInput,
    ContactId,
    Channel,
    QueueName,
}

/// Why a `$.` reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported reference {0:?}")]
pub struct BadPath(pub String);

impl DataPath {
    /// Parses a whole-string JSONPath such as `$.Attributes.language`.
    pub fn parse(text: &str) -> Result<Self, BadPath> {
        let bad = || BadPath(text.to_string());
        let rest = text.strip_prefix("$.").ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(is_key_char))
        {
            return Err(bad());
        }
        Ok(match parts.as_slice() {
            ["Attributes", key] => Self::Attribute((*key).to_string()),
            ["External", keys @ ..] if !keys.is_empty() => {
                Self::External(keys.iter().map(|k| (*k).to_string()).collect())
            }
            ["CustomerEndpoint", "Address"] => Self::CustomerAddress,
            ["SystemEndpoint", "Address"] => Self::SystemAddress,
            ["StoredCustomerInput"] => Self::StoredCustomerInput,
            ["ContactId"] | ["InitialContactId"] => Self::ContactId,
            ["Channel"] => Self::Channel,
            ["Queue", "Name"] => Self::QueueName,
            _ => return Err(bad()),
        })
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Attribute(k) => write!(f, "$.Attributes.{k}"),
            Self::External(keys) => write!(f, "$.External.{}", keys.join(".")),
            Self::CustomerAddress => f.write_str("$.CustomerEndpoint.Address"),
            Self::SystemAddress => f.write_str("$.SystemEndpoint.Address"),
            Self::StoredCustomerInput => f.write_str("$.StoredCustomerInput"),
            Self::ContactId => f.write_str("$.ContactId"),
            Self::Channel => f.write_str("$.Channel"),
            Self::QueueName => f.write_str("$.Queue.Name"),
        }
    }
}

/// A parameter value: literal text, one reference, or text with embedded references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dyn {
    Static(String),
    Path(DataPath),
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ref(DataPath),
}

impl Dyn {
    /// A value that may be static or a single reference (no embedded text).
    pub fn parse_value(text: &str) -> Result<Self, BadPath> {
        if text.starts_with("$.") {
            Ok(Self::Path(DataPath::parse(text)?))
        } else {
            Ok(Self::Static(text.to_string()))
        }
    }

    /// Text that may embed references anywhere.
    pub fn parse_template(text: &str) -> Result<Self, BadPath> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("$.") {
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_string()));
            }
            let tail = &rest[at + 2..];
            let len = tail
                .find(|c: char| !(is_key_char(c) || c == '.'))
                .unwrap_or(tail.len());
            let reference = tail[..len].trim_end_matches('.');
            pieces.push(Piece::Ref(DataPath::parse(&format!("$.{reference}"))?));
            rest = &tail[reference.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(match pieces.as_slice() {
            [] => Self::Static(String::new()),
            [Piece::Text(t)] => Self::Static(t.clone()),
            [Piece::Ref(p)] if text.starts_with("$.") && text.len() == p.to_string().len() => {
                Self::Path(p.clone())
            }
            _ => Self::Template(pieces),
        })
    }

    pub fn is_static(&self) -> bool {
        matches!(self, Self::Static(_))
    }

    /// Resolves against flow data; a missing value resolves to the empty string (as in Connect).
    pub fn resolve(&self, data: &dyn Lookup) -> String {
        match self {
            Self::Static(s) => s.clone(),
            Self::Path(p) => data.lookup(p).unwrap_or_default(),
            Self::Template(pieces) => pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Ref(r) => data.lookup(r).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Read access to flow data by path (implemented by the contact record).
pub trait Lookup {
    fn lookup(&self, path: &DataPath) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_namespaces() {
        assert_eq!(
            DataPath::parse("$.Attributes.lang").unwrap(),
            DataPath::Attribute("lang".into())
        );
        assert_eq!(
            DataPath::parse("$.External.account.tier").unwrap(),
            DataPath::External(vec!["account".into(), "tier".into()])
        );
        assert_eq!(
            DataPath::parse("$.CustomerEndpoint.Address").unwrap(),
            DataPath::CustomerAddress
        );
        assert!(DataPath::parse("$.Nope.x").is_err());
        assert!(DataPath::parse("$.Attributes.").is_err());
        assert!(DataPath::parse("Attributes.x").is_err());
    }

    #[test]
    fn templates_split_text_and_references() {
        let t = Dyn::parse_template("Hello $.Attributes.name, you owe $.External.due.").unwrap();
        assert_eq!(
            t,
            Dyn::Template(vec![
                Piece::Text("Hello ".into()),
                Piece::Ref(DataPath::Attribute("name".into())),
                Piece::Text(", you owe ".into()),
                Piece::Ref(DataPath::External(vec!["due".into()])),
                Piece::Text(".".into()),
            ])
        );
        assert_eq!(
            Dyn::parse_template("$.StoredCustomerInput").unwrap(),
            Dyn::Path(DataPath::StoredCustomerInput)
        );
        assert_eq!(
            Dyn::parse_template("plain").unwrap(),
            Dyn::Static("plain".into())
        );
        assert!(Dyn::parse_template("bad $.Foo.bar").is_err());
    }
}
