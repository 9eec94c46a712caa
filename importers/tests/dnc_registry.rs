//! A registry of 5 million numbers: stored compactly, loaded back, and scrubbed against with hits
//! and misses asserted.

use foundation::Db;
use foundation::clock::VirtualClock;
use importers::dnc::{DncIndex, Hit};
use importers::generate::{e164_digits, nanp_number, write_dnc_file};

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_764_000_000_000;

#[tokio::test]
async fn five_million_numbers_scrub_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()), 2)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let clock = VirtualClock::at_ms(NOW);

    // 2,000 known numbers (low indexes of the generator's walk) + 4,998,000 decoys (top indexes).
    let hits: Vec<u64> = (0..4000)
        .step_by(2)
        .map(|k| e164_digits(nanp_number(k)))
        .collect();
    let misses: Vec<u64> = (1..4000)
        .step_by(2)
        .map(|k| e164_digits(nanp_number(k)))
        .collect();
    let path = dir.path().join("national-dnc.txt");
    write_dnc_file(
        &hits,
        5_000_000 - hits.len() as u64,
        11,
        std::fs::File::create(&path).unwrap(),
    )
    .unwrap();

    let load =
        importers::dnc::load_registry_file(&db, &clock, "us-national", &path, NOW - 10 * DAY, "US")
            .await
            .unwrap();
    assert_eq!(load.lines, 5_000_000);
    assert_eq!(load.skipped_lines, 0);
    assert_eq!(load.registry.entries, 5_000_000);
    let blob_len: i64 =
        sqlx::query_scalar("SELECT LENGTH(numbers) FROM dnc_registries WHERE id = $1")
            .bind(load.registry.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(
        blob_len < 5_000_000 * 4,
        "stored compactly: {blob_len} bytes"
    );

    let index = DncIndex::load(&db).await.unwrap();
    assert_eq!(index.total(), 5_000_000);
    for &n in &hits {
        assert_eq!(index.check(n), Some(Hit::Registry("us-national")), "{n}");
    }
    for &n in &misses {
        assert_eq!(index.check(n), None, "{n}");
    }
    // Decoys are members too; neighbours of members mostly are not.
    let set = &index.registries[0].1;
    let sample: Vec<u64> = set.numbers().iter().step_by(50_000).copied().collect();
    assert!(sample.iter().all(|&n| set.contains(n)));
    assert!(!set.contains(19_999_999_999) && !set.contains(0));

    // Staleness follows the download date; a newer copy replaces the old one.
    let max = std::time::Duration::from_secs(31 * 86_400);
    assert!(
        importers::dnc::stale_registries(&db, NOW, max)
            .await
            .unwrap()
            .is_empty()
    );
    let stale = importers::dnc::stale_registries(&db, NOW + 22 * DAY, max)
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    assert!(importers::is_registry_stale(&stale[0], NOW + 22 * DAY, max));
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "# header\n2125550123\n212,5550124\n").unwrap();
    importers::dnc::load_registry_file(&db, &clock, "us-national", &small, NOW, "US")
        .await
        .unwrap();
    let active = importers::dnc::registries(&db).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].entries, active[0].downloaded_at), (2, NOW));
}
