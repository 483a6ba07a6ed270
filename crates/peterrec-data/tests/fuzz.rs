//! Property-based fuzzing (proptest) of every reader and of the vocabulary loader.
//!
//! `fuzz_*` targets feed each reader arbitrary bytes, a "soup" of the formats' own tokens and
//! separators, and valid files with random byte mutations, and check that it never panics and
//! ends in records or in one typed error that names the file and a line that exists, after which
//! it yields nothing. `roundtrip_*` targets check that a valid file parses to exactly the records
//! it was written from, also with CRLF endings, a byte-order mark and trailing blank lines.
//!
//! Each target runs a moderate number of cases in `cargo test`; set `PROPTEST_CASES` for a
//! longer run of one target, e.g.
//! `PROPTEST_CASES=2000000 cargo test --release -p peterrec-data --test fuzz fuzz_ml1m_ratings`
//! (see `docs/reliability.md`). A failing input is shrunk, printed, and saved in
//! `fuzz.proptest-regressions` beside this file, which later runs replay first.

use std::path::{Path, PathBuf};

use peterrec_data::movielens::{
    age_bucket_from_years, ml100k_occupation_index, ML100K_GENRES, ML100K_OCCUPATIONS,
    ML1M_AGE_CODES,
};
use peterrec_data::readers::csv::{interactions, CsvOptions, Interaction};
use peterrec_data::readers::movielens::{
    ml100k_movies, ml100k_ratings, ml100k_users, ml1m_movies, ml1m_ratings, ml1m_users, Gender,
    Movie, Rating, UserProfile,
};
use peterrec_data::readers::peterrec::{
    finetune_file, pretrain_file, PeterRecFineTuneLine, PeterRecSequence,
};
use peterrec_data::readers::sequences::{sequence_file, RawSequence};
use peterrec_data::{DataError, Vocab};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

const FILE: &str = "fuzz-input.txt";

/// `default_cases` cases, unless `PROPTEST_CASES` is set (then that many).
fn cfg(default_cases: u32) -> ProptestConfig {
    // A failing input is saved beside this file (`<file>.proptest-regressions`) and replayed
    // first by later runs.
    let mut c = ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c
}

// ---------------------------------------------------------------------------------------------
// Readers under test.

/// Everything a reader yields, records as `Debug` strings, without stopping at the first error
/// (so that the test can check the reader stops by itself).
type ReadFn = fn(&[u8]) -> Vec<Result<String, DataError>>;

fn all<T: std::fmt::Debug>(
    it: impl Iterator<Item = Result<T, DataError>>,
) -> Vec<Result<String, DataError>> {
    it.map(|r| r.map(|t| format!("{t:?}"))).collect()
}

fn csv_with(delimiter: char, has_header: bool) -> CsvOptions {
    CsvOptions {
        delimiter,
        has_header,
    }
}

const ML1M_RATINGS: ReadFn = |b| all(ml1m_ratings(b, FILE));
const ML1M_USERS: ReadFn = |b| all(ml1m_users(b, FILE));
const ML1M_MOVIES: ReadFn = |b| all(ml1m_movies(b, FILE));
const ML100K_RATINGS: ReadFn = |b| all(ml100k_ratings(b, FILE));
const ML100K_USERS: ReadFn = |b| all(ml100k_users(b, FILE));
const ML100K_MOVIES: ReadFn = |b| all(ml100k_movies(b, FILE));
const SEQUENCES: ReadFn = |b| all(sequence_file(b, FILE));
const CSV: ReadFn = |b| all(interactions(b, FILE, csv_with(',', false)));
const TSV_HEADER: ReadFn = |b| all(interactions(b, FILE, csv_with('\t', true)));
const PRETRAIN: ReadFn = |b| all(pretrain_file(b, FILE));
const FINETUNE: ReadFn = |b| all(finetune_file(b, FILE));

