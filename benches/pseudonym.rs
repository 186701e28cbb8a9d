//! Pseudonymization costs.
//!
//! - `transform/*`: 64 values through `Pseudonymizer::apply`, per
//!   transform, type and format (elements/s; divide to get ns per value).
//! - `many/*`: the same 64 values through one `Pseudonymizer::apply_many`
//!   (shape permutations of text run their FF1 encryptions side by side).
//! - `datarow/*`: `rewrite_data_row` over realistic 8-column rows with 4
//!   classified columns (id int8, email, name, birth date), text and
//!   binary formats, and the same rows with an empty plan (bytes/s);
//!   `*_grouped`: `DataRows` over groups of 64 rows, as the proxy rewrites
//!   the rows it has already read.
//! - `copy/*`: `CopyRewriter` over the same rows as a COPY TO STDOUT
//!   stream in text, CSV and binary, fed in one piece as the proxy feeds a
//!   batch of CopyData payloads (bytes/s); `copy/text_people_framed`: the
//!   rows of `copy_compare` (email, name, birth date and phone
//!   pseudonymized), framed one message per row as the proxy writes them.
//!
//! - `setup/*`: deriving the subkeys, and building the integer tables.
//!
//! Run with `cargo bench --bench pseudonym`, or quicker:
//! `cargo bench --bench pseudonym -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use copyguard::enforce::copy::{CopyFormat, CopyRewriter};
use copyguard::enforce::rewrite::{rewrite_data_row, ColumnPlan, DataRows, PlannedColumn};
use copyguard::enforce::GROUP_ROWS;
use copyguard::pseudonym::{
    oid, ColumnType, Format, Key, NamePart, Pseudonymizer, Settings, Transform,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn pseudonymizer() -> Pseudonymizer {
    let key = Key::from_text("bench", &"ab".repeat(32)).expect("valid key");
    Pseudonymizer::new(&key, Settings::default()).expect("valid settings")
}

/// (name, transform, type, format, values)
type Case = (&'static str, Transform, ColumnType, Format, Vec<Vec<u8>>);

fn cases() -> Vec<Case> {
    let ids_text: Vec<Vec<u8>> = (0..64)
        .map(|i| (100_000 + i * 7919).to_string().into_bytes())
        .collect();
    let ids_bin: Vec<Vec<u8>> = (0..64i64)
        .map(|i| (100_000 + i * 7919).to_be_bytes().to_vec())
        .collect();
    let big_ids: Vec<Vec<u8>> = (0..64i64)
        .map(|i| (5_000_000_000 + i * 7919).to_be_bytes().to_vec())
        .collect();
    let mid_ids: Vec<Vec<u8>> = (0..64i32)
        .map(|i| (10_000_000 + i * 7919).to_be_bytes().to_vec())
        .collect();
    let small_ids: Vec<Vec<u8>> = (1..65i32).map(|i| i.to_be_bytes().to_vec()).collect();
    let emails: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("user{i}.name@company{i}.example.com").into_bytes())
        .collect();
    let names: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("Person{i} Lastname{i}").into_bytes())
        .collect();
    let phones: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("+44 20 7946 {:04}", i * 37).into_bytes())
        .collect();
    let dates_text: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("19{:02}-0{}-1{}", 50 + i % 50, 1 + i % 9, i % 10).into_bytes())
        .collect();
    let dates_bin: Vec<Vec<u8>> = (0..64i32)
        .map(|i| (-10_000 + i * 97).to_be_bytes().to_vec())
        .collect();
    let uuids: Vec<Vec<u8>> = (0..64u128)
        .map(|i| (i * 0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec())
        .collect();
    let ids_nat: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("{:03}-{:02}-{:04}", 100 + i, i % 100, 1000 + i * 13).into_bytes())
        .collect();
    let codes: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("{:04}", i * 151 % 10_000).into_bytes())
        .collect();
    let usernames: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("jdoe{i}_dev").into_bytes())
        .collect();
    let cards: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("4111 1111 1111 {:04}", i * 17).into_bytes())
        .collect();
    let notes: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            format!("Called customer {i} about the late delivery, will call back tomorrow")
                .into_bytes()
        })
        .collect();
    let text = ColumnType::plain(oid::TEXT);
    vec![
        (
            "int8_bijection_text",
            Transform::Bijection,
            ColumnType::plain(oid::INT8),
            Format::Text,
            ids_text,
        ),
        (
            "int8_bijection_binary",
            Transform::Bijection,
            ColumnType::plain(oid::INT8),
            Format::Binary,
            ids_bin,
        ),
        (
            "int4_small_ids_binary",
            Transform::Bijection,
            ColumnType::plain(oid::INT4),
            Format::Binary,
            small_ids,
        ),
        (
            "int4_ff1_binary",
            Transform::Bijection,
            ColumnType::plain(oid::INT4),
            Format::Binary,
            mid_ids,
        ),
        (
            "int8_ff1_binary",
            Transform::Bijection,
            ColumnType::plain(oid::INT8),
            Format::Binary,
            big_ids,
        ),
        (
            "uuid_binary",
            Transform::Bijection,
            ColumnType::plain(oid::UUID),
            Format::Binary,
            uuids,
        ),
        (
            "email",
            Transform::Email,
            ColumnType::varchar(255),
            Format::Text,
            emails,
        ),
        (
            "person_name",
            Transform::PersonName {
                part: NamePart::Auto,
            },
            text,
            Format::Text,
            names,
        ),
        ("phone", Transform::Phone, text, Format::Text, phones),
        (
            "date_shift_text",
            Transform::DateShift { days: None },
            ColumnType::plain(oid::DATE),
            Format::Text,
            dates_text.clone(),
        ),
        (
            "date_shift_binary",
            Transform::DateShift { days: None },
            ColumnType::plain(oid::DATE),
            Format::Binary,
            dates_bin,
        ),
        (
            "year_text",
            Transform::Year,
            ColumnType::plain(oid::DATE),
            Format::Text,
            dates_text,
        ),
        (
            "token_national_id",
            Transform::Token,
            text,
            Format::Text,
            ids_nat,
        ),
        (
            "token_4_digit_code",
            Transform::Token,
            text,
            Format::Text,
            codes,
        ),
        (
            "bijection_username",
            Transform::Bijection,
            text,
            Format::Text,
            usernames,
        ),
        (
            "partial_card",
            Transform::Partial { keep: 4 },
            text,
            Format::Text,
            cards,
        ),
        (
            "replace_free_text",
            Transform::Replace,
            text,
            Format::Text,
            notes.clone(),
        ),
        ("address", Transform::Address, text, Format::Text, notes),
    ]
}

