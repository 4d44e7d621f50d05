//! The paged data file through its public API, on real files: what a reopen gives back, what a
//! crash or a torn write leaves, what a damaged, foreign or misplaced page costs, and how much
//! memory the pool takes. Every run is compared with a `BTreeMap` of what was put.

use hadr_node::pages::{
    DataFile, DataFileOptions, PageError, PageProblem, CELL_MAX, KEY_INLINE_MAX, MAX_ENTRY_LEN,
    OVERFLOW_CAPACITY, PAGE_SIZE,
};
use hadr_types::{DatabaseId, Lsn};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DB: DatabaseId = DatabaseId(1);
type Model = BTreeMap<String, String>;

fn options(pages: u64) -> DataFileOptions {
    DataFileOptions {
        pool_budget_bytes: pages * PAGE_SIZE as u64,
    }
}

fn data_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("db-1.data")
}

fn create(path: &Path, pages: u64) -> DataFile {
    DataFile::create(path, DB, options(pages)).unwrap_or_else(|e| panic!("create failed: {e}"))
}

fn open(path: &Path, pages: u64) -> (DataFile, Lsn) {
    DataFile::open(path, DB, options(pages)).unwrap_or_else(|e| panic!("open failed: {e}"))
}

/// Everything the file holds, walked by `check` (which also checks the file's structure).
fn contents(file: &mut DataFile) -> Result<Model, PageError> {
    let mut seen = Model::new();
    file.check(|key, value| {
        seen.insert(key.to_owned(), value.to_owned());
    })?;
    Ok(seen)
}

/// The file holds exactly `model`: walked, and key by key.
fn assert_holds(file: &mut DataFile, model: &Model) {
    let walked = contents(file).unwrap_or_else(|e| panic!("check failed: {e}"));
    assert_eq!(walked.len(), model.len(), "number of entries");
    assert!(walked == *model, "the walk differs from the model");
    for (key, value) in model {
        let found = file
            .get(key)
            .unwrap_or_else(|e| panic!("get {key:.40?} failed: {e}"));
        assert!(
            found.as_deref() == Some(value.as_str()),
            "{key:.40?}: expected {} bytes, found {:?} bytes",
            value.len(),
            found.map(|v| v.len())
        );
    }
    assert_eq!(file.stats().entries, model.len() as u64);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A value of `len` bytes, different for each `seed` (ASCII, with a two-byte character when
/// there is room, so that UTF-8 survives every path).
fn value(seed: u64, len: usize) -> String {
    let mut text = format!("{seed}:é:");
    while text.len() < len {
        text.push(char::from(b'a' + (text.len() as u64 * 7 + seed) as u8 % 26));
    }
    while text.len() > len {
        text.pop();
    }
    text
}

/// Value lengths: mostly short, some around the inline limit, some in overflow pages, a few
/// up to 200,000 bytes.
fn value_len(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=5 => 20_000 + rng.below(180_001) as usize,
        6..=30 => CELL_MAX - 64 + rng.below(4 * OVERFLOW_CAPACITY as u64) as usize,
        31..=60 => rng.below(2000) as usize,
        61..=70 => 0,
        _ => rng.below(120) as usize,
    }
}

/// Keys: mostly short, some long ones (in overflow pages) that share a long prefix, so that
/// separators need overflow pages too.
fn key(rng: &mut Rng, n: u64) -> String {
    match rng.below(100) {
        0 => format!("{}/{n}", "long-shared-prefix-".repeat(100)),
        1 => format!("{n}-{}", "k".repeat(KEY_INLINE_MAX - 4)),
        2 => format!("ключ-{n}"),
        _ => format!("key-{:08}", rng.below(1 << 40)),
    }
}

#[test]
fn round_trip_of_many_keys_against_a_model_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 64);
    let mut model = Model::new();
    let mut rng = Rng(0x5eed);
    let mut lsn = 0;
    // Boundaries first: the empty key, an empty value, values just fitting a cell and just
    // not, chains of exactly one and two overflow pages, the largest value.
    let edges = [
        (String::new(), value(1, 10)),
        ("empty".to_owned(), String::new()),
        ("fits".to_owned(), value(2, CELL_MAX - 2 - 1 - (2 + 4) - 2)),
        (
            "does-not-fit".to_owned(),
            value(3, CELL_MAX - 2 - 1 - (2 + 12) - 2 + 1),
        ),
        ("one-page".to_owned(), value(4, OVERFLOW_CAPACITY)),
        ("two-pages".to_owned(), value(5, OVERFLOW_CAPACITY + 1)),
        ("largest".to_owned(), value(6, 200_000)),
        ("k".repeat(KEY_INLINE_MAX), value(7, 5)),
        ("k".repeat(KEY_INLINE_MAX + 1), value(8, 5)),
    ];
    for (key, value) in edges {
        lsn += 1;
        file.put(&key, &value, Lsn(lsn)).unwrap();
        model.insert(key, value);
    }
    for round in 0..6 {
        for _ in 0..5_000 {
            lsn += 1;
            let key = match rng.below(5) {
                // An overwrite of a key put before.
                0 if !model.is_empty() => {
                    let skip = rng.below(model.len() as u64) as usize;
                    model.keys().nth(skip).cloned().unwrap()
                }
                _ => key(&mut rng, lsn),
            };
            let value = value(lsn, value_len(&mut rng));
            file.put(&key, &value, Lsn(lsn)).unwrap();
            model.insert(key, value);
        }
        file.checkpoint(Lsn(lsn)).unwrap();
        if round % 2 == 1 {
            drop(file);
            let (again, at) = open(&path, 64);
            assert_eq!(at, Lsn(lsn));
            file = again;
        }
        assert_holds(&mut file, &model);
    }
    let stats = file.stats();
    println!("{} keys: {stats:?}", model.len());
    assert!(model.len() > 20_000);
    assert!(stats.height >= 3, "a tree of several levels: {stats:?}");
    for absent in ["absent", "key-", "zzzz", "long-shared-prefix-"] {
        assert_eq!(file.get(absent).unwrap(), None);
    }
    assert_eq!(file.get(&"long-shared-prefix-".repeat(100)).unwrap(), None);
}

