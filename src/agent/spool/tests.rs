use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn config(dir: &Path, sinks: &[&str]) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        max_age: HOUR,
        sinks: sinks.iter().map(|s| s.to_string()).collect(),
        dead_letter_max_bytes: DEFAULT_DEAD_LETTER_MAX_BYTES,
        dead_letter_max_age: DEFAULT_DEAD_LETTER_MAX_AGE,
    }
}

fn report(report_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema_version": "1.0",
        "report_id": report_id,
        "verdict": {"status": "healthy"},
    }))
    .unwrap()
}

/// A report of exactly `size` bytes.
fn report_of_size(report_id: &str, size: usize) -> Vec<u8> {
    let base = serde_json::to_vec(&serde_json::json!({"report_id": report_id, "pad": ""}))
        .unwrap()
        .len();
    assert!(size >= base, "size {size} below the minimum {base}");
    let json = serde_json::to_vec(
        &serde_json::json!({"report_id": report_id, "pad": "x".repeat(size - base)}),
    )
    .unwrap();
    assert_eq!(json.len(), size);
    json
}

/// The file names in the directory, sorted, without the lock file.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != LOCK_NAME)
        .collect();
    names.sort();
    names
}

fn report_ids(pending: &[Pending]) -> Vec<&str> {
    pending.iter().map(|p| p.report_id.as_str()).collect()
}

#[test]
fn push_pending_ack_with_two_sinks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    let a = spool.push("r-a", &report("r-a")).unwrap();
    let b = spool.push("r-b", &report("r-b")).unwrap();
    assert!(a < b);
    assert_eq!(
        names(tmp.path()),
        vec![format!("{a}.json"), format!("{b}.json")]
    );
    assert_eq!(spool.read(&a).unwrap(), report("r-a"));
    assert_eq!(report_ids(&spool.pending_for("http")), ["r-a", "r-b"]);
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r-a", "r-b"]);
    let p = &spool.pending_for("http")[0];
    assert_eq!(p.path, tmp.path().join(format!("{a}.json")));
    assert_eq!(p.bytes, report("r-a").len() as u64);

    spool.ack(&a, "http").unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["r-b"]);
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r-a", "r-b"]);
    assert!(tmp.path().join(format!("{a}.json")).exists());
    assert!(tmp.path().join(format!("{a}.ack.http")).exists());
    // Acknowledging twice changes nothing.
    spool.ack(&a, "http").unwrap();
    assert_eq!(spool.stats().acknowledged, 0);

    spool.ack(&a, "s3").unwrap();
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r-b"]);
    // The entry and its marker are gone; the other entry is untouched.
    assert_eq!(names(tmp.path()), vec![format!("{b}.json")]);
    assert!(matches!(spool.read(&a), Err(SpoolError::UnknownEntry(_))));
    // An ack of an entry no longer spooled is not an error.
    spool.ack(&a, "http").unwrap();

    let stats = spool.stats();
    assert_eq!(
        stats,
        SpoolStats {
            spooled: 2,
            acknowledged: 1,
            entries: 1,
            bytes: report("r-b").len() as u64,
            ..SpoolStats::default()
        }
    );
}

#[test]
fn reopen_recovers_unacknowledged_entries_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let (e1, e2, e3);
    {
        let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        e1 = spool.push("r1", &report("r1")).unwrap();
        e2 = spool.push("r2", &report("r2")).unwrap();
        e3 = spool.push(&id, &report(&id)).unwrap();
        spool.ack(&e1, "http").unwrap();
        spool.ack(&e2, "http").unwrap();
        spool.ack(&e2, "s3").unwrap();
        // Dropped without any shutdown step, as kill -9 would leave it.
    }
    let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), [id.as_str()]);
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r1", id.as_str()]);
    let ids: Vec<EntryId> = spool.pending_for("s3").into_iter().map(|p| p.id).collect();
    assert_eq!(ids, [e1.clone(), e3.clone()]);
    assert_eq!(spool.read(&e1).unwrap(), report("r1"));
    assert_eq!(spool.read(&e3).unwrap(), report(&id));
    let stats = spool.stats();
    assert_eq!(stats.recovered, 2);
    assert_eq!(stats.entries, 2);
    assert_eq!(stats.bytes, (report("r1").len() + report(&id).len()) as u64);
    assert_eq!(stats.spooled, 0);

    // A new push after reopening sorts after the recovered entries.
    let mut spool = spool;
    let e4 = spool.push("r4", &report("r4")).unwrap();
    assert!(e4 > e3);
    assert_eq!(
        report_ids(&spool.pending_for("s3")),
        ["r1", id.as_str(), "r4"]
    );
}