/// Number of lines in `bytes` (the largest line number a reader may report).
fn line_count(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// Whether no line of `bytes` holds data (what [`DataError::EmptyFile`] claims).
fn all_blank(bytes: &[u8]) -> bool {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    body.iter().all(|b| b.is_ascii_whitespace())
}

/// The invariants every reader keeps on any input.
fn check_reader(read: ReadFn, bytes: &[u8]) -> Result<(), TestCaseError> {
    let items = read(bytes);
    let lines = line_count(bytes);
    prop_assert!(items.len() <= lines.max(1), "more records than lines");
    for (k, item) in items.iter().enumerate() {
        let Err(e) = item else { continue };
        prop_assert_eq!(k, items.len() - 1, "reading went on after an error: {}", e);
        match e {
            DataError::Parse { file, line, reason } => {
                prop_assert_eq!(file, Path::new(FILE));
                prop_assert!((1..=lines).contains(line), "line {} of {}", line, lines);
                prop_assert!(!reason.is_empty());
                let prefix = format!("{FILE}:{line}: ");
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
            }
            DataError::EmptyFile { file } => {
                prop_assert_eq!(file, Path::new(FILE));
                prop_assert_eq!(k, 0);
                prop_assert!(all_blank(bytes), "EmptyFile on a file with data");
            }
            other => prop_assert!(false, "unexpected error {:?}", other),
        }
    }
    if all_blank(bytes) {
        prop_assert!(
            items.len() == 1 && items[0].is_err(),
            "blank file not EmptyFile"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Input generators.

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..1024)
}

/// Pieces of every format: numbers at the edges of u32/u64, separators, line endings, BOMs,
/// NULs, Latin-1 and invalid UTF-8 bytes, words the readers look for.
const SOUP: &[&[u8]] = &[
    b"0",
    b"1",
    b"7",
    b"18",
    b"56",
    b"255",
    b"256",
    b"4294967295",
    b"4294967296",
    b"18446744073709551616",
    b"-1",
    b"::",
    b":",
    b"|",
    b",",
    b",,",
    b";",
    b"\t",
    b" ",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"F",
    b"M",
    b"x",
    b"u1",
    b"technician",
    b"other",
    b"Drama",
    b"Toy Story (1995)",
    b"\xEF\xBB\xBF",
    b"\0",
    b"\xff",
    b"\xe9",
    "é字🙂".as_bytes(),
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(SOUP), 0..64).prop_map(|parts| parts.concat())
}

/// One edit of a file: (kind, where, byte).
type Mutation = (u8, Index, u8);

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    const SPECIAL: &[u8] = b"\0\n\r:|,\t -0\xff\xef";
    for (kind, at, byte) in mutations {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match kind % 6 {
            0 => bytes[i] ^= byte | 1,
            1 => bytes.insert(i, *byte),
            2 => {
                bytes.remove(i);
            }
            3 => bytes.truncate(i),
            4 => bytes[i] = SPECIAL[usize::from(*byte) % SPECIAL.len()],
            _ => {
                // Duplicate the line holding byte i.
                let start = bytes[..i]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
                let line = bytes[start..end].to_vec();
                bytes.splice(end..end, line);
            }
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec((any::<u8>(), any::<Index>(), any::<u8>()), 1..5)
}

/// Arbitrary bytes, token soup, or a valid file of the format (from `valid`) with mutations.
fn hostile(valid: BoxedStrategy<Valid>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arbitrary_bytes(),
        soup(),
        (valid, mutations()).prop_map(|(v, m)| mutate(v.text, &m)),
    ]
}

/// A valid file and the records it must parse to (as `Debug` strings).
#[derive(Debug, Clone)]
struct Valid {
    text: Vec<u8>,
    records: Vec<String>,
}

fn valid<T: std::fmt::Debug>(lines: Vec<Vec<u8>>, records: Vec<T>) -> Valid {
    let mut text = Vec::new();
    for l in lines {
        text.extend_from_slice(&l);
        text.push(b'\n');
    }
    Valid {
        text,
        records: records.iter().map(|r| format!("{r:?}")).collect(),
    }
}

/// Keeps the first element of every key.
fn dedup_by<T, K: std::hash::Hash + Eq>(v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|t| seen.insert(key(t))).collect()
}