#[test]
fn a_crash_without_a_checkpoint_reopens_to_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    let mut model = Model::new();
    for n in 0..3_000u64 {
        let value = value(n, (n % 300) as usize + if n % 97 == 0 { 9_000 } else { 0 });
        file.put(&format!("key-{n:05}"), &value, Lsn(n + 1))
            .unwrap();
        model.insert(format!("key-{n:05}"), value);
    }
    file.checkpoint(Lsn(3_000)).unwrap();
    let checkpointed = model.clone();
    let written_before = file.stats().pages_written_by_eviction;

    // Overwrites, new keys and a root that grows, none of it checkpointed; a pool of eight
    // pages writes dirty pages out long before.
    for n in 0..6_000u64 {
        let key = format!("key-{:05}", (n * 7) % 9_000);
        file.put(
            &key,
            &value(n + 77, (n % 500) as usize + 300),
            Lsn(3_001 + n),
        )
        .unwrap();
    }
    let stats = file.stats();
    assert!(
        stats.pages_written_by_eviction > written_before + 100,
        "dirty pages were written before any checkpoint: {stats:?}"
    );
    drop(file); // the crash: nothing after the checkpoint is durable

    let (mut file, at) = open(&path, 8);
    assert_eq!(at, Lsn(3_000));
    assert_holds(&mut file, &checkpointed);

    // The file goes on from there: the pages the crashed run wrote are free again.
    file.put("after", "the crash", Lsn(3_001)).unwrap();
    model = checkpointed;
    model.insert("after".into(), "the crash".into());
    file.checkpoint(Lsn(3_001)).unwrap();
    drop(file);
    let (mut file, at) = open(&path, 8);
    assert_eq!(at, Lsn(3_001));
    assert_holds(&mut file, &model);
}

#[test]
fn a_checkpoint_interrupted_before_its_meta_page_leaves_the_last_one_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 16);
    let mut model = Model::new();
    let mut lsn = 0;
    let mut rng = Rng(7);
    let mut put = |file: &mut DataFile, model: &mut Model, count: u64| {
        for _ in 0..count {
            lsn += 1;
            let key = format!("key-{:04}", rng.below(3_000));
            let value = value(lsn, value_len(&mut rng));
            file.put(&key, &value, Lsn(lsn)).unwrap();
            model.insert(key, value);
        }
        lsn
    };
    for _ in 0..3 {
        let at = put(&mut file, &mut model, 2_000);
        file.checkpoint(Lsn(at)).unwrap();
    }
    let before_lsn = file.checkpoint_lsn();
    let before_model = model.clone();
    let before = std::fs::read(&path).unwrap();
    let sequence = file.stats().checkpoint_sequence;

    let at = put(&mut file, &mut model, 2_000);
    file.checkpoint(Lsn(at)).unwrap();
    drop(file);
    let after = std::fs::read(&path).unwrap();
    let slot = ((sequence + 1) % 2) as usize * PAGE_SIZE;
    let changed = (2..after.len() / PAGE_SIZE)
        .filter(|page| {
            before.get(page * PAGE_SIZE..(page + 1) * PAGE_SIZE)
                != after.get(page * PAGE_SIZE..(page + 1) * PAGE_SIZE)
        })
        .count();
    assert!(changed > 50, "the checkpoint wrote {changed} pages");

    // Every page of the new checkpoint written, its meta page not: the old one, exactly.
    let mut image = after.clone();
    image[slot..slot + PAGE_SIZE].copy_from_slice(&before[slot..slot + PAGE_SIZE]);
    std::fs::write(&path, &image).unwrap();
    let (mut file, found) = open(&path, 16);
    assert_eq!(found, before_lsn);
    assert_holds(&mut file, &before_model);
    drop(file);

    // With it: the new one.
    std::fs::write(&path, &after).unwrap();
    let (mut file, found) = open(&path, 16);
    assert_eq!(found, Lsn(at));
    assert_holds(&mut file, &model);
}

