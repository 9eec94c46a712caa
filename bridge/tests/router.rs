//! The migration router's table on both backends: runtime edits apply to the next call.

use bridge::router::{self, CallFacts, Decision, MatchKind, Route};
use foundation::Db;
use foundation::testing::TempPgDatabase;

async fn exercise(db: &Db) {
    let call = CallFacts {
        dialed: "+13125550100",
        line_of_business: Some("billing"),
        caller: Some("+15550001"),
        call_id: "c",
        ..Default::default()
    };
    assert_eq!(router::route(db, &call).await.unwrap(), Decision::Default);
    let lob = Route {
        match_kind: MatchKind::LineOfBusiness,
        match_value: "billing".into(),
        legacy_percent: 100,
        local_flow: None,
        legacy_target: Some("+13125550199".into()),
    };
    router::put(db, 1, "t", &lob).await.unwrap();
    assert_eq!(
        router::route(db, &call).await.unwrap(),
        Decision::Legacy {
            target: "+13125550199".into()
        }
    );
    let num = Route {
        match_kind: MatchKind::Number,
        match_value: "+13125550100".into(),
        legacy_percent: 0,
        local_flow: Some("menu".into()),
        legacy_target: None,
    };
    router::put(db, 2, "t", &num).await.unwrap();
    assert_eq!(
        router::route(db, &call).await.unwrap(),
        Decision::Local {
            flow: "menu".into()
        }
    );
    let num = Route {
        legacy_percent: 100,
        legacy_target: Some("+1999".into()),
        ..num
    };
    router::put(db, 3, "t", &num)
        .await
        .expect("replacing a route");
    assert_eq!(
        router::route(db, &call).await.unwrap(),
        Decision::Legacy {
            target: "+1999".into()
        }
    );
    assert_eq!(router::list(db).await.unwrap().len(), 2);
    assert!(
        router::delete(db, 4, "t", MatchKind::Number, "+13125550100")
            .await
            .unwrap()
    );
    assert!(
        !router::delete(db, 4, "t", MatchKind::Number, "+13125550100")
            .await
            .unwrap()
    );
    assert_eq!(
        router::route(db, &call).await.unwrap(),
        Decision::Legacy {
            target: "+13125550199".into()
        }
    );
}

#[tokio::test]
async fn sqlite_router() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/r.db", dir.path().display()), 2)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn postgres_router() {
    let Some(pg) = TempPgDatabase::create().await else {
        return;
    };
    let db = Db::connect(&pg.url, 2).await.unwrap();
    db.migrate().await.unwrap();
    exercise(&db).await;
    db.close().await;
}
