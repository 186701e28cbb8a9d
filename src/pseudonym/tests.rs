//! Property tests of every transform through [`Pseudonymizer::apply`]:
//! determinism (also across instances, as after a restart), key
//! sensitivity, type validity within typmods, bijection and exact inverse,
//! uniqueness, and no panic on any input.

use std::collections::HashSet;
use std::sync::LazyLock;

use proptest::prelude::*;

use super::numeric::{self, Numeric};
use super::*;

fn make(secret: &str) -> Pseudonymizer {
    let key = Key::from_text("test", &secret.repeat(32)).unwrap();
    Pseudonymizer::new(&key, Settings::default()).unwrap()
}

static A: LazyLock<Pseudonymizer> = LazyLock::new(|| make("a1"));
/// The same key as `A`, another instance: a restarted proxy or a replica.
static A2: LazyLock<Pseudonymizer> = LazyLock::new(|| make("a1"));
static B: LazyLock<Pseudonymizer> = LazyLock::new(|| make("b2"));

const TEXT: ColumnType = ColumnType::plain(oid::TEXT);

/// The stand-in, `None` for NULL.
fn run(p: &Pseudonymizer, t: &Transform, ty: ColumnType, fmt: Format, v: &[u8]) -> Option<Vec<u8>> {
    let mut out = b"prefix".to_vec();
    match p.apply(t, ty, fmt, Some(v), &mut out).unwrap() {
        Outcome::Value => Some(out[6..].to_vec()),
        Outcome::Null => {
            assert_eq!(out, b"prefix", "NULL appends nothing");
            None
        }
    }
}

fn run_text(p: &Pseudonymizer, t: &Transform, ty: ColumnType, v: &str) -> Option<String> {
    run(p, t, ty, Format::Text, v.as_bytes()).map(|b| String::from_utf8(b).unwrap())
}

fn invert(
    p: &Pseudonymizer,
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    v: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match p.invert(t, ty, fmt, Some(v), &mut out).unwrap() {
        Outcome::Value => Some(out),
        Outcome::Null => None,
    }
}

fn email_shape(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.')
        && domain == DEFAULT_EMAIL_DOMAIN
}

/// `s` with every ASCII digit as `9`, lower-case letter as `a` and
/// upper-case letter as `A`.
pub(super) fn shape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => '9',
            'a'..='z' => 'a',
            'A'..='Z' => 'A',
            o => o,
        })
        .collect()
}

/// Every type and transform the properties below sweep.
pub(super) fn transforms() -> Vec<Transform> {
    vec![
        Transform::Bijection,
        Transform::Email,
        Transform::PersonName {
            part: NamePart::Auto,
        },
        Transform::Phone,
        Transform::DateShift { days: None },
        Transform::Year,
        Transform::Month,
        Transform::Address,
        Transform::Replace,
        Transform::Token,
        Transform::Partial { keep: 4 },
        Transform::Json {
            keys: [("email".to_string(), Transform::Email)].into(),
        },
        Transform::Constant { value: "1".into() },
        Transform::Redact,
    ]
}

pub(super) fn types() -> Vec<ColumnType> {
    let mut v: Vec<ColumnType> = [
        oid::BOOL,
        oid::BYTEA,
        oid::NAME,
        oid::INT8,
        oid::INT2,
        oid::INT4,
        oid::TEXT,
        oid::JSON,
        oid::BPCHAR,
        oid::VARCHAR,
        oid::DATE,
        oid::TIMESTAMP,
        oid::TIMESTAMPTZ,
        oid::NUMERIC,
        oid::UUID,
        oid::JSONB,
    ]
    .into_iter()
    .map(ColumnType::plain)
    .collect();
    v.extend([
        ColumnType::varchar(8),
        ColumnType::bpchar(5),
        ColumnType::numeric(5, 2),
    ]);
    v
}

