//! Tests of the COPY rewriter in every format.

use super::text::{text_escape, text_field_end, text_unescape};
use super::*;
use crate::enforce::rewrite::PlannedColumn;
use crate::pseudonym::{oid, ColumnType, Key, Outcome, Settings, Transform};
use proptest::prelude::*;
use std::sync::LazyLock;

static P: LazyLock<Arc<Pseudonymizer>> = LazyLock::new(|| {
    let key = Key::from_text("t", &"22".repeat(32)).unwrap();
    Arc::new(Pseudonymizer::new(&key, Settings::default()).unwrap())
});

fn col(t: Transform, oid: u32) -> Option<PlannedColumn> {
    Some(PlannedColumn {
        transform: t,
        ty: ColumnType::plain(oid),
        format: Format::Text,
    })
}

fn constant(v: &str) -> Transform {
    Transform::Constant { value: v.into() }
}

/// id (bijection), kept text, a constant needing escapes, an email.
fn plan() -> ColumnPlan {
    ColumnPlan::new(vec![
        col(Transform::Bijection, oid::INT8),
        None,
        col(constant("a\tb\\c\n\"q\",d"), oid::TEXT),
        col(Transform::Email, oid::TEXT),
    ])
}

fn run(format: &CopyFormat, plan: &ColumnPlan, chunks: &[&[u8]]) -> Result<Vec<u8>, RewriteError> {
    let mut r = CopyRewriter::new(plan.clone(), format.clone(), Arc::clone(&P));
    let mut out = Vec::new();
    for c in chunks {
        r.feed(c, &mut out)?;
    }
    r.finish()?;
    Ok(out)
}

/// The same output whether the stream comes whole, byte by byte, or
/// split in two at every position.
fn assert_split_invariant(format: &CopyFormat, plan: &ColumnPlan, input: &[u8]) -> Vec<u8> {
    let whole = run(format, plan, &[input]).unwrap();
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(format, plan, &bytes).unwrap(), whole);
    for i in 0..=input.len() {
        assert_eq!(
            run(format, plan, &[&input[..i], &input[i..]]).unwrap(),
            whole,
            "split at {i}"
        );
    }
    whole
}

fn text_fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

#[test]
fn text_rows() {
    let input = b"id\tnote\tx\temail\n42\tkeep\\tthis\tsecret\tada@x.org\n\\N\t\\N\t\\N\t\\N\n7\t\xc3\xa9\tz\tbob\\\\@x.org\n";
    let format = CopyFormat::Text {
        delimiter: b'\t',
        null: b"\\N".to_vec(),
        header: true,
    };
    let out = assert_split_invariant(&format, &plan(), input);
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id\tnote\tx\temail");
    let row = text_fields(lines[1]);
    assert_ne!(row[0], "42");
    assert!(row[0].parse::<i64>().unwrap() > 0);
    assert_eq!(row[1], "keep\\tthis");
    assert_eq!(row[2], "a\\tb\\\\c\\n\"q\",d");
    assert!(row[3].ends_with("@example.invalid"));
    assert_eq!(lines[2], "\\N\t\\N\t\\N\t\\N");
    assert_eq!(text_fields(lines[3])[1], "é");
    assert_eq!(lines.len(), 4);
}

#[test]
fn text_custom_delimiter_and_null() {
    let format = CopyFormat::Text {
        delimiter: b'|',
        null: b"NULL".to_vec(),
        header: false,
    };
    let plan = ColumnPlan::new(vec![None, col(constant("x|y"), oid::TEXT)]);
    let out = run(&format, &plan, &[b"a\\|b|c\nNULL|NULL\n"]).unwrap();
    assert_eq!(out, b"a\\|b|x\\|y\nNULL|NULL\n");
}

#[test]
fn csv_rows() {
    let input =
        b"id,note,x,email\n42,\"multi\nline, \"\"quoted\"\"\",s,ada@x.org\n,,,\n7,\"\",\"\",\"\"\n";
    let mut format = CopyFormat::csv();
    if let CopyFormat::Csv { header, .. } = &mut format {
        *header = true;
    }
    let out = assert_split_invariant(&format, &plan(), input);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("id,note,x,email\n"));
    assert!(
        out.contains(",\"multi\nline, \"\"quoted\"\"\",\"a\tb\\c\n\"\"q\"\",d\","),
        "{out}"
    );
    assert!(out.contains("\n,,,\n"), "{out}");
    let (_, last) = out.rsplit_once("\n,,,\n").unwrap();
    assert!(last.contains(",\"\",\"a\tb\\c\n\"\"q\"\",d\","), "{last}");
    assert!(last.ends_with("@example.invalid\n"), "{last}");
}

