//! What loading a policy reports: errors that refuse it, warnings that do
//! not. Both name the file, line and dotted key involved.

use std::fmt;
use std::path::PathBuf;

/// Where a policy setting was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The file.
    pub file: PathBuf,
    /// Line number, from 1, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One reason a policy cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyIssue {
    /// The file.
    pub file: PathBuf,
    /// Line number, from 1, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `classes.developers.window` (empty when the issue
    /// is about the file as a whole).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl PolicyIssue {
    /// An issue at `loc`.
    pub(crate) fn at(loc: &Loc, key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyIssue {
            file: loc.file.clone(),
            line: loc.line,
            key: key.into(),
            message: one_line(message.into()),
        }
    }
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_line(f, Some(&self.file), self.line, &self.key, &self.message)
    }
}

/// A policy that cannot be used, with every issue found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The issues, in file order.
    pub issues: Vec<PolicyIssue>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

impl From<PolicyIssue> for PolicyError {
    fn from(issue: PolicyIssue) -> Self {
        PolicyError {
            issues: vec![issue],
        }
    }
}

/// Something in a policy that is probably a mistake but does not stop it
/// from being used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWarning {
    /// The file, when the warning is about a setting.
    pub file: Option<PathBuf>,
    /// Line number, from 1, when known.
    pub line: Option<usize>,
    /// Dotted key.
    pub key: String,
    /// What looks wrong.
    pub message: String,
}

impl PolicyWarning {
    /// A warning about the setting at `loc`.
    pub(crate) fn at(loc: &Loc, key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyWarning {
            file: Some(loc.file.clone()),
            line: loc.line,
            key: key.into(),
            message: one_line(message.into()),
        }
    }
}

/// A message on one line, so each issue prints as one line.
fn one_line(message: String) -> String {
    if message.contains('\n') {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        message
    }
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_line(f, self.file.as_ref(), self.line, &self.key, &self.message)
    }
}

/// Issues and warnings gathered while a policy is built.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    /// Errors: the policy is refused if there is any.
    pub issues: Vec<PolicyIssue>,
    /// Warnings.
    pub warnings: Vec<PolicyWarning>,
}

impl Diagnostics {
    /// Records an error.
    pub fn error(&mut self, loc: &Loc, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(PolicyIssue::at(loc, key, message));
    }

    /// Records a warning.
    pub fn warn(&mut self, loc: &Loc, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(PolicyWarning::at(loc, key, message));
    }
}

/// `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are unknown.
fn write_line(
    f: &mut fmt::Formatter<'_>,
    file: Option<&PathBuf>,
    line: Option<usize>,
    key: &str,
    message: &str,
) -> fmt::Result {
    match (file, line) {
        (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
        (Some(file), None) => write!(f, "{}: ", file.display())?,
        (None, _) => {}
    }
    if !key.is_empty() {
        write!(f, "{key}: ")?;
    }
    f.write_str(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_line_per_issue() {
        let err = PolicyError {
            issues: vec![
                PolicyIssue {
                    file: "a.toml".into(),
                    line: Some(3),
                    key: "classes.dev.window".into(),
                    message: "bad".into(),
                },
                PolicyIssue {
                    file: "b.toml".into(),
                    line: None,
                    key: String::new(),
                    message: "unreadable".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "a.toml:3: classes.dev.window: bad\nb.toml: unreadable"
        );
        let w = PolicyWarning {
            file: None,
            line: None,
            key: "columns".into(),
            message: "m".into(),
        };
        assert_eq!(w.to_string(), "columns: m");
    }
}