#[test]
fn a_torn_write_of_the_newer_meta_page_falls_back_to_the_older_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 16);
    let mut model = Model::new();
    for n in 0..500u64 {
        file.put(&format!("a{n}"), &value(n, 50), Lsn(n + 1))
            .unwrap();
        model.insert(format!("a{n}"), value(n, 50));
    }
    file.checkpoint(Lsn(500)).unwrap();
    let older = model.clone();
    for n in 0..500u64 {
        file.put(&format!("a{}", n * 3), &value(n + 1, 70), Lsn(501 + n))
            .unwrap();
        model.insert(format!("a{}", n * 3), value(n + 1, 70));
    }
    // The slot of the next meta page holds the checkpoint before the older one (create's).
    let newer_slot = ((file.stats().checkpoint_sequence + 1) % 2) as usize * PAGE_SIZE;
    let before = std::fs::read(&path).unwrap();
    file.checkpoint(Lsn(1_000)).unwrap();
    drop(file);
    let after = std::fs::read(&path).unwrap();

    // A device writes whole 512-byte sectors; the meta page's fields are all in its first, so
    // tear it every 8 bytes too (a harsher device). Only a tear that left the whole new page
    // gives the new checkpoint.
    let mut older_seen = 0;
    for cut in (0..128).step_by(8).chain((512..=PAGE_SIZE).step_by(512)) {
        let mut torn = after.clone();
        let cut = newer_slot + cut;
        torn[cut..newer_slot + PAGE_SIZE].copy_from_slice(&before[cut..newer_slot + PAGE_SIZE]);
        std::fs::write(&path, &torn).unwrap();
        let (mut file, at) = open(&path, 16);
        if torn == after {
            assert_eq!(at, Lsn(1_000));
            assert_holds(&mut file, &model);
        } else {
            assert_eq!(at, Lsn(500), "torn at byte {cut}");
            assert_holds(&mut file, &older);
            older_seen += 1;
        }
    }
    assert!(older_seen >= 12, "{older_seen}");
}

/// The outcome of reading a file with one flipped byte.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Reads gave exactly this checkpoint's contents.
    Intact(Lsn),
    /// An error named the flipped page and its offset.
    Reported,
}

/// Opens the file, walks it and reads every key of `models`' checkpoint: either everything is
/// exactly one of the `models` (by LSN), or an error names page `page` at its offset. Anything
/// else (another page blamed, wrong data, a value missing) fails the test.
fn read_flipped(path: &Path, page: u64, models: &BTreeMap<Lsn, Model>) -> Outcome {
    let names_page = |error: &PageError| match error {
        PageError::Damaged {
            page: p, offset, ..
        } => *p == page && *offset == page * PAGE_SIZE as u64,
        _ => false,
    };
    let (mut file, lsn) = match DataFile::open(path, DB, options(4)) {
        Ok(opened) => opened,
        Err(error) if names_page(&error) => return Outcome::Reported,
        Err(error) => panic!("page {page}: open failed with {error}"),
    };
    let Some(model) = models.get(&lsn) else {
        panic!("page {page}: opened at unknown checkpoint {lsn}");
    };
    let mut reported = false;
    for (key, value) in model {
        match file.get(key) {
            Ok(found) => assert!(
                found.as_deref() == Some(value.as_str()),
                "page {page}: {key:?} read back wrong: {found:.40?}"
            ),
            Err(error) if names_page(&error) => reported = true,
            Err(error) => panic!("page {page}: get {key:?} failed with {error}"),
        }
    }
    match contents(&mut file) {
        Ok(walked) => {
            assert!(
                walked == *model,
                "page {page}: the walk differs from the model"
            );
            assert!(!reported, "page {page}: a get failed but the walk did not");
            Outcome::Intact(lsn)
        }
        Err(error) if names_page(&error) => Outcome::Reported,
        Err(error) => panic!("page {page}: check failed with {error}"),
    }
}

#[test]
fn a_flipped_byte_in_any_reachable_page_is_reported_with_its_page_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 4);
    let mut model = Model::new();
    let mut models = BTreeMap::new();
    // Three leaves under a root, a value in two overflow pages, a long key in one, and a free
    // list after overwrites.
    for n in 0..60u64 {
        let value = match n {
            7 => value(n, OVERFLOW_CAPACITY + 10),
            _ => value(n, 300),
        };
        let key = match n {
            20 => format!("key-20-{}", "x".repeat(KEY_INLINE_MAX)),
            _ => format!("key-{n:02}"),
        };
        file.put(&key, &value, Lsn(n + 1)).unwrap();
        model.insert(key, value);
    }
    file.checkpoint(Lsn(60)).unwrap();
    models.insert(Lsn(60), model.clone());
    for n in 0..5u64 {
        file.put(
            &format!("key-{:02}", n * 11),
            &value(n + 100, 200),
            Lsn(61 + n),
        )
        .unwrap();
        model.insert(format!("key-{:02}", n * 11), value(n + 100, 200));
    }
    file.checkpoint(Lsn(65)).unwrap();
    models.insert(Lsn(65), model.clone());
    let report = file.check(|_, _| {}).unwrap();
    let stats = file.stats();
    drop(file);
    println!("{report:?}, {stats:?}");
    assert!(report.tree_pages >= 4 && report.overflow_pages == 3 && report.free_list_pages == 1);
    assert!(report.free_pages > 0);

    let clean = std::fs::read(&path).unwrap();
    let pages = stats.page_count;
    let current_meta = stats.checkpoint_sequence % 2;
    let mut reported_pages = BTreeSet::new();
    for page in 0..pages {
        let mut outcomes = BTreeSet::new();
        // The checksum, the format byte, the page id, a cell or the payload, the last byte.
        for at in [1, 4, 9, 17, 25, 41, 3_000, 6_000, PAGE_SIZE - 1] {
            let mut bytes = clean.clone();
            bytes[page as usize * PAGE_SIZE + at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            let outcome = read_flipped(&path, page, &models);
            outcomes.insert(format!("{outcome:?}"));
            match (page, outcome) {
                (0 | 1, Outcome::Intact(lsn)) if page == current_meta => {
                    assert_eq!(lsn, Lsn(60), "the older checkpoint, exactly")
                }
                (0 | 1, Outcome::Intact(lsn)) => assert_eq!(lsn, Lsn(65)),
                (0 | 1, Outcome::Reported) => {
                    panic!("meta page {page}: one damaged meta page is not fatal")
                }
                (_, Outcome::Intact(lsn)) => assert_eq!(lsn, Lsn(65)),
                (_, Outcome::Reported) => {
                    reported_pages.insert(page);
                }
            }
        }
        assert_eq!(
            outcomes.len(),
            1,
            "page {page}: every byte of a page counts alike: {outcomes:?}"
        );
    }
    // Exactly the pages the last checkpoint reaches are reported; free pages change nothing.
    let reachable = report.tree_pages + report.overflow_pages + report.free_list_pages;
    assert_eq!(
        reported_pages.len() as u64,
        reachable,
        "reported: {reported_pages:?}"
    );
    assert_eq!(pages - 2 - reachable, report.free_pages);
}

