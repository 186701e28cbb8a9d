//! Role classes: building them from `[classes.*]` and finding the class
//! of a login role.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use toml::Spanned;

use super::categories::{check_category, CategoryName};
use super::error::{Diagnostics, Loc, PolicyWarning};
use super::file::{RawClass, SourceFile, Str};
use super::names::{self, dotted};
use super::units::{parse_duration, parse_size};
use super::{ClassLimits, ClassMode, CopyToAction, DerivedAction, RoleClass};

/// The name of the class for roles no other class matches.
pub const DEFAULT_CLASS: &str = "default";

/// Largest compiled size of one role pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The classes of a policy and how roles map to them.
#[derive(Clone, Debug)]
pub(crate) struct ClassSet {
    classes: Vec<Arc<RoleClass>>,
    exact: HashMap<String, usize>,
    patterns: Vec<(Regex, usize)>,
    default: Arc<RoleClass>,
    default_declared: bool,
}

impl ClassSet {
    /// The class of `role`: exact names first, then patterns in file
    /// order, else the default class.
    pub fn classify(&self, role: &str) -> Arc<RoleClass> {
        let index = self.exact.get(role).copied().or_else(|| {
            self.patterns
                .iter()
                .find(|(re, _)| re.is_match(role))
                .map(|(_, i)| *i)
        });
        match index.and_then(|i| self.classes.get(i)) {
            Some(class) => class.clone(),
            None => self.default.clone(),
        }
    }

    /// The classes declared in the files, in file order, then the default
    /// class when it is declared.
    pub fn declared(&self) -> impl Iterator<Item = &RoleClass> {
        let default = self.default_declared.then_some(self.default.as_ref());
        self.classes.iter().map(|c| c.as_ref()).chain(default)
    }

    /// Role names listed exactly, with their class.
    pub fn listed_roles(&self) -> impl Iterator<Item = (&str, &RoleClass)> {
        self.exact
            .iter()
            .filter_map(|(role, i)| self.classes.get(*i).map(|c| (role.as_str(), c.as_ref())))
    }
}

/// One `[classes.NAME]` table and the file it is in.
pub(crate) struct ClassDecl<'a> {
    pub name: &'a Str,
    pub raw: &'a RawClass,
    pub src: &'a SourceFile,
}

