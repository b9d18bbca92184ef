//! The storage suite: every scenario runs on a fresh SQLite file and on a fresh PostgreSQL
//! database.

use isocrates_storage::documents::{
    Author, AuthorType, ContentUpdate, ListFilter, NewDocument, ReadScope, Upserted,
};
use isocrates_storage::users::NewUser;
use isocrates_storage::{Error, Grant, Role, Storage, Timestamp};
use serde_json::json;

fn doc(title: &str, path: &str, content: &str) -> NewDocument {
    NewDocument {
        title: title.to_string(),
        content: content.to_string(),
        path: path.to_string(),
        repo_url: None,
        repo_name: None,
        doc_type: String::new(),
        keywords: vec![],
        description: None,
        author: Author { author_type: AuthorType::Ai, metadata: None },
    }
}

async fn create(storage: &Storage, new: NewDocument) -> String {
    match storage.upsert_document(new, |_| true).await.expect("upsert") {
        Upserted::Created(d) => d.id,
        Upserted::Updated(d) => panic!("{} already existed", d.id),
    }
}

fn all(limit: i64) -> ListFilter {
    ListFilter { skip: 0, limit, path_prefix: None, repo_url: None, scope: ReadScope::All }
}

async fn outgoing_targets(storage: &Storage, id: &str) -> Vec<String> {
    let (out, _) = storage.dependencies_of(id, &ReadScope::All).await.unwrap();
    out.into_iter().map(|d| d.to_doc_id).collect()
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.to_string(),
        display_name: email.to_string(),
        password_hash: "x".to_string(),
    }
}