#[test]
fn second_open_of_a_held_directory_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
    let err = Spool::open(config(tmp.path(), &["http"])).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    drop(spool);
    Spool::open(config(tmp.path(), &["http"])).unwrap();
}

#[test]
fn open_deletes_leftover_temp_files_and_orphan_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let kept;
    {
        let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        kept = spool.push("r1", &report("r1")).unwrap();
    }
    // A write a crash interrupted before its rename, and the marker of an entry whose
    // removal a crash interrupted after deleting the entry file.
    fs::write(tmp.path().join(".tmp-Ab3xYz"), b"{\"report_id\": \"r").unwrap();
    fs::write(tmp.path().join("0001700000000000-gone.ack.http"), b"").unwrap();

    let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    assert_eq!(names(tmp.path()), vec![format!("{kept}.json")]);
    assert_eq!(report_ids(&spool.pending_for("http")), ["r1"]);
    assert_eq!(spool.stats().skipped_files, 0);
}

#[test]
fn open_finishes_removal_of_an_entry_every_sink_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (e1, e2);
    {
        let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        e1 = spool.push("r1", &report("r1")).unwrap();
        e2 = spool.push("r2", &report("r2")).unwrap();
        spool.ack(&e1, "http").unwrap();
    }
    // As if the last acknowledgement had been written but the entry not yet removed.
    fs::write(tmp.path().join(format!("{e1}.ack.s3")), b"").unwrap();
    let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    assert_eq!(names(tmp.path()), vec![format!("{e2}.json")]);
    assert_eq!(spool.stats().entries, 1);
}

#[test]
fn sinks_joining_and_leaving_the_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let (e1, e2);
    {
        let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
        e1 = spool.push("r1", &report("r1")).unwrap();
        e2 = spool.push("r2", &report("r2")).unwrap();
        spool.ack(&e1, "http").unwrap();
        spool.ack(&e2, "s3").unwrap();
    }
    {
        // A new sink is sent everything still spooled.
        let spool = Spool::open(config(tmp.path(), &["http", "s3", "dir"])).unwrap();
        assert_eq!(report_ids(&spool.pending_for("dir")), ["r1", "r2"]);
        assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
    }
    // s3 left: r1, which http acknowledged, is done; r2 still waits for http, and the s3
    // marker goes with it when it leaves.
    let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
    assert_eq!(
        names(tmp.path()),
        vec![format!("{e2}.ack.s3"), format!("{e2}.json")]
    );
    spool.ack(&e2, "http").unwrap();
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn garbage_in_the_directory_is_skipped_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let good;
    {
        let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
        good = spool.push("r1", &report("r1")).unwrap();
    }
    let dir = tmp.path();
    fs::write(dir.join("notes.txt"), b"operator's notes").unwrap();
    fs::write(dir.join("123-short.json"), report("short")).unwrap();
    fs::write(dir.join("0001700000000000-bad_id.json"), report("bad_id")).unwrap();
    // Entry names with corrupt content: not JSON, empty, another report_id, an array.
    fs::write(
        dir.join("0001700000000001-torn.json"),
        b"{\"report_id\":\"torn\",",
    )
    .unwrap();
    fs::write(dir.join("0001700000000002-empty.json"), b"").unwrap();
    fs::write(dir.join("0001700000000003-mine.json"), report("theirs")).unwrap();
    fs::write(dir.join("0001700000000004-arr.json"), b"[\"arr\"]").unwrap();
    fs::write(dir.join("0001700000000005-bin.json"), [0xff, 0xfe, 0x00]).unwrap();
    // Its marker stays with it rather than being deleted as an orphan.
    fs::write(dir.join("0001700000000001-torn.ack.http"), b"").unwrap();
    // A marker with a bad sink name, a subdirectory and a symlink with an entry's name.
    fs::write(dir.join(format!("{good}.ack.a b")), b"").unwrap();
    fs::create_dir(dir.join("0001700000000006-subdir.json")).unwrap();
    std::os::unix::fs::symlink(
        dir.join(format!("{good}.json")),
        dir.join("0001700000000007-link.json"),
    )
    .unwrap();
    let before = names(dir);

    let mut spool = Spool::open(config(dir, &["http"])).unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["r1"]);
    let stats = spool.stats();
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.bytes, report("r1").len() as u64);
    assert_eq!(stats.skipped_files, 11);
    assert_eq!(names(dir), before, "nothing foreign is deleted");

    // The spool works normally around them.
    let e2 = spool.push("r2", &report("r2")).unwrap();
    spool.ack(&good, "http").unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["r2"]);
    assert_eq!(spool.read(&e2).unwrap(), report("r2"));
}