#[test]
fn integers_keep_type_sign_and_join() {
    for (ty, fmt, v) in [
        (oid::INT8, Format::Binary, 42i64.to_be_bytes().to_vec()),
        (oid::INT4, Format::Binary, 42i32.to_be_bytes().to_vec()),
        (oid::INT2, Format::Binary, 42i16.to_be_bytes().to_vec()),
    ] {
        let out = run(&A, &Transform::Bijection, ColumnType::plain(ty), fmt, &v).unwrap();
        assert_eq!(out.len(), v.len());
    }
    let as_text = |ty: u32, fmt: Format, v: &[u8]| -> i64 {
        let out = run(&A, &Transform::Bijection, ColumnType::plain(ty), fmt, v).unwrap();
        match fmt {
            Format::Text => std::str::from_utf8(&out).unwrap().parse().unwrap(),
            Format::Binary => match out.len() {
                2 => i64::from(i16::from_be_bytes(out[..].try_into().unwrap())),
                4 => i64::from(i32::from_be_bytes(out[..].try_into().unwrap())),
                _ => i64::from_be_bytes(out[..].try_into().unwrap()),
            },
        }
    };
    for id in [1i64, 7, 1000, 40_000, 3_000_000] {
        let pk = as_text(oid::INT8, Format::Binary, &id.to_be_bytes());
        assert_eq!(
            as_text(oid::INT8, Format::Text, id.to_string().as_bytes()),
            pk
        );
        assert_eq!(
            as_text(oid::INT4, Format::Binary, &(id as i32).to_be_bytes()),
            pk
        );
        assert_eq!(
            as_text(oid::NUMERIC, Format::Text, id.to_string().as_bytes()),
            pk
        );
        assert!(pk > 0 && pk != id);
    }
}

#[test]
fn numeric_typmods_are_honored() {
    let ty = ColumnType::numeric(5, 2);
    let out = run_text(&A, &Transform::Bijection, ty, "123.00").unwrap();
    let n: f64 = out.parse().unwrap();
    assert!(out.ends_with(".00") && n.abs() < 1000.0 && n > 0.0, "{out}");
    assert_eq!(run_text(&A, &Transform::Bijection, ty, "1.50"), None);
    let token = run_text(&A, &Transform::Token, ty, "-123.45").unwrap();
    assert_eq!(shape(&token), "-999.99");
    assert_ne!(token, "-123.45");
    assert_eq!(
        run_text(&A, &Transform::Token, ty, "NaN").as_deref(),
        Some("NaN")
    );
    let bin = {
        let mut b = Vec::new();
        numeric::write_binary(&numeric::parse_text(b"123.00").unwrap(), &mut b).unwrap();
        run(&A, &Transform::Bijection, ty, Format::Binary, &b).unwrap()
    };
    let Some(Numeric::Finite(d)) = numeric::parse_binary(&bin) else {
        panic!("not a finite numeric")
    };
    let mut t = Vec::new();
    numeric::write_text(&Numeric::Finite(d), &mut t);
    assert_eq!(String::from_utf8(t).unwrap(), out);
    assert_eq!(
        invert(&A, &Transform::Bijection, ty, Format::Text, out.as_bytes()).as_deref(),
        Some(&b"123.00"[..])
    );
}

#[test]
fn character_typmods_are_honored() {
    let e = run_text(
        &A,
        &Transform::Email,
        ColumnType::varchar(30),
        "someone@somewhere.example",
    )
    .unwrap();
    assert!(e.len() <= 30 && e.ends_with("@example.invalid"), "{e}");
    assert_eq!(
        run_text(&A, &Transform::Email, ColumnType::varchar(10), "a@b.c"),
        None
    );
    let n = run_text(
        &A,
        &Transform::PersonName {
            part: NamePart::Full,
        },
        ColumnType::bpchar(6),
        "Ada Lovelace",
    )
    .unwrap();
    assert_eq!(n.chars().count(), 6);
    let n = run_text(
        &A,
        &Transform::PersonName {
            part: NamePart::Given,
        },
        ColumnType::bpchar(20),
        "Ada",
    )
    .unwrap();
    assert_eq!(n.chars().count(), 20);
    assert!(n.ends_with(' '));
    let padded = run_text(&A, &Transform::Token, ColumnType::bpchar(10), "AB12      ").unwrap();
    assert_eq!(padded.len(), 10);
    assert_eq!(shape(&padded), "AA99      ");
    let long = "x".repeat(100);
    let name = run_text(&A, &Transform::Replace, ColumnType::plain(oid::NAME), &long).unwrap();
    assert!(name.len() <= 63);
}

