//! Rewritten COPY streams pinned across versions: the people rows of
//! `copy_compare` (email, name, birth date and phone pseudonymized; an
//! int8 bijection and a uuid token beside them) in text, CSV and binary,
//! framed as the proxy sends them. The same key must give the same bytes
//! in every release.

use sha2::{Digest, Sha256};

use super::*;
use crate::enforce::rewrite::PlannedColumn;
use crate::pseudonym::{oid, ColumnType, Key, NamePart, Settings, Transform};

const ROWS: usize = 300;

fn column(t: Transform, oid: u32, format: Format) -> Option<PlannedColumn> {
    Some(PlannedColumn {
        transform: t,
        ty: ColumnType::plain(oid),
        format,
    })
}

fn plan(format: Format) -> ColumnPlan {
    ColumnPlan::new(vec![
        column(Transform::Bijection, oid::INT8, format),
        column(Transform::Email, oid::TEXT, format),
        column(
            Transform::PersonName {
                part: NamePart::Auto,
            },
            oid::TEXT,
            format,
        ),
        column(Transform::DateShift { days: None }, oid::DATE, format),
        column(Transform::Phone, oid::TEXT, format),
        None,
        column(Transform::Token, oid::UUID, format),
        None,
    ])
}

/// Row `g`'s fields as text; the note has what CSV quotes and text escapes
/// every few rows, and some values are NULL.
fn fields(g: usize) -> [Option<String>; 8] {
    let name = ["Ada", "Grace", "Alan", "Edsger", "Barbara"][g % 5];
    let note = match g % 4 {
        0 => "a, \"quoted\" note".to_string(),
        1 => "tab\there and back\\slash".to_string(),
        _ => format!("order note {}", g % 313),
    };
    [
        Some(g.to_string()),
        Some(format!("user{g}@mail.example.com")),
        (g % 9 != 0).then(|| format!("{name} Lovelace{}", g % 997)),
        Some(format!(
            "19{:02}-{:02}-{:02}",
            50 + g % 50,
            1 + g % 12,
            1 + g % 28
        )),
        (g % 7 != 0).then(|| format!("+33-6-{:08}", g * 7919 % 100_000_000)),
        Some("FR".into()),
        Some(format!("{:032x}", (g as u128) * 0x9e37_79b9_7f4a_7c15_f39c)),
        Some(note),
    ]
}

fn text_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for g in 1..=ROWS {
        let row: Vec<String> = fields(g)
            .into_iter()
            .map(|f| match f {
                None => "\\N".into(),
                Some(v) => v.replace('\\', "\\\\").replace('\t', "\\t"),
            })
            .collect();
        s.extend_from_slice(row.join("\t").as_bytes());
        s.push(b'\n');
    }
    s
}

fn csv_stream() -> Vec<u8> {
    let mut s = Vec::new();
    for g in 1..=ROWS {
        let row: Vec<String> = fields(g)
            .into_iter()
            .map(|f| match f {
                None => String::new(),
                Some(v) if v.contains([',', '"']) => format!("\"{}\"", v.replace('"', "\"\"")),
                Some(v) => v,
            })
            .collect();
        s.extend_from_slice(row.join(",").as_bytes());
        s.push(b'\n');
    }
    s
}

fn binary_stream() -> Vec<u8> {
    let mut s = BINARY_SIGNATURE.to_vec();
    s.extend_from_slice(&[0; 8]);
    for g in 1..=ROWS {
        s.extend_from_slice(&8i16.to_be_bytes());
        for (i, f) in fields(g).into_iter().enumerate() {
            let Some(v) = f else {
                s.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            };
            let bytes = match i {
                0 => (g as i64).to_be_bytes().to_vec(),
                3 => ((g as i32 * 37) % 20_000 - 10_000).to_be_bytes().to_vec(),
                6 => u128::from_str_radix(&v, 16).unwrap().to_be_bytes().to_vec(),
                _ => v.into_bytes(),
            };
            s.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            s.extend_from_slice(&bytes);
        }
    }
    s.extend_from_slice(&(-1i16).to_be_bytes());
    s
}

fn digest(format: CopyFormat, fmt: Format, stream: &[u8]) -> String {
    let key = Key::from_text("pinned", &"a1".repeat(32)).unwrap();
    let p = Arc::new(Pseudonymizer::new(&key, Settings::default()).unwrap());
    let mut r = CopyRewriter::new(plan(fmt), format, p).framed();
    let mut out = Vec::new();
    for chunk in stream.chunks(1000) {
        r.feed(chunk, &mut out).unwrap();
    }
    r.finish().unwrap();
    hex::encode(Sha256::digest(&out))
}

#[test]
fn rewritten_streams_are_pinned() {
    let got = [
        digest(CopyFormat::text(), Format::Text, &text_stream()),
        digest(CopyFormat::csv(), Format::Text, &csv_stream()),
        digest(CopyFormat::Binary, Format::Binary, &binary_stream()),
    ];
    assert_eq!(got, PINNED);
}

const PINNED: [&str; 3] = [
    "70992258dce7583cf853e45c3b626f33c220af1c59998dba9025fe4cf8200fed",
    "ac728a3a34390307ff25b0e0b501d45bae1ced1dd2f8a93f786c80fae7c29097",
    "c0a83914ac5bee496e93eb1dbff566715690293be9982fb978b317a22555ffa6",
];

/// A column whose stand-ins can hold the delimiter still has it escaped
/// (text) or quoted (CSV): only columns whose alphabet cannot skip the
/// check.
#[test]
fn stand_ins_holding_the_delimiter_are_escaped_or_quoted() {
    let key = Key::from_text("pinned", &"a1".repeat(32)).unwrap();
    let p = Arc::new(Pseudonymizer::new(&key, Settings::default()).unwrap());
    let plan = ColumnPlan::new(vec![
        column(Transform::Email, oid::TEXT, Format::Text),
        column(Transform::DateShift { days: None }, oid::DATE, Format::Text),
    ]);
    let run = |format: CopyFormat, input: &[u8]| {
        let mut r = CopyRewriter::new(plan.clone(), format, Arc::clone(&p));
        let mut out = Vec::new();
        r.feed(input, &mut out).unwrap();
        r.finish().unwrap();
        String::from_utf8(out).unwrap()
    };
    let at = CopyFormat::Text {
        delimiter: b'@',
        null: b"\\N".to_vec(),
        header: false,
    };
    let out = run(at, b"ada\\@lovelace.org@1990-05-17\n");
    let (email, date) = out.trim_end().split_once("\\@example.invalid@").unwrap();
    assert!(!email.contains('@') && date.len() == 10, "{out}");
    let dash = CopyFormat::Text {
        delimiter: b'-',
        null: b"\\N".to_vec(),
        header: false,
    };
    let out = run(dash, b"ada@x.org-1990\\-05\\-17\n");
    assert!(
        out.contains("@example.invalid-") && out.matches("\\-").count() == 2,
        "{out}"
    );
    let csv = |delimiter| CopyFormat::Csv {
        delimiter,
        quote: b'"',
        escape: b'"',
        null: Vec::new(),
        header: false,
        force_quote: ForceQuote::Off,
    };
    let out = run(csv(b'-'), b"ada@x.org-\"1990-05-17\"\n");
    assert!(out.ends_with("\"\n") && out.contains("-\""), "{out}");
    let out = run(csv(b'.'), b"\"ada@x.org\".1990-05-17\n");
    assert!(out.starts_with('"') && out.contains("\"."), "{out}");
    let out = run(csv(b','), b"ada@x.org,1990-05-17\n");
    assert!(!out.contains('"'), "{out}");
}