#[test]
fn size_bound_drops_the_oldest_first_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &["http", "s3"]);
    cfg.max_bytes = 300;
    let mut spool = Spool::open(cfg).unwrap();
    let e1 = spool.push("r1", &report_of_size("r1", 100)).unwrap();
    spool.ack(&e1, "http").unwrap();
    spool.push("r2", &report_of_size("r2", 100)).unwrap();
    spool.push("r3", &report_of_size("r3", 100)).unwrap();
    assert_eq!(spool.stats().dropped_size, 0);
    assert_eq!(spool.stats().bytes, 300);

    let e4 = spool.push("r4", &report_of_size("r4", 100)).unwrap();
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r2", "r3", "r4"]);
    assert_eq!(report_ids(&spool.pending_for("http")), ["r2", "r3", "r4"]);
    let stats = spool.stats();
    assert_eq!((stats.dropped_size, stats.dropped_age), (1, 0));
    assert_eq!((stats.entries, stats.bytes), (3, 300));
    // The dropped entry's file and marker are gone.
    assert!(!names(tmp.path()).iter().any(|n| n.starts_with(e1.as_str())));

    // One bigger report pushes out as many of the oldest as needed.
    spool.push("r5", &report_of_size("r5", 250)).unwrap();
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r5"]);
    assert_eq!(spool.stats().dropped_size, 4);
    assert!(matches!(spool.read(&e4), Err(SpoolError::UnknownEntry(_))));
    assert_eq!(names(tmp.path()).len(), 1);
}

#[test]
fn age_bound_drops_old_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &["http"]);
    cfg.max_age = Duration::from_secs(30 * 60);
    let mut spool = Spool::open(cfg).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let min = Duration::from_secs(60);
    let e1 = spool.push_at("r1", &report("r1"), t0).unwrap();
    spool.push_at("r2", &report("r2"), t0 + 10 * min).unwrap();
    spool.push_at("r3", &report("r3"), t0 + 20 * min).unwrap();
    assert_eq!(spool.pending_for("http")[0].created, t0);

    // Exactly max_age old is still kept.
    assert_eq!(spool.enforce_bounds(t0 + 30 * min), 0);
    assert_eq!(spool.enforce_bounds(t0 + 35 * min), 1);
    assert_eq!(report_ids(&spool.pending_for("http")), ["r2", "r3"]);
    assert!(!tmp.path().join(format!("{e1}.json")).exists());
    // The age bound applies to the newest entry too.
    assert_eq!(spool.enforce_bounds(t0 + 51 * min), 2);
    let stats = spool.stats();
    assert_eq!((stats.dropped_age, stats.dropped_size), (3, 0));
    assert_eq!((stats.entries, stats.bytes), (0, 0));
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn ids_follow_push_order_even_when_the_clock_steps_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let a = spool.push_at("zz", &report("zz"), t0).unwrap();
    let b = spool.push_at("aa", &report("aa"), t0).unwrap();
    let c = spool.push_at("mm", &report("mm"), t0 - HOUR).unwrap();
    assert!(a < b && b < c);
    assert_eq!(a.as_str(), "0001800000000000-zz");
    assert_eq!(report_ids(&spool.pending_for("http")), ["zz", "aa", "mm"]);
}

#[test]
fn pushing_a_spooled_report_id_again_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
    let a = spool.push("r1", &report("r1")).unwrap();
    assert_eq!(spool.push("r1", &report("r1")).unwrap(), a);
    assert_eq!(names(tmp.path()).len(), 1);
    assert_eq!(spool.stats().spooled, 1);
}

