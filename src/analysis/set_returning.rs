//! Which built-in functions return sets: their arguments decide how many
//! rows come out, so they count as predicates.

/// PostgreSQL 15's built-in set-returning functions (`proretset` in
/// `pg_catalog`), sorted for binary search.
const SET_RETURNING: &[&str] = &[
    "aclexplode",
    "generate_series",
    "generate_subscripts",
    "json_array_elements",
    "json_array_elements_text",
    "json_each",
    "json_each_text",
    "json_object_keys",
    "json_populate_recordset",
    "json_to_recordset",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_object_keys",
    "jsonb_path_query",
    "jsonb_path_query_tz",
    "jsonb_populate_recordset",
    "jsonb_to_recordset",
    "pg_available_extension_versions",
    "pg_available_extensions",
    "pg_config",
    "pg_cursor",
    "pg_event_trigger_ddl_commands",
    "pg_event_trigger_dropped_objects",
    "pg_extension_update_paths",
    "pg_get_backend_memory_contexts",
    "pg_get_catalog_foreign_keys",
    "pg_get_keywords",
    "pg_get_multixact_members",
    "pg_get_publication_tables",
    "pg_get_replication_slots",
    "pg_get_shmem_allocations",
    "pg_get_wal_resource_managers",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_listening_channels",
    "pg_lock_status",
    "pg_logical_slot_get_binary_changes",
    "pg_logical_slot_get_changes",
    "pg_logical_slot_peek_binary_changes",
    "pg_logical_slot_peek_changes",
    "pg_ls_archive_statusdir",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_logicalmapdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_replslotdir",
    "pg_ls_tmpdir",
    "pg_ls_waldir",
    "pg_mcv_list_items",
    "pg_options_to_table",
    "pg_partition_ancestors",
    "pg_partition_tree",
    "pg_prepared_statement",
    "pg_prepared_xact",
    "pg_show_all_file_settings",
    "pg_show_all_settings",
    "pg_show_replication_origin_status",
    "pg_snapshot_xip",
    "pg_stat_get_activity",
    "pg_stat_get_backend_idset",
    "pg_stat_get_progress_info",
    "pg_stat_get_recovery_prefetch",
    "pg_stat_get_slru",
    "pg_stat_get_subscription",
    "pg_stat_get_wal_senders",
    "pg_tablespace_databases",
    "pg_timezone_abbrevs",
    "pg_timezone_names",
    "regexp_matches",
    "regexp_split_to_table",
    "string_to_table",
    "ts_debug",
    "ts_parse",
    "ts_stat",
    "ts_token_type",
    "txid_snapshot_xip",
    "unnest",
];

/// Whether built-in `name` returns a set: how many rows it yields depends
/// on its arguments, so they filter like a WHERE clause does.
pub(crate) fn is_set_returning(name: &str) -> bool {
    SET_RETURNING.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_every_name_found() {
        assert!(SET_RETURNING.windows(2).all(|w| w[0] < w[1]));
        assert!(SET_RETURNING.iter().all(|name| is_set_returning(name)));
        assert!(!is_set_returning("count"));
    }
}
