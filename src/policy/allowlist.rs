//! The built-in function lists: pure functions and catalog introspection
//! guarded statements may call, and why well-known others are left out.

use crate::analysis::AGGREGATES;

/// Pure built-ins in `pg_catalog`: operators' friends a developer needs.
#[rustfmt::skip]
const PURE: &[&str] = &[
    // conditionals and comparison
    "coalesce", "nullif", "greatest", "least", "num_nulls", "num_nonnulls",
    // mathematics
    "abs", "cbrt", "ceil", "ceiling", "degrees", "div", "exp", "factorial", "floor", "gcd",
    "lcm", "ln", "log", "log10", "min_scale", "mod", "pi", "power", "radians", "round", "scale",
    "sign", "sqrt", "trim_scale", "trunc", "width_bucket", "random", "random_normal", "acos",
    "acosd", "asin", "asind", "atan", "atand", "atan2", "atan2d", "cos", "cosd", "cot", "cotd",
    "sin", "sind", "tan", "tand", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf",
    "erfc", "to_hex", "to_oct", "to_bin", "bit_count", "get_bit", "get_byte", "set_bit",
    "set_byte",
    // type conversion functions named after types
    "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "bpchar",
    "char", "name", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "inet",
    "cidr", "macaddr", "money", "to_number",
    // strings
    "ascii", "bit_length", "btrim", "char_length", "character_length", "chr", "concat",
    "concat_ws", "convert", "convert_from", "convert_to", "decode", "encode", "format",
    "initcap", "left", "length", "lower", "lpad", "ltrim", "md5", "normalize", "octet_length",
    "overlay", "position", "quote_ident", "quote_literal", "quote_nullable", "regexp_count",
    "regexp_instr", "regexp_like", "regexp_match", "regexp_matches", "regexp_replace",
    "regexp_split_to_array", "regexp_split_to_table", "regexp_substr", "repeat", "replace",
    "reverse", "right", "rpad", "rtrim", "split_part", "starts_with", "string_to_array",
    "string_to_table", "strpos", "substr", "substring", "to_ascii", "translate", "trim",
    "unistr", "upper", "casefold", "sha224", "sha256", "sha384", "sha512", "crc32", "crc32c",
    "to_char", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp",
    "uuid_extract_version",
    // date and time
    "age", "clock_timestamp", "current_date", "current_time", "current_timestamp", "date_add",
    "date_bin", "date_part", "date_subtract", "date_trunc", "extract", "isfinite",
    "justify_days", "justify_hours", "justify_interval", "localtime", "localtimestamp",
    "make_date", "make_interval", "make_time", "make_timestamp", "make_timestamptz", "now",
    "statement_timestamp", "timeofday", "transaction_timestamp", "to_date", "to_timestamp",
    "timezone",
    // arrays
    "array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
    "array_ndims", "array_position", "array_positions", "array_prepend", "array_remove",
    "array_replace", "array_reverse", "array_sample", "array_shuffle", "array_sort",
    "array_to_string", "array_upper", "cardinality", "trim_array", "unnest", "generate_series",
    "generate_subscripts",
    // ranges
    "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "isempty",
    "lower_inc", "upper_inc", "lower_inf", "upper_inf", "range_merge",
    // network addresses
    "abbrev", "broadcast", "family", "host", "hostmask", "inet_merge", "inet_same_family",
    "masklen", "netmask", "network", "set_masklen",
    // JSON
    "to_json", "to_jsonb", "array_to_json", "row_to_json", "json_build_array",
    "jsonb_build_array", "json_build_object", "jsonb_build_object", "json_object",
    "jsonb_object", "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "json_array_length", "jsonb_array_length", "json_each",
    "jsonb_each", "json_each_text", "jsonb_each_text", "json_extract_path",
    "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
    "json_object_keys", "jsonb_object_keys", "json_populate_record", "jsonb_populate_record",
    "json_populate_recordset", "jsonb_populate_recordset", "json_to_record", "jsonb_to_record",
    "json_to_recordset", "jsonb_to_recordset", "json_strip_nulls", "jsonb_strip_nulls",
    "jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_pretty", "json_typeof", "jsonb_typeof",
    "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array",
    "jsonb_path_query_first", "jsonb_path_exists_tz", "jsonb_path_match_tz",
    "jsonb_path_query_tz", "jsonb_path_query_array_tz", "jsonb_path_query_first_tz",
    "json_scalar",
    // full-text search (ts_stat is left out: it runs SQL text)
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
    "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
    "tsvector_to_array", "array_to_tsvector", "ts_delete", "ts_filter",
    // the ARRAY(subquery) constructor, which analysis records as a call
    "array",
    // aggregates: crate::analysis::AGGREGATES
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
];

