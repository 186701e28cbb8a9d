//! No literal of any statement reaches the log file.

use proptest::prelude::*;

use super::*;
use crate::audit::{AuditLog, FlushPolicy};

fn literal() -> impl Strategy<Value = (String, String)> {
    let body = "[a-z][a-z0-9@._]{7,14}";
    prop_oneof![
        body.prop_map(|b| (b.clone(), format!("'{b}'"))),
        body.prop_map(|b| (b.clone(), format!("E'{b}\\n'"))),
        body.prop_map(|b| (b.clone(), format!("$x${b}$x$"))),
        body.prop_map(|b| (b.clone(), format!("U&'{b}'"))),
        body.prop_map(|b| (b.clone(), format!("'{b}'::date"))),
        (1_000_000u64..u64::MAX).prop_map(|n| (n.to_string(), n.to_string())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn no_literal_reaches_the_log(
        lits in proptest::collection::vec(literal(), 1..12),
        verdicts in proptest::collection::vec(0usize..5, 12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            flush: FlushPolicy::Interval(Duration::from_millis(1)),
            ..config(dir.path())
        };
        let log = AuditLog::open(&cfg).unwrap();
        let s = session(3, "dev_carol");
        for (i, (_, sql_lit)) in lits.iter().enumerate() {
            let sql = format!(
                "SELECT email FROM users WHERE email = {sql_lit} /* {sql_lit} */ -- {sql_lit}"
            );
            let verdict = Verdict::ALL[verdicts[i % verdicts.len()]];
            let mut ev = StatementEvent::new(&sql, verdict);
            ev.rule = Some("classified.rows".into());
            log.record_blocking(Event::verdict(&s, ev.clone())).unwrap();
            log.record_blocking(Event::result(&s, ev)).unwrap();
            log.production_statement(&s, &sql);
        }
        log.record_blocking(blocked(&s, "SELECT 'unterminated")).unwrap();
        log.shutdown_blocking();
        let text = std::fs::read_to_string(&cfg.path).unwrap();
        for (body, _) in &lits {
            prop_assert!(!text.contains(body.as_str()), "{} in the log", body);
        }
        prop_assert!(!text.contains("unterminated"));
    }
}