#[test]
fn dates_and_timestamps() {
    let ty = ColumnType::plain(oid::DATE);
    let shifted = run_text(
        &A,
        &Transform::DateShift { days: Some(10) },
        ty,
        "1990-05-17",
    )
    .unwrap();
    let d = calendar::parse_iso(shifted.as_bytes()).unwrap().days;
    let orig = calendar::parse_iso(b"1990-05-17").unwrap().days;
    assert!((1..=10).contains(&(d - orig).abs()), "{shifted}");
    assert_eq!(
        run_text(&A, &Transform::Year, ty, "1990-05-17").as_deref(),
        Some("1990-01-01")
    );
    assert_eq!(
        run_text(&A, &Transform::Month, ty, "infinity").as_deref(),
        Some("infinity")
    );
    assert_eq!(run_text(&A, &Transform::Month, ty, "17/05/1990"), None);
    let tz = ColumnType::plain(oid::TIMESTAMPTZ);
    let ts = run_text(
        &A,
        &Transform::DateShift { days: Some(10) },
        tz,
        "1990-05-17 10:11:12.5+02",
    )
    .unwrap();
    assert_eq!(ts, format!("{shifted} 10:11:12.5+02"));
    let micros = (orig * calendar::USECS_PER_DAY + 3_600_000_000).to_be_bytes();
    let b = run(
        &A,
        &Transform::DateShift { days: Some(10) },
        tz,
        Format::Binary,
        &micros,
    )
    .unwrap();
    let got = i64::from_be_bytes(b[..].try_into().unwrap());
    assert_eq!(got, d * calendar::USECS_PER_DAY + 3_600_000_000);
    assert_eq!(
        run_text(&A, &Transform::DateShift { days: None }, TEXT, "1990-05-17")
            .as_deref()
            .map(str::len),
        Some(10)
    );
}

#[test]
fn uuid_bijection_round_trips() {
    let ty = ColumnType::plain(oid::UUID);
    let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let t = run_text(&A, &Transform::Bijection, ty, u).unwrap();
    assert_eq!(t.len(), 36);
    assert_ne!(t, u);
    assert_eq!(
        invert(&A, &Transform::Bijection, ty, Format::Text, t.as_bytes()).as_deref(),
        Some(u.as_bytes())
    );
    let bin = text::parse_uuid(u.as_bytes()).unwrap();
    let tb = run(&A, &Transform::Bijection, ty, Format::Binary, &bin).unwrap();
    assert_eq!(tb, text::parse_uuid(t.as_bytes()).unwrap());
}

#[test]
fn phones_keep_country_and_shape() {
    for p in [
        "+44 20 7946 0958",
        "+1 (555) 123-4567",
        "0049 30 1234567",
        "030 1234567",
        "555-0100",
    ] {
        let t = run_text(&A, &Transform::Phone, TEXT, p).unwrap();
        assert_eq!(shape(&t), shape(p));
        assert_ne!(t, p);
        assert_eq!(
            invert(&A, &Transform::Phone, TEXT, Format::Text, t.as_bytes()).as_deref(),
            Some(p.as_bytes())
        );
    }
    assert!(run_text(&A, &Transform::Phone, TEXT, "+44 20 7946 0958")
        .unwrap()
        .starts_with("+44 "));
    assert!(run_text(&A, &Transform::Phone, TEXT, "0049 30 1234567")
        .unwrap()
        .starts_with("0049 "));
}

