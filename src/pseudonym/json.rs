//! `json`: rewrite a classified JSON document. Values under listed keys
//! (at any depth) get their transform; every other scalar becomes `null`;
//! object keys that do not look like identifiers (and so may be data, such
//! as an email used as a key) are replaced by keyed tokens. Arrays and
//! objects keep their shape.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::keyed::Prf;
use super::transform::Transform;
use super::types::{oid, ColumnType, Format};
use super::{Outcome, Pseudonymizer};

/// Appends the rewritten document; `None` if `text` is not JSON.
pub(crate) fn rewrite(
    p: &Pseudonymizer,
    keys: &BTreeMap<String, Transform>,
    text: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    let doc: Value = serde_json::from_slice(text).ok()?;
    let doc = walk(p, keys, doc);
    serde_json::to_writer(out, &doc).ok()
}

fn walk(p: &Pseudonymizer, keys: &BTreeMap<String, Transform>, v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut new = Map::new();
            for (k, child) in map {
                let child = match keys.get(&k) {
                    Some(t) => listed(p, keys, t, child),
                    None => walk(p, keys, child),
                };
                let k = if keys.contains_key(&k) || is_identifier(&k) {
                    k
                } else {
                    token_key(&p.keys.token, &k)
                };
                new.insert(k, child);
            }
            Value::Object(new)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|c| walk(p, keys, c)).collect()),
        _ => Value::Null,
    }
}

/// A value under a listed key.
fn listed(p: &Pseudonymizer, keys: &BTreeMap<String, Transform>, t: &Transform, v: Value) -> Value {
    let scalar = |ty: u32, text: &[u8]| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match p.apply(t, ColumnType::plain(ty), Format::Text, Some(text), &mut out) {
            Ok(Outcome::Value) => Some(out),
            _ => None,
        }
    };
    match (t, v) {
        (Transform::Redact, _) => Value::Null,
        (Transform::Json { keys: inner }, v @ (Value::Object(_) | Value::Array(_))) => {
            walk(p, inner, v)
        }
        (_, Value::String(s)) => scalar(oid::TEXT, s.as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .map_or(Value::Null, Value::String),
        (_, Value::Number(n)) => scalar(oid::NUMERIC, n.to_string().as_bytes())
            .and_then(|b| serde_json::from_slice::<serde_json::Number>(&b).ok())
            .map_or(Value::Null, Value::Number),
        (_, v @ (Value::Object(_) | Value::Array(_))) => walk(p, keys, v),
        _ => Value::Null,
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters.
fn is_identifier(k: &str) -> bool {
    let mut b = k.bytes();
    k.len() <= 63
        && b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn token_key(prf: &Prf, k: &str) -> String {
    format!("k_{}", hex::encode(&prf.tag(b'k', k.as_bytes())[..5]))
}
