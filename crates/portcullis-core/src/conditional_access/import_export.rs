//! Import and export of policy sets as JSON or YAML.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    Json,
    Yaml,
}

impl PolicyFormat {
    /// `json`, `yaml` or `yml` (case-insensitive).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// JSON when the text starts with `{` or `[`, YAML otherwise.
    pub fn detect(text: &str) -> Self {
        match text.trim_start().chars().next() {
            Some('{' | '[') => Self::Json,
            _ => Self::Yaml,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        }
    }
}

impl fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is not JSON/YAML at all, or not a policy or a list of policies.
    #[error("not a valid {format} policy file: {message}")]
    Syntax {
        format: PolicyFormat,
        message: String,
    },
    /// Malformed or invalid policies: every problem, each with its position.
    #[error("{0}")]
    Invalid(#[from] PolicyErrors),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not write the policies as {format}: {message}")]
pub struct ExportError {
    pub format: PolicyFormat,
    pub message: String,
}

/// Reads the policies of a file (one policy or a list), checking their structure (unknown
/// fields, wrong types) but not their content. Every malformed element is reported.
pub fn parse_policy_specs(
    text: &str,
    format: PolicyFormat,
) -> Result<Vec<PolicySpec>, ImportError> {
    let elements = split_elements(text, format)?;
    let mut specs = Vec::with_capacity(elements.len());
    let mut problems = Vec::new();
    for (index, e) in elements.into_iter().enumerate() {
        match e {
            Ok(s) => specs.push(s),
            Err((policy, message)) => problems.push(PolicyProblem {
                index: Some(index),
                policy,
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(ImportError::Invalid(PolicyErrors { problems }))
    }
}

/// Reads and validates a policy file against the known names: structure, form, references,
/// duplicated names — every problem at once.
pub fn import_policies(
    text: &str,
    format: PolicyFormat,
    known: &KnownNames,
) -> Result<Vec<Policy>, ImportError> {
    let elements = split_elements(text, format)?;
    let total = elements.len();
    let mut problems = Vec::new();
    let mut specs = Vec::with_capacity(total);
    for (index, e) in elements.into_iter().enumerate() {
        match e {
            Ok(s) => specs.push((index, s)),
            Err((policy, message)) => problems.push(PolicyProblem {
                index: Some(index),
                policy,
                message,
            }),
        }
    }
    let items: Vec<(usize, &PolicySpec)> = specs.iter().map(|(i, s)| (*i, s)).collect();
    Ok(validate_indexed(
        &items,
        total,
        known,
        usize::MAX,
        problems,
    )?)
}

/// Writes policies as a list in the file form; [`import_policies`] reads it back identically.
pub fn export_policies(policies: &[Policy], format: PolicyFormat) -> Result<String, ExportError> {
    let specs: Vec<PolicySpec> = policies.iter().map(Policy::to_spec).collect();
    let err = |message: String| ExportError { format, message };
    match format {
        PolicyFormat::Json => serde_json::to_string_pretty(&specs)
            .map(|s| s + "\n")
            .map_err(|e| err(e.to_string())),
        PolicyFormat::Yaml => serde_norway::to_string(&specs).map_err(|e| err(e.to_string())),
    }
}

type Element = Result<PolicySpec, (Option<String>, String)>;

fn split_elements(text: &str, format: PolicyFormat) -> Result<Vec<Element>, ImportError> {
    let syntax = |message: String| ImportError::Syntax { format, message };
    let shape = "expected a policy (an object) or a list of policies";
    match format {
        PolicyFormat::Json => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
            let items = match value {
                serde_json::Value::Array(items) => items,
                v @ serde_json::Value::Object(_) => vec![v],
                _ => return Err(syntax(shape.into())),
            };
            Ok(items
                .into_iter()
                .map(|v| {
                    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                    serde_json::from_value::<PolicySpec>(v).map_err(|e| (name, e.to_string()))
                })
                .collect())
        }
        PolicyFormat::Yaml => {
            let value: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
            let items = match value {
                serde_norway::Value::Sequence(items) => items,
                v @ serde_norway::Value::Mapping(_) => vec![v],
                _ => return Err(syntax(shape.into())),
            };
            Ok(items
                .into_iter()
                .map(|v| {
                    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                    serde_norway::from_value::<PolicySpec>(v).map_err(|e| (name, e.to_string()))
                })
                .collect())
        }
    }
}