/// Builds the classes, in the order given (file order).
pub(crate) fn build(decls: &[ClassDecl<'_>], diag: &mut Diagnostics) -> ClassSet {
    let mut seen: HashMap<&str, Loc> = HashMap::new();
    let mut classes: Vec<Arc<RoleClass>> = Vec::new();
    let mut exact: HashMap<String, (usize, Loc)> = HashMap::new();
    let mut patterns = Vec::new();
    let mut default = None;
    for decl in decls {
        let name = decl.name.get_ref().as_str();
        let loc = decl.src.loc(decl.name.span());
        let key = dotted(&["classes", name]);
        if let Some(first) = seen.get(name) {
            diag.error(
                &loc,
                &key,
                format!("class {name:?} is already defined at {first}"),
            );
            continue;
        }
        seen.insert(name, loc.clone());
        let Some(built) = build_class(decl, &loc, &key, diag) else {
            continue;
        };
        if name == DEFAULT_CLASS {
            default = Some(Arc::new(built.class));
            continue;
        }
        let index = classes.len();
        for (role, role_loc) in built.roles {
            match exact.get(&role) {
                Some((other, first)) if *other != index => {
                    let other_name = classes.get(*other).map_or("?", |c| c.name.as_str());
                    diag.error(
                        &role_loc,
                        dotted(&["classes", name, "roles"]),
                        format!(
                            "role {role:?} is also listed in class {other_name:?} at {first}; a role belongs to one class"
                        ),
                    );
                }
                Some(_) => diag.warn(
                    &role_loc,
                    dotted(&["classes", name, "roles"]),
                    format!("role {role:?} is listed twice"),
                ),
                None => {
                    exact.insert(role, (index, role_loc));
                }
            }
        }
        patterns.extend(built.patterns.into_iter().map(|re| (re, index)));
        classes.push(Arc::new(built.class));
    }
    if !classes.iter().any(|c| c.mode == ClassMode::Production) {
        diag.warnings.push(PolicyWarning {
            file: None,
            line: None,
            key: "classes".to_owned(),
            message: "no class has mode = \"production\": every session will be guarded".to_owned(),
        });
    }
    ClassSet {
        classes,
        exact: exact.into_iter().map(|(r, (i, _))| (r, i)).collect(),
        patterns,
        default_declared: default.is_some(),
        default: default.unwrap_or_else(|| Arc::new(RoleClass::builtin_default())),
    }
}

/// A class with the exact role names and patterns that select it.
struct Built {
    class: RoleClass,
    roles: Vec<(String, Loc)>,
    patterns: Vec<Regex>,
}

/// Reads the values of one class table; `None` if any is invalid.
struct Reader<'a, 'd> {
    src: &'a SourceFile,
    key: &'a str,
    diag: &'d mut Diagnostics,
    failed: bool,
}

impl Reader<'_, '_> {
    fn key(&self, field: &str) -> String {
        format!("{}.{}", self.key, names::quote_key(field))
    }

    fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (loc, key) = (self.src.loc(span), self.key(field));
        self.diag.error(&loc, key, message);
        self.failed = true;
    }

    fn warn(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (loc, key) = (self.src.loc(span), self.key(field));
        self.diag.warn(&loc, key, message);
    }

    fn parsed<T, V>(
        &mut self,
        value: &Option<Spanned<V>>,
        field: &str,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Option<T> {
        let value = value.as_ref()?;
        match parse(value.get_ref()) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(value.span(), field, message);
                None
            }
        }
    }
}

fn build_class(
    decl: &ClassDecl<'_>,
    loc: &Loc,
    key: &str,
    diag: &mut Diagnostics,
) -> Option<Built> {
    let raw = decl.raw;
    let name = decl.name.get_ref();
    let is_default = name == DEFAULT_CLASS;
    let mut r = Reader {
        src: decl.src,
        key,
        diag,
        failed: false,
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        r.diag.error(
            loc,
            key,
            "class names use letters, digits, _ and - (they appear in logs and metrics)",
        );
        r.failed = true;
    }
    let mode = match &raw.mode {
        None if is_default => ClassMode::Guarded,
        None => {
            r.diag.error(
                loc,
                format!("{key}.mode"),
                "missing: set mode = \"production\" or mode = \"guarded\"",
            );
            return None;
        }
        Some(m) => match m.get_ref().as_str() {
            "production" => ClassMode::Production,
            "guarded" => ClassMode::Guarded,
            other => {
                r.error(
                    m.span(),
                    "mode",
                    format!("expected \"production\" or \"guarded\", got {other:?}"),
                );
                return None;
            }
        },
    };
    if is_default {
        if let (ClassMode::Production, Some(m)) = (mode, &raw.mode) {
            r.error(
                m.span(),
                "mode",
                "the default class applies to roles no class matches and is always guarded",
            );
        }
        for (field, list) in [("roles", &raw.roles), ("patterns", &raw.patterns)] {
            if let Some(list) = list.as_ref().filter(|l| !l.get_ref().is_empty()) {
                r.error(
                    list.span(),
                    field,
                    "the default class takes no roles or patterns: it applies to roles no other class matches",
                );
            }
        }
    }
    let roles = read_roles(&mut r, raw);
    let patterns = read_patterns(&mut r, raw);
    let limits = match mode {
        ClassMode::Production => {
            reject_limits_for_production(&mut r, raw);
            ClassLimits::strict()
        }
        ClassMode::Guarded => read_limits(&mut r, raw, loc),
    };
    if r.failed {
        return None;
    }
    Some(Built {
        class: RoleClass {
            name: name.clone(),
            mode,
            limits,
            dump: None,
        },
        roles,
        patterns,
    })
}

