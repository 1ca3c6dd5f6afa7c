//! Rows whose text is not UTF-8 (SQLite stores any bytes in a TEXT column): listings page past
//! them, each is reported once, and `quarantine_unreadable` repairs every table that holds
//! one, the full-text index included.

mod common;

use common::{config, temp_store};
use k2_store::{PageRequest, Quarantined, StoreError};

async fn raw(store: &k2_store::Store, sql: &str) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", store.path().display()))
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn pages_move_past_an_unreadable_run_and_it_is_reported_once() {
    let t = temp_store().await;
    for problem in ["one", "two", "three"] {
        t.store
            .start_typed_run("s", problem, &config(), Default::default())
            .await
            .unwrap();
    }
    raw(
        &t.store,
        "UPDATE runs SET answer = CAST(X'FF' AS TEXT) WHERE id = 2",
    )
    .await;

    let mut seen = Vec::new();
    let mut page = PageRequest::first(1);
    let mut pages = 0;
    loop {
        let listed = t.store.list_runs(None, page).await.unwrap();
        seen.extend(listed.items.iter().map(|r| r.id));
        pages += 1;
        match listed.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [3, 1],
        "the bad run is skipped, the one after it still listed"
    );
    assert_eq!(pages, 3);
    let reported = t.store.take_unreadable();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(
        reported[0].to_string(),
        "runs row 2: its answer cannot be read (invalid utf-8 sequence of 1 bytes from index 0)"
    );
    assert!(
        t.store.take_unreadable().is_empty(),
        "each report is taken once"
    );

    match t.store.run(2).await {
        Err(StoreError::Unreadable(row)) => {
            assert_eq!((row.table, row.key.as_str()), ("runs", "2"))
        }
        other => panic!("expected an unreadable row, got {other:?}"),
    }
}

#[tokio::test]
async fn the_full_text_index_is_scanned_and_repaired_too() {
    let t = temp_store().await;
    t.store
        .start_typed_run("s", "zebra crossing", &config(), Default::default())
        .await
        .unwrap();
    raw(
        &t.store,
        "UPDATE run_search SET problem = CAST(X'7A6562726120C328' AS TEXT) WHERE rowid = 1",
    )
    .await;
    assert!(t.store.search("zebra", 10).await.unwrap().is_empty());
    assert_eq!(t.store.take_unreadable()[0].table, "run_search");

    let quarantined = t.store.quarantine_unreadable().await.unwrap();
    assert_eq!(
        quarantined,
        [Quarantined {
            table: "run_search".into(),
            key: "1".into(),
            column: "problem".into(),
            bytes: 8,
        }]
    );
    let hits = t.store.search("zebra", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert!(t.store.take_unreadable().is_empty());
    assert!(t.store.quarantine_unreadable().await.unwrap().is_empty());
    t.store.integrity_check().await.unwrap();
}