/// Catalog and session introspection used by psql's `\d` commands, ORMs
/// and GUI clients. They read definitions, sizes and privileges, never
/// table contents.
#[rustfmt::skip]
const INTROSPECTION: &[&str] = &[
    "acldefault", "format_type", "pg_get_userbyid", "pg_table_is_visible", "pg_type_is_visible",
    "pg_function_is_visible", "pg_operator_is_visible", "pg_opclass_is_visible",
    "pg_opfamily_is_visible", "pg_collation_is_visible", "pg_conversion_is_visible",
    "pg_ts_config_is_visible", "pg_ts_dict_is_visible", "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible", "pg_statistics_obj_is_visible", "pg_get_expr",
    "pg_get_indexdef", "pg_get_constraintdef", "pg_get_viewdef", "pg_get_triggerdef",
    "pg_get_ruledef", "pg_get_functiondef", "pg_get_function_arguments",
    "pg_get_function_result", "pg_get_function_identity_arguments", "pg_get_function_sqlbody",
    "pg_get_partkeydef", "pg_get_partition_constraintdef", "pg_get_statisticsobjdef",
    "pg_get_statisticsobjdef_columns", "pg_get_statisticsobjdef_expressions",
    "pg_get_serial_sequence", "pg_get_keywords", "pg_get_replica_identity_index",
    "pg_get_object_address", "obj_description", "col_description", "shobj_description",
    "pg_encoding_to_char", "pg_char_to_encoding", "pg_relation_size", "pg_total_relation_size",
    "pg_table_size", "pg_indexes_size", "pg_database_size", "pg_tablespace_size",
    "pg_size_pretty", "pg_size_bytes", "pg_column_size", "pg_relation_is_publishable",
    "pg_relation_filenode", "pg_relation_filepath", "pg_relation_is_updatable",
    "pg_column_is_updatable", "pg_tablespace_location", "pg_options_to_table",
    "pg_describe_object", "pg_identify_object", "pg_identify_object_as_address",
    "pg_index_column_has_property", "pg_index_has_property", "pg_indexam_has_property",
    "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "pg_typeof",
    "pg_collation_for", "pg_input_is_valid", "pg_input_error_info", "pg_show_all_settings",
    "to_regclass", "to_regtype", "to_regtypemod", "to_regproc", "to_regprocedure",
    "to_regnamespace", "to_regrole", "to_regoper", "to_regoperator", "to_regcollation",
    "current_schema", "current_schemas", "current_user", "session_user", "current_role", "user",
    "current_catalog", "current_database", "version", "current_setting", "has_table_privilege",
    "has_column_privilege", "has_any_column_privilege", "has_database_privilege",
    "has_foreign_data_wrapper_privilege", "has_function_privilege", "has_language_privilege",
    "has_parameter_privilege", "has_schema_privilege", "has_sequence_privilege",
    "has_server_privilege", "has_tablespace_privilege", "has_type_privilege", "pg_has_role",
    "row_security_active", "pg_backend_pid", "pg_is_in_recovery", "pg_postmaster_start_time",
    "pg_conf_load_time", "inet_server_addr", "inet_server_port", "inet_client_addr",
    "inet_client_port", "pg_my_temp_schema", "pg_is_other_temp_schema", "pg_jit_available",
    "pg_trigger_depth",
    // Release only the session's own advisory locks (connection pools
    // call `pg_advisory_unlock_all()` when a connection is returned).
    "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
];