#[test]
fn invalid_report_ids_and_reports_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(tmp.path(), &["http"])).unwrap();
    let long = "a".repeat(MAX_REPORT_ID_LEN + 1);
    for bad in [
        "",
        "../etc/passwd",
        "a/b",
        "a.json",
        "a b",
        "a_b",
        "ü",
        "a\0b",
        ".tmp-x",
        long.as_str(),
    ] {
        let json = serde_json::to_vec(&serde_json::json!({ "report_id": bad })).unwrap();
        let err = spool.push(bad, &json).unwrap_err();
        assert!(
            matches!(err, SpoolError::InvalidReportId(_)),
            "{bad:?}: {err}"
        );
    }
    spool
        .push(
            &"a".repeat(MAX_REPORT_ID_LEN),
            &report(&"a".repeat(MAX_REPORT_ID_LEN)),
        )
        .unwrap();

    for json in [
        report("other").as_slice(),
        b"not json",
        b"[\"r1\"]",
        b"{\"report_id\": 1}",
        b"{\"schema_version\": \"1.0\"}",
        b"{\"report_id\": \"r1\"} trailing",
    ] {
        let err = spool.push("r1", json).unwrap_err();
        assert!(matches!(err, SpoolError::InvalidReport { .. }), "{err}");
    }
    assert_eq!(
        names(tmp.path()).len(),
        1,
        "only the valid push wrote a file"
    );
    assert_eq!(spool.stats().spooled, 1);
}

#[test]
fn invalid_configurations_and_unknown_sinks() {
    let tmp = tempfile::tempdir().unwrap();
    for sinks in [&[][..], &["a/b"], &[""], &["a.b"], &["http", "http"]] {
        let err = Spool::open(config(tmp.path(), sinks)).unwrap_err();
        assert!(
            matches!(err, SpoolError::Config(_) | SpoolError::InvalidSinkName(_)),
            "{sinks:?}: {err}"
        );
    }
    let mut spool = Spool::open(config(tmp.path(), &["http", "local_dir"])).unwrap();
    let a = spool.push("r1", &report("r1")).unwrap();
    assert!(spool.pending_for("nope").is_empty());
    let err = spool.ack(&a, "nope").unwrap_err();
    assert!(matches!(err, SpoolError::UnknownSink { .. }), "{err}");
    assert_eq!(report_ids(&spool.pending_for("local_dir")), ["r1"]);
}

#[test]
fn a_report_bigger_than_max_bytes_is_kept_until_acknowledged_or_displaced() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), &["http", "s3"]);
    cfg.max_bytes = 100;
    let mut spool = Spool::open(cfg.clone()).unwrap();
    spool.push("small1", &report_of_size("small1", 60)).unwrap();

    // Older entries go; the oversized newest stays, over the bound by itself.
    let big = spool.push("big1", &report_of_size("big1", 500)).unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["big1"]);
    let stats = spool.stats();
    assert_eq!(
        (stats.entries, stats.bytes, stats.dropped_size),
        (1, 500, 1)
    );
    assert_eq!(spool.enforce_bounds(SystemTime::now()), 0);

    // It survives a restart too.
    drop(spool);
    let mut spool = Spool::open(cfg).unwrap();
    assert_eq!(report_ids(&spool.pending_for("s3")), ["big1"]);
    assert_eq!(spool.stats().bytes, 500);

    // It leaves when every sink acknowledged it...
    spool.ack(&big, "http").unwrap();
    assert_eq!(spool.read(&big).unwrap(), report_of_size("big1", 500));
    spool.ack(&big, "s3").unwrap();
    assert_eq!(spool.stats().entries, 0);
    assert_eq!(spool.stats().dropped_size, 0);

    // ... or, as the oldest, when the next report arrives.
    spool.push("big2", &report_of_size("big2", 500)).unwrap();
    spool.push("small2", &report_of_size("small2", 60)).unwrap();
    assert_eq!(report_ids(&spool.pending_for("http")), ["small2"]);
    assert_eq!(spool.stats().dropped_size, 1);
    assert_eq!(spool.stats().bytes, 60);
    assert_eq!(names(tmp.path()).len(), 1);
}