#[test]
fn csv_options() {
    let format = CopyFormat::Csv {
        delimiter: b';',
        quote: b'\'',
        escape: b'\\',
        null: b"NULL".to_vec(),
        header: false,
        force_quote: ForceQuote::Columns(vec![1]),
    };
    let plan = ColumnPlan::new(vec![
        None,
        col(constant("it's"), oid::TEXT),
        col(constant("NULL"), oid::TEXT),
    ]);
    let out = run(&format, &plan, &[b"'a\\'b;c';x;y\nNULL;NULL;NULL\n"]).unwrap();
    assert_eq!(out, b"'a\\'b;c';'it\\'s';'NULL'\nNULL;NULL;NULL\n");
    let split: Vec<&[u8]> = b"'a\\'b\nc';x;y\n".chunks(1).collect();
    assert_eq!(
        run(&format, &plan, &split).unwrap(),
        b"'a\\'b\nc';'it\\'s';'NULL'\n"
    );
}

fn binary_stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut s = BINARY_SIGNATURE.to_vec();
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&3u32.to_be_bytes());
    s.extend_from_slice(b"ext");
    for row in rows {
        s.extend_from_slice(&(row.len() as i16).to_be_bytes());
        for v in row {
            match v {
                None => s.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    s.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    s.extend_from_slice(b);
                }
            }
        }
    }
    s.extend_from_slice(&(-1i16).to_be_bytes());
    s
}

#[test]
fn binary_rows() {
    let plan = ColumnPlan::new(vec![
        col(Transform::Bijection, oid::INT8),
        None,
        col(Transform::Redact, oid::TEXT),
    ]);
    let input = binary_stream(&[
        vec![
            Some(42i64.to_be_bytes().to_vec()),
            Some(b"keep".to_vec()),
            Some(b"secret".to_vec()),
        ],
        vec![None, None, None],
    ]);
    let out = assert_split_invariant(&CopyFormat::Binary, &plan, &input);
    let expected_id = {
        let mut v = Vec::new();
        P.apply(
            &Transform::Bijection,
            ColumnType::plain(oid::INT8),
            Format::Binary,
            Some(&42i64.to_be_bytes()),
            &mut v,
        )
        .unwrap();
        v
    };
    let expected = binary_stream(&[
        vec![Some(expected_id), Some(b"keep".to_vec()), None],
        vec![None, None, None],
    ]);
    assert_eq!(out, expected);
}

/// The stand-in `apply` gives one value (text format), `None` for NULL.
fn one(t: &Transform, v: &str) -> Option<String> {
    let mut out = Vec::new();
    let ty = ColumnType::plain(oid::TEXT);
    match P
        .apply(t, ty, Format::Text, Some(v.as_bytes()), &mut out)
        .unwrap()
    {
        Outcome::Value => Some(String::from_utf8(out).unwrap()),
        Outcome::Null => None,
    }
}

/// Streams of more rows than a group: every row gets what `apply`
/// gives its values one by one, in text, CSV and binary; a bad row
/// stops the stream after exactly the rows before it.
#[test]
fn groups_give_what_each_value_gets() {
    let plan = ColumnPlan::new(vec![
        col(Transform::Phone, oid::TEXT),
        None,
        col(Transform::Email, oid::TEXT),
    ]);
    let rows: Vec<[String; 3]> = (0..150)
        .map(|i| {
            [
                format!("+44 20 7946 {:04}", i * 7),
                format!("kept {i}"),
                format!("user{i}@mail.example.com"),
            ]
        })
        .collect();
    let expected: Vec<[String; 3]> = rows
        .iter()
        .map(|[phone, kept, email]| {
            [
                one(&Transform::Phone, phone).unwrap(),
                kept.clone(),
                one(&Transform::Email, email).unwrap(),
            ]
        })
        .collect();
    let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
    let csv: String = rows.iter().map(|r| r.join(",") + "\n").collect();
    let want_text: String = expected.iter().map(|r| r.join("\t") + "\n").collect();
    let want_csv: String = expected.iter().map(|r| r.join(",") + "\n").collect();
    for (format, input, want, delim) in [
        (CopyFormat::text(), &text, &want_text, "\t"),
        (CopyFormat::csv(), &csv, &want_csv, ","),
    ] {
        let out = run(&format, &plan, &[input.as_bytes()]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), *want);
        let mut r = CopyRewriter::new(plan.clone(), format, Arc::clone(&P));
        let mut out = Vec::new();
        let bad = input.replacen("kept 100", &format!("kept{delim}100"), 1);
        assert!(r.feed(bad.as_bytes(), &mut out).is_err());
        let kept: usize = want.lines().take(100).map(|l| l.len() + 1).sum();
        assert_eq!(out, want.as_bytes()[..kept]);
    }
    let binary = |rows: &[[String; 3]]| {
        let rows: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .map(|r| r.iter().map(|v| Some(v.clone().into_bytes())).collect())
            .collect();
        binary_stream(&rows)
    };
    let out = run(&CopyFormat::Binary, &plan, &[&binary(&rows)]).unwrap();
    assert_eq!(out, binary(&expected));
}