#[test]
fn json_documents() {
    let t = Transform::Json {
        keys: [
            ("email".to_string(), Transform::Email),
            ("id".to_string(), Transform::Bijection),
            ("card".to_string(), Transform::Partial { keep: 4 }),
        ]
        .into(),
    };
    let doc = r#"{"email":"ada@x.org","id":42,"name":"Ada","tags":["a",1,true],"card":"4111111111111234","nested":{"email":"bob@y.org"},"ada@x.org":1}"#;
    for ty in [
        ColumnType::plain(oid::JSON),
        ColumnType::plain(oid::JSONB),
        TEXT,
    ] {
        let out = run_text(&A, &t, ty, doc).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(email_shape(v["email"].as_str().unwrap()));
        assert!(email_shape(v["nested"]["email"].as_str().unwrap()));
        assert!(v["id"].as_i64().unwrap() > 0 && v["id"] != 42);
        assert_eq!(v["name"], serde_json::Value::Null);
        assert_eq!(v["tags"], serde_json::json!([null, null, null]));
        assert_eq!(v["card"], "************1234");
        assert!(
            !out.contains("ada") && !out.contains("bob") && !out.contains("Ada"),
            "{out}"
        );
    }
    let mut jsonb = vec![1u8];
    jsonb.extend_from_slice(doc.as_bytes());
    let out = run(
        &A,
        &t,
        ColumnType::plain(oid::JSONB),
        Format::Binary,
        &jsonb,
    )
    .unwrap();
    assert_eq!(out[0], 1);
    assert!(serde_json::from_slice::<serde_json::Value>(&out[1..]).is_ok());
    assert_eq!(run_text(&A, &t, TEXT, "not json"), None);
    assert_eq!(
        run_text(&A, &Transform::Email, ColumnType::plain(oid::JSON), doc),
        None
    );
}

#[test]
fn constants_and_redaction() {
    let c = |v: &str, ty: ColumnType, fmt: Format| {
        run(
            &A,
            &Transform::Constant { value: v.into() },
            ty,
            fmt,
            b"secret",
        )
    };
    assert_eq!(c("n/a", TEXT, Format::Text).as_deref(), Some(&b"n/a"[..]));
    assert_eq!(
        c("n/a", ColumnType::varchar(2), Format::Text).as_deref(),
        Some(&b"n/"[..])
    );
    assert_eq!(
        c("7", ColumnType::plain(oid::INT2), Format::Binary),
        Some(vec![0, 7])
    );
    assert_eq!(
        c("70000", ColumnType::plain(oid::INT2), Format::Binary),
        None
    );
    assert_eq!(
        c("t", ColumnType::plain(oid::BOOL), Format::Binary),
        Some(vec![1])
    );
    assert_eq!(c("123.4", ColumnType::numeric(3, 1), Format::Text), None);
    assert_eq!(
        c("2000-01-02", ColumnType::plain(oid::DATE), Format::Binary),
        Some(1i32.to_be_bytes().to_vec())
    );
    assert_eq!(
        c(
            "2000-01-01 00:00:01+00",
            ColumnType::plain(oid::TIMESTAMPTZ),
            Format::Binary
        ),
        Some(1_000_000i64.to_be_bytes().to_vec())
    );
    assert_eq!(
        c("{\"a\": 1}", ColumnType::plain(oid::JSONB), Format::Binary),
        Some(b"\x01{\"a\":1}".to_vec())
    );
    assert_eq!(
        run(&A, &Transform::Redact, TEXT, Format::Text, b"secret"),
        None
    );
    let mut out = Vec::new();
    assert_eq!(
        A.apply(&Transform::Email, TEXT, Format::Text, None, &mut out),
        Ok(Outcome::Null)
    );
}

