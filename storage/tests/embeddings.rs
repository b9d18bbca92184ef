//! Stored embeddings and the ranking of similar documents: the same answers on SQLite, on
//! PostgreSQL with pgvector (which the test set-up installs), and on PostgreSQL for a user
//! that may not enable pgvector; and a database that gains pgvector later keeps its vectors.

use isocrates_storage::Storage;
use isocrates_storage::documents::{Author, AuthorType, NewDocument, ReadScope, Upserted};
use isocrates_testkit::{TestDb, on_both_backends};

const MODEL: &str = "test-embedder";

fn doc(title: &str, path: &str) -> NewDocument {
    NewDocument {
        title: title.to_string(),
        content: format!("About {title}."),
        path: path.to_string(),
        repo_url: None,
        repo_name: None,
        doc_type: String::new(),
        keywords: vec![],
        description: None,
        author: Author { author_type: AuthorType::Ai, metadata: None },
    }
}

/// Creates a document and stores `vector` as its embedding; answers its id.
async fn embedded(storage: &Storage, title: &str, path: &str, vector: &[f32]) -> String {
    let Upserted::Created(d) = storage.upsert_document(doc(title, path), |_| true).await.unwrap()
    else {
        panic!("{title} already existed");
    };
    assert!(storage.store_embedding(&d.id, d.version, MODEL, vector).await.unwrap());
    d.id
}

fn titles(found: &[isocrates_storage::embeddings::Similar]) -> Vec<&str> {
    found.iter().map(|s| s.title.as_str()).collect()
}

/// Six documents at known angles from `[1, 0, 0]`, in two folders, and one made by another
/// model of another size.
async fn compass(storage: &Storage) {
    embedded(storage, "North", "maps/a", &[1.0, 0.0, 0.0]).await;
    embedded(storage, "North by east", "maps/a", &[0.9, 0.1, 0.0]).await;
    embedded(storage, "North east", "maps/b", &[0.5, 0.5, 0.0]).await;
    embedded(storage, "East by south", "maps/b", &[-0.1, 1.0, 0.0]).await;
    embedded(storage, "South", "other", &[-1.0, 0.0, 0.0]).await;
    embedded(storage, "Up", "other", &[0.0, 0.0, 2.0]).await;
    embedded(storage, "Four dimensions", "maps/a", &[1.0, 0.0, 0.0, 0.0]).await;
}

