//! Policy files -> [`Policy`]: merging the files of a directory, checking
//! every value, gathering all issues before refusing.

use std::collections::{HashMap, HashSet};

use super::categories::{check_category, CategoryName};
use super::classes::{self, ClassDecl};
use super::classify::Classification;
use super::error::{Diagnostics, Loc, PolicyError, PolicyWarning};
use super::file::{self, ParsedFile, SourceFile, StrList};
use super::functions::FunctionRules;
use super::names::{self, dotted};
use super::Policy;

/// Builds a policy from files given in order (sorted by name).
pub(crate) fn build(sources: Vec<SourceFile>) -> Result<(Policy, Vec<PolicyWarning>), PolicyError> {
    let version = version_of(&sources);
    let mut diag = Diagnostics::default();
    let mut parsed: Vec<ParsedFile> = Vec::new();
    for source in sources {
        match file::parse(source) {
            Ok(p) => parsed.push(p),
            Err(issue) => diag.issues.push(issue),
        }
    }
    let mut decls = Vec::new();
    for p in &parsed {
        let mut in_file: Vec<ClassDecl<'_>> = p
            .raw
            .classes
            .iter()
            .map(|(name, raw)| ClassDecl {
                name,
                raw,
                src: &p.source,
            })
            .collect();
        in_file.sort_by_key(|d| d.name.span().start);
        decls.extend(in_file);
    }
    let classes = classes::build(&decls, &mut diag);

    let mut data = Classification::default();
    let mut functions = FunctionRules::default();
    let mut channels = HashSet::new();
    let mut revoked = Vec::new();
    let mut lists: HashMap<&str, Loc> = HashMap::new();
    for p in &parsed {
        let src = &p.source;
        for (key, value) in &p.raw.columns {
            data.add_column(key, value, src, &mut diag);
        }
        for (key, value) in &p.raw.tables {
            data.add_table(key, value, src, &mut diag);
        }
        for (key, value) in &p.raw.forbidden {
            data.add_forbidden(key, value, src, &mut diag);
        }
        for (key, value) in &p.raw.transforms {
            data.add_transform(key, value, src, &mut diag);
        }
        let mut once = |key: &'static str, list: &StrList, diag: &mut Diagnostics| {
            let loc = src.loc(list.span());
            match lists.get(key) {
                Some(first) => {
                    diag.error(
                        &loc,
                        key,
                        format!("already set at {first}; set it in one file"),
                    );
                    false
                }
                None => {
                    lists.insert(key, loc);
                    true
                }
            }
        };
        if let Some(list) = &p.raw.functions.allow {
            if once("functions.allow", list, &mut diag) {
                functions.add_allow(list, src, &mut diag);
            }
        }
        if let Some(list) = &p.raw.functions.deny {
            if once("functions.deny", list, &mut diag) {
                functions.add_deny(list, src, &mut diag);
            }
        }
        for item in p.raw.grants.revoked.iter().flat_map(|l| l.get_ref()) {
            let id = item.get_ref();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                revoked.push(id.to_ascii_lowercase());
            } else {
                let loc = src.loc(item.span());
                diag.error(
                    &loc,
                    "grants.revoked",
                    format!(
                        "{id:?} is not a grant id (32 hex digits, as `copyguard dump show` prints)"
                    ),
                );
            }
        }
        if let Some(list) = &p.raw.notifications.pass_channels {
            if once("notifications.pass_channels", list, &mut diag) {
                for item in list.get_ref() {
                    let loc = src.loc(item.span());
                    match names::parse_name(item.get_ref()) {
                        Ok(ident) => {
                            channels.insert(ident.name);
                        }
                        Err(message) => diag.error(&loc, "notifications.pass_channels", message),
                    }
                }
            }
        }
    }
    data.check_overlaps(&mut diag);
    check_pseudonymized_categories(&decls, &data, &mut diag);

    diag.warnings.sort_by_key(|w| (w.file.clone(), w.line));
    if !diag.issues.is_empty() {
        diag.issues.sort_by_key(|i| (i.file.clone(), i.line));
        return Err(PolicyError {
            issues: diag.issues,
        });
    }
    let policy = Policy {
        classes,
        data,
        functions,
        pass_channels: channels,
        revoked_grants: revoked,
        warnings: diag.warnings.clone(),
        version,
    };
    Ok((policy, diag.warnings))
}

/// The version of a policy: the first 16 hex digits of the SHA-256 of its
/// files' names (without their directory) and texts, in name order, so
/// the same files give the same version wherever they are.
fn version_of(sources: &[SourceFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for source in sources {
        let name = source
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for part in [name.as_bytes(), source.text().as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    hex::encode(&hash.finalize()[..8])
}

/// A `pseudonymize` entry naming a category that is neither known nor
/// given to any column or table is an error: a typo there would leave the
/// data it meant blocked or, worse, the class silently different from
/// what its author believes.
fn check_pseudonymized_categories(
    decls: &[ClassDecl<'_>],
    data: &Classification,
    diag: &mut Diagnostics,
) {
    for decl in decls {
        for item in decl.raw.pseudonymize.iter().flat_map(|l| l.get_ref()) {
            let name = item.get_ref();
            if name == "*" || data.declares(name) {
                continue;
            }
            if let Ok(CategoryName::Unknown(message)) = check_category(name) {
                diag.error(
                    &decl.src.loc(item.span()),
                    dotted(&["classes", decl.name.get_ref(), "pseudonymize"]),
                    format!("{message}; no [columns] or [tables] entry declares it"),
                );
            }
        }
    }
}