/// The counters and times behind the statistics views of tables, indexes,
/// sequences, functions and databases (`pg_stat_user_tables`,
/// `pg_statio_*`, `pg_stat_user_indexes`, `pg_stat_database`...): numbers
/// of scans, rows, blocks and sessions, never a data value or query text
/// (those are in `pg_stats` and `pg_stat_activity`, which stay refused).
#[rustfmt::skip]
const STATISTICS: &[&str] = &[
    "pg_stat_get_numscans", "pg_stat_get_lastscan", "pg_stat_get_tuples_returned",
    "pg_stat_get_tuples_fetched", "pg_stat_get_tuples_inserted", "pg_stat_get_tuples_updated",
    "pg_stat_get_tuples_deleted", "pg_stat_get_tuples_hot_updated",
    "pg_stat_get_tuples_newpage_updated", "pg_stat_get_live_tuples", "pg_stat_get_dead_tuples",
    "pg_stat_get_mod_since_analyze", "pg_stat_get_ins_since_vacuum",
    "pg_stat_get_last_vacuum_time", "pg_stat_get_last_autovacuum_time",
    "pg_stat_get_last_analyze_time", "pg_stat_get_last_autoanalyze_time",
    "pg_stat_get_vacuum_count", "pg_stat_get_autovacuum_count", "pg_stat_get_analyze_count",
    "pg_stat_get_autoanalyze_count", "pg_stat_get_total_vacuum_time",
    "pg_stat_get_total_autovacuum_time", "pg_stat_get_total_analyze_time",
    "pg_stat_get_total_autoanalyze_time", "pg_stat_get_blocks_fetched", "pg_stat_get_blocks_hit",
    "pg_stat_get_xact_numscans", "pg_stat_get_xact_tuples_returned",
    "pg_stat_get_xact_tuples_fetched", "pg_stat_get_xact_tuples_inserted",
    "pg_stat_get_xact_tuples_updated", "pg_stat_get_xact_tuples_deleted",
    "pg_stat_get_xact_tuples_hot_updated", "pg_stat_get_xact_tuples_newpage_updated",
    "pg_stat_get_xact_blocks_fetched", "pg_stat_get_xact_blocks_hit",
    "pg_stat_get_function_calls", "pg_stat_get_function_total_time",
    "pg_stat_get_function_self_time", "pg_stat_get_xact_function_calls",
    "pg_stat_get_xact_function_total_time", "pg_stat_get_xact_function_self_time",
    "pg_stat_get_db_numbackends", "pg_stat_get_db_xact_commit", "pg_stat_get_db_xact_rollback",
    "pg_stat_get_db_blocks_fetched", "pg_stat_get_db_blocks_hit",
    "pg_stat_get_db_tuples_returned", "pg_stat_get_db_tuples_fetched",
    "pg_stat_get_db_tuples_inserted", "pg_stat_get_db_tuples_updated",
    "pg_stat_get_db_tuples_deleted", "pg_stat_get_db_conflict_all",
    "pg_stat_get_db_conflict_tablespace", "pg_stat_get_db_conflict_lock",
    "pg_stat_get_db_conflict_snapshot", "pg_stat_get_db_conflict_bufferpin",
    "pg_stat_get_db_conflict_startup_deadlock", "pg_stat_get_db_conflict_logicalslot",
    "pg_stat_get_db_deadlocks", "pg_stat_get_db_temp_files", "pg_stat_get_db_temp_bytes",
    "pg_stat_get_db_blk_read_time", "pg_stat_get_db_blk_write_time",
    "pg_stat_get_db_checksum_failures", "pg_stat_get_db_checksum_last_failure",
    "pg_stat_get_db_session_time", "pg_stat_get_db_active_time",
    "pg_stat_get_db_idle_in_transaction_time", "pg_stat_get_db_sessions",
    "pg_stat_get_db_sessions_abandoned", "pg_stat_get_db_sessions_fatal",
    "pg_stat_get_db_sessions_killed", "pg_stat_get_db_parallel_workers_to_launch",
    "pg_stat_get_db_parallel_workers_launched", "pg_stat_get_db_stat_reset_time",
];

/// Helpers outside `pg_catalog` that drivers call (JDBC's metadata
/// queries use `information_schema._pg_expandarray`).
pub(crate) const QUALIFIED: &[(&str, &str)] = &[
    ("information_schema", "_pg_expandarray"),
    ("information_schema", "_pg_index_position"),
    ("information_schema", "_pg_truetypid"),
    ("information_schema", "_pg_truetypmod"),
    ("information_schema", "_pg_char_max_length"),
    ("information_schema", "_pg_char_octet_length"),
    ("information_schema", "_pg_numeric_precision"),
    ("information_schema", "_pg_numeric_precision_radix"),
    ("information_schema", "_pg_numeric_scale"),
    ("information_schema", "_pg_datetime_precision"),
    ("information_schema", "_pg_interval_type"),
];

/// Sequence functions that change a sequence: writes.
pub(crate) const SEQUENCE_WRITES: &[&str] = &["nextval", "setval"];
/// Sequence functions that read this session's sequence state.
pub(crate) const SEQUENCE_READS: &[&str] = &["currval", "lastval"];