#[test]
fn a_damaged_leaf_fails_the_gets_it_serves_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 4);
    let mut model = Model::new();
    for n in 0..200u64 {
        file.put(&format!("key-{n:03}"), &value(n, 200), Lsn(n + 1))
            .unwrap();
        model.insert(format!("key-{n:03}"), value(n, 200));
    }
    file.checkpoint(Lsn(200)).unwrap();
    drop(file);
    let mut bytes = std::fs::read(&path).unwrap();
    // The page holding "key-100" (its value is in it, uncompressed).
    let needle = value(100, 200);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap();
    let page = (at / PAGE_SIZE) as u64;
    bytes[at + 10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let (mut file, _) = open(&path, 4);
    let (mut failed, mut served) = (0, 0);
    for (key, value) in &model {
        match file.get(key) {
            Ok(found) => {
                assert_eq!(found.as_deref(), Some(value.as_str()));
                served += 1;
            }
            Err(PageError::Damaged {
                page: p,
                offset,
                problem: PageProblem::Checksum { .. },
                ..
            }) => {
                assert_eq!((p, offset), (page, page * PAGE_SIZE as u64));
                failed += 1;
            }
            Err(error) => panic!("{key}: {error}"),
        }
    }
    assert!(
        failed > 10 && served > 100,
        "{failed} failed, {served} served"
    );
    let error = file.put("key-100", "new", Lsn(201)).unwrap_err();
    assert!(
        matches!(error, PageError::Damaged { page: p, .. } if p == page),
        "{error}"
    );
    // A put that failed before changing anything leaves the file usable.
    file.put("key-000", "new", Lsn(201)).unwrap();
    assert!(error
        .to_string()
        .contains(&format!("page {page} (byte {})", page * PAGE_SIZE as u64)));
    assert!(error.to_string().contains("db-1.data"), "{error}");
}

#[test]
fn the_pool_never_holds_more_than_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let budget_pages = 8;
    let mut file = create(&path, budget_pages);
    let budget = budget_pages * PAGE_SIZE as u64;
    let mut model = Model::new();
    let mut put_bytes = 0;
    let mut most = 0;
    for n in 0..40_000u64 {
        let key = format!("key-{:06}", (n * 7_919) % 40_000);
        let value = value(n, 400 + (n % 200) as usize);
        put_bytes += key.len() + value.len();
        file.put(&key, &value, Lsn(n + 1)).unwrap();
        model.insert(key, value);
        let stats = file.stats();
        most = most.max(stats.pool_bytes);
        assert!(stats.pool_bytes <= budget, "{stats:?}");
        assert!(stats.pool_pages_resident <= budget_pages);
        if n % 10_000 == 9_999 {
            file.checkpoint(Lsn(n + 1)).unwrap();
        }
    }
    let stats = file.stats();
    println!(
        "{put_bytes} bytes put through a pool of {budget} bytes: at most {most} bytes of frames; {stats:?}"
    );
    assert_eq!(most, budget, "the pool fills its budget and stops there");
    assert!(
        put_bytes as u64 > 300 * budget,
        "far more data than the budget"
    );
    assert!(stats.page_count > 2_000, "{stats:?}");
    assert!(stats.pages_written_by_eviction > 1_000, "{stats:?}");
    assert_holds(&mut file, &model);
    assert!(file.stats().pool_bytes <= budget);

    let error = DataFile::open(
        &path,
        DB,
        DataFileOptions {
            pool_budget_bytes: PAGE_SIZE as u64 - 1,
        },
    )
    .unwrap_err();
    assert!(matches!(error, PageError::BudgetTooSmall { .. }), "{error}");
}

#[test]
fn a_data_file_can_move_to_another_thread() {
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let file = create(&data_path(&dir), 1);
    send(&file);
    std::thread::spawn(move || drop(file)).join().unwrap();
}

#[test]
fn a_pool_of_one_page_still_reads_and_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 1);
    let mut model = Model::new();
    let mut rng = Rng(99);
    for n in 0..3_000u64 {
        let key = key(&mut rng, n);
        let value = value(n, value_len(&mut rng));
        file.put(&key, &value, Lsn(n + 1)).unwrap();
        model.insert(key, value);
    }
    assert_eq!(file.stats().pool_bytes, PAGE_SIZE as u64);
    assert_holds(&mut file, &model);
    file.checkpoint(Lsn(3_000)).unwrap();
    drop(file);
    let (mut file, _) = open(&path, 1);
    assert_holds(&mut file, &model);
}