fn transforms(c: &mut Criterion) {
    let p = pseudonymizer();
    let mut group = c.benchmark_group("transform");
    for (name, t, ty, fmt, values) in cases() {
        group.throughput(Throughput::Elements(values.len() as u64));
        let mut out = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for v in &values {
                    black_box(
                        p.apply(&t, ty, fmt, Some(black_box(v)), &mut out)
                            .expect("supported"),
                    );
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("many");
    for (name, t, ty, fmt, values) in cases() {
        group.throughput(Throughput::Elements(values.len() as u64));
        let values: Vec<Option<&[u8]>> = values.iter().map(|v| Some(&v[..])).collect();
        let (mut out, mut stand_ins) = (Vec::with_capacity(4096), Vec::new());
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                stand_ins.clear();
                p.apply_many(&t, ty, fmt, black_box(&values), &mut out, &mut stand_ins)
                    .expect("supported");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// Rows in the DataRow and COPY benches.
const ROWS: usize = 1000;

/// The 8 columns: (type, text value of row i, transform if classified).
fn columns() -> Vec<(ColumnType, Option<Transform>)> {
    vec![
        (ColumnType::plain(oid::INT8), Some(Transform::Bijection)),
        (ColumnType::varchar(255), Some(Transform::Email)),
        (
            ColumnType::plain(oid::TEXT),
            Some(Transform::PersonName {
                part: NamePart::Auto,
            }),
        ),
        (
            ColumnType::plain(oid::DATE),
            Some(Transform::DateShift { days: None }),
        ),
        (ColumnType::plain(oid::TIMESTAMPTZ), None),
        (ColumnType::plain(oid::TEXT), None),
        (ColumnType::plain(oid::INT4), None),
        (ColumnType::plain(oid::TEXT), None),
    ]
}

fn text_values(i: usize) -> Vec<String> {
    vec![
        (500_000 + i).to_string(),
        format!("customer.{i}@mail{}.example.com", i % 97),
        format!("Firstname{} Lastname{}", i % 300, i % 1000),
        format!("19{:02}-{:02}-{:02}", 40 + i % 60, 1 + i % 12, 1 + i % 28),
        format!(
            "2024-{:02}-{:02} 10:23:45.{:06}+00",
            1 + i % 12,
            1 + i % 28,
            i
        ),
        ["active", "suspended", "closed"][i % 3].to_string(),
        (i * 37 % 10_000).to_string(),
        format!("Account note {i}: prefers email contact, VIP"),
    ]
}

fn binary_values(i: usize) -> Vec<Vec<u8>> {
    let t = text_values(i);
    vec![
        ((500_000 + i) as i64).to_be_bytes().to_vec(),
        t[1].clone().into_bytes(),
        t[2].clone().into_bytes(),
        (-10_000 + (i as i32 * 13) % 20_000).to_be_bytes().to_vec(),
        (757_000_000_000_000i64 + i as i64).to_be_bytes().to_vec(),
        t[5].clone().into_bytes(),
        ((i * 37 % 10_000) as i32).to_be_bytes().to_vec(),
        t[7].clone().into_bytes(),
    ]
}

fn plan(format: Format, classified: bool) -> ColumnPlan {
    ColumnPlan::new(
        columns()
            .into_iter()
            .map(|(ty, t)| {
                t.filter(|_| classified).map(|transform| PlannedColumn {
                    transform,
                    ty,
                    format,
                })
            })
            .collect(),
    )
}

fn data_row(values: &[Vec<u8>]) -> Vec<u8> {
    let mut f = vec![b'D', 0, 0, 0, 0];
    f.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for v in values {
        f.extend_from_slice(&(v.len() as i32).to_be_bytes());
        f.extend_from_slice(v);
    }
    let len = (f.len() - 1) as i32;
    f[1..5].copy_from_slice(&len.to_be_bytes());
    f
}

fn datarows(c: &mut Criterion) {
    let p = pseudonymizer();
    let mut group = c.benchmark_group("datarow");
    let text: Vec<Vec<u8>> = (0..ROWS)
        .map(|i| {
            data_row(
                &text_values(i)
                    .into_iter()
                    .map(String::into_bytes)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let binary: Vec<Vec<u8>> = (0..ROWS).map(|i| data_row(&binary_values(i))).collect();
    for (name, rows, plan) in [
        ("text_4_of_8", &text, plan(Format::Text, true)),
        ("binary_4_of_8", &binary, plan(Format::Binary, true)),
        ("text_passthrough", &text, plan(Format::Text, false)),
    ] {
        let bytes: usize = rows.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut out = Vec::with_capacity(bytes * 2);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for r in rows {
                    rewrite_data_row(&plan, &p, r, &mut out).expect("valid row");
                }
                black_box(out.len())
            })
        });
        let frames: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        let mut data_rows = DataRows::default();
        group.bench_function(format!("{name}_grouped"), |b| {
            b.iter(|| {
                out.clear();
                for group in frames.chunks(GROUP_ROWS) {
                    data_rows
                        .rewrite(&plan, &p, group, &mut out)
                        .expect("valid rows");
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn copy_stream(format: &CopyFormat) -> Vec<Vec<u8>> {
    let mut chunks = Vec::with_capacity(ROWS + 2);
    match format {
        CopyFormat::Binary => {
            let mut header = b"PGCOPY\n\xff\r\n\0".to_vec();
            header.extend_from_slice(&[0; 8]);
            for i in 0..ROWS {
                let mut row = if i == 0 { header.clone() } else { Vec::new() };
                let values = binary_values(i);
                row.extend_from_slice(&(values.len() as i16).to_be_bytes());
                for v in values {
                    row.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    row.extend_from_slice(&v);
                }
                chunks.push(row);
            }
            chunks.push((-1i16).to_be_bytes().to_vec());
        }
        CopyFormat::Csv { .. } => {
            for i in 0..ROWS {
                let v = text_values(i);
                let quoted: Vec<String> = v
                    .iter()
                    .map(|f| {
                        if f.contains(',') {
                            format!("\"{f}\"")
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                chunks.push(format!("{}\n", quoted.join(",")).into_bytes());
            }
        }
        CopyFormat::Text { .. } => {
            for i in 0..ROWS {
                chunks.push(format!("{}\n", text_values(i).join("\t")).into_bytes());
            }
        }
    }
    chunks
}

fn copies(c: &mut Criterion) {
    let p = Arc::new(pseudonymizer());
    let mut group = c.benchmark_group("copy");
    for (name, format, classified) in [
        ("text_4_of_8", CopyFormat::text(), true),
        ("csv_4_of_8", CopyFormat::csv(), true),
        ("binary_4_of_8", CopyFormat::Binary, true),
        ("text_passthrough", CopyFormat::text(), false),
    ] {
        let stream = copy_stream(&format).concat();
        let bytes = stream.len();
        let plan = plan(
            if format == CopyFormat::Binary {
                Format::Binary
            } else {
                Format::Text
            },
            classified,
        );
        group.throughput(Throughput::Bytes(bytes as u64));
        let mut out = Vec::with_capacity(bytes * 2);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut r = CopyRewriter::new(plan.clone(), format.clone(), Arc::clone(&p));
                r.feed(&stream, &mut out).expect("valid stream");
                r.finish().expect("complete stream");
                black_box(out.len())
            })
        });
    }
    // The rows of `copy_compare`: email, name, birth date and phone
    // pseudonymized, framed one CopyData message per row as the proxy
    // writes them, in each format.
    for (name, format, fmt, stream) in [
        (
            "text_people_framed",
            CopyFormat::text(),
            Format::Text,
            people(b'\t'),
        ),
        (
            "csv_people_framed",
            CopyFormat::csv(),
            Format::Text,
            people(b','),
        ),
        (
            "binary_people_framed",
            CopyFormat::Binary,
            Format::Binary,
            people_binary(),
        ),
    ] {
        let plan = people_plan(fmt);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        let mut out = Vec::with_capacity(stream.len() * 2);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut r =
                    CopyRewriter::new(plan.clone(), format.clone(), Arc::clone(&p)).framed();
                r.feed(&stream, &mut out).expect("valid stream");
                r.finish().expect("complete stream");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// Row `g` of `copy_compare`'s people table, as text fields.
fn person(g: usize) -> [String; 8] {
    let name = ["Ada", "Grace", "Alan", "Edsger", "Barbara"][g % 5];
    [
        g.to_string(),
        format!("user{g}@mail.example.com"),
        format!("{name} Lovelace{}", g % 997),
        format!("19{:02}-{:02}-{:02}", 50 + g % 50, 1 + g % 12, 1 + g % 28),
        format!("+33-6-{:08}", g * 7919 % 100_000_000),
        "FR".to_string(),
        (g * 7 % 1000).to_string(),
        format!("order note {}", g % 313),
    ]
}

/// The people rows in text or CSV (no field needs quotes or escapes).
fn people(delimiter: u8) -> Vec<u8> {
    (1..=ROWS)
        .flat_map(|g| {
            let mut line = person(g)
                .join(&(delimiter as char).to_string())
                .into_bytes();
            line.push(b'\n');
            line
        })
        .collect()
}

/// The people rows in binary COPY, header and trailer included.
fn people_binary() -> Vec<u8> {
    let mut s = b"PGCOPY\n\xff\r\n\0".to_vec();
    s.extend_from_slice(&[0; 8]);
    for g in 1..=ROWS {
        s.extend_from_slice(&8i16.to_be_bytes());
        for (i, f) in person(g).into_iter().enumerate() {
            let v = match i {
                0 => (g as i64).to_be_bytes().to_vec(),
                3 => ((g as i32 * 37) % 20_000 - 10_000).to_be_bytes().to_vec(),
                6 => ((g * 7 % 1000) as i32).to_be_bytes().to_vec(),
                _ => f.into_bytes(),
            };
            s.extend_from_slice(&(v.len() as i32).to_be_bytes());
            s.extend_from_slice(&v);
        }
    }
    s.extend_from_slice(&(-1i16).to_be_bytes());
    s
}

/// `copy_compare`'s plan: email, name, birth date and phone pseudonymized.
fn people_plan(format: Format) -> ColumnPlan {
    let column = |transform, oid| {
        Some(PlannedColumn {
            transform,
            ty: ColumnType::plain(oid),
            format,
        })
    };
    ColumnPlan::new(vec![
        None,
        column(Transform::Email, oid::TEXT),
        column(
            Transform::PersonName {
                part: NamePart::Auto,
            },
            oid::TEXT,
        ),
        column(Transform::DateShift { days: None }, oid::DATE),
        column(Transform::Phone, oid::TEXT),
        None,
        None,
        None,
    ])
}

/// Key setup and the integer tables' first build.
fn setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("setup");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("new", |b| b.iter(|| black_box(pseudonymizer())));
    group.bench_function("new_and_warm_up", |b| {
        b.iter(|| {
            let p = pseudonymizer();
            p.warm_up();
            black_box(p)
        })
    });
    group.finish();
}

criterion_group!(benches, transforms, datarows, copies, setup);
criterion_main!(benches);