#[test]
fn dead_letter_moves_the_report_aside_for_one_sink_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    let a = spool.push("r-a", &report("r-a")).unwrap();
    let b = spool.push("r-b", &report("r-b")).unwrap();
    let path = spool
        .dead_letter(&a, "http", "400 report_id missing")
        .unwrap();
    let dl = tmp.path().join("dead-letter").join("http");
    assert_eq!(path, dl.join("r-a.json"));
    assert_eq!(fs::read(&path).unwrap(), report("r-a"));
    assert_eq!(
        fs::read_to_string(dl.join("r-a.why")).unwrap(),
        "400 report_id missing\n"
    );
    // Acknowledged for that sink only: it goes on with the next one, the other sink still has it.
    assert_eq!(report_ids(&spool.pending_for("http")), ["r-b"]);
    assert_eq!(report_ids(&spool.pending_for("s3")), ["r-a", "r-b"]);
    assert!(matches!(
        spool.dead_letter(&b, "nope", "x"),
        Err(SpoolError::UnknownSink { .. })
    ));
    drop(spool);
    // The dead-letter directory is not a stranger to the spool's scan.
    let spool = Spool::open(config(tmp.path(), &["http", "s3"])).unwrap();
    assert_eq!(spool.stats().skipped_files, 0);
    assert_eq!(report_ids(&spool.pending_for("http")), ["r-b"]);
    let mut leftovers: Vec<String> = fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    leftovers.sort();
    assert_eq!(leftovers, ["r-a.json", "r-a.why"]);
}

fn dead_letter_config(
    dir: &Path,
    sinks: &[&str],
    max_bytes: u64,
    max_age: Duration,
) -> SpoolConfig {
    SpoolConfig {
        dead_letter_max_bytes: max_bytes,
        dead_letter_max_age: max_age,
        ..config(dir, sinks)
    }
}

/// The file names under `dead-letter/<sink>/`, sorted.
fn dead_letter_names(spool_dir: &Path, sink: &str) -> Vec<String> {
    names(&spool_dir.join(DEAD_LETTER_DIR).join(sink))
}

#[test]
fn dead_letters_older_than_the_bound_are_pruned_at_the_next_push_never_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dead_letter_config(tmp.path(), &["http"], 1 << 20, HOUR)).unwrap();
    for id in ["r-a", "r-b"] {
        let e = spool.push(id, &report(id)).unwrap();
        spool.dead_letter(&e, "http", "400 bad").unwrap();
    }
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-a.json", "r-a.why", "r-b.json", "r-b.why"]
    );
    // Within the hour nothing goes.
    assert_eq!(spool.prune_dead_letters(SystemTime::now()), 0);
    // A push two hours later (the next run) enforces the age bound: both are too old, the
    // newest stays so that the last refusal can still be read.
    let later = SystemTime::now() + 2 * HOUR;
    spool.push_at("r-c", &report("r-c"), later).unwrap();
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-b.json", "r-b.why"]
    );
    let stats = spool.stats();
    assert_eq!(stats.dead_letters_pruned_age, 1);
    assert_eq!(stats.dead_letters_pruned_size, 0);
    // The spool's own entries are not touched by the dead-letter bounds.
    assert_eq!(report_ids(&spool.pending_for("http")), ["r-c"]);
    assert_eq!(stats.dropped_age + stats.dropped_size, 0);
}

#[test]
fn dead_letters_over_the_size_bound_lose_the_oldest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let why = "400 bad";
    let letter_bytes = (report_of_size("r-1", 200).len() + why.len() + 1) as u64;
    // Room for two dead letters, not three.
    let mut spool = Spool::open(dead_letter_config(
        tmp.path(),
        &["http", "dir"],
        2 * letter_bytes + letter_bytes / 2,
        HOUR,
    ))
    .unwrap();
    for id in ["r-1", "r-2", "r-3", "r-4"] {
        let e = spool.push(id, &report_of_size(id, 200)).unwrap();
        spool.dead_letter(&e, "http", why).unwrap();
    }
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-3.json", "r-3.why", "r-4.json", "r-4.why"]
    );
    assert_eq!(spool.stats().dead_letters_pruned_size, 2);
    assert_eq!(spool.stats().dead_letters_pruned_age, 0);
    // The bound is over every sink's dead letters together.
    let e = spool.push("r-5", &report_of_size("r-5", 200)).unwrap();
    spool.dead_letter(&e, "dir", why).unwrap();
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-4.json", "r-4.why"]
    );
    assert_eq!(
        dead_letter_names(tmp.path(), "dir"),
        ["r-5.json", "r-5.why"]
    );
    assert_eq!(spool.stats().dead_letters_pruned_size, 3);
    // The other sink still has every report: dead letters are copies, the entries stay.
    assert_eq!(
        report_ids(&spool.pending_for("dir")),
        ["r-1", "r-2", "r-3", "r-4"]
    );
}

