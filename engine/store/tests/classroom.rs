//! A classroom server's records (schema 8): runs filed under students, their listings and
//! searches, the class overview, reveals and test mode, and run ids never handed out twice.

mod common;

use common::{config, record_events, run_events, temp_store};
use k2_protocol::{AttemptCheck, CheckBasis, CheckVerdict};
use k2_store::{NewProblem, PageRequest, RunOrigin, RunRecorder, Store};

async fn owned_run(store: &Store, owner: Option<i64>, problem: &str, student_mode: bool) -> i64 {
    let session = store.session_titled("Homework 3").await.unwrap();
    let problem_id = store
        .add_problem(&NewProblem::typed(problem))
        .await
        .unwrap();
    let run = store
        .start_run(
            session,
            problem_id,
            &config(),
            RunOrigin {
                owner,
                student_mode,
            },
        )
        .await
        .unwrap();
    let recorder = RunRecorder::start(store, run);
    for event in run_events(problem, "6") {
        recorder.record(&event);
    }
    recorder.finish().await.unwrap();
    run
}

#[tokio::test]
async fn a_deleted_runs_id_is_never_handed_out_again_even_after_reopening() {
    let t = temp_store().await;
    let session = t.store.create_session("s").await.unwrap();
    let first = record_events(&t.store, session, "a", run_events("a", "1")).await;
    let newest = record_events(&t.store, session, "b", run_events("b", "2")).await;
    t.store.delete_run(newest).await.unwrap();
    let next = record_events(&t.store, session, "c", run_events("c", "3")).await;
    assert!(next > newest, "{next} reused the deleted {newest}");
    t.store.delete_run(next).await.unwrap();
    t.store.delete_run(first).await.unwrap();
    let path = t.store.path().to_path_buf();
    t.store.clone().close().await;
    let reopened = Store::open(&path).await.unwrap();
    let session = reopened.create_session("s").await.unwrap();
    let after = record_events(&reopened, session, "d", run_events("d", "4")).await;
    assert!(
        after > next,
        "{after} after {next} was deleted, with no run left"
    );
}

#[tokio::test]
async fn a_student_lists_and_searches_their_own_runs_and_only_their_problems() {
    let t = temp_store().await;
    let alice = t.store.student_named("alice").await.unwrap();
    let bob = t.store.student_named("bob").await.unwrap();
    assert_eq!(t.store.student_named("alice").await.unwrap(), alice);
    let alices = owned_run(&t.store, Some(alice), "Find the roots of $x^2-5x+6$.", true).await;
    let bobs = owned_run(&t.store, Some(bob), "Find the roots of $x^2-7x+12$.", false).await;
    let teachers = owned_run(&t.store, None, "Find the roots of $x^2-1$.", false).await;

    let listed = t
        .store
        .list_owned_runs(alice, PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<i64> = listed.items.iter().map(|r| r.id).collect();
    assert_eq!(ids, [alices]);
    let run = &listed.items[0];
    assert_eq!(run.owner.as_ref().map(|o| o.name.as_str()), Some("alice"));
    assert!(run.student_mode && run.revealed_at.is_none());
    let all = t
        .store
        .list_runs(None, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.items[0].id, teachers);
    assert_eq!(all.items[0].owner, None);

    // "Vieta" is in every run's plan: the teacher's search finds all three, a student's none.
    assert_eq!(t.store.search("Vieta", 10).await.unwrap().len(), 3);
    assert!(t
        .store
        .search_owned(alice, "Vieta", 10)
        .await
        .unwrap()
        .is_empty());
    let roots = t.store.search_owned(bob, "roots", 10).await.unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].run.id, bobs);
    assert!(roots[0].snippet.contains("«roots»"), "{}", roots[0].snippet);

    let at = t.store.set_revealed(alices).await.unwrap();
    assert_eq!(
        t.store.set_revealed(alices).await.unwrap(),
        at,
        "the first reveal counts"
    );
    assert!(t.store.set_revealed(alices + 100).await.is_err());
}

#[tokio::test]
async fn the_class_overview_counts_each_students_answers_and_hints() {
    let t = temp_store().await;
    let alice = t.store.student_named("alice").await.unwrap();
    t.store.student_named("zoe").await.unwrap();
    let run = owned_run(&t.store, Some(alice), "What is 2 + 4?", true).await;
    owned_run(&t.store, None, "The teacher's own", false).await;
    let problem = t.store.run(run).await.unwrap().problem.id;
    for verdict in [
        CheckVerdict::Wrong,
        CheckVerdict::Right,
        CheckVerdict::Unsure,
    ] {
        let check = AttemptCheck {
            verdict,
            basis: CheckBasis::Unanimous,
        };
        t.store
            .add_attempt(problem, Some(run), "x", Some(check), None)
            .await
            .unwrap();
    }
    for level in [1, 2, 1] {
        t.store.add_opened_hint(run, level).await.unwrap();
    }
    let class = t.store.class_runs(None).await.unwrap();
    assert_eq!(class.len(), 1, "the teacher's run is not a student's");
    let row = &class[0];
    assert_eq!(row.owner.name, "alice");
    assert_eq!(
        (
            row.run.attempts.right,
            row.run.attempts.wrong,
            row.run.attempts.unsure
        ),
        (1, 1, 1)
    );
    assert_eq!(row.run.hints_opened, 2);
    assert_eq!(row.run.session, "Homework 3");
    assert!(t
        .store
        .class_runs(Some("Homework 4"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(t.store.class_sessions().await.unwrap(), ["Homework 3"]);
    let names: Vec<String> = t
        .store
        .students()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["alice", "zoe"]);

    assert!(!t.store.test_mode().await.unwrap());
    t.store.set_test_mode(true).await.unwrap();
    assert!(t.store.test_mode().await.unwrap());
    t.store.set_test_mode(false).await.unwrap();
    assert!(!t.store.test_mode().await.unwrap());
}