fn read_roles(r: &mut Reader<'_, '_>, raw: &RawClass) -> Vec<(String, Loc)> {
    let mut roles = Vec::new();
    for item in raw.roles.iter().flat_map(|l| l.get_ref()) {
        match names::parse_name(item.get_ref()) {
            Ok(ident) => {
                if ident.folded {
                    r.warn(
                        item.span(),
                        "roles",
                        format!(
                            "unquoted {:?} is folded to {:?} like an SQL identifier; write '\"{}\"' for the exact name",
                            item.get_ref(),
                            ident.name,
                            item.get_ref()
                        ),
                    );
                }
                roles.push((ident.name, r.src.loc(item.span())));
            }
            Err(message) => r.error(item.span(), "roles", message),
        }
    }
    roles
}

fn read_patterns(r: &mut Reader<'_, '_>, raw: &RawClass) -> Vec<Regex> {
    let mut patterns = Vec::new();
    for item in raw.patterns.iter().flat_map(|l| l.get_ref()) {
        let text = item.get_ref();
        match RegexBuilder::new(text).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(re) => {
                if !text.starts_with('^') {
                    r.warn(
                        item.span(),
                        "patterns",
                        format!("{text:?} is not anchored with ^, so it matches anywhere in a role name"),
                    );
                }
                patterns.push(re);
            }
            Err(e) => r.error(
                item.span(),
                "patterns",
                format!("invalid regular expression {text:?}: {}", regex_problem(&e)),
            ),
        }
    }
    patterns
}

/// The gist of a regex error, whose text spans several lines.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().last().unwrap_or_default())
        .trim()
        .to_owned()
}

fn reject_limits_for_production(r: &mut Reader<'_, '_>, raw: &RawClass) {
    let spans = [
        (
            "max_rows_per_statement",
            raw.max_rows_per_statement.as_ref().map(|v| v.span()),
        ),
        (
            "max_bytes_per_statement",
            raw.max_bytes_per_statement.as_ref().map(|v| v.span()),
        ),
        (
            "max_rows_per_session",
            raw.max_rows_per_session.as_ref().map(|v| v.span()),
        ),
        (
            "max_rows_per_window",
            raw.max_rows_per_window.as_ref().map(|v| v.span()),
        ),
        ("window", raw.window.as_ref().map(|v| v.span())),
        ("copy_to", raw.copy_to.as_ref().map(|v| v.span())),
        ("allow_writes", raw.allow_writes.as_ref().map(|v| v.span())),
        ("allow_ddl", raw.allow_ddl.as_ref().map(|v| v.span())),
        (
            "classified_predicates",
            raw.classified_predicates.as_ref().map(|v| v.span()),
        ),
        (
            "block_categories",
            raw.block_categories.as_ref().map(|v| v.span()),
        ),
        ("pseudonymize", raw.pseudonymize.as_ref().map(|v| v.span())),
        ("derived", raw.derived.as_ref().map(|v| v.span())),
    ];
    for (field, span) in spans {
        if let Some(span) = span {
            r.error(
                span,
                field,
                "does not apply to production classes, whose sessions are relayed unchanged",
            );
        }
    }
}