/// Two files of the same shape, for databases 1 and 2.
fn twins(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let paths = (dir.path().join("db-1.data"), dir.path().join("db-2.data"));
    for (path, database) in [(&paths.0, DB), (&paths.1, DatabaseId(2))] {
        let mut file = DataFile::create(path, database, options(8)).unwrap();
        for n in 0..300u64 {
            file.put(&format!("key-{n:03}"), &value(n, 100), Lsn(n + 1))
                .unwrap();
        }
        file.checkpoint(Lsn(300)).unwrap();
    }
    paths
}

/// The damage `check` reports for the file at `path`.
fn damage(path: &Path) -> (u64, PageProblem) {
    let (mut file, _) = open(path, 8);
    match contents(&mut file) {
        Err(PageError::Damaged { page, problem, .. }) => (page, problem),
        other => panic!("expected damage, got {other:?}"),
    }
}

fn page_of(bytes: &[u8], page: u64) -> &[u8] {
    &bytes[page as usize * PAGE_SIZE..(page as usize + 1) * PAGE_SIZE]
}

fn replace_page(path: &Path, page: u64, with: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[page as usize * PAGE_SIZE..(page as usize + 1) * PAGE_SIZE].copy_from_slice(with);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_page_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = twins(&dir);
    let other = std::fs::read(&two).unwrap();
    assert_ne!(std::fs::read(&one).unwrap(), other);
    // Page 2 is a tree page in both (the first page written); its checksum is right.
    replace_page(&one, 2, page_of(&other, 2));
    assert_eq!(
        damage(&one),
        (
            2,
            PageProblem::WrongDatabase {
                found: DatabaseId(2)
            }
        )
    );
    // The whole file of database 2.
    let error = DataFile::open(&two, DB, options(8)).unwrap_err();
    assert!(
        matches!(
            error,
            PageError::WrongDatabase {
                expected: DB,
                found: DatabaseId(2),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("db-2.data"), "{error}");
}

#[test]
fn a_page_written_at_the_wrong_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = twins(&dir);
    let bytes = std::fs::read(&one).unwrap();
    let pages = (bytes.len() / PAGE_SIZE) as u64;
    // Every tree page copied over every other: the page id in its header gives it away.
    let mut refused = 0;
    for from in 2..pages {
        for to in 2..pages {
            if from == to || page_of(&bytes, to).iter().all(|b| *b == 0) {
                continue;
            }
            std::fs::write(&one, &bytes).unwrap();
            replace_page(&one, to, page_of(&bytes, from));
            let (mut file, _) = open(&one, 8);
            match contents(&mut file) {
                Err(PageError::Damaged { page, problem, .. }) => {
                    assert_eq!(
                        (page, problem),
                        (to, PageProblem::WrongPageId { found: from })
                    );
                    refused += 1;
                }
                Ok(_) => {} // `to` is a free page
                Err(error) => panic!("{from} over {to}: {error}"),
            }
        }
    }
    assert!(refused > 10, "{refused}");
}

#[test]
fn a_stale_page_left_by_a_lost_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    let mut snapshots = Vec::new();
    for round in 0..4u64 {
        for n in 0..400u64 {
            file.put(
                &format!("key-{n:03}"),
                &value(n + round, 150),
                Lsn(round * 400 + n + 1),
            )
            .unwrap();
        }
        file.checkpoint(Lsn(round * 400 + 400)).unwrap();
        snapshots.push(std::fs::read(&path).unwrap());
    }
    drop(file);
    // A page the last checkpoint rewrote at an id that held a leaf of an earlier one: had that
    // write been lost, the earlier leaf would still be there.
    let (earlier, last) = (&snapshots[2], &snapshots[3]);
    let leaf = |bytes: &[u8], page: u64| page_of(bytes, page)[5] == 3;
    let mut tried = 0;
    for page in 2..(earlier.len() / PAGE_SIZE) as u64 {
        if page_of(earlier, page) == page_of(last, page)
            || !leaf(earlier, page)
            || !leaf(last, page)
        {
            continue;
        }
        std::fs::write(&path, last).unwrap();
        replace_page(&path, page, page_of(earlier, page));
        let (mut file, _) = open(&path, 8);
        match contents(&mut file) {
            Err(PageError::Damaged {
                page: p,
                problem: PageProblem::WrongGeneration { expected, found },
                ..
            }) => {
                assert_eq!(p, page);
                assert!(found < expected, "{found} {expected}");
                tried += 1;
            }
            Ok(_) => {} // free in the last checkpoint
            Err(error) => panic!("page {page}: {error}"),
        }
    }
    assert!(tried > 0, "no page rewritten over an older leaf");
}

