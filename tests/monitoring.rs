//! The postgres_exporter queries in monitoring/postgres_exporter.yml run, as a role with the
//! auditor duty, against a database the extension manages, and return the metrics they name.
#![cfg(not(feature = "pg_test"))]

mod common;
use common::*;

/// Each query of the exporter file, with the metric columns it declares.
fn exporter_queries() -> Vec<(String, Vec<String>)> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/postgres_exporter.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut queries = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("query: >-") {
            let mut sql = String::new();
            while let Some(next) = lines.peek() {
                if next.trim_start().starts_with("metrics:") {
                    break;
                }
                sql.push_str(lines.next().unwrap().trim());
                sql.push(' ');
            }
            queries.push((sql, Vec::new()));
        } else if let Some(column) = line.trim().strip_prefix("- ") {
            let column = column.trim_end_matches(':').to_string();
            queries.last_mut().unwrap().1.push(column);
        }
    }
    queries
}

#[test]
fn the_exporter_queries_return_their_metrics() {
    let cluster = Cluster::start("monitoring", &["pg_retention.enabled = off"]);
    let mut db = cluster.database_with_extension("app");
    db.batch_execute(
        "CREATE ROLE exporter LOGIN; SELECT retention.grant_auditor('exporter');
         SELECT retention.define_category('c', '1 day');
         CREATE TABLE items (id int PRIMARY KEY, tenant text, created_at timestamptz NOT NULL);
         SELECT retention.manage('items', 'c', created_column => 'created_at', tenant_column => 'tenant');
         INSERT INTO items SELECT i, CASE WHEN i <= 3 THEN 'held' END, now() - interval '3 days'
           FROM generate_series(1, 10) i;
         SELECT retention.place_hold('case', tenant => 'held', notify => false);
         DELETE FROM items WHERE id = 10;",
    )
    .unwrap();
    db.batch_execute("SELECT * FROM retention.run(); INSERT INTO items VALUES (11, NULL, now() - interval '2 days')")
        .unwrap();
    let mut exporter = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user("exporter")
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap();
    let queries = exporter_queries();
    assert_eq!(queries.len(), 2);
    for (sql, columns) in &queries {
        let rows = exporter.query(sql.as_str(), &[]).unwrap();
        assert_eq!(rows.len(), 1, "{sql}");
        let names: Vec<String> = rows[0]
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert_eq!(&names, columns, "{sql}");
    }
    let table = exporter.query_one(queries[0].0.as_str(), &[]).unwrap();
    // Six rows purged (ids 4-9); 3 held back; row 11 due (backlog) for about a day.
    assert_eq!(table.get::<_, String>("table_name"), "public.items");
    assert_eq!(table.get::<_, i64>("rows_deleted"), 6);
    assert_eq!(table.get::<_, i64>("held_back_rows"), 3);
    assert_eq!(table.get::<_, i64>("backlog_rows"), 1);
    let overdue: f64 = table.get("oldest_overdue_seconds");
    assert!((86_000.0..86_800.0).contains(&overdue), "{overdue}");
    assert!(table.get::<_, f64>("last_success_timestamp_seconds") > 0.0);
    let database = exporter.query_one(queries[1].0.as_str(), &[]).unwrap();
    assert_eq!(database.get::<_, i64>("active_holds"), 1);
    assert_eq!(database.get::<_, i32>("log_intact"), 1);
}