fn pad() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", " ", "  ", "\t"][..])
}

fn ratings(ml1m: bool) -> BoxedStrategy<Valid> {
    let sep = if ml1m {
        prop::sample::select(&["::"][..]).boxed()
    } else {
        prop::sample::select(&["\t", " ", "\t\t", " \t "][..]).boxed()
    };
    let row = (
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u64>(),
        pad(),
        sep,
    );
    prop::collection::vec(row, 1..12)
        .prop_map(|rows| {
            let lines = rows
                .iter()
                .map(|(u, i, r, t, p, s)| format!("{p}{u}{p}{s}{i}{s}{r}{s}{t}{p}").into_bytes())
                .collect();
            let records = rows
                .iter()
                .map(|&(user, item, rating, timestamp, _, _)| Rating {
                    user,
                    item,
                    rating,
                    timestamp,
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

fn zip() -> impl Strategy<Value = String> {
    "[0-9A-Za-z-]{0,10}"
}

fn ml1m_users_valid() -> BoxedStrategy<Valid> {
    let row = (any::<u32>(), any::<bool>(), 0..7usize, 0..21u32, zip());
    prop::collection::vec(row, 1..12)
        .prop_map(|rows| {
            let rows = dedup_by(rows, |r| r.0);
            let g = |male: bool| if male { "M" } else { "F" };
            let lines = rows
                .iter()
                .map(|(u, m, a, o, z)| {
                    format!("{u}::{}::{}::{o}::{z}", g(*m), ML1M_AGE_CODES[*a]).into_bytes()
                })
                .collect();
            let records = rows
                .iter()
                .map(|(u, m, a, o, z)| UserProfile {
                    user: *u,
                    gender: if *m { Gender::Male } else { Gender::Female },
                    age: ML1M_AGE_CODES[*a],
                    age_bucket: *a as u32,
                    occupation: *o,
                    zip: z.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

fn ml100k_users_valid() -> BoxedStrategy<Valid> {
    let row = (any::<u32>(), any::<u32>(), any::<bool>(), 0..21usize, zip());
    prop::collection::vec(row, 1..12)
        .prop_map(|rows| {
            let rows = dedup_by(rows, |r| r.0);
            let lines = rows
                .iter()
                .map(|(u, a, m, o, z)| {
                    let g = if *m { "M" } else { "F" };
                    format!("{u}|{a}|{g}|{}|{z}", ML100K_OCCUPATIONS[*o]).into_bytes()
                })
                .collect();
            let records = rows
                .iter()
                .map(|(u, a, m, o, z)| UserProfile {
                    user: *u,
                    gender: if *m { Gender::Male } else { Gender::Female },
                    age: *a,
                    age_bucket: age_bucket_from_years(*a),
                    occupation: ml100k_occupation_index(ML100K_OCCUPATIONS[*o]).unwrap(),
                    zip: z.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

/// A Latin-1 title without `sep_byte`, control characters or a leading BOM: (bytes, decoded).
/// (Built from byte ranges around the separator, not by filtering: long runs would otherwise
/// exhaust proptest's budget of rejected cases.)
fn latin1_title(sep_byte: u8) -> impl Strategy<Value = (Vec<u8>, String)> {
    let byte = prop_oneof![0x20u8..sep_byte, (sep_byte + 1)..0x7F, 0xA0u8..=0xFF];
    prop::collection::vec(byte, 0..24).prop_map(|b| {
        let s = b.iter().map(|&c| char::from(c)).collect();
        (b, s)
    })
}

fn ml1m_movies_valid() -> BoxedStrategy<Valid> {
    let row = (
        any::<u32>(),
        latin1_title(b':'),
        prop::collection::vec("[A-Za-z'-]{1,10}", 0..4),
    );
    prop::collection::vec(row, 1..10)
        .prop_map(|rows| {
            let rows = dedup_by(rows, |r| r.0);
            let lines = rows
                .iter()
                .map(|(id, (title, _), genres)| {
                    [
                        format!("{id}::").as_bytes(),
                        title,
                        b"::",
                        genres.join("|").as_bytes(),
                    ]
                    .concat()
                })
                .collect();
            let records = rows
                .iter()
                .map(|(id, (_, title), genres)| Movie {
                    id: *id,
                    title: title.clone(),
                    genres: genres.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

fn ml100k_movies_valid() -> BoxedStrategy<Valid> {
    let row = (
        any::<u32>(),
        latin1_title(b'|'),
        "[0-9A-Za-z-]{0,11}",
        "[a-z:/.?=]{0,20}",
        prop::collection::vec(any::<bool>(), 19),
    );
    prop::collection::vec(row, 1..10)
        .prop_map(|rows| {
            let rows = dedup_by(rows, |r| r.0);
            let lines = rows
                .iter()
                .map(|(id, (title, _), date, url, flags)| {
                    let flags: Vec<&str> =
                        flags.iter().map(|&f| if f { "1" } else { "0" }).collect();
                    [
                        format!("{id}|").as_bytes(),
                        title,
                        format!("|{date}||{url}|{}", flags.join("|")).as_bytes(),
                    ]
                    .concat()
                })
                .collect();
            let records = rows
                .iter()
                .map(|(id, (_, title), _, _, flags)| Movie {
                    id: *id,
                    title: title.clone(),
                    genres: (0..19)
                        .filter(|&k| flags[k])
                        .map(|k| ML100K_GENRES[k].to_string())
                        .collect(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

/// An id token of the string formats (UTF-8, no whitespace, no `,`/`;`/`|`).
fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:é字🙂-]{1,6}"
}

fn sequences_valid() -> BoxedStrategy<Valid> {
    let sep = prop::sample::select(&[" ", "\t", "  ", " \t"][..]);
    let row = (token(), prop::collection::vec(token(), 1..8), sep);
    prop::collection::vec(row, 1..10)
        .prop_map(|rows| {
            let rows = dedup_by(rows, |r| r.0.clone());
            let lines = rows
                .iter()
                .map(|(u, items, s)| format!("{u}{s}{}", items.join(s)).into_bytes())
                .collect();
            let records = rows
                .iter()
                .map(|(user, items, _)| RawSequence {
                    user: user.clone(),
                    items: items.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

fn csv_valid(delimiter: char, header: bool) -> BoxedStrategy<Valid> {
    let spaces = prop::sample::select(&["", " ", "  "][..]); // never the delimiter
    let row = (token(), token(), any::<u64>(), spaces);
    (prop::collection::vec(row, 1..12), any::<bool>())
        .prop_map(move |(rows, with_ts)| {
            let d = delimiter;
            let mut lines: Vec<Vec<u8>> = Vec::new();
            if header {
                lines.push(format!("user{d}item").into_bytes());
            }
            for (u, i, t, p) in &rows {
                let line = if with_ts {
                    format!("{u}{p}{d}{p}{i}{d}{t}{p}")
                } else {
                    format!("{p}{u}{d}{i}{p}")
                };
                lines.push(line.into_bytes());
            }
            let records = rows
                .iter()
                .map(|(u, i, t, _)| Interaction {
                    user: u.clone(),
                    item: i.clone(),
                    timestamp: with_ts.then_some(*t),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

/// A PeterRec sequence: item tokens with padding `0`s mixed in, at least one item (one real
/// token is placed among the others, rather than filtering out all-padding sequences).
fn peterrec_sequence() -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    let tok = prop_oneof![Just("0".to_string()), "[0-9a-z]{1,5}"];
    let item = "[1-9a-z][0-9a-z]{0,4}";
    (prop::collection::vec(tok, 0..10), item, any::<Index>()).prop_map(|(mut tokens, item, at)| {
        tokens.insert(at.index(tokens.len() + 1), item);
        let items = tokens.iter().filter(|t| *t != "0").cloned().collect();
        (tokens, items)
    })
}

fn pretrain_valid() -> BoxedStrategy<Valid> {
    prop::collection::vec(peterrec_sequence(), 1..10)
        .prop_map(|rows| {
            let lines = rows.iter().map(|(t, _)| t.join(",").into_bytes()).collect();
            let records = rows
                .iter()
                .enumerate()
                .map(|(k, (_, items))| PeterRecSequence {
                    line: k + 1,
                    items: items.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

fn finetune_valid() -> BoxedStrategy<Valid> {
    let row = (
        peterrec_sequence(),
        prop::collection::vec("[0-9a-z]{1,5}", 1..4),
    );
    prop::collection::vec(row, 1..10)
        .prop_map(|rows| {
            let lines = rows
                .iter()
                .map(|((t, _), targets)| {
                    format!("{},,{}", t.join(","), targets.join(",")).into_bytes()
                })
                .collect();
            let records = rows
                .iter()
                .enumerate()
                .map(|(k, ((_, items), targets))| PeterRecFineTuneLine {
                    line: k + 1,
                    items: items.clone(),
                    targets: targets.clone(),
                })
                .collect::<Vec<_>>();
            valid(lines, records)
        })
        .boxed()
}

/// A valid file parses to its records, also with CRLF endings, a BOM and trailing blank lines.
fn check_roundtrip(read: ReadFn, v: &Valid) -> Result<(), TestCaseError> {
    let ok = |bytes: &[u8]| -> Result<Vec<String>, TestCaseError> {
        read(bytes)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TestCaseError::fail(format!("valid file rejected: {e}")))
    };
    prop_assert_eq!(&ok(&v.text)?, &v.records);
    let mut crlf = Vec::new();
    for &b in &v.text {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    prop_assert_eq!(&ok(&crlf)?, &v.records, "CRLF");
    let bom = [&b"\xEF\xBB\xBF"[..], &v.text].concat();
    prop_assert_eq!(&ok(&bom)?, &v.records, "BOM");
    let blank_tail = [&v.text[..], b"\n \t\n\r\n\n"].concat();
    prop_assert_eq!(&ok(&blank_tail)?, &v.records, "trailing blank lines");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reader targets.

macro_rules! reader_targets {
    ($($fuzz:ident, $roundtrip:ident: $read:expr, $valid:expr;)*) => {
        proptest! {
            #![proptest_config(cfg(384))]
            $(
                #[test]
                fn $fuzz(bytes in hostile($valid)) {
                    check_reader($read, &bytes)?;
                }

                #[test]
                fn $roundtrip(v in $valid) {
                    check_roundtrip($read, &v)?;
                }
            )*
        }
    };
}

reader_targets! {
    fuzz_ml1m_ratings, roundtrip_ml1m_ratings: ML1M_RATINGS, ratings(true);
    fuzz_ml1m_users, roundtrip_ml1m_users: ML1M_USERS, ml1m_users_valid();
    fuzz_ml1m_movies, roundtrip_ml1m_movies: ML1M_MOVIES, ml1m_movies_valid();
    fuzz_ml100k_ratings, roundtrip_ml100k_ratings: ML100K_RATINGS, ratings(false);
    fuzz_ml100k_users, roundtrip_ml100k_users: ML100K_USERS, ml100k_users_valid();
    fuzz_ml100k_movies, roundtrip_ml100k_movies: ML100K_MOVIES, ml100k_movies_valid();
    fuzz_sequence_file, roundtrip_sequence_file: SEQUENCES, sequences_valid();
    fuzz_csv, roundtrip_csv: CSV, csv_valid(',', false);
    fuzz_tsv_with_header, roundtrip_tsv_with_header: TSV_HEADER, csv_valid('\t', true);
    fuzz_peterrec_pretrain, roundtrip_peterrec_pretrain: PRETRAIN, pretrain_valid();
    fuzz_peterrec_finetune, roundtrip_peterrec_finetune: FINETUNE, finetune_valid();
}

// ---------------------------------------------------------------------------------------------
// Vocabulary loader.

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("peterrec-fuzz-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Item ids for a vocabulary: any Unicode strings (the empty one too), some repeated.
fn vocab_items() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof![any::<String>(), "[0-9]{1,4}"], 0..24)
}

/// A vocabulary built from `items` and its file content, as `save_json` writes it (built in
/// memory: `save_json` syncs to disk, which would dominate a long run).
fn saved_vocab(items: &[String]) -> (Vocab, Vec<u8>) {
    let vocab = Vocab::from_sequences([items.iter().map(String::as_str)]);
    let mut bytes = serde_json::to_vec_pretty(&vocab).unwrap();
    bytes.push(b'\n');
    (vocab, bytes)
}

/// Loads `bytes` as a vocabulary file: `Ok` only with exactly `original`'s content (if given),
/// else a `Json` error naming the file or an `InvalidVocab` error.
fn check_vocab_load(
    dir: &Path,
    bytes: &[u8],
    original: Option<&Vocab>,
) -> Result<(), TestCaseError> {
    let path = dir.join("vocab.json");
    std::fs::write(&path, bytes).unwrap();
    match Vocab::load_json(&path) {
        Ok(v) => {
            if let Some(original) = original {
                prop_assert_eq!(&v, original, "a damaged file loaded as another vocabulary");
            }
            // Whatever loads re-saves and reloads to itself.
            let again = dir.join("again.json");
            v.save_json(&again).unwrap();
            prop_assert_eq!(Vocab::load_json(&again).unwrap(), v);
        }
        Err(DataError::Json { path: p, .. }) => prop_assert_eq!(p, path),
        Err(DataError::InvalidVocab(reason)) => prop_assert!(!reason.is_empty()),
        Err(other) => prop_assert!(false, "unexpected error {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn fuzz_vocab_json_arbitrary_bytes(bytes in prop_oneof![arbitrary_bytes(), soup()]) {
        let dir = Scratch::new("vocab-bytes");
        check_vocab_load(&dir.0, &bytes, None)?;
    }

    #[test]
    fn fuzz_vocab_json_mutated(items in vocab_items(), m in mutations()) {
        let dir = Scratch::new("vocab-mutated");
        let (vocab, bytes) = saved_vocab(&items);
        check_vocab_load(&dir.0, &mutate(bytes, &m), Some(&vocab))?;
    }

    #[test]
    fn fuzz_vocab_json_truncated(items in vocab_items(), cut in any::<Index>()) {
        let dir = Scratch::new("vocab-truncated");
        let (vocab, bytes) = saved_vocab(&items);
        // Everything but the final newline is needed: any shorter file is an error.
        let keep = cut.index(bytes.len() - 1);
        let path = dir.0.join("vocab.json");
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = Vocab::load_json(&path).unwrap_err();
        prop_assert!(matches!(err, DataError::Json { .. }), "{}", err);
        check_vocab_load(&dir.0, &bytes[..keep], Some(&vocab))?;
    }

    #[test]
    fn roundtrip_vocab_json(items in vocab_items()) {
        let dir = Scratch::new("vocab-roundtrip");
        let (vocab, bytes) = saved_vocab(&items);
        let path = dir.0.join("saved.json");
        vocab.save_json(&path).unwrap();
        prop_assert_eq!(std::fs::read(&path).unwrap(), bytes, "save_json writes what serde does");
        let loaded = Vocab::load_json(&path).unwrap();
        prop_assert_eq!(&loaded, &vocab);
        prop_assert_eq!(loaded.fingerprint(), vocab.fingerprint());
        for item in &items {
            prop_assert_eq!(loaded.get(item), vocab.get(item));
            prop_assert!(loaded.get(item).is_some());
        }
    }
}
