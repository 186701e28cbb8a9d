//! The TOML model of one policy file, and reading a directory of them.
//! Every value keeps its span so later checks can name file and line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{Loc, PolicyError, PolicyIssue};
use super::names;
use super::units::IntOrStr;

/// A string with its span.
pub(crate) type Str = Spanned<String>;
/// A list of strings with the span of the list and of each item.
pub(crate) type StrList = Spanned<Vec<Str>>;

/// One policy file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default)]
    pub classes: BTreeMap<Str, RawClass>,
    #[serde(default)]
    pub columns: BTreeMap<Str, Str>,
    #[serde(default)]
    pub tables: BTreeMap<Str, Str>,
    #[serde(default)]
    pub forbidden: BTreeMap<Str, Str>,
    #[serde(default)]
    pub transforms: BTreeMap<Str, Str>,
    #[serde(default)]
    pub functions: RawFunctions,
    #[serde(default)]
    pub notifications: RawNotifications,
    #[serde(default)]
    pub grants: RawGrants,
}

/// `[grants]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrants {
    pub revoked: Option<StrList>,
}

/// `[classes.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClass {
    pub mode: Option<Str>,
    pub roles: Option<StrList>,
    pub patterns: Option<StrList>,
    pub max_rows_per_statement: Option<Spanned<u64>>,
    pub max_bytes_per_statement: Option<Spanned<IntOrStr>>,
    pub max_rows_per_session: Option<Spanned<u64>>,
    pub max_rows_per_window: Option<Spanned<u64>>,
    pub window: Option<Spanned<IntOrStr>>,
    pub copy_to: Option<Str>,
    pub allow_writes: Option<Spanned<bool>>,
    pub allow_ddl: Option<Spanned<bool>>,
    pub classified_predicates: Option<Spanned<bool>>,
    pub block_categories: Option<StrList>,
    pub pseudonymize: Option<StrList>,
    pub derived: Option<Str>,
}

/// `[functions]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFunctions {
    pub allow: Option<StrList>,
    pub deny: Option<StrList>,
}

/// `[notifications]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    pub pass_channels: Option<StrList>,
}

/// A policy file's path and text.
#[derive(Clone, Debug)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// A file with its text.
    pub fn new(path: PathBuf, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// The location of a span in this file.
    pub fn loc(&self, span: Range<usize>) -> Loc {
        let line = self.line_starts.partition_point(|&s| s <= span.start);
        Loc {
            file: self.path.clone(),
            line: Some(line.max(1)),
        }
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The location of the file as a whole.
    pub fn whole(&self) -> Loc {
        Loc {
            file: self.path.clone(),
            line: None,
        }
    }
}

/// A parsed file.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub source: SourceFile,
    pub raw: RawFile,
}

/// Reads every `*.toml` file of `dir` (not hidden ones), sorted by name.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, PolicyError> {
    let dir_issue = |message: String| PolicyIssue {
        file: dir.to_owned(),
        line: None,
        key: String::new(),
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| dir_issue(format!("cannot read the policy directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| dir_issue(format!("cannot list the policy directory: {e}")))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".toml") && !name.starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(dir_issue("no *.toml policy files in this directory".to_owned()).into());
    }
    let mut files = Vec::new();
    let mut issues = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(SourceFile::new(path, text)),
            Err(e) => issues.push(PolicyIssue {
                file: path,
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if issues.is_empty() {
        Ok(files)
    } else {
        Err(PolicyError { issues })
    }
}

/// Parses one file, or the issue (with line and dotted key) why not.
pub(crate) fn parse(source: SourceFile) -> Result<ParsedFile, PolicyIssue> {
    match toml::from_str::<RawFile>(&source.text) {
        Ok(raw) => Ok(ParsedFile { source, raw }),
        Err(e) => {
            let loc = match e.span() {
                Some(span) => source.loc(span),
                None => source.whole(),
            };
            let key = e
                .span()
                .and_then(|span| key_path_at(&source.text, span.start))
                .or_else(|| unknown_field(e.message()))
                .unwrap_or_default();
            Err(PolicyIssue::at(&loc, key, e.message().trim()))
        }
    }
}

/// The dotted key whose name or value holds byte `at`, deepest first.
fn key_path_at(text: &str, at: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    let mut best = None;
    walk(doc.get_ref(), &mut path, at, &mut best);
    best
}

fn walk(table: &DeTable<'_>, path: &mut Vec<String>, at: usize, best: &mut Option<String>) {
    for (key, value) in table {
        path.push(names::quote_key(key.get_ref()));
        if key.span().contains(&at) || value.span().contains(&at) {
            *best = Some(path.join("."));
        }
        match value.get_ref() {
            DeValue::Table(t) => walk(t, path, at, best),
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(t, path, at, best);
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// The field named by serde's "unknown field `x`" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(text: &str) -> PolicyIssue {
        parse(SourceFile::new("p.toml".into(), text.to_owned())).unwrap_err()
    }

    #[test]
    fn lines_of_spans() {
        let f = SourceFile::new("p.toml".into(), "a = 1\nb = 2\n\nc = 3\n".into());
        assert_eq!(f.loc(0..1).line, Some(1));
        assert_eq!(f.loc(6..7).line, Some(2));
        assert_eq!(f.loc(13..14).line, Some(4));
    }

    #[test]
    fn unknown_keys_name_the_dotted_key_and_line() {
        let i = issue("[classes.dev]\nmode = \"guarded\"\n\nmax_rowz = 3\n");
        assert_eq!((i.line, i.key.as_str()), (Some(4), "classes.dev.max_rowz"));
        assert!(
            i.message.contains("unknown field `max_rowz`"),
            "{}",
            i.message
        );

        let i = issue("[functions]\nallow = []\nallowed = []\n");
        assert_eq!((i.line, i.key.as_str()), (Some(3), "functions.allowed"));

        let i = issue("\nbogus = 1\n");
        assert_eq!((i.line, i.key.as_str()), (Some(2), "bogus"));

        let i = issue("[classes]\ndev = { mode = \"guarded\", foo = 1 }\n");
        assert_eq!((i.line, i.key.as_str()), (Some(2), "classes.dev.foo"));
    }

    #[test]
    fn type_errors_name_the_key() {
        let i = issue("[classes.dev]\nmode = \"guarded\"\nmax_rows_per_statement = -3\n");
        assert_eq!(
            (i.line, i.key.as_str()),
            (Some(3), "classes.dev.max_rows_per_statement")
        );
        let i = issue("[columns]\n\"public.users.email\" = 3\n");
        assert_eq!(
            (i.line, i.key.as_str()),
            (Some(2), "columns.\"public.users.email\"")
        );
        let i = issue("[classes.dev]\nroles = [\"a\", true]\n");
        assert_eq!((i.line, i.key.as_str()), (Some(2), "classes.dev.roles"));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let i = issue("[classes.dev]\nmode = \"guarded\nx = 1\n");
        assert_eq!(i.line, Some(2));
    }

    #[test]
    fn reads_only_toml_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.toml"), "").unwrap();
        std::fs::write(dir.path().join("a.toml"), "").unwrap();
        std::fs::write(dir.path().join(".hidden.toml"), "").unwrap();
        std::fs::write(dir.path().join("notes.md"), "").unwrap();
        let files = read_dir(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.toml", "b.toml"]);

        let empty = tempfile::tempdir().unwrap();
        let err = read_dir(empty.path()).unwrap_err();
        assert!(err.to_string().contains("no *.toml"), "{err}");
        assert!(read_dir(&empty.path().join("missing")).is_err());
    }
}