/// Why well-known functions stay off the list: `(pattern, why)`, where a
/// pattern ending in `*` is a prefix and one starting with `*` a suffix.
pub const NOT_ALLOWED: &[(&str, &str)] = &[
    ("*_to_xml", "it runs SQL text or reads whole tables copyguard cannot follow"),
    ("*_to_xmlschema", "it runs SQL text or reads whole tables copyguard cannot follow"),
    ("*_to_xml_and_xmlschema", "it runs SQL text or reads whole tables copyguard cannot follow"),
    ("ts_stat", "it runs SQL text copyguard cannot check"),
    ("dblink*", "it queries other servers or runs SQL text copyguard cannot check"),
    ("pg_read_file", "it reads files on the database server"),
    ("pg_read_binary_file", "it reads files on the database server"),
    ("pg_stat_file", "it reads files on the database server"),
    ("pg_ls_*", "it lists files on the database server"),
    ("pg_file_*", "it writes files on the database server"),
    ("lo_*", "large objects hold data outside tables, and lo_import/lo_export read and write server files"),
    ("loread", "large objects hold data outside tables"),
    ("lowrite", "large objects hold data outside tables"),
    ("pg_sleep*", "it holds a production connection idle"),
    ("pg_advisory_lock*", "it takes locks production sessions wait for"),
    ("pg_advisory_xact_lock*", "it takes locks production sessions wait for"),
    ("pg_try_advisory*", "it takes locks production sessions wait for"),
    ("pg_notify", "it sends data to other sessions"),
    ("pg_terminate_backend", "it acts on other sessions"),
    ("pg_cancel_backend", "it acts on other sessions"),
    ("pg_reload_conf", "it administers the server"),
    ("pg_rotate_logfile", "it administers the server"),
    ("pg_switch_wal", "it administers the server"),
    ("pg_promote", "it administers the server"),
    ("pg_backup_*", "it administers the server"),
    ("pg_stat_reset*", "it administers the server"),
    ("pg_log_backend_memory_contexts", "it administers the server"),
    ("pg_create_*", "it administers replication"),
    ("pg_drop_replication_slot", "it administers replication"),
    ("pg_replication_*", "it administers replication"),
    ("pg_logical_*", "it reads or writes the replication stream, which holds table data"),
    ("txid_current", "it assigns a transaction id"),
    ("pg_current_xact_id", "it assigns a transaction id"),
    ("pg_export_snapshot", "it lets another session see this session's snapshot"),
    ("pg_stat_statements*", "it shows the query texts of every session, which can hold literal values"),
    ("pg_stat_get_activity", "it shows the query texts of other sessions"),
    ("pg_stat_get_backend_activity", "it shows the query texts of other sessions"),
    ("binary_upgrade_*", "it changes catalogs directly"),
];

pub(crate) fn is_builtin(name: &str) -> bool {
    static BUILTIN: std::sync::OnceLock<
        std::collections::HashSet<&'static str, foldhash::fast::FixedState>,
    > = std::sync::OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            PURE.iter()
                .chain(AGGREGATES)
                .chain(INTROSPECTION)
                .chain(STATISTICS)
                .copied()
                .collect()
        })
        .contains(name)
}

/// Why a well-known function is kept off the allowlist.
pub(crate) fn not_allowed_reason(name: &str) -> Option<&'static str> {
    NOT_ALLOWED
        .iter()
        .find(|(pattern, _)| {
            if let Some(prefix) = pattern.strip_suffix('*') {
                name.starts_with(prefix)
            } else if let Some(suffix) = pattern.strip_prefix('*') {
                name.ends_with(suffix)
            } else {
                name == *pattern
            }
        })
        .map(|(_, why)| *why)
}

/// The built-in allowlist as `(schema, name)`, for documentation.
pub fn builtin_allowlist() -> impl Iterator<Item = (&'static str, &'static str)> {
    PURE.iter()
        .chain(AGGREGATES)
        .chain(INTROSPECTION)
        .chain(STATISTICS)
        .map(|n| ("pg_catalog", *n))
        .chain(QUALIFIED.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_has_no_dangerous_entries() {
        for (_, name) in builtin_allowlist() {
            assert!(not_allowed_reason(name).is_none(), "{name}");
            assert!(!SEQUENCE_WRITES.contains(&name) && !SEQUENCE_READS.contains(&name));
        }
    }

    #[test]
    fn patterns_match_prefixes_and_suffixes() {
        assert!(not_allowed_reason("table_to_xml").is_some());
        assert!(not_allowed_reason("dblink_connect").is_some());
        assert!(not_allowed_reason("pg_ls_dir").is_some());
        assert!(not_allowed_reason("lower").is_none());
        assert!(not_allowed_reason("pg_advisory_lock_shared").is_some());
        assert!(not_allowed_reason("pg_advisory_xact_lock").is_some());
        assert!(not_allowed_reason("pg_try_advisory_lock").is_some());
        assert!(is_builtin("pg_advisory_unlock_all"));
        assert!(not_allowed_reason("xml").is_none());
    }
}