/// What every backend must answer over [`compass`].
async fn ranks_like_a_compass(storage: &Storage) {
    let north = [1.0, 0.0, 0.0];
    let found = storage.similar(&north, MODEL, &ReadScope::All, None, 10).await.unwrap();
    // The vector of another size is left out; the rest by cosine, best first.
    assert_eq!(
        titles(&found),
        ["North", "North by east", "North east", "Up", "East by south", "South"]
    );
    assert!((found[0].score - 1.0).abs() < 1e-5);
    assert!((found[2].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
    assert!((found[5].score + 1.0).abs() < 1e-5);

    let found = storage.similar(&north, MODEL, &ReadScope::All, None, 2).await.unwrap();
    assert_eq!(titles(&found), ["North", "North by east"]);

    let first = storage.similar(&north, MODEL, &ReadScope::All, None, 1).await.unwrap();
    let found =
        storage.similar(&north, MODEL, &ReadScope::All, Some(&first[0].id), 2).await.unwrap();
    assert_eq!(titles(&found), ["North by east", "North east"]);

    let scope = ReadScope::Under(vec!["maps/b".to_string(), "other".to_string()]);
    let found = storage.similar(&north, MODEL, &scope, None, 3).await.unwrap();
    assert_eq!(titles(&found), ["North east", "Up", "East by south"]);

    let found = storage.similar(&north, "another-model", &ReadScope::All, None, 5).await.unwrap();
    assert!(found.is_empty());
}

on_both_backends! {
    async fn similar_documents_rank_by_cosine_within_the_scope(db) {
        // The test set-up installs pgvector on the PostgreSQL server.
        let on_postgres = db.storage.backend() == isocrates_storage::Backend::Postgres;
        assert_eq!(db.storage.uses_pgvector().await.unwrap(), on_postgres);
        compass(&db.storage).await;
        ranks_like_a_compass(&db.storage).await;

        // A trashed document is no longer similar to anything; restored, it is again.
        let north = db.storage.similar(&[1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 1)
            .await.unwrap().remove(0);
        db.storage.trash_document(&north.id).await.unwrap();
        let found = db.storage.similar(&[1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 1)
            .await.unwrap();
        assert_eq!(titles(&found), ["North by east"]);
        db.storage.restore_document(&north.id).await.unwrap();
        let found = db.storage.similar(&[1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 1)
            .await.unwrap();
        assert_eq!(titles(&found), ["North"]);
    }

    async fn a_changed_vector_replaces_the_old_one(db) {
        let id = embedded(&db.storage, "Drifter", "x", &[1.0, 0.0]).await;
        embedded(&db.storage, "Anchor", "x", &[0.0, 1.0]).await;
        let d = db.storage.document(&id).await.unwrap().unwrap();
        assert!(db.storage.store_embedding(&id, d.version, MODEL, &[0.0, 1.0]).await.unwrap());
        let found = db.storage.similar(&[0.0, 1.0], MODEL, &ReadScope::All, None, 2)
            .await.unwrap();
        assert!(found.iter().all(|s| (s.score - 1.0).abs() < 1e-5), "both point up now");
        assert_eq!(db.storage.embedding(&id, MODEL).await.unwrap(), Some(vec![0.0, 1.0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_user_that_may_not_enable_pgvector_still_ranks_then_gains_it() {
    let db = TestDb::postgres_as_owner().await;
    // pgvector is not a trusted extension: only a superuser can create it.
    assert!(!db.storage.uses_pgvector().await.unwrap());
    compass(&db.storage).await;
    ranks_like_a_compass(&db.storage).await;

    // A superuser enables it: the vectors already stored are copied and ranked by it.
    let admin = Storage::open(&db.superuser_url().unwrap()).await.unwrap();
    assert!(admin.uses_pgvector().await.unwrap());
    ranks_like_a_compass(&admin).await;
    admin.db().close().await;

    // The owner's next start finds the extension and uses it, without creating it.
    let owner = Storage::open(&db.url).await.unwrap();
    assert!(owner.uses_pgvector().await.unwrap());
    ranks_like_a_compass(&owner).await;
    embedded(&owner, "West", "maps/b", &[0.0, -1.0, 0.0]).await;
    let found = owner.similar(&[0.0, -1.0, 0.0], MODEL, &ReadScope::All, None, 1).await.unwrap();
    assert_eq!(titles(&found), ["West"]);
    owner.db().close().await;
}

/// Deterministic pseudo-random vectors, so that the test needs no random crate.
fn vectors(count: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..count).map(|_| (0..dims).map(|_| next()).collect()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_finds_the_true_neighbours_within_a_narrow_scope() {
    let db = TestDb::postgres().await;
    assert!(db.storage.uses_pgvector().await.unwrap());
    let stored = vectors(1_500, 24, 7);
    let mut ids = Vec::new();
    for (i, v) in stored.iter().enumerate() {
        // One document in ten is in the folder the reader may see.
        let path = if i % 10 == 0 { "readable" } else { "hidden" };
        ids.push(embedded(&db.storage, &format!("Doc {i}"), path, v).await);
    }
    // With statistics, as autovacuum keeps them, the planner reads the index.
    db.storage.db().execute("ANALYZE", vec![]).await.unwrap();
    let scope = ReadScope::Under(vec!["readable".to_string()]);
    let mut hits = 0;
    let queries = vectors(20, 24, 99);
    for q in &queries {
        let mut truth: Vec<(f32, usize)> = stored
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 == 0)
            .map(|(i, v)| (cosine(q, v), i))
            .collect();
        truth.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<&str> = truth[..10].iter().map(|(_, i)| ids[*i].as_str()).collect();
        let found = db.storage.similar(q, MODEL, &scope, None, 10).await.unwrap();
        // The scope is applied to what the index returns, and the scan goes on until ten
        // readable documents are found.
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|s| s.path == "readable"));
        hits += found.iter().filter(|s| truth.contains(&s.id.as_str())).count();
    }
    // HNSW is approximate; on this data it misses at most a few of 200 true neighbours.
    assert!(hits >= 190, "recall {hits}/200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vector_rewritten_without_pgvector_is_never_ranked_by_its_stale_copy() {
    let db = TestDb::postgres().await;
    assert!(db.storage.uses_pgvector().await.unwrap());
    compass(&db.storage).await;
    let north = db.storage.similar(&[1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 1).await;
    let north = north.unwrap().remove(0);
    // What a process without pgvector writes: the bytes alone, now pointing south.
    let south: Vec<u8> = [-1.0f32, 0.0, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    db.storage
        .db()
        .execute(
            "UPDATE embeddings SET vector = $1 WHERE doc_id = $2",
            vec![isocrates_db::Arg::Bytes(south), isocrates_db::Arg::from(north.id.as_str())],
        )
        .await
        .unwrap();
    let found = db.storage.similar(&[1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 1).await;
    assert_eq!(titles(&found.unwrap()), ["North by east"], "the stale copy is not used");
    // The next start copies the new vector into the column.
    let reopened = Storage::open(&db.url).await.unwrap();
    let found = reopened.similar(&[-1.0, 0.0, 0.0], MODEL, &ReadScope::All, None, 2).await;
    let found = found.unwrap();
    assert!(found.iter().all(|s| s.title == "North" || s.title == "South"), "{found:?}");
    reopened.db().close().await;
}