#[test]
fn unknown_types() {
    let ty = ColumnType::plain(869);
    let mut out = Vec::new();
    assert_eq!(
        A.apply(
            &Transform::Token,
            ty,
            Format::Text,
            Some(b"10.0.0.1"),
            &mut out
        ),
        Ok(Outcome::Null)
    );
    assert!(matches!(
        A.apply(
            &Transform::Token,
            ty,
            Format::Binary,
            Some(b"\x02\x20\x00\x04\x0a\x00\x00\x01"),
            &mut out
        ),
        Err(PseudonymError::BinaryUnsupported { oid: 869, .. })
    ));
    assert_eq!(
        A.apply(&Transform::Redact, ty, Format::Binary, Some(b"x"), &mut out),
        Ok(Outcome::Null)
    );
    assert!(out.is_empty());
    assert!(matches!(
        A.invert(&Transform::Email, TEXT, Format::Text, Some(b"x"), &mut out),
        Err(PseudonymError::NotInvertible { .. })
    ));
}

#[test]
fn emails_and_phones_stay_unique() {
    let emails: HashSet<String> = (0..5000)
        .map(|i| run_text(&A, &Transform::Email, TEXT, &format!("user{i}@example.com")).unwrap())
        .collect();
    assert_eq!(emails.len(), 5000);
    let phones: HashSet<String> = (0..5000)
        .map(|i| {
            run_text(
                &A,
                &Transform::Phone,
                TEXT,
                &format!("+49 30 {:07}", i * 13),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(phones.len(), 5000);
    let ids: HashSet<String> = (0..5000)
        .map(|i| {
            run_text(
                &A,
                &Transform::Token,
                TEXT,
                &format!("{:03}-{:02}-{:04}", i % 900, i % 97, i),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 5000);
}

#[test]
fn integer_samples_have_no_collisions() {
    let ty = ColumnType::plain(oid::INT8);
    let mut seen = HashSet::new();
    for i in 0..20_000i64 {
        let v = i * 104_729 + 1;
        let out = run(
            &A,
            &Transform::Bijection,
            ty,
            Format::Binary,
            &v.to_be_bytes(),
        )
        .unwrap();
        assert!(seen.insert(out));
    }
}

#[test]
fn shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pseudonymizer>();
    send_sync::<crate::enforce::copy::CopyRewriter>();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                run(
                    &A,
                    &Transform::Bijection,
                    ColumnType::plain(oid::INT8),
                    Format::Binary,
                    &(1i64 << 40).to_be_bytes(),
                )
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn key_id_and_fingerprint_are_exposed_not_the_secret() {
    assert_eq!(A.key_id(), "test");
    assert_eq!(A.key_fingerprint(), A2.key_fingerprint());
    assert_ne!(A.key_fingerprint(), B.key_fingerprint());
    let shown = format!("{:?}", *A);
    assert!(shown.contains("test") && !shown.contains("a1a1"));
}

/// A value of the given type in the given format, from raw material.
pub(super) fn sample(ty: ColumnType, fmt: Format, seed: u64, s: &str) -> Vec<u8> {
    let i = seed as i64;
    let text = match ty.oid {
        oid::INT2 => (i % 32_000).to_string(),
        oid::INT4 => (i % 2_000_000_000).to_string(),
        oid::INT8 | oid::NUMERIC => i.to_string(),
        oid::UUID => format!("{:032x}", u128::from(seed) * 0x9e37_79b9_7f4a_7c15_f39c),
        oid::DATE => format!(
            "{:04}-{:02}-{:02}",
            1900 + seed % 200,
            1 + seed % 12,
            1 + seed % 28
        ),
        oid::TIMESTAMP | oid::TIMESTAMPTZ => format!(
            "{:04}-{:02}-{:02} 12:34:56",
            1900 + seed % 200,
            1 + seed % 12,
            1 + seed % 28
        ),
        oid::BOOL => "t".into(),
        oid::BYTEA => format!("\\x{}", hex::encode(s)),
        oid::JSON | oid::JSONB => serde_json::json!({ "email": s, "n": seed }).to_string(),
        _ => s.to_string(),
    };
    if fmt == Format::Text {
        return text.into_bytes();
    }
    let mut out = Vec::new();
    match ty.oid {
        oid::INT2 => out.extend_from_slice(&(i % 32_000).to_be_bytes()[6..]),
        oid::INT4 => out.extend_from_slice(&(i % 2_000_000_000).to_be_bytes()[4..]),
        oid::INT8 => out.extend_from_slice(&i.to_be_bytes()),
        oid::NUMERIC => {
            numeric::write_binary(&numeric::parse_text(text.as_bytes()).unwrap(), &mut out).unwrap()
        }
        oid::UUID => out.extend_from_slice(&text::parse_uuid(text.as_bytes()).unwrap()),
        oid::DATE => out.extend_from_slice(&((seed % 70_000) as i32 - 35_000).to_be_bytes()),
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            out.extend_from_slice(&((seed as i64 % (1 << 50)) - (1 << 49)).to_be_bytes())
        }
        oid::BOOL => out.push(1),
        oid::BYTEA => out.extend_from_slice(s.as_bytes()),
        oid::JSONB => {
            out.push(1);
            out.extend_from_slice(text.as_bytes());
        }
        _ => out.extend_from_slice(text.as_bytes()),
    }
    out
}

/// The output decodes as the column's type and keeps its typmod.
fn assert_valid(ty: ColumnType, fmt: Format, out: &[u8]) {
    let ok = match (ty.kind(), fmt) {
        (types::Kind::Int(w), Format::Text) => text::parse_int(out).is_some_and(|v| w.contains(v)),
        (types::Kind::Int(w), Format::Binary) => binary::read_int(w, out).is_some(),
        (types::Kind::Numeric, Format::Text) => numeric::parse_text(out).is_some(),
        (types::Kind::Numeric, Format::Binary) => numeric::parse_binary(out).is_some(),
        (types::Kind::Uuid, Format::Text) => text::parse_uuid(out).is_some(),
        (types::Kind::Uuid, Format::Binary) => out.len() == 16,
        (types::Kind::Date | types::Kind::Timestamp, Format::Text) => {
            text::parse_infinity(out).is_some() || calendar::parse_iso(out).is_some()
        }
        (types::Kind::Date, Format::Binary) => out.len() == 4,
        (types::Kind::Timestamp, Format::Binary) => binary::read_timestamp(out).is_some_and(|v| {
            (calendar::TS_MIN..calendar::TS_END).contains(&v) || v == i64::MAX || v == i64::MIN
        }),
        (types::Kind::Bool, _) => matches!(out, b"t" | b"f" | [0] | [1]),
        (types::Kind::Bytea, Format::Text) => text::parse_bytea(out).is_some(),
        (types::Kind::Bytea, Format::Binary) => true,
        (types::Kind::Json, _) => serde_json::from_slice::<serde_json::Value>(out).is_ok(),
        (types::Kind::Jsonb, Format::Text) => {
            serde_json::from_slice::<serde_json::Value>(out).is_ok()
        }
        (types::Kind::Jsonb, Format::Binary) => {
            out.first() == Some(&1)
                && serde_json::from_slice::<serde_json::Value>(&out[1..]).is_ok()
        }
        (types::Kind::Text, _) => {
            let s = std::str::from_utf8(out).unwrap();
            let limit = ty.text_limit();
            let chars = s.chars().count();
            limit
                .max_chars
                .is_none_or(|n| if limit.pad { chars == n } else { chars <= n })
                && limit.max_bytes.is_none_or(|n| s.len() <= n)
        }
        (types::Kind::Other, _) => false,
    };
    assert!(
        ok,
        "invalid {ty:?} {fmt:?}: {:?}",
        String::from_utf8_lossy(out)
    );
    if let (Some((digits, scale)), Some(Numeric::Finite(d))) = (
        ty.numeric_limits(),
        match fmt {
            Format::Text => numeric::parse_text(out),
            Format::Binary => numeric::parse_binary(out),
        },
    ) {
        assert!(d.int.len() as i32 <= digits && d.frac.len() as i32 <= scale.max(0));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every transform on every type and format: valid output, the same
    /// on another instance with the same key, and never the raw value for
    /// a transform that changes it.
    #[test]
    fn every_transform_is_valid_and_deterministic(seed in 1u64..1_000_000_000, s in "[A-Za-z0-9@. +-]{1,30}") {
        for ty in types() {
            for fmt in [Format::Text, Format::Binary] {
                let v = sample(ty, fmt, seed, &s);
                for t in transforms() {
                    let out = run(&A, &t, ty, fmt, &v);
                    prop_assert_eq!(&out, &run(&A2, &t, ty, fmt, &v), "{} on {:?}", t, ty);
                    if let Some(o) = &out {
                        assert_valid(ty, fmt, o);
                    }
                }
            }
        }
    }

    #[test]
    fn different_keys_give_different_stand_ins(seed in 1u64..1_000_000_000, s in "[a-z]{6,12}@[a-z]{4,8}\\.com") {
        let id = seed.to_string();
        for (t, ty, v) in [
            (Transform::Bijection, ColumnType::plain(oid::INT8), id.as_str()),
            (Transform::Email, TEXT, s.as_str()),
            (Transform::Token, TEXT, s.as_str()),
            (Transform::Phone, TEXT, "+44 20 7946 0958"),
            (Transform::Bijection, ColumnType::plain(oid::UUID), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ] {
            prop_assert_ne!(run_text(&A, &t, ty, v), run_text(&B, &t, ty, v), "{}", t);
        }
    }

    #[test]
    fn integers_invert_exactly(v in any::<i64>()) {
        for (ty, bytes) in [
            (oid::INT8, v.to_be_bytes().to_vec()),
            (oid::INT4, (v as i32).to_be_bytes().to_vec()),
            (oid::INT2, (v as i16).to_be_bytes().to_vec()),
        ] {
            let ty = ColumnType::plain(ty);
            let out = run(&A, &Transform::Bijection, ty, Format::Binary, &bytes).unwrap();
            prop_assert_eq!(out.len(), bytes.len());
            let back = invert(&A, &Transform::Bijection, ty, Format::Binary, &out).unwrap();
            prop_assert_eq!(back, bytes);
        }
        let text = v.to_string();
        let out = run_text(&A, &Transform::Bijection, ColumnType::plain(oid::INT8), &text).unwrap();
        let n: i64 = out.parse().unwrap();
        prop_assert_eq!(n.signum(), v.signum());
    }

    #[test]
    fn tokens_invert_exactly_and_keep_shape(s in "[A-Za-z0-9 ./_-]{0,40}") {
        let out = run_text(&A, &Transform::Token, TEXT, &s).unwrap();
        prop_assert_eq!(shape(&out), shape(&s));
        prop_assert_eq!(invert(&A, &Transform::Token, TEXT, Format::Text, out.as_bytes()), Some(s.into_bytes()));
    }

    #[test]
    fn emails_are_valid_addresses(s in "\\PC{0,60}") {
        let out = run_text(&A, &Transform::Email, TEXT, &s).unwrap();
        prop_assert!(email_shape(&out), "{}", out);
    }

    #[test]
    fn partial_never_shows_more_than_half(s in "[0-9 -]{0,30}", keep in 0u16..10) {
        let out = run_text(&A, &Transform::Partial { keep }, TEXT, &s).unwrap();
        let shown = out.chars().filter(char::is_ascii_digit).count();
        let digits = s.chars().filter(char::is_ascii_digit).count();
        prop_assert!(shown <= usize::from(keep).min(digits / 2));
        let tail: String = s.chars().filter(char::is_ascii_digit).skip(digits - shown).collect();
        let kept: String = out.chars().filter(char::is_ascii_digit).collect();
        prop_assert_eq!(kept, tail);
        prop_assert_eq!(out.chars().count(), s.chars().count());
    }

    #[test]
    fn random_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..48)) {
        for ty in types() {
            for fmt in [Format::Text, Format::Binary] {
                for t in transforms() {
                    let mut out = Vec::new();
                    if let Ok(Outcome::Value) = A.apply(&t, ty, fmt, Some(&v), &mut out) {
                        assert_valid(ty, fmt, &out);
                    }
                }
            }
        }
    }
}

/// Stand-ins of `values` through [`Pseudonymizer::apply_many`], `None` for
/// NULL; `Err` if it failed.
fn run_many(
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    values: &[Option<Vec<u8>>],
) -> Result<Vec<Option<Vec<u8>>>, PseudonymError> {
    let values: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
    let (mut out, mut ranges) = (b"prefix".to_vec(), Vec::new());
    A.apply_many(t, ty, fmt, &values, &mut out, &mut ranges)?;
    assert_eq!(ranges.len(), values.len());
    Ok(ranges
        .into_iter()
        .map(|r| r.map(|r| out[r].to_vec()))
        .collect())
}

/// Each value's output (`None`: NULL or refused).
type Outputs = Vec<Option<Vec<u8>>>;

/// `values` through `t` all at once, and one `apply` each.
fn many_and_one_each(
    t: &Transform,
    ty: ColumnType,
    fmt: Format,
    values: Vec<Option<String>>,
) -> (Outputs, Outputs) {
    let values: Vec<Option<Vec<u8>>> = values
        .into_iter()
        .map(|v| v.map(String::into_bytes))
        .collect();
    let one_each = values
        .iter()
        .map(|v| v.as_deref().and_then(|v| run(&A, t, ty, fmt, v)))
        .collect();
    (run_many(t, ty, fmt, &values).unwrap(), one_each)
}

proptest! {
    /// Many values at once give what one `apply` each gives, whether laid
    /// out and permuted together (shapes of text) or not.
    #[test]
    fn many_values_as_one_each(
        values in proptest::collection::vec(
            proptest::option::weighted(0.9, "(\\+[1-9][0-9]? )?[0-9 ()a-zA-Z-]{0,30}|é[0-9]{3}"),
            0..40,
        ),
        which in 0..5usize,
        ty in prop_oneof![Just(TEXT), Just(ColumnType::varchar(12)), Just(ColumnType::bpchar(20))],
        fmt in prop_oneof![Just(Format::Text), Just(Format::Binary)],
    ) {
        let t = [Transform::Phone, Transform::Bijection, Transform::Token, Transform::Email, Transform::Redact][which].clone();
        let (many, one_each) = many_and_one_each(&t, ty, fmt, values);
        prop_assert_eq!(many, one_each);
    }
}

#[test]
fn many_values_fail_as_one_does() {
    let ty = ColumnType::plain(869);
    let values = [Some(b"\0\0".to_vec())];
    assert_eq!(
        run_many(&Transform::Phone, ty, Format::Binary, &values),
        Err(PseudonymError::BinaryUnsupported {
            oid: 869,
            transform: "phone"
        })
    );
}

proptest! {
    /// Dates and timestamps in text, their shifts' AES blocks encrypted
    /// together, give what one `apply` each gives: infinities, NULLs,
    /// values out of range or in no ISO form included.
    #[test]
    fn many_dates_as_one_each(
        values in proptest::collection::vec(
            proptest::option::weighted(0.9, "[0-9]{4}-(0[1-9]|1[0-2])-[0-3][0-9]( [0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?([+-][01][0-9])?)?( BC)?|-?infinity|[0-9]{1,7}-[0-9]{2}-[0-9]{2}|[0-9./ -]{0,12}"),
            0..40,
        ),
        which in 0..4usize,
        oid in prop_oneof![Just(oid::DATE), Just(oid::TIMESTAMP), Just(oid::TIMESTAMPTZ)],
    ) {
        let t = [
            Transform::DateShift { days: None },
            Transform::DateShift { days: Some(3) },
            Transform::Year,
            Transform::Month,
        ][which].clone();
        let ty = ColumnType::plain(oid);
        let (many, one_each) = many_and_one_each(&t, ty, Format::Text, values);
        prop_assert_eq!(many, one_each);
    }
}