fn read_limits(r: &mut Reader<'_, '_>, raw: &RawClass, class_loc: &Loc) -> ClassLimits {
    let mut limits = ClassLimits::strict();
    let get = |v: &Option<Spanned<u64>>| v.as_ref().map(|v| *v.get_ref());
    limits.max_rows_per_statement = get(&raw.max_rows_per_statement).unwrap_or(0);
    limits.max_rows_per_session = get(&raw.max_rows_per_session).unwrap_or(0);
    limits.max_rows_per_window = get(&raw.max_rows_per_window).unwrap_or(0);
    if let Some(bytes) = r.parsed(
        &raw.max_bytes_per_statement,
        "max_bytes_per_statement",
        parse_size,
    ) {
        limits.max_bytes_per_statement = bytes;
    }
    if let Some(window) = r.parsed(&raw.window, "window", parse_duration) {
        limits.window = window;
    }
    if let Some(action) = r.parsed(&raw.copy_to, "copy_to", |s: &String| match s.as_str() {
        "block" => Ok(CopyToAction::Block),
        "pseudonymize" => Ok(CopyToAction::Pseudonymize),
        other => Err(format!(
            "expected \"block\" or \"pseudonymize\", got {other:?}"
        )),
    }) {
        limits.copy_to = action;
    }
    if let Some(action) = r.parsed(&raw.derived, "derived", |s: &String| match s.as_str() {
        "block" => Ok(DerivedAction::Block),
        "pseudonymize" => Ok(DerivedAction::Pseudonymize),
        other => Err(format!(
            "expected \"block\" or \"pseudonymize\", got {other:?}"
        )),
    }) {
        limits.derived = action;
    }
    let flag = |v: &Option<Spanned<bool>>| v.as_ref().is_some_and(|v| *v.get_ref());
    limits.allow_writes = flag(&raw.allow_writes);
    limits.allow_ddl = flag(&raw.allow_ddl);
    limits.classified_predicates = flag(&raw.classified_predicates);
    for item in raw.block_categories.iter().flat_map(|l| l.get_ref()) {
        match check_category(item.get_ref()) {
            Ok(CategoryName::Known) => {}
            Ok(CategoryName::Unknown(message)) => r.warn(item.span(), "block_categories", message),
            Err(message) => r.error(item.span(), "block_categories", message),
        }
        limits.block_categories.insert(item.get_ref().clone());
    }
    for item in raw.pseudonymize.iter().flat_map(|l| l.get_ref()) {
        let name = item.get_ref();
        if name != "*" {
            match check_category(name) {
                Ok(CategoryName::Known) => {}
                Ok(CategoryName::Unknown(message)) => r.warn(item.span(), "pseudonymize", message),
                Err(message) => r.error(item.span(), "pseudonymize", message),
            }
            if limits.block_categories.contains(name) {
                r.error(
                    item.span(),
                    "pseudonymize",
                    format!("{name:?} is also in block_categories; a category is either blocked or pseudonymized"),
                );
            }
        }
        limits.pseudonymize.insert(name.clone());
    }
    if limits.copy_to == CopyToAction::Pseudonymize && limits.pseudonymize.is_empty() {
        if let Some(v) = raw.copy_to.as_ref() {
            r.error(
                v.span(),
                "copy_to",
                "\"pseudonymize\" needs the categories to pseudonymize in `pseudonymize`",
            );
        }
    }
    if limits.max_rows_per_statement > 0 {
        let needed = [
            (
                "max_bytes_per_statement",
                limits.max_bytes_per_statement,
                raw.max_bytes_per_statement.as_ref().map(|v| v.span()),
            ),
            (
                "max_rows_per_session",
                limits.max_rows_per_session,
                raw.max_rows_per_session.as_ref().map(|v| v.span()),
            ),
            (
                "max_rows_per_window",
                limits.max_rows_per_window,
                raw.max_rows_per_window.as_ref().map(|v| v.span()),
            ),
        ];
        for (field, value, span) in needed {
            if value > 0 {
                continue;
            }
            let message = "must be above 0 when max_rows_per_statement is: a zero limit lets no classified data through";
            match span {
                Some(span) => r.error(span, field, message),
                None => {
                    r.diag
                        .error(class_loc, r.key(field), format!("missing: {message}"));
                    r.failed = true;
                }
            }
        }
    }
    if let Some(window) = raw.window.as_ref() {
        if limits.max_rows_per_window > 0 && limits.window.is_zero() {
            r.error(
                window.span(),
                "window",
                "must be above 0 when max_rows_per_window is",
            );
        }
    }
    limits
}