#[test]
fn files_that_are_not_data_files_or_are_cut_short_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    for n in 0..300u64 {
        file.put(&format!("key-{n:03}"), &value(n, 100), Lsn(n + 1))
            .unwrap();
    }
    file.checkpoint(Lsn(300)).unwrap();
    drop(file);
    let error = DataFile::create(&path, DB, options(8)).err().unwrap();
    assert!(matches!(error, PageError::AlreadyExists { .. }), "{error}");
    let bytes = std::fs::read(&path).unwrap();

    let other = dir.path().join("other");
    std::fs::write(&other, vec![7; 3 * PAGE_SIZE]).unwrap();
    let error = DataFile::open(&other, DB, options(8)).err().unwrap();
    assert!(matches!(error, PageError::NotADataFile { .. }), "{error}");
    std::fs::write(&other, b"short").unwrap();
    let error = DataFile::open(&other, DB, options(8)).err().unwrap();
    assert!(matches!(error, PageError::NotADataFile { .. }), "{error}");

    std::fs::write(&path, &bytes[..bytes.len() - PAGE_SIZE]).unwrap();
    let error = DataFile::open(&path, DB, options(8)).err().unwrap();
    assert!(matches!(error, PageError::Truncated { .. }), "{error}");

    let mut both = bytes.clone();
    both[100] ^= 1;
    both[PAGE_SIZE + 100] ^= 1;
    std::fs::write(&path, &both).unwrap();
    let error = DataFile::open(&path, DB, options(8)).err().unwrap();
    assert!(
        matches!(
            error,
            PageError::NoCheckpoint {
                first: PageProblem::Checksum { .. },
                second: PageProblem::Checksum { .. },
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn callers_may_not_checkpoint_behind_their_writes_or_put_oversized_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    file.put("a", "1", Lsn(5)).unwrap();
    let error = file.checkpoint(Lsn(4)).unwrap_err();
    assert!(
        matches!(
            error,
            PageError::LsnBehind {
                lsn: Lsn(4),
                floor: Lsn(5),
                ..
            }
        ),
        "{error}"
    );
    file.checkpoint(Lsn(5)).unwrap();
    let error = file.checkpoint(Lsn(3)).unwrap_err();
    assert!(matches!(error, PageError::LsnBehind { .. }), "{error}");
    let big = "v".repeat(MAX_ENTRY_LEN);
    let error = file.put("k", &big, Lsn(6)).unwrap_err();
    assert!(matches!(error, PageError::EntryTooLarge { .. }), "{error}");
    // The largest entry fits.
    file.put("k", &big[1..], Lsn(6)).unwrap();
    file.checkpoint(Lsn(6)).unwrap();
    drop(file);
    let (mut file, at) = open(&path, 8);
    assert_eq!(at, Lsn(6));
    assert_eq!(
        file.get("k").unwrap().map(|v| v.len()),
        Some(MAX_ENTRY_LEN - 1)
    );
    assert_eq!(file.get("a").unwrap().as_deref(), Some("1"));
}

/// Throughput and memory, for the record (no assertion on time). Run with
/// `cargo nextest run -p hadr-node --test pages --run-ignored only --no-capture` (add
/// `--release` for numbers worth quoting).
#[test]
#[ignore]
fn measure_throughput_and_pool() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    for (budget_pages, value_bytes) in [(64, 100), (2_048, 100), (64, 1_000), (2_048, 1_000)] {
        let _ = std::fs::remove_file(&path);
        let mut file = create(&path, budget_pages);
        let count = 200_000u64;
        let started = std::time::Instant::now();
        for n in 0..count {
            let key = format!("key-{:08}", (n * 7_919) % count);
            file.put(&key, &value(n, value_bytes), Lsn(n + 1)).unwrap();
            if n % 50_000 == 49_999 {
                file.checkpoint(Lsn(n + 1)).unwrap();
            }
        }
        let put_seconds = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        for n in 0..count {
            let key = format!("key-{:08}", (n * 104_729) % count);
            assert!(file.get(&key).unwrap().is_some());
        }
        let get_seconds = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let big = value(1, 200_000);
        for n in 0..200u64 {
            file.put(&format!("big-{n}"), &big, Lsn(count + n + 1))
                .unwrap();
        }
        file.checkpoint(Lsn(count + 200)).unwrap();
        let big_seconds = started.elapsed().as_secs_f64();
        let stats = file.stats();
        println!(
            "pool {} KiB: {count} puts of {value_bytes} B in {put_seconds:.2} s ({:.0}/s), {count} gets in {get_seconds:.2} s ({:.0}/s), 200 puts of 200 KB + checkpoint in {big_seconds:.2} s ({:.0} MB/s); file {} MiB; {stats:?}",
            budget_pages * 8,
            count as f64 / put_seconds,
            count as f64 / get_seconds,
            40.0 / big_seconds,
            (stats.page_count * PAGE_SIZE as u64) >> 20,
        );
    }
}

#[test]
fn a_page_lsn_is_the_last_write_that_changed_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    for n in 0..200u64 {
        file.put(&format!("key-{n:03}"), &value(n, 200), Lsn(n + 1))
            .unwrap();
    }
    file.checkpoint(Lsn(200)).unwrap();
    file.put("key-100", &value(1_000, 200), Lsn(450)).unwrap();
    file.checkpoint(Lsn(500)).unwrap();
    drop(file);
    let bytes = std::fs::read(&path).unwrap();
    let lsn_of =
        |page: usize| u64::from_le_bytes(bytes[page * PAGE_SIZE + 24..][..8].try_into().unwrap());
    let page_holding = |needle: &str| {
        (2..bytes.len() / PAGE_SIZE)
            .filter(|page| {
                let page = &bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
                page[5] == 3 && page.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .max_by_key(|page| lsn_of(*page))
            .unwrap()
    };
    // The leaf that took the overwrite, and one that was not touched since the first checkpoint.
    assert_eq!(lsn_of(page_holding(&value(1_000, 200))), 450);
    let untouched = lsn_of(page_holding(&value(0, 200)));
    assert!((1..=200).contains(&untouched), "{untouched}");
    // The meta page of the last checkpoint carries its LSN.
    let (_, at) = open(&path, 8);
    assert_eq!(at, Lsn(500));
    assert!([lsn_of(0), lsn_of(1)].contains(&500));
}

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// The data files of the `data_file_open` seeds, made the same way every time, for database 3
/// (the fuzz targets' database).
fn seed_files(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let database = DatabaseId(3);
    let path = dir.join("seed.data");
    let mut seeds = Vec::new();
    let mut file = DataFile::create(&path, database, options(4)).unwrap();
    seeds.push(("empty.data", std::fs::read(&path).unwrap()));
    for n in 0..3u64 {
        file.put(&format!("key-{n}"), &value(n, 20), Lsn(n + 1))
            .unwrap();
    }
    file.checkpoint(Lsn(3)).unwrap();
    seeds.push(("one-leaf.data", std::fs::read(&path).unwrap()));
    drop(file);
    std::fs::remove_file(&path).unwrap();

    // A root over leaves, a value in two overflow pages, a long key, a free list.
    let mut file = DataFile::create(&path, database, options(4)).unwrap();
    for n in 0..8u64 {
        let key = match n {
            5 => format!("key-5-{}", "x".repeat(KEY_INLINE_MAX)),
            _ => format!("key-{n}"),
        };
        let len = if n == 2 {
            OVERFLOW_CAPACITY + 100
        } else {
            1_900
        };
        file.put(&key, &value(n, len), Lsn(n + 1)).unwrap();
    }
    file.checkpoint(Lsn(8)).unwrap();
    file.put("key-0", "short now", Lsn(9)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let newer_slot = ((file.stats().checkpoint_sequence + 1) % 2) as usize * PAGE_SIZE;
    file.checkpoint(Lsn(9)).unwrap();
    let after = std::fs::read(&path).unwrap();
    seeds.push(("two-levels.data", after.clone()));
    let mut torn = after;
    torn[newer_slot + 40..newer_slot + PAGE_SIZE]
        .copy_from_slice(&before[newer_slot + 40..newer_slot + PAGE_SIZE]);
    seeds.push(("torn-meta.data", torn));
    seeds
}

/// The `page_decode` seeds: one page of each type, cut from `two-levels.data`.
fn seed_pages(two_levels: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut pages: Vec<(String, Vec<u8>)> = Vec::new();
    for (type_byte, name) in [
        (1, "meta"),
        (2, "branch"),
        (3, "leaf"),
        (4, "overflow"),
        (5, "free-list"),
    ] {
        let page = two_levels
            .chunks(PAGE_SIZE)
            .find(|page| page[5] == type_byte)
            .unwrap_or_else(|| panic!("no {name} page"));
        pages.push((format!("{name}.page"), page.to_vec()));
    }
    pages
}

/// Writes the seeds into `fuzz/corpus/` (run by hand after a format change:
/// `cargo nextest run -p hadr-node --test pages --run-ignored only write_fuzz_seeds`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let files = seed_files(dir.path());
    for (name, bytes) in &files {
        std::fs::write(corpus("data_file_open").join(name), bytes).unwrap();
    }
    for (name, bytes) in seed_pages(&files[2].1) {
        std::fs::write(corpus("page_decode").join(name), bytes).unwrap();
    }
}

/// The committed seeds must stay what they were made to be as the format evolves, or the
/// fuzzers would start from nothing: every data file opens and is consistent (the torn one at
/// its older checkpoint), and every page seed is a page of one of them.
#[test]
fn the_committed_fuzz_seeds_are_valid_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = seed_files(dir.path());
    let mut pages = BTreeSet::new();
    for (name, made) in &fresh {
        let committed = std::fs::read(corpus("data_file_open").join(name)).unwrap();
        assert!(
            committed == *made,
            "{name} is not what the code makes now: run write_fuzz_seeds"
        );
        let path = dir.path().join(name);
        std::fs::write(&path, &committed).unwrap();
        let (mut file, lsn) = DataFile::open(&path, DatabaseId(3), options(4)).unwrap();
        let walked = contents(&mut file).unwrap();
        let expected = match *name {
            "empty.data" => (Lsn(0), 0),
            "one-leaf.data" => (Lsn(3), 3),
            "two-levels.data" => (Lsn(9), 8),
            _ => (Lsn(8), 8),
        };
        assert_eq!((lsn, walked.len()), expected, "{name}");
        pages.extend(committed.chunks(PAGE_SIZE).map(<[u8]>::to_vec));
    }
    let dir_pages = std::fs::read_dir(corpus("page_decode")).unwrap();
    let mut count = 0;
    for entry in dir_pages {
        let path = entry.unwrap().path();
        assert!(
            pages.contains(&std::fs::read(&path).unwrap()),
            "{}",
            path.display()
        );
        count += 1;
    }
    assert_eq!(count, 5);
    assert_eq!(seed_pages(&fresh[2].1).len(), 5);
}

/// Stores a correct checksum in page `page` of `bytes`: a forged page, as a bug of the writer
/// would leave it.
fn reseal(bytes: &mut [u8], page: usize) {
    let page = &mut bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
    page[..4].fill(0);
    let sum = crc32c::crc32c(page);
    page[..4].copy_from_slice(&sum.to_le_bytes());
}

/// Found by `fuzz/fuzz_targets/data_file_open.rs`: a leaf whose long key showed another prefix
/// than its overflow pages held passed `check` (which orders by the overflow pages) while
/// `get` (which trusts a prefix that decides) could not find the key.
#[test]
fn a_long_key_whose_prefix_disagrees_with_its_overflow_pages_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    let long = format!("key-5-{}", "x".repeat(KEY_INLINE_MAX));
    for key in ["key-1", &long, "key-9"] {
        file.put(key, "value", Lsn(1)).unwrap();
    }
    file.checkpoint(Lsn(1)).unwrap();
    drop(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / PAGE_SIZE;
    let (leaf, at) = (2..pages)
        .filter(|page| bytes[page * PAGE_SIZE + 5] == 3)
        .find_map(|page| {
            let data = &bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
            let at = data.windows(6).position(|w| w == b"key-5-")?;
            Some((page, page * PAGE_SIZE + at))
        })
        .unwrap();
    let chain = (2..pages)
        .find(|page| bytes[page * PAGE_SIZE + 5] == 4)
        .unwrap();
    bytes[at + 4] = b'4';
    reseal(&mut bytes, leaf);
    std::fs::write(&path, &bytes).unwrap();

    let (mut file, _) = open(&path, 8);
    match contents(&mut file) {
        Err(PageError::Damaged {
            page,
            problem: PageProblem::Malformed { what, .. },
            ..
        }) => {
            assert_eq!(page, chain as u64);
            assert!(what.contains("prefix"), "{what}");
        }
        other => panic!("expected damage, got {other:?}"),
    }
    // A get never hands out the value of another key: it either reads the key's overflow pages
    // (and finds them disagreeing) or does not find the key.
    let forged = format!("key-4-{}", "x".repeat(KEY_INLINE_MAX));
    assert!(matches!(file.get(&forged), Err(PageError::Damaged { .. })));
    assert!(!matches!(file.get(&long), Ok(Some(_))));
}

/// Long separators that share their first 128 bytes look ordered to the page alone; `check`
/// compares them in full, since a descent through misordered separators goes astray.
#[test]
fn separators_out_of_order_beyond_their_prefix_are_inconsistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    let mut model = Model::new();
    for n in 0..16u64 {
        let key = format!("{}{n:02}", "p".repeat(1_100));
        file.put(&key, &value(n, 1_800), Lsn(n + 1)).unwrap();
        model.insert(key, value(n, 1_800));
    }
    file.checkpoint(Lsn(16)).unwrap();
    assert_holds(&mut file, &model);
    drop(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let branch = (2..bytes.len() / PAGE_SIZE)
        .find(|page| bytes[page * PAGE_SIZE + 5] == 2)
        .unwrap();
    let page = &mut bytes[branch * PAGE_SIZE..(branch + 1) * PAGE_SIZE];
    assert!(u16::from_le_bytes([page[32], page[33]]) >= 2);
    // The overflow pointers of separators 0 and 1 (after flags, length and prefix) swapped.
    let pointer = |page: &[u8], cell: usize| {
        let at = u16::from_le_bytes([page[56 + 2 * cell], page[57 + 2 * cell]]) as usize;
        assert_eq!(page[at], 1, "a long separator");
        at + 1 + 4 + 128
    };
    let (first, second) = (pointer(page, 0), pointer(page, 1));
    let saved: Vec<u8> = page[first..first + 16].to_vec();
    page.copy_within(second..second + 16, first);
    page[second..second + 16].copy_from_slice(&saved);
    reseal(&mut bytes, branch);
    std::fs::write(&path, &bytes).unwrap();

    let (mut file, _) = open(&path, 8);
    match contents(&mut file) {
        Err(PageError::Inconsistent { page, what, .. }) => {
            assert_eq!(page, branch as u64);
            assert_eq!(what, "separators are out of order");
        }
        other => panic!("expected an inconsistency, got {other:?}"),
    }
}

/// A page whose checksum is right but whose cells break the format (a bug of the writer, or a
/// forged page) is damage when it is read from disk, before anything uses it: the structure of
/// a tree page is checked in full when it enters the pool, not only its checksum and header.
#[test]
fn a_sealed_leaf_whose_cells_break_the_format_is_damaged_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = data_path(&dir);
    let mut file = create(&path, 8);
    for key in ["key-1", "key-5", "key-9"] {
        file.put(key, "value", Lsn(1)).unwrap();
    }
    file.checkpoint(Lsn(1)).unwrap();
    drop(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let (leaf, at) = (2..bytes.len() / PAGE_SIZE)
        .filter(|page| bytes[page * PAGE_SIZE + 5] == 3)
        .find_map(|page| {
            let data = &bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
            let at = data.windows(5).position(|w| w == b"key-5")?;
            Some((page, page * PAGE_SIZE + at))
        })
        .unwrap();
    // "key-1", "key-0", "key-9": the cells no longer go up.
    bytes[at + 4] = b'0';
    reseal(&mut bytes, leaf);
    std::fs::write(&path, &bytes).unwrap();

    let (mut file, _) = open(&path, 8);
    let out_of_order = |result: Result<(), PageError>| match result {
        Err(PageError::Damaged {
            page,
            problem: PageProblem::Malformed { what, .. },
            ..
        }) => page == leaf as u64 && what.contains("out of order"),
        _ => false,
    };
    assert!(out_of_order(file.get("key-9").map(drop)));
    // A put reads the leaf before it changes anything: reported, and the file stays usable.
    assert!(out_of_order(file.put("key-7", "value", Lsn(2))));
    assert!(out_of_order(file.get("key-1").map(drop)));
}