#[test]
fn a_dead_letter_bigger_than_the_bound_on_its_own_is_kept_as_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dead_letter_config(tmp.path(), &["http"], 0, HOUR)).unwrap();
    let a = spool.push("r-a", &report("r-a")).unwrap();
    spool.dead_letter(&a, "http", "400 bad").unwrap();
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-a.json", "r-a.why"]
    );
    let b = spool.push("r-b", &report("r-b")).unwrap();
    spool.dead_letter(&b, "http", "400 bad").unwrap();
    assert_eq!(
        dead_letter_names(tmp.path(), "http"),
        ["r-b.json", "r-b.why"]
    );
    assert_eq!(spool.stats().dead_letters_pruned_size, 1);
}

#[test]
fn open_prunes_dead_letters_of_every_sink_and_leaves_strangers_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dead_letter_config(
        tmp.path(),
        &["http", "old"],
        1 << 20,
        HOUR,
    ))
    .unwrap();
    for (id, sink) in [("r-a", "old"), ("r-b", "http"), ("r-c", "http")] {
        let e = spool.push(id, &report(id)).unwrap();
        spool.dead_letter(&e, sink, "422 no").unwrap();
    }
    drop(spool);
    let dl = tmp.path().join(DEAD_LETTER_DIR);
    // File times are coarse (a few ms): make the order of the three explicit.
    let base = SystemTime::now() - Duration::from_secs(60);
    for (i, (id, sink)) in [("r-a", "old"), ("r-b", "http"), ("r-c", "http")]
        .iter()
        .enumerate()
    {
        for ext in ["json", "why"] {
            fs::File::options()
                .write(true)
                .open(dl.join(sink).join(format!("{id}.{ext}")))
                .unwrap()
                .set_modified(base + Duration::from_secs(i as u64))
                .unwrap();
        }
    }
    // What the spool does not write: a file of another name, a directory that is no sink name,
    // a symlink named like a dead letter. A crash's temporary file is the spool's.
    fs::write(dl.join("http").join("notes.txt"), "mine").unwrap();
    fs::create_dir(dl.join("not a sink")).unwrap();
    fs::write(dl.join("not a sink").join("r-x.json"), "{}").unwrap();
    std::os::unix::fs::symlink(dl.join("http/r-b.json"), dl.join("http/r-z.json")).unwrap();
    fs::write(dl.join("http").join(format!("{TMP_PREFIX}123")), "half").unwrap();

    // "old" left the configuration; its dead letters still count and age out. A bound of a few
    // bytes keeps only the newest of all: r-c.
    let spool = Spool::open(dead_letter_config(tmp.path(), &["http"], 10, HOUR)).unwrap();
    assert_eq!(spool.stats().dead_letters_pruned_size, 2);
    assert_eq!(names(&dl.join("old")), Vec::<String>::new());
    assert_eq!(
        names(&dl.join("http")),
        ["notes.txt", "r-c.json", "r-c.why", "r-z.json"]
    );
    assert_eq!(names(&dl.join("not a sink")), ["r-x.json"]);
    assert_eq!(spool.stats().skipped_files, 0);
}

#[test]
fn a_lone_reason_file_is_a_dead_letter_too() {
    // A deletion interrupted between the report and its reason leaves the .why: it is pruned
    // like the rest, not kept forever.
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join(DEAD_LETTER_DIR).join("http");
    fs::create_dir_all(&dl).unwrap();
    fs::write(dl.join("r-a.why"), "400 bad\n").unwrap();
    fs::write(dl.join("r-b.why"), "400 bad\n").unwrap();
    let mut spool = Spool::open(dead_letter_config(tmp.path(), &["http"], 1 << 20, HOUR)).unwrap();
    assert_eq!(spool.prune_dead_letters(SystemTime::now() + 2 * HOUR), 1);
    assert_eq!(names(&dl).len(), 1);
    assert_eq!(spool.stats().dead_letters_pruned_age, 1);
}