isocrates_testkit::on_both_backends! {
    async fn migrations_apply_once(db) {
        assert!(db.storage.migrate().await.unwrap().is_empty(), "a second run applies nothing");
        db.storage.ping().await.unwrap();
    }

    async fn upsert_creates_then_versions_by_derived_id(db) {
        let s = &db.storage;
        let mut first = doc("Intro", "/guides/", "one");
        first.repo_url = Some("https://github.com/acme/app.git".to_string());
        first.author = Author { author_type: AuthorType::Ai, metadata: Some(json!({"run_id": "r1"})) };
        let id = create(s, first.clone()).await;
        assert_eq!(id, isocrates_storage::ids::document_id(Some("https://github.com/acme/app"), "guides", "Intro", ""));

        let mut second = first.clone();
        second.content = "two".to_string();
        second.author = Author { author_type: AuthorType::Human, metadata: Some(json!({"source": "mcp"})) };
        let Upserted::Updated(updated) = s.upsert_document(second, |_| true).await.unwrap() else { panic!("expected an update") };
        assert_eq!(updated.id, id);
        assert_eq!(updated.content, "two");
        assert_eq!(updated.generation_count, 2);
        assert_eq!(updated.repo_name.as_deref(), Some("guides"));

        let versions = s.versions(&id, 0, 10).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].author_type, "human");
        assert_eq!(versions[0].author_metadata, Some(json!({"source": "mcp"})));
        assert_eq!(versions[1].author_type, "ai");
        assert_eq!(versions[1].content, "one");
        assert_eq!(versions[0].content_hash, isocrates_storage::ids::sha256_hex("two"));
        assert!(s.version(&id, &versions[1].version_id).await.unwrap().is_some());
    }

    async fn stale_version_is_a_conflict_and_writes_nothing(db) {
        let s = &db.storage;
        let id = create(s, doc("Page", "a", "v1")).await;
        let current = s.document(&id).await.unwrap().unwrap().version;
        let update = |content: &str, v| ContentUpdate {
            content: content.to_string(),
            description: None,
            author: Author { author_type: AuthorType::Human, metadata: None },
            expected_version: v,
        };
        let after = s.update_content(&id, update("v2", Some(current))).await.unwrap();
        assert_eq!(after.version, current + 1);
        let stale = s.update_content(&id, update("v3", Some(current))).await;
        assert!(matches!(stale, Err(Error::Conflict(_))), "{stale:?}");
        assert_eq!(s.document(&id).await.unwrap().unwrap().content, "v2");
        assert_eq!(s.versions(&id, 0, 10).await.unwrap().len(), 2);
        // Without a version the write always lands.
        s.update_content(&id, update("v4", None)).await.unwrap();
    }

    async fn move_keeps_the_id_and_renames_the_repo(db) {
        let s = &db.storage;
        let id = create(s, doc("Page", "old/place", "x")).await;
        let moved = s.move_document(&id, "/new//home/").await.unwrap();
        assert_eq!(moved.id, id);
        assert_eq!(moved.path, "new/home");
        assert_eq!(moved.repo_name.as_deref(), Some("new"));
        assert!(matches!(s.move_document(&id, "a/../b").await, Err(Error::Validation { .. })));
    }

    async fn trash_restore_and_purge(db) {
        let s = &db.storage;
        let id = create(s, doc("Page", "a", "x")).await;
        s.trash_document(&id).await.unwrap();
        s.trash_document(&id).await.unwrap();
        assert!(s.document(&id).await.unwrap().is_none());
        assert_eq!(s.trashed_documents(&ReadScope::All, 0, 10).await.unwrap().len(), 1);
        assert!(s.documents(&all(10)).await.unwrap().is_empty());

        let restored = s.restore_document(&id).await.unwrap();
        assert!(restored.deleted_at.is_none());

        // Upserting a trashed id restores it with the new content.
        s.trash_document(&id).await.unwrap();
        let Upserted::Updated(back) = s.upsert_document(doc("Page", "a", "y"), |_| true).await.unwrap() else { panic!() };
        assert!(back.deleted_at.is_none());
        assert_eq!(back.content, "y");

        s.purge_document(&id).await.unwrap();
        assert!(s.document_any(&id).await.unwrap().is_none());
        assert!(s.versions(&id, 0, 10).await.unwrap().is_empty());
        assert!(matches!(s.purge_document(&id).await, Err(Error::NotFound { .. })));
    }

    async fn wikilinks_resolve_and_repair_when_targets_appear(db) {
        let s = &db.storage;
        let a = create(s, doc("Overview", "p", "See [[Setup Guide]] and [[setup-guide|again]] and [[Nowhere]].")).await;
        assert!(outgoing_targets(s, &a).await.is_empty());
        let status = s.link_status(&a, &ReadScope::All).await.unwrap();
        assert!(status.iter().all(|l| !l.resolved));

        let b = create(s, doc("Setup Guide", "p", "back to [[Overview]]")).await;
        assert_eq!(outgoing_targets(s, &a).await, vec![b.clone()]);
        assert_eq!(outgoing_targets(s, &b).await, vec![a.clone()]);
        let (_, incoming) = s.dependencies_of(&b, &ReadScope::All).await.unwrap();
        assert_eq!(incoming.len(), 1);
        assert_eq!(incoming[0].link_text.as_deref(), Some("Setup Guide"));

        // Trashing the target hides the edge; restoring repairs it.
        s.trash_document(&b).await.unwrap();
        assert!(outgoing_targets(s, &a).await.is_empty());
        s.restore_document(&b).await.unwrap();
        assert_eq!(outgoing_targets(s, &a).await, vec![b.clone()]);

        // An exact title beats a hyphen match that came first.
        let exact = create(s, doc("setup-guide", "q", "")).await;
        let status = s.link_status(&a, &ReadScope::All).await.unwrap();
        let hyphen = status.iter().find(|l| l.target == "setup-guide").unwrap();
        assert_eq!(hyphen.resolved_doc_id.as_deref(), Some(exact.as_str()));

        // Rewriting content replaces the outgoing links.
        s.update_content(&a, ContentUpdate {
            content: "no links".to_string(),
            description: None,
            author: Author { author_type: AuthorType::Human, metadata: None },
            expected_version: None,
        }).await.unwrap();
        assert!(outgoing_targets(s, &a).await.is_empty());
        assert_eq!(s.reindex_dependencies().await.unwrap(), (3, 1));
    }

    async fn resolution_respects_the_read_scope(db) {
        let s = &db.storage;
        create(s, doc("Secret", "hidden", "")).await;
        let visible = ReadScope::Under(vec!["public".to_string()]);
        assert!(s.resolve_link("Secret", &visible).await.unwrap().is_none());
        assert!(s.resolve_link("secret", &ReadScope::All).await.unwrap().is_some());
    }

    async fn manual_edges_refuse_self_and_cycles(db) {
        let s = &db.storage;
        let a = create(s, doc("A", "", "")).await;
        let b = create(s, doc("B", "", "")).await;
        let c = create(s, doc("C", "", "")).await;
        let edge = |from: &str, to: &str, ty: &str| isocrates_storage::links::NewDependency {
            from_doc_id: from.to_string(),
            to_doc_id: to.to_string(),
            link_type: ty.to_string(),
            link_text: None,
            section: None,
        };
        assert!(matches!(s.add_dependency(edge(&a, &a, "depends_on")).await, Err(Error::SelfDependency)));
        s.add_dependency(edge(&a, &b, "depends_on")).await.unwrap();
        s.add_dependency(edge(&b, &c, "depends_on")).await.unwrap();
        let cycle = s.add_dependency(edge(&c, &a, "depends_on")).await;
        assert!(matches!(cycle, Err(Error::CircularDependency)), "{cycle:?}");
        // Wikilinks may form cycles.
        s.add_dependency(edge(&c, &a, "wikilink")).await.unwrap();
        assert_eq!(s.all_dependencies(&ReadScope::All).await.unwrap().len(), 3);
    }

    async fn lists_sort_by_bytes_on_both_backends(db) {
        let s = &db.storage;
        for title in ["b", "C", "a", "B"] {
            create(s, doc(title, "p", "")).await;
        }
        let titles: Vec<_> = s.documents(&all(10)).await.unwrap().into_iter().map(|d| d.title).collect();
        assert_eq!(titles, ["B", "C", "a", "b"]);
    }

    async fn manual_edges_survive_saves_and_reindex(db) {
        let s = &db.storage;
        let a = create(s, doc("A", "", "no links")).await;
        let b = create(s, doc("B", "", "")).await;
        s.add_dependency(isocrates_storage::links::NewDependency {
            from_doc_id: a.clone(),
            to_doc_id: b.clone(),
            link_type: "wikilink".to_string(),
            link_text: None,
            section: None,
        }).await.unwrap();
        s.upsert_document(doc("A", "", "still no links"), |_| true).await.unwrap();
        s.reindex_dependencies().await.unwrap();
        assert_eq!(outgoing_targets(s, &a).await, vec![b]);
    }

    async fn concurrent_saves_that_link_each_other_all_land(db) {
        let s = db.storage.clone();
        let mut tasks = Vec::new();
        for round in 0..6 {
            for (me, other) in [("X", "Y"), ("Y", "X")] {
                let s = s.clone();
                let content = format!("round {round} links [[{other}]]");
                tasks.push(tokio::spawn(async move { s.upsert_document(doc(me, "", &content), |_| true).await }));
            }
        }
        for task in tasks {
            task.await.unwrap().expect("no save fails under concurrency");
        }
        let x = isocrates_storage::ids::document_id(None, "", "X", "");
        let y = isocrates_storage::ids::document_id(None, "", "Y", "");
        assert_eq!(outgoing_targets(&s, &x).await, vec![y.clone()]);
        assert_eq!(outgoing_targets(&s, &y).await, vec![x]);
    }

    async fn concurrent_opposite_manual_edges_never_make_a_cycle(db) {
        let s = db.storage.clone();
        let a = create(&s, doc("A", "", "")).await;
        let b = create(&s, doc("B", "", "")).await;
        let edge = |from: &str, to: &str| isocrates_storage::links::NewDependency {
            from_doc_id: from.to_string(),
            to_doc_id: to.to_string(),
            link_type: "depends_on".to_string(),
            link_text: None,
            section: None,
        };
        let (s1, s2) = (s.clone(), s.clone());
        let (e1, e2) = (edge(&a, &b), edge(&b, &a));
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { s1.add_dependency(e1).await }),
            tokio::spawn(async move { s2.add_dependency(e2).await }),
        );
        let results = [r1.unwrap(), r2.unwrap()];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(Error::CircularDependency))));
    }

    async fn a_moved_document_is_not_rewritten_through_its_old_path(db) {
        let s = &db.storage;
        let id = create(s, doc("Plan", "public", "original")).await;
        s.move_document(&id, "secret").await.unwrap();
        let refused = s.upsert_document(doc("Plan", "public", "hijack"), |path| path == "public").await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        let now = s.document(&id).await.unwrap().unwrap();
        assert_eq!((now.path.as_str(), now.content.as_str()), ("secret", "original"));
        assert_eq!(now.repo_name.as_deref(), Some("secret"), "no repo_name given: kept");
    }

    async fn lists_are_ordered_filtered_and_scoped(db) {
        let s = &db.storage;
        for (title, path) in [("B", "team/a"), ("A", "team/a"), ("C", "team/ab"), ("D", "other")] {
            create(s, doc(title, path, "")).await;
        }
        let titles = |docs: Vec<isocrates_storage::documents::Document>| docs.into_iter().map(|d| d.title).collect::<Vec<_>>();
        assert_eq!(titles(s.documents(&all(10)).await.unwrap()), ["D", "A", "B", "C"]);
        let mut under = all(10);
        under.path_prefix = Some("team/a".to_string());
        assert_eq!(titles(s.documents(&under).await.unwrap()), ["A", "B"]);
        let mut scoped = all(10);
        scoped.scope = ReadScope::of(&[Grant { path_prefix: "team/ab".to_string(), role: Role::Viewer }]);
        assert_eq!(titles(s.documents(&scoped).await.unwrap()), ["C"]);
        scoped.scope = ReadScope::Under(vec![]);
        assert!(s.documents(&scoped).await.unwrap().is_empty());
        let mut page = all(2);
        page.skip = 1;
        assert_eq!(titles(s.documents(&page).await.unwrap()), ["A", "B"]);
        assert_eq!(s.document_count().await.unwrap(), 4);
    }

    async fn bad_documents_are_refused(db) {
        let s = &db.storage;
        for (title, path, field) in [
            ("", "a", "title"),
            ("a/b", "a", "title"),
            ("ok", "a/../b", "path"),
            ("bell\u{7}", "a", "title"),
            ("ok", "a\u{0}b", "path"),
        ] {
            let err = s.upsert_document(doc(title, path, "x"), |_| true).await.unwrap_err();
            assert!(matches!(&err, Error::Validation { field: f, .. } if f == field), "{title:?} {path:?}: {err:?}");
        }
        let long = "t".repeat(301);
        assert!(s.upsert_document(doc(&long, "", ""), |_| true).await.is_err());
        assert!(s.upsert_document(doc("ok", "", "nul \u{0} inside"), |_| true).await.is_err());
    }

    async fn first_registration_becomes_admin(db) {
        let s = &db.storage;
        assert!(!s.has_users().await.unwrap());
        let admin = s.register(new_user(" Ada@Example.com "), false).await.unwrap();
        assert_eq!(admin.email, "ada@example.com");
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(admin.grants, vec![Grant::root(Role::Admin)]);

        let refused = s.register(new_user("bob@example.com"), false).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        let bob = s.register(new_user("bob@example.com"), true).await.unwrap();
        assert_eq!(bob.role, Role::Viewer);
        assert!(bob.grants.is_empty());
        let dup = s.register(new_user("BOB@example.com"), true).await;
        assert!(matches!(dup, Err(Error::Validation { ref field, .. }) if field == "email"), "{dup:?}");
    }

    async fn concurrent_first_registrations_make_one_admin(db) {
        let s = db.storage.clone();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.register(new_user(&format!("u{i}@example.com")), false).await })
            })
            .collect();
        let mut admins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(user) => {
                    assert_eq!(user.role, Role::Admin);
                    admins += 1;
                }
                Err(Error::Forbidden(_)) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(admins, 1);
        assert_eq!(s.users().await.unwrap().len(), 1);
    }

    async fn grants_roles_and_deactivation(db) {
        let s = &db.storage;
        let u = s.register(new_user("a@example.com"), false).await.unwrap();
        let g = s.grant(&u.id, "/backend-product-a/", Role::Editor).await.unwrap();
        assert_eq!(g.path_prefix, "backend-product-a");
        s.grant(&u.id, "backend-product-a", Role::Viewer).await.unwrap();
        let grants = s.user(&u.id).await.unwrap().unwrap().grants;
        assert!(grants.contains(&Grant { path_prefix: "backend-product-a".to_string(), role: Role::Viewer }));
        s.revoke(&u.id, "backend-product-a").await.unwrap();
        s.revoke(&u.id, "backend-product-a").await.unwrap();
        assert!(matches!(s.grant("nobody", "", Role::Viewer).await, Err(Error::NotFound { .. })));
        assert_eq!(s.set_role(&u.id, Role::Editor).await.unwrap().role, Role::Editor);
        assert!(!s.deactivate(&u.id).await.unwrap().is_active);
        assert!(matches!(s.set_role("nobody", Role::Editor).await, Err(Error::NotFound { .. })));
    }

    async fn service_users_are_reused_by_subject(db) {
        let s = &db.storage;
        let one = s.service_user("doc-agent", "").await.unwrap();
        let two = s.service_user("doc-agent", "team-a").await.unwrap();
        assert_eq!(one.id, two.id);
        assert_eq!(one.role, Role::Service);
        assert_eq!(one.grants, vec![Grant::root(Role::Editor)]);
        let narrowed = vec![Grant { path_prefix: "team-a".to_string(), role: Role::Editor }];
        assert_eq!(two.grants, narrowed, "a new mint replaces the grants");
        assert!(s.user_for_login(&one.email).await.unwrap().is_none(), "no password login");
    }

    async fn audit_rows_are_kept(db) {
        let s = &db.storage;
        s.audit(isocrates_storage::audit::AuditEntry {
            actor_id: Some("u1".to_string()),
            action: "document.update",
            target: Some("doc-1".to_string()),
            details: Some(json!({"k": 1})),
            request_id: Some("r".to_string()),
        }).await.unwrap();
        let rows = s.audit_log(10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].action, "document.update");
    }

    async fn a_proposal_waits_beside_its_page_until_a_person_decides(db) {
        let s = &db.storage;
        let id = create(s, doc("Core", "shop", "# Core\n\nBy a person.")).await;
        let first = s.propose(&id, "AI text one", Some("First."), Some(json!({"generator": "isocrates"}))).await.unwrap();
        let second = s.propose(&id, "AI text two", None, Some(json!({"generator": "isocrates", "run_id": "r2"}))).await.unwrap();
        let listed = s.proposals(&id).await.unwrap();
        assert_eq!(listed.iter().map(|p| (p.id.as_str(), p.status.as_str())).collect::<Vec<_>>(), [(second.id.as_str(), "open"), (first.id.as_str(), "superseded")]);
        assert_eq!(s.document(&id).await.unwrap().unwrap().content, "# Core\n\nBy a person.", "a proposal changes nothing");

        let stale = s.accept_proposal(&id, &first.id, "u1").await.unwrap_err();
        assert!(matches!(stale, Error::Conflict(_)), "{stale:?}");
        let (page, accepted) = s.accept_proposal(&id, &second.id, "u1").await.unwrap();
        assert_eq!(page.content, "AI text two");
        assert_eq!(accepted.decided_by.as_deref(), Some("u1"));
        let version = &s.versions(&id, 0, 1).await.unwrap()[0];
        assert_eq!(version.author_type, "ai");
        assert_eq!(version.author_metadata.as_ref().unwrap()["accepted_by"], "u1");
        assert_eq!(version.author_metadata.as_ref().unwrap()["run_id"], "r2");

        let third = s.propose(&id, "AI text three", None, None).await.unwrap();
        let dismissed = s.dismiss_proposal(&id, &third.id, "u2").await.unwrap();
        assert_eq!(dismissed.status.as_str(), "dismissed");
        assert_eq!(s.document(&id).await.unwrap().unwrap().content, "AI text two");
        assert!(matches!(s.propose("doc-missing", "x", None, None).await, Err(Error::NotFound { .. })));

        s.trash_document(&id).await.unwrap();
        s.purge_document(&id).await.unwrap();
        assert!(s.proposals(&id).await.unwrap().is_empty(), "purged with its page");
    }

    async fn a_tracked_repository_moves_its_pages_and_keeps_what_github_said(db) {
        let s = &db.storage;
        let repo = "https://github.com/acme/shop";
        let row = s.track_repository(repo, "shop", Some("main"), Some(true)).await.unwrap();
        assert_eq!((row.folder.as_str(), row.default_branch.as_deref(), row.private), ("shop", Some("main"), Some(true)));
        // A later clone that knows less leaves what was known.
        let again = s.track_repository(repo, "ignored", None, None).await.unwrap();
        assert_eq!((again.folder.as_str(), again.default_branch.as_deref(), again.private), ("shop", Some("main"), Some(true)));

        let page = |title: &str, path: &str| NewDocument { repo_url: Some(repo.into()), ..doc(title, path, "text") };
        let top = create(s, page("Overview", "shop")).await;
        let deep = create(s, page("Cart", "shop/modules")).await;
        let away = create(s, page("Elsewhere", "handbook")).await;
        let moved = s.move_repository(&row.id, "/wiki/shop/").await.unwrap();
        assert_eq!(moved.folder, "wiki/shop");
        let path = |id: String| async move { s.document(&id).await.unwrap().unwrap().path };
        assert_eq!(path(top).await, "wiki/shop");
        assert_eq!(path(deep).await, "wiki/shop/modules");
        assert_eq!(path(away).await, "handbook", "a page moved out of the folder stays");

        let inside = s.move_repository(&row.id, "wiki/shop/sub").await.unwrap_err();
        assert!(matches!(inside, Error::Validation { .. }), "{inside:?}");
        assert!(matches!(s.move_repository(&row.id, "  ").await.unwrap_err(), Error::Validation { .. }));
        assert!(matches!(s.move_repository("nope", "x").await.unwrap_err(), Error::NotFound { .. }));
    }

    async fn the_purge_removes_only_what_was_trashed_before_the_cutoff(db) {
        let s = &db.storage;
        let old = create(s, doc("Old", "notes", "links to [[Active]]")).await;
        let recent = create(s, doc("Recent", "notes", "r")).await;
        let active = create(s, doc("Active", "notes", "a")).await;
        s.trash_document(&old).await.unwrap();
        s.trash_document(&recent).await.unwrap();
        // The first was trashed forty days ago.
        let forty_days = std::time::Duration::from_secs(40 * 86_400);
        s.db()
            .execute("UPDATE documents SET deleted_at = $1 WHERE id = $2", isocrates_db::args![Timestamp::ago(forty_days), &old])
            .await
            .unwrap();
        let thirty_days = std::time::Duration::from_secs(30 * 86_400);
        assert_eq!(s.purge_trash(Timestamp::ago(thirty_days)).await.unwrap(), 1);
        assert!(s.document_any(&old).await.unwrap().is_none(), "purged with its versions");
        assert!(s.versions(&old, 0, 10).await.unwrap().is_empty());
        assert!(s.document_any(&recent).await.unwrap().unwrap().deleted_at.is_some(), "still in the trash");
        assert!(s.document(&active).await.unwrap().is_some(), "active documents are never purged");
        assert_eq!(s.purge_trash(Timestamp::ago(thirty_days)).await.unwrap(), 0, "nothing left to purge");
    }
}
