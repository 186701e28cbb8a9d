//! COPY TO STDOUT rewriting in text, CSV and binary: any stream, fed in
//! any chunks, rewrites or fails without panicking; the result does not
//! depend on how the stream was cut; a plan rewriting nothing passes the
//! stream through unchanged.
#![no_main]

use std::sync::{Arc, LazyLock};

use copyguard::enforce::copy::{CopyFormat, CopyRewriter, ForceQuote};
use copyguard::enforce::{ColumnPlan, PlannedColumn};
use copyguard::pseudonym::{oid, ColumnType, Format, Key, Pseudonymizer, Settings, Transform};
use libfuzzer_sys::fuzz_target;

static P: LazyLock<Arc<Pseudonymizer>> = LazyLock::new(|| {
    let key = Key::from_text("fuzz", &"5a".repeat(32)).expect("key");
    Arc::new(Pseudonymizer::new(&key, Settings::default()).expect("pseudonymizer"))
});

fn format(a: u8, b: u8) -> CopyFormat {
    let header = a & 4 != 0;
    match a % 3 {
        0 => CopyFormat::Text {
            delimiter: [b'\t', b',', b'|', b';'][usize::from(b % 4)],
            null: [&b"\\N"[..], b"", b"NULL"][usize::from(b / 4 % 3)].to_vec(),
            header,
        },
        1 => {
            let quote = [b'"', b'\''][usize::from(b / 4 % 2)];
            CopyFormat::Csv {
                delimiter: [b',', b';', b'\t', b'|'][usize::from(b % 4)],
                quote,
                escape: if b & 8 == 0 { quote } else { b'\\' },
                null: [&b""[..], b"NULL", b"\\N"][usize::from(b / 16 % 3)].to_vec(),
                header,
                force_quote: match b / 64 {
                    0 | 1 => ForceQuote::Off,
                    2 => ForceQuote::All,
                    _ => ForceQuote::Columns(vec![0]),
                },
            }
        }
        _ => CopyFormat::Binary,
    }
}

fn plan(n: usize, seed: u8) -> ColumnPlan {
    let transforms = [
        Transform::Bijection,
        Transform::Email,
        Transform::Token,
        Transform::Phone,
        Transform::DateShift { days: Some(30) },
        Transform::Year,
        Transform::Redact,
        Transform::Partial { keep: 1 },
        Transform::Constant { value: "a\tb\\c\n\"q\",d".into() },
    ];
    let types = [
        oid::TEXT,
        oid::INT8,
        oid::INT4,
        oid::DATE,
        oid::TIMESTAMP,
        oid::NUMERIC,
        oid::UUID,
        oid::VARCHAR,
        oid::JSON,
    ];
    ColumnPlan::new(
        (0..n)
            .map(|i| {
                let k = i * 7 + usize::from(seed);
                (k % 4 != 0).then(|| PlannedColumn {
                    transform: transforms[k % transforms.len()].clone(),
                    ty: ColumnType::plain(types[(k / 4) % types.len()]),
                    format: Format::Text,
                })
            })
            .collect(),
    )
}

fn rewrite(
    plan: &ColumnPlan,
    format: &CopyFormat,
    framed: bool,
    input: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, String> {
    let mut r = CopyRewriter::new(plan.clone(), format.clone(), Arc::clone(&P));
    if framed {
        r = r.framed();
    }
    let mut out = Vec::new();
    for part in input.chunks(chunk.max(1)) {
        r.feed(part, &mut out).map_err(|e| e.to_string())?;
    }
    r.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, d, input @ ..] = data else {
        return;
    };
    let format = format(*a, *b);
    let framed = a & 8 != 0;
    let columns = 1 + usize::from(c % 6);
    let plan = plan(columns, c / 6);
    let chunk = 1 + usize::from(*d);

    let whole = rewrite(&plan, &format, framed, input, input.len());
    let cut = rewrite(&plan, &format, framed, input, chunk);
    match (&whole, &cut) {
        (Ok(w), Ok(c)) => assert_eq!(w, c, "output depends on the chunking"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole: {whole:?}, in chunks of {chunk}: {cut:?}"),
    }

    if !framed {
        let passthrough = ColumnPlan::new(vec![None; columns]);
        if let Ok(out) = rewrite(&passthrough, &format, false, input, chunk) {
            assert_eq!(out, input, "a plan rewriting nothing changed the stream");
        }
    }
});
