//! Hostile files: every reader on binary garbage, NUL bytes, CRLF endings, byte-order marks,
//! trailing separators, negative numbers, ids above `u32`, duplicate users, a million empty
//! lines and a single 100 MB line. Each case is either a typed error naming the file and the
//! line, or a documented handling that is asserted here (see `docs/reliability.md`).
//!
//! Big inputs are generated on the fly by `Read` implementations, never written to the repo.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use peterrec_data::readers::csv::{group_by_user, interactions, CsvOptions};
use peterrec_data::readers::movielens::{
    ml100k_movies, ml100k_ratings, ml100k_users, ml1m_movies, ml1m_ratings, ml1m_users,
};
use peterrec_data::readers::peterrec::{finetune_file, pretrain_file};
use peterrec_data::readers::sequences::{read_sequence_file, sequence_file};
use peterrec_data::readers::{Encoding, Lines, MAX_LINE_LEN};
use peterrec_data::DataError;

/// A reader under test: input and file name in, the records (as `Debug` strings) out.
type ReadFn = fn(Box<dyn BufRead>, &str) -> Result<Vec<String>, DataError>;

fn debug_all<T: std::fmt::Debug>(
    it: impl Iterator<Item = Result<T, DataError>>,
) -> Result<Vec<String>, DataError> {
    it.map(|r| r.map(|t| format!("{t:?}"))).collect()
}

/// Every reader, with a small valid file of its format (two data lines, `\n` endings).
const READERS: &[(&str, ReadFn, &str)] = &[
    (
        "ml1m_ratings",
        |r, f| debug_all(ml1m_ratings(r, f)),
        "1::1193::5::978300760\n2::661::3::978302109\n",
    ),
    (
        "ml1m_users",
        |r, f| debug_all(ml1m_users(r, f)),
        "1::F::1::10::48067\n2::M::56::16::70072\n",
    ),
    (
        "ml1m_movies",
        |r, f| debug_all(ml1m_movies(r, f)),
        "1::Toy Story (1995)::Animation|Comedy\n2::Jumanji (1995)::Adventure\n",
    ),
    (
        "ml100k_ratings",
        |r, f| debug_all(ml100k_ratings(r, f)),
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    ),
    (
        "ml100k_users",
        |r, f| debug_all(ml100k_users(r, f)),
        "1|24|M|technician|85711\n2|53|F|other|94043\n",
    ),
    (
        "ml100k_movies",
        |r, f| debug_all(ml100k_movies(r, f)),
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
         2|GoldenEye (1995)|01-Jan-1995||http://y|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
    ),
    (
        "sequence_file",
        |r, f| debug_all(sequence_file(r, f)),
        "u1 10 11 12\nu2 13 14\n",
    ),
    (
        "csv",
        |r, f| debug_all(interactions(r, f, CsvOptions::default())),
        "alice,x,5\nbob,y,3\n",
    ),
    (
        "tsv_with_header",
        |r, f| {
            let opts = CsvOptions::for_path(Path::new("i.tsv")).with_header(true);
            debug_all(interactions(r, f, opts))
        },
        "user\titem\nalice\tx\n",
    ),
    (
        "peterrec_pretrain",
        |r, f| debug_all(pretrain_file(r, f)),
        "0,0,7,8\n9,10,11\n",
    ),
    (
        "peterrec_finetune",
        |r, f| debug_all(finetune_file(r, f)),
        "0,7,8,,1845,1846\n9,10,,3\n",
    ),
];

fn run(read: ReadFn, bytes: &[u8], file: &str) -> Result<Vec<String>, DataError> {
    read(
        Box::new(BufReader::new(std::io::Cursor::new(bytes.to_vec()))),
        file,
    )
}

