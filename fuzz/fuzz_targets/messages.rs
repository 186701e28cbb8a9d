//! The typed message decoders on one frame of any tag and body, DataRow
//! rewriting by a plan, and the ErrorResponse field round trip.
#![no_main]

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use copyguard::enforce::{rewrite_data_row, ColumnPlan, PlannedColumn};
use copyguard::pseudonym::{oid, ColumnType, Format, Key, Pseudonymizer, Settings, Transform};
use copyguard::wire::{messages, Frame};
use libfuzzer_sys::fuzz_target;

static P: LazyLock<Arc<Pseudonymizer>> = LazyLock::new(|| {
    let key = Key::from_text("fuzz", &"5a".repeat(32)).expect("key");
    Arc::new(Pseudonymizer::new(&key, Settings::default()).expect("pseudonymizer"))
});

/// A plan of `n` columns cycling through transforms, types and formats.
fn plan(n: usize, seed: u8) -> ColumnPlan {
    let transforms = [
        Transform::Bijection,
        Transform::Email,
        Transform::Phone,
        Transform::Token,
        Transform::DateShift { days: None },
        Transform::Partial { keep: 2 },
        Transform::Redact,
        Transform::Constant { value: "x".into() },
    ];
    let types = [
        oid::INT4,
        oid::INT8,
        oid::TEXT,
        oid::DATE,
        oid::TIMESTAMPTZ,
        oid::NUMERIC,
        oid::UUID,
        oid::JSONB,
        oid::BYTEA,
    ];
    ColumnPlan::new(
        (0..n)
            .map(|i| {
                let k = i + usize::from(seed);
                (k % 3 != 0).then(|| PlannedColumn {
                    transform: transforms[k % transforms.len()].clone(),
                    ty: ColumnType::plain(types[(k / 3) % types.len()]),
                    format: if seed & 0x80 == 0 { Format::Text } else { Format::Binary },
                })
            })
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&tag, body)) = data.split_first() else {
        return;
    };
    let frame = Frame::from_bytes(messages::frame(tag, body));
    let _ = messages::parse_query(&frame);
    let _ = messages::parse_parse(&frame);
    let _ = messages::parse_bind_names(&frame);
    let _ = messages::parse_bind_result_formats(&frame);
    let _ = messages::parse_target(&frame);
    let _ = messages::parse_execute_portal(&frame);
    let _ = messages::parse_password(&frame);
    let _ = messages::parse_auth_request(&frame);
    let _ = messages::parse_backend_key_data(&frame);
    let _ = messages::parse_negotiate_protocol_version(&frame);
    let _ = messages::parse_parameter_status(&frame);
    let _ = messages::parse_row_description(&frame);
    let _ = messages::parse_notification(&frame);
    let _ = messages::parse_ready_status(&frame);
    let _ = copyguard::enforce::scrub_error(&frame);
    let _ = copyguard::enforce::blank_notification(&frame);

    let fields = messages::parse_fields(&frame);
    let again = Frame::from_bytes(messages::encode_fields(b'E', fields.clone()));
    assert_eq!(messages::parse_fields(&again), fields);
    let _ = messages::parse_error_code(&frame);

    if let Ok(values) = messages::parse_data_row(&frame) {
        let n = values.len();
        let mut out = Vec::new();
        let bytes: Bytes = frame.as_bytes().to_vec().into();
        let _ = rewrite_data_row(&plan(n, tag), &P, &bytes, &mut out);
        out.clear();
        if rewrite_data_row(&ColumnPlan::new(vec![None; n]), &P, &bytes, &mut out).is_ok() {
            assert_eq!(&out[..], &bytes[..], "a passthrough plan changed the row");
        }
    }
});