/// The messages of framed output, each checked for its tag and length.
fn messages(mut framed: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !framed.is_empty() {
        assert_eq!(framed[0], b'd');
        let len = u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize;
        out.push(&framed[5..1 + len]);
        framed = &framed[1 + len..];
    }
    out
}

/// Framed, the output is one CopyData message per row as PostgreSQL
/// sends them: the header line alone, the binary file header with the
/// first row, the trailer alone (with the header when there is no row).
#[test]
fn framed_output_is_one_message_per_row() {
    let plan = ColumnPlan::new(vec![col(Transform::Phone, oid::TEXT), None]);
    let mut csv = CopyFormat::csv();
    if let CopyFormat::Csv { header, .. } = &mut csv {
        *header = true;
    }
    let input = "phone,note\n+44 20 7946 0001,a\n+44 20 7946 0002,b\n";
    let framed = CopyRewriter::new(plan.clone(), csv.clone(), Arc::clone(&P)).framed();
    let mut out = Vec::new();
    let mut rw = framed;
    rw.feed(input.as_bytes(), &mut out).unwrap();
    let bare = run(&csv, &plan, &[input.as_bytes()]).unwrap();
    let lines: Vec<&[u8]> = bare.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(messages(&out), lines);

    let rows = |n: usize| -> Vec<Vec<Option<Vec<u8>>>> {
        (0..n)
            .map(|i| vec![Some(format!("+44 20 7946 {i:04}").into_bytes()), None])
            .collect()
    };
    for n in [0, 3] {
        let stream = binary_stream(&rows(n));
        let mut rw = CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P)).framed();
        let mut out = Vec::new();
        rw.feed(&stream, &mut out).unwrap();
        let bare = run(&CopyFormat::Binary, &plan, &[&stream]).unwrap();
        let got = messages(&out);
        assert_eq!(got.concat(), bare);
        assert_eq!(got.len(), n.max(1) + usize::from(n > 0), "{n} rows");
        assert!(got[0].starts_with(BINARY_SIGNATURE));
        let trailer = &(-1i16).to_be_bytes()[..];
        assert!(
            got.last().unwrap().ends_with(trailer),
            "the trailer ends it"
        );
        assert_eq!(got.last().unwrap().len() == 2, n > 0, "alone after rows");
    }
}

/// A failing binary value stops the stream after exactly the rows
/// before it, written once, whether its group was full or ended by the
/// trailer.
#[test]
fn binary_rows_before_a_failure_are_written_once() {
    let plan = ColumnPlan::new(vec![Some(PlannedColumn {
        transform: Transform::Phone,
        ty: ColumnType::plain(600),
        format: Format::Binary,
    })]);
    for (rows, bad) in [(64, 5), (6, 3)] {
        let values: Vec<Vec<Option<Vec<u8>>>> = (0..rows)
            .map(|i| vec![(i >= bad).then(|| vec![1u8; 16])])
            .collect();
        let mut rw = CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P));
        let mut out = Vec::new();
        assert!(rw.feed(&binary_stream(&values), &mut out).is_err());
        let header = 19 + 3;
        let null_row = 2 + 4;
        assert_eq!(
            out.len(),
            header + bad * null_row,
            "{rows} rows, failing at {bad}"
        );
    }
}