/// Asserts `err` is a parse error at `file:line` whose reason contains `needle`, and that its
/// message names the file and the line.
#[track_caller]
fn assert_parse(err: &DataError, file: &str, line: usize, needle: &str) {
    match err {
        DataError::Parse {
            file: f,
            line: l,
            reason,
        } => {
            assert_eq!(f, Path::new(file), "{err}");
            assert_eq!(*l, line, "{err}");
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            assert!(err.to_string().starts_with(&format!("{file}:{line}: ")));
        }
        other => panic!("expected a parse error at {file}:{line}, got {other:?}"),
    }
}

#[test]
fn binary_garbage_is_a_parse_error_on_its_first_line() {
    // The first bytes of a PNG file: invalid UTF-8 and a NUL on line 2 (after the 0x0A).
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00";
    for &(name, read, _) in READERS {
        let err = run(read, png, name).unwrap_err();
        match &err {
            DataError::Parse { file, line, .. } => {
                assert_eq!(file, Path::new(name));
                // Latin-1 formats read line 1 as text and reject its fields; UTF-8 formats
                // reject the 0x89 byte; nobody gets past line 2 (the NUL).
                assert!(*line == 1 || *line == 2, "{name}: {err}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // Pseudo-random bytes (a fixed LCG stream, 4 KiB): a parse error, never a panic or a record.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    for &(name, read, _) in READERS {
        let err = run(read, &noise, name).unwrap_err();
        assert!(
            matches!(&err, DataError::Parse { file, .. } if file == Path::new(name)),
            "{name}: {err}"
        );
    }
}

#[test]
fn nul_bytes_are_a_parse_error_at_their_line() {
    for &(name, read, valid) in READERS {
        // A NUL in the middle of the second data line.
        let mut bytes = valid.as_bytes().to_vec();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 2;
        bytes.insert(second, 0);
        let err = run(read, &bytes, name).unwrap_err();
        assert_parse(&err, name, 2, "NUL");
        // A lone NUL line is not "blank".
        let err = run(read, b"\0\n", name).unwrap_err();
        assert_parse(&err, name, 1, "NUL at byte 1");
    }
}

#[test]
fn crlf_endings_are_accepted_and_read_like_lf() {
    for &(name, read, valid) in READERS {
        let lf = run(read, valid.as_bytes(), name).unwrap();
        assert_eq!(lf.len(), if name == "tsv_with_header" { 1 } else { 2 });
        let crlf = valid.replace('\n', "\r\n");
        assert_eq!(run(read, crlf.as_bytes(), name).unwrap(), lf, "{name}");
        // Mixed endings and a last line without any terminator are fine too.
        let mixed = valid.replacen('\n', "\r\n", 1);
        let mixed = mixed.trim_end_matches('\n');
        assert_eq!(run(read, mixed.as_bytes(), name).unwrap(), lf, "{name}");
        // A lone CR is not a line ending: it is rejected rather than running lines together.
        let cr = valid.trim_end().replace('\n', "\r");
        let err = run(read, cr.as_bytes(), name).unwrap_err();
        assert_parse(&err, name, 1, "carriage return");
    }
}

#[test]
fn a_leading_utf8_bom_is_ignored_and_a_later_one_is_an_error() {
    for &(name, read, valid) in READERS {
        let plain = run(read, valid.as_bytes(), name).unwrap();
        let with_bom = [&b"\xEF\xBB\xBF"[..], valid.as_bytes()].concat();
        assert_eq!(run(read, &with_bom, name).unwrap(), plain, "{name}");
        // A BOM alone on the first line leaves a blank line, which is skipped.
        let bom_line = [&b"\xEF\xBB\xBF\r\n"[..], valid.as_bytes()].concat();
        assert_eq!(
            run(read, &bom_line, name).unwrap().len(),
            plain.len(),
            "{name}"
        );
        // Two files concatenated: the second BOM starts line 3.
        let twice = [with_bom.as_slice(), with_bom.as_slice()].concat();
        let err = run(read, &twice, name).unwrap_err();
        assert_parse(&err, name, 3, "byte-order mark");
    }
}

#[test]
fn trailing_separators() {
    // Formats with a fixed field count reject a trailing separator (one field too many).
    let err = run(READERS[0].1, b"1::2::3::4::\n", "ratings.dat").unwrap_err();
    assert_parse(
        &err,
        "ratings.dat",
        1,
        "expected 4 fields separated by \"::\", found 5",
    );
    let err = run(READERS[1].1, b"1::F::1::10::48067::\n", "users.dat").unwrap_err();
    assert_parse(&err, "users.dat", 1, "found 6");
    let err = run(READERS[2].1, b"1::T (1995)::Drama::\n", "movies.dat").unwrap_err();
    assert_parse(&err, "movies.dat", 1, "found 4");
    let err = run(READERS[4].1, b"1|24|M|technician|85711|\n", "u.user").unwrap_err();
    assert_parse(&err, "u.user", 1, "found 6");
    let item = b"1|T|01-Jan-1995||u|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|\n";
    let err = run(READERS[5].1, item, "u.item").unwrap_err();
    assert_parse(&err, "u.item", 1, "found 25");
    // CSV: a trailing comma is an empty third field, i.e. an empty timestamp.
    let err = run(READERS[7].1, b"alice,x,\n", "i.csv").unwrap_err();
    assert_parse(&err, "i.csv", 1, "timestamp is empty");
    let err = run(READERS[7].1, b"alice,x,5,\n", "i.csv").unwrap_err();
    assert_parse(&err, "i.csv", 1, "found 4");
    // PeterRec: a trailing comma is an empty token or an empty target.
    let err = run(READERS[9].1, b"1,2,3,\n", "pre.csv").unwrap_err();
    assert_parse(&err, "pre.csv", 1, "empty token at position 4");
    let err = run(READERS[10].1, b"1,2,,3,\n", "ft.csv").unwrap_err();
    assert_parse(&err, "ft.csv", 1, "empty target at position 2");
    // Whitespace-separated formats: trailing tabs and spaces are only whitespace.
    let a = run(READERS[3].1, b"1\t2\t3\t4\t\n", "u.data").unwrap();
    assert_eq!(a, run(READERS[3].1, b"1\t2\t3\t4\n", "u.data").unwrap());
    let s = run(READERS[6].1, b"u 1 2 \t\n", "s.txt").unwrap();
    assert_eq!(s, run(READERS[6].1, b"u 1 2\n", "s.txt").unwrap());
    // ML-1M genres: an empty genre after a trailing `|` is dropped.
    let m = run(READERS[2].1, b"1::T (1995)::Drama|\n", "movies.dat").unwrap();
    assert_eq!(
        m,
        run(READERS[2].1, b"1::T (1995)::Drama\n", "movies.dat").unwrap()
    );
}

#[test]
fn negative_numbers() {
    // Numeric fields (MovieLens ids, ratings, ages, timestamps; CSV timestamps) are unsigned.
    let err = run(READERS[0].1, b"-1::2::3::4\n", "ratings.dat").unwrap_err();
    assert_parse(
        &err,
        "ratings.dat",
        1,
        "user id \"-1\" is not a non-negative integer",
    );
    let err = run(READERS[0].1, b"1::2::-3::4\n", "ratings.dat").unwrap_err();
    assert_parse(&err, "ratings.dat", 1, "rating \"-3\"");
    let err = run(READERS[3].1, b"1\t2\t3\t-4\n", "u.data").unwrap_err();
    assert_parse(&err, "u.data", 1, "timestamp \"-4\"");
    let err = run(READERS[4].1, b"1|-24|M|technician|1\n", "u.user").unwrap_err();
    assert_parse(&err, "u.user", 1, "age \"-24\"");
    let err = run(READERS[7].1, b"alice,x,-5\n", "i.csv").unwrap_err();
    assert_parse(&err, "i.csv", 1, "timestamp \"-5\"");
    // Ids of the string formats are opaque tokens: `-5` is an id like any other.
    let s = run(READERS[6].1, b"-1 -5 7\n", "s.txt").unwrap();
    assert_eq!(s, vec![r#"RawSequence { user: "-1", items: ["-5", "7"] }"#]);
    let i = run(READERS[7].1, b"-1,-5\n", "i.csv").unwrap();
    assert!(i[0].contains(r#"user: "-1", item: "-5""#), "{i:?}");
    let p = run(READERS[9].1, b"0,-5,7\n", "pre.csv").unwrap();
    assert!(p[0].contains(r#"items: ["-5", "7"]"#), "{p:?}");
}

#[test]
fn ids_above_u32() {
    let err = run(READERS[0].1, b"4294967296::2::3::4\n", "ratings.dat").unwrap_err();
    assert_parse(&err, "ratings.dat", 1, "user id 4294967296 is too large");
    let err = run(READERS[1].1, b"99999999999999::F::1::10::1\n", "users.dat").unwrap_err();
    assert_parse(&err, "users.dat", 1, "too large");
    let err = run(READERS[3].1, b"1\t4294967296\t3\t4\n", "u.data").unwrap_err();
    assert_parse(&err, "u.data", 1, "movie id 4294967296 is too large");
    let err = run(
        READERS[5].1,
        b"4294967296|T|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
        "u.item",
    )
    .unwrap_err();
    assert_parse(&err, "u.item", 1, "too large");
    // Timestamps are u64; beyond that is an error too, even with many digits.
    let err = run(
        READERS[0].1,
        b"1::2::3::18446744073709551616\n",
        "ratings.dat",
    )
    .unwrap_err();
    assert_parse(
        &err,
        "ratings.dat",
        1,
        "timestamp 18446744073709551616 is too large",
    );
    let long = format!("1::2::3::{}\n", "9".repeat(10_000));
    let err = run(READERS[0].1, long.as_bytes(), "ratings.dat").unwrap_err();
    assert_parse(&err, "ratings.dat", 1, "too large");
    // The edges fit.
    let ok = run(
        READERS[0].1,
        b"4294967295::4294967295::255::18446744073709551615\n",
        "r.dat",
    );
    assert_eq!(ok.unwrap().len(), 1);
    // String ids are not numbers: a 30-digit id is kept verbatim.
    let big = "123456789012345678901234567890";
    let s = run(READERS[6].1, format!("{big} {big}\n").as_bytes(), "s.txt").unwrap();
    assert!(
        s[0].contains(&format!("user: \"{big}\", items: [\"{big}\"]")),
        "{s:?}"
    );
}

#[test]
fn duplicate_users() {
    // Sequence files hold one line per user: a second line for a user is an error naming both.
    let err = run(READERS[6].1, b"u1 1 2\nu2 3\n\nu1 4\n", "Beauty.txt").unwrap_err();
    assert_parse(
        &err,
        "Beauty.txt",
        4,
        "duplicate user: user \"u1\" already has a sequence on line 1",
    );
    // A user has one profile, a movie one entry.
    let err = run(
        READERS[1].1,
        b"1::F::1::10::1\n1::M::18::1::2\n",
        "users.dat",
    )
    .unwrap_err();
    assert_parse(
        &err,
        "users.dat",
        2,
        "duplicate user: user 1 is already listed on line 1",
    );
    let err = run(
        READERS[4].1,
        b"7|24|M|other|1\n8|24|M|other|1\n7|30|F|other|2\n",
        "u.user",
    )
    .unwrap_err();
    assert_parse(&err, "u.user", 3, "user 7 is already listed on line 1");
    let err = run(
        READERS[2].1,
        b"5::A (1990)::Drama\n5::B (1991)::Comedy\n",
        "movies.dat",
    )
    .unwrap_err();
    assert_parse(&err, "movies.dat", 2, "duplicate movie: movie 5");
    let item = b"3|T|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n";
    let err = run(READERS[5].1, &[&item[..], &item[..]].concat(), "u.item").unwrap_err();
    assert_parse(&err, "u.item", 2, "duplicate movie: movie 3");
    // Interaction files list many events per user: they are grouped, in time order.
    let events: Vec<_> = interactions(
        &b"a,x,5\nb,y,1\na,z,2\na,x,9\n"[..],
        "i.csv",
        CsvOptions::default(),
    )
    .collect::<Result<_, _>>()
    .unwrap();
    let grouped = group_by_user(events);
    assert_eq!(grouped.len(), 2);
    assert_eq!(
        grouped[0].items,
        vec!["z", "x", "x"],
        "a repeated item is kept"
    );
    let ratings = run(READERS[0].1, b"1::2::3::4\n1::2::3::4\n", "ratings.dat").unwrap();
    assert_eq!(ratings.len(), 2, "identical ratings lines are two events");
    // The PeterRec CSVs have no user ids: each line is its own user, even if two are equal.
    let p = run(READERS[9].1, b"7,8\n7,8\n", "pre.csv").unwrap();
    assert_eq!(p.len(), 2);
}

/// `n` copies of `line` followed by `tail`, produced lazily.
fn repeated(line: &'static [u8], n: u64, tail: &'static [u8]) -> Box<dyn BufRead> {
    let lines = Repeat {
        line,
        left: n,
        pos: 0,
    };
    Box::new(BufReader::with_capacity(1 << 16, lines.chain(tail)))
}

struct Repeat {
    line: &'static [u8],
    left: u64,
    pos: usize,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            let k = (buf.len() - n).min(self.line.len() - self.pos);
            buf[n..n + k].copy_from_slice(&self.line[self.pos..self.pos + k]);
            n += k;
            self.pos += k;
            if self.pos == self.line.len() {
                self.pos = 0;
                self.left -= 1;
            }
        }
        Ok(n)
    }
}

#[test]
fn a_million_empty_lines() {
    // Only blank lines: the file is empty.
    for &(name, read, _) in READERS {
        let err = read(repeated(b"\n", 1_000_000, b""), name).unwrap_err();
        assert!(
            matches!(&err, DataError::EmptyFile { file } if file == Path::new(name)),
            "{name}: {err}"
        );
    }
    for blank in [&b"\r\n"[..], b" \t \r\n"] {
        let err = sequence_file(repeated(blank, 1_000_000, b""), "s.txt")
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(matches!(err, DataError::EmptyFile { .. }), "{err}");
    }
    // Blank lines are skipped but counted: an error after them names the right line.
    let err = ml1m_ratings(repeated(b"\n", 1_000_000, b"1::x::3::4\n"), "ratings.dat")
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    assert_parse(&err, "ratings.dat", 1_000_001, "movie id \"x\"");
    let seqs: Vec<_> = sequence_file(repeated(b"\r\n", 1_000_000, b"u 1 2\n"), "s.txt")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs.len(), 1);
    // And a million data lines stream through in constant memory.
    let mut n = 0;
    for r in ml1m_ratings(repeated(b"1::2::3::4\n", 1_000_000, b""), "ratings.dat") {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 1_000_000);
}

/// A reader of `len` bytes of `fill` (then `tail`) that counts the bytes handed out.
struct Counted {
    fill: u8,
    left: usize,
    tail: &'static [u8],
    served: Arc<AtomicUsize>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.left > 0 {
            let n = buf.len().min(self.left);
            buf[..n].fill(self.fill);
            self.left -= n;
            n
        } else {
            let n = buf.len().min(self.tail.len());
            buf[..n].copy_from_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
            n
        };
        self.served.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}

const BUF: usize = 1 << 16;

fn one_huge_line(
    len: usize,
    fill: u8,
    tail: &'static [u8],
) -> (Box<dyn BufRead>, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let r = Counted {
        fill,
        left: len,
        tail,
        served: served.clone(),
    };
    (Box::new(BufReader::with_capacity(BUF, r)), served)
}

#[test]
fn a_single_line_of_100_mb_is_an_error_in_bounded_memory() {
    const HUNDRED_MB: usize = 100 << 20;
    for &(name, read, _) in READERS {
        let (input, served) = one_huge_line(HUNDRED_MB, b'7', b"\n1::2::3::4\n");
        let err = read(input, name).unwrap_err();
        match &err {
            DataError::LineTooLong { file, line, max } => {
                assert_eq!(file, Path::new(name));
                assert_eq!((*line, *max), (1, MAX_LINE_LEN));
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with(&format!("{name}:1: line is longer than")));
        assert_eq!(err.line(), Some(1));
        // Reading stopped at the limit: the rest of the 100 MB was never read, let alone held.
        let read_bytes = served.load(Ordering::Relaxed);
        assert!(
            read_bytes <= MAX_LINE_LEN + 2 + BUF,
            "{name}: read {read_bytes} bytes"
        );
    }
}

#[test]
fn the_line_limit_is_exact_and_configurable() {
    let lines = |text: &'static [u8], max: usize| {
        let mut l = Lines::new(text, "f.txt", Encoding::Utf8).with_max_line_len(max);
        let mut out = Vec::new();
        while let Some(r) = l.next_line() {
            out.push(r.map(|line| line.text.to_string()));
        }
        out
    };
    // Exactly `max` bytes of text pass, with `\n`, `\r\n` or no terminator.
    for text in [&b"12345\n"[..], b"12345\r\n", b"12345"] {
        assert_eq!(lines(text, 5)[0].as_ref().unwrap(), "12345");
    }
    // One byte more is an error naming the line, after the good lines before it.
    let out = lines(b"ab\n123456\nnever read\n", 5);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap(), "ab");
    match &out[1] {
        Err(DataError::LineTooLong {
            line: 2, max: 5, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // One byte over the default limit, in a file on disk: the error names the path.
    let dir = std::env::temp_dir().join(format!("peterrec-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("Beauty.txt");
    {
        let mut f = std::fs::File::create(&path).unwrap();
        let (mut input, _) = one_huge_line(MAX_LINE_LEN + 1, b'x', b"\n");
        std::io::copy(&mut input, &mut f).unwrap();
    }
    let err = read_sequence_file(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::LineTooLong { file, line: 1, .. } if file == &path),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that fails after some good lines.
struct Failing(&'static [u8]);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn an_io_error_mid_file_is_typed_and_names_the_file() {
    for &(name, read, valid) in READERS {
        let valid: &'static str = valid;
        let err = read(Box::new(BufReader::new(Failing(valid.as_bytes()))), name).unwrap_err();
        match &err {
            DataError::Io { path, source } => {
                assert_eq!(path, Path::new(name));
                assert!(source.to_string().contains("disk on fire"));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_truncated_or_flipped_vocabulary_file_is_a_typed_error() {
    use peterrec_data::Vocab;
    let dir = std::env::temp_dir().join(format!("peterrec-hostile-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vocab.json");
    let vocab = Vocab::from_sequences([vec!["b", "a", "ü", "12"], vec!["a", "x y", ""]]);
    vocab.save_json(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Every truncation (dropping at least the closing brace) is a JSON error naming the file.
    for len in 0..bytes.len() - 1 {
        std::fs::write(&path, &bytes[..len]).unwrap();
        match Vocab::load_json(&path) {
            Err(DataError::Json { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    // Every flipped bit, at two positions of each byte: a typed error, or (in insignificant
    // whitespace) exactly the same vocabulary; never another one.
    let (mut json, mut invalid, mut same) = (0, 0, 0);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x20] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            std::fs::write(&path, &damaged).unwrap();
            match Vocab::load_json(&path) {
                Ok(v) => {
                    assert_eq!(v, vocab, "byte {i} ^ {mask:#x} loaded another vocabulary");
                    same += 1;
                }
                Err(DataError::Json { .. }) => json += 1,
                Err(DataError::InvalidVocab(_)) => invalid += 1,
                Err(other) => panic!("byte {i}: {other:?}"),
            }
        }
    }
    // Flips inside item ids are caught by the fingerprint, not only by the JSON syntax.
    assert!(invalid > 0 && json > 0, "{json} {invalid} {same}");
    std::fs::remove_dir_all(&dir).unwrap();
}