#[test]
fn errors() {
    let text = CopyFormat::text();
    assert_eq!(
        run(&text, &plan(), &[b"1\t2\t3\t4\n5\t6"]),
        Err(RewriteError::Truncated)
    );
    assert!(matches!(
        run(&text, &plan(), &[b"1\t2\n"]),
        Err(RewriteError::ColumnCount {
            got: 2,
            expected: 4
        })
    ));
    assert!(matches!(
        run(&text, &plan(), &[b"1\t2\t3\t4\t5\n"]),
        Err(RewriteError::ColumnCount {
            got: 5,
            expected: 4
        })
    ));
    assert!(run(&CopyFormat::csv(), &plan(), &[b"1,\"open,3,4\n"]).is_err());
    assert!(run(&CopyFormat::Binary, &plan(), &[b"PGCOPZ"]).is_err());
    let no_trailer = binary_stream(&[]);
    assert_eq!(
        run(
            &CopyFormat::Binary,
            &plan(),
            &[&no_trailer[..no_trailer.len() - 2]]
        ),
        Err(RewriteError::Truncated)
    );
    let mut after = binary_stream(&[]);
    after.push(0);
    assert!(run(&CopyFormat::Binary, &plan(), &[&after]).is_err());
    let unknown = ColumnPlan::new(vec![Some(PlannedColumn {
        transform: Transform::Email,
        ty: ColumnType::plain(600),
        format: Format::Binary,
    })]);
    let one = binary_stream(&[vec![Some(b"x".to_vec())]]);
    assert!(matches!(
        run(&CopyFormat::Binary, &unknown, &[&one]),
        Err(RewriteError::Pseudonym(_))
    ));
}

#[test]
fn passthrough_copies_bytes() {
    let plan = ColumnPlan::new(vec![None, None]);
    let input = b"a\tb\nc\td\n";
    assert_eq!(run(&CopyFormat::text(), &plan, &[input]).unwrap(), input);
}

/// `input` cut at the positions `cuts` pick.
fn split_at<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for c in at {
        chunks.push(&input[prev..c]);
        prev = c;
    }
    chunks.push(&input[prev..]);
    chunks
}

proptest! {
    #[test]
    fn plain_delimiters_are_those_before_a_special_byte(
        v in prop_oneof![proptest::collection::vec(any::<u8>(), 0..80), proptest::collection::vec(prop_oneof![Just(b'\t'), Just(b'a'), Just(0x89u8), Just(b'\\')], 0..80)],
        delim in prop_oneof![Just(b'\t'), any::<u8>()],
    ) {
        let mut got = vec![99];
        let plain = plain_delimiters(&v, delim, b'\\', &mut got);
        // Appended after what the vector held.
        prop_assert_eq!(got.remove(0), 99);
        let first = v.iter().position(|&c| c == b'\\');
        prop_assert_eq!(plain, first.is_none());
        let want: Vec<usize> = (0..first.unwrap_or(v.len())).filter(|&i| v[i] == delim).collect();
        if plain {
            prop_assert_eq!(got, want);
        } else {
            prop_assert!(want.starts_with(&got), "{:?} begins {:?}", want, got);
        }
    }

    #[test]
    fn find2_finds_the_first(hay in proptest::collection::vec(any::<u8>(), 0..80), a in any::<u8>(), b in any::<u8>()) {
        prop_assert_eq!(find2(&hay, a, b), hay.iter().position(|&c| c == a || c == b));
    }

    #[test]
    fn has_byte_is_any(
        v in prop_oneof![proptest::collection::vec(any::<u8>(), 0..80), proptest::collection::vec(b'0'..=b'z', 0..80)],
        below in prop_oneof![Just(0u8), Just(0x20), 0u8..=128],
        set in prop_oneof![any::<[u8; 4]>(), Just([b',', b'"', b'\n', b'\r'])],
    ) {
        prop_assert_eq!(has_byte(&v, below, set), v.iter().any(|&c| c < below || set.contains(&c)));
        let two = [set[0], set[1]];
        prop_assert_eq!(has_byte(&v, below, two), v.iter().any(|&c| c < below || two.contains(&c)));
    }

    #[test]
    fn text_escapes_round_trip(v in proptest::collection::vec(any::<u8>(), 0..40), delim in prop_oneof![Just(b'\t'), Just(b','), Just(b'|')]) {
        let mut escaped = Vec::new();
        text_escape(&v, delim, &mut escaped);
        prop_assert!(!escaped.contains(&b'\n'));
        prop_assert_eq!(text_field_end(&escaped, 0, delim), escaped.len());
        let mut back = Vec::new();
        text_unescape(&escaped, &mut back);
        prop_assert_eq!(back, v);
    }

    #[test]
    fn csv_quoting_round_trips(v in proptest::collection::vec(any::<u8>(), 0..40), escape in prop_oneof![Just(b'"'), Just(b'\\')]) {
        let force = ForceQuote::Off;
        let opts = Csv { delimiter: b',', quote: b'"', escape, null: b"", force_quote: &force };
        let mut out = Vec::new();
        if opts.needs_quotes(&v, false, false, false) {
            opts.write_quoted(&v, &mut out);
        } else {
            out.extend_from_slice(&v);
        }
        let (end, quoted) = opts.field_end(&out, 0).unwrap();
        prop_assert_eq!(end, out.len());
        prop_assert!(quoted || (!v.is_empty() && out == v));
        let mut back = Vec::new();
        if quoted {
            opts.unquote(&out, &mut back);
        } else {
            back.extend_from_slice(&out);
        }
        prop_assert_eq!(back, v);
    }

    #[test]
    fn csv_rows_split_anywhere(
        rows in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)), 1..6),
        escape in prop_oneof![Just(b'"'), Just(b'\\')],
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let format = CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape,
            null: Vec::new(),
            header: false,
            force_quote: ForceQuote::Off,
        };
        let force = ForceQuote::Off;
        let opts = Csv { delimiter: b',', quote: b'"', escape, null: b"", force_quote: &force };
        let field = |v: &[u8], out: &mut Vec<u8>| {
            if opts.needs_quotes(v, false, false, false) {
                opts.write_quoted(v, out);
            } else {
                out.extend_from_slice(v);
            }
        };
        let (mut input, mut expected) = (Vec::new(), Vec::new());
        for (a, b) in &rows {
            field(a, &mut input);
            input.push(b',');
            field(b, &mut input);
            input.push(b'\n');
            field(a, &mut expected);
            expected.extend_from_slice(b",k\n");
        }
        let chunks = split_at(&input, &cuts);
        let plan = ColumnPlan::new(vec![None, col(constant("k"), oid::TEXT)]);
        prop_assert_eq!(run(&format, &plan, &chunks).unwrap(), expected);
    }

    #[test]
    fn text_rows_split_anywhere(
        rows in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..12), proptest::collection::vec(any::<u8>(), 0..12)), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let (mut input, mut expected) = (Vec::new(), Vec::new());
        for (a, b) in &rows {
            text_escape(a, b'\t', &mut input);
            input.push(b'\t');
            text_escape(b, b'\t', &mut input);
            input.push(b'\n');
            text_escape(a, b'\t', &mut expected);
            expected.extend_from_slice(b"\tk\n");
        }
        let chunks = split_at(&input, &cuts);
        let plan = ColumnPlan::new(vec![None, col(constant("k"), oid::TEXT)]);
        prop_assert_eq!(run(&CopyFormat::text(), &plan, &chunks).unwrap(), expected);
    }

    #[test]
    fn random_streams_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..5), which in 0..3usize) {
        let format = [CopyFormat::text(), CopyFormat::csv(), CopyFormat::Binary][which].clone();
        let mut r = CopyRewriter::new(plan(), format, Arc::clone(&P));
        let mut out = Vec::new();
        for c in &chunks {
            if r.feed(c, &mut out).is_err() {
                break;
            }
        }
        let _ = r.finish();
    }
}

/// Issue 17 (fuzz target `copy`): a framed binary stream cut between
/// its file header and what follows sent the header in a message of
/// its own; whole, it went with the next unit. The header now always
/// goes in the message of the first row (or of the trailer, for no
/// rows), as PostgreSQL sends it, however the stream is cut.
#[test]
fn framed_binary_header_goes_with_the_next_unit_however_cut() {
    let header = [&BINARY_SIGNATURE[..], &[0; 8]].concat();
    let mut one_row = header.clone();
    one_row.extend_from_slice(&1i16.to_be_bytes());
    one_row.extend_from_slice(&8i32.to_be_bytes());
    one_row.extend_from_slice(&42i64.to_be_bytes());
    one_row.extend_from_slice(&(-1i16).to_be_bytes());
    let mut no_rows = header.clone();
    no_rows.extend_from_slice(&(-1i16).to_be_bytes());
    let plan = ColumnPlan::new(vec![col(Transform::Bijection, oid::INT8)]);
    for stream in [&no_rows, &one_row] {
        let framed = |cut: usize| {
            let mut r =
                CopyRewriter::new(plan.clone(), CopyFormat::Binary, Arc::clone(&P)).framed();
            let mut out = Vec::new();
            r.feed(&stream[..cut], &mut out).unwrap();
            r.feed(&stream[cut..], &mut out).unwrap();
            r.finish().unwrap();
            out
        };
        let whole = framed(stream.len());
        for cut in 0..stream.len() {
            assert_eq!(framed(cut), whole, "cut at {cut}");
        }
        assert!(whole[5..].starts_with(BINARY_SIGNATURE));
        let first = u32::from_be_bytes(whole[1..5].try_into().unwrap()) as usize;
        assert!(first > header.len() + 4, "the header shares its message");
    }
}
