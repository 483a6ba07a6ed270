//! Reader behaviour on small in-memory inputs: parsing, and every documented error case.

use std::path::Path;

use peterrec_data::readers::csv::{group_by_user, interactions, CsvOptions, Interaction};
use peterrec_data::readers::movielens::{
    ml100k_movies, ml100k_ratings, ml100k_users, ml1m_movies, ml1m_ratings, ml1m_users, Gender,
    Rating,
};
use peterrec_data::readers::peterrec::{finetune_file, pretrain_file};
use peterrec_data::readers::sequences::sequence_file;
use peterrec_data::DataError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Asserts `err` is a parse error at `file:line` whose reason contains `needle`.
fn assert_parse(err: &DataError, file: &str, line: usize, needle: &str) {
    match err {
        DataError::Parse {
            file: f,
            line: l,
            reason,
        } => {
            assert_eq!(f, Path::new(file), "{err}");
            assert_eq!(*l, line, "{err}");
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
            // The message names file, line and reason.
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{file}:{line}: ")), "{msg}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn first_err<T: std::fmt::Debug>(it: impl Iterator<Item = Result<T, DataError>>) -> DataError {
    it.collect::<Result<Vec<T>, DataError>>().unwrap_err()
}

#[test]
fn ml1m_ratings_parse_crlf_and_blank_lines() {
    let text = b"1::1193::5::978300760\r\n\r\n1::661::3::978302109\n\n";
    let r: Vec<Rating> = ml1m_ratings(&text[..], "ratings.dat")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        r,
        vec![
            Rating {
                user: 1,
                item: 1193,
                rating: 5,
                timestamp: 978300760
            },
            Rating {
                user: 1,
                item: 661,
                rating: 3,
                timestamp: 978302109
            }
        ]
    );
}

#[test]
fn ml1m_users_and_movies_latin1() {
    let users = b"1::F::1::10::48067\n2::M::56::16::70072\n";
    let u: Vec<_> = ml1m_users(&users[..], "users.dat")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(u[0].gender, Gender::Female);
    assert_eq!((u[0].age, u[0].age_bucket, u[0].occupation), (1, 0, 10));
    assert_eq!(
        (u[1].age_bucket, u[1].occupation, u[1].zip.as_str()),
        (6, 16, "70072")
    );

    // 0xE9 is 'é' in Latin-1 (and invalid UTF-8 on its own).
    let movies = b"73::Mis\xe9rables, Les (1995)::Drama|Musical\n";
    let m: Vec<_> = ml1m_movies(&movies[..], "movies.dat")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(m[0].title, "Misérables, Les (1995)");
    assert_eq!(m[0].genres, vec!["Drama", "Musical"]);

    let err = first_err(ml1m_users(&b"1::X::1::10::1\n"[..], "users.dat"));
    assert_parse(&err, "users.dat", 1, "gender");
    let err = first_err(ml1m_users(&b"1::F::17::10::1\n"[..], "users.dat"));
    assert_parse(&err, "users.dat", 1, "age code 17");
    let err = first_err(ml1m_users(&b"1::F::18::21::1\n"[..], "users.dat"));
    assert_parse(&err, "users.dat", 1, "occupation code 21");
}

#[test]
fn ml100k_files() {
    let data = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n";
    let r: Vec<_> = ml100k_ratings(&data[..], "u.data")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(r[1].item, 302);
    let users = b"1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|student|1\n";
    let u: Vec<_> = ml100k_users(&users[..], "u.user")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!((u[0].age_bucket, u[0].occupation), (1, 19));
    assert_eq!((u[1].age_bucket, u[1].occupation), (5, 13));
    assert_eq!(u[2].age_bucket, 0);
    let err = first_err(ml100k_users(&b"1|24|M|astronaut|85711\n"[..], "u.user"));
    assert_parse(&err, "u.user", 1, "unknown occupation \"astronaut\"");

    let item = b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
    let m: Vec<_> = ml100k_movies(&item[..], "u.item")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(m[0].genres, vec!["Animation", "Children's", "Comedy"]);
    let bad = b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|2|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
    let err = first_err(ml100k_movies(&bad[..], "u.item"));
    assert_parse(&err, "u.item", 1, "genre flag 6 (Comedy)");
}

#[test]
fn sequence_csv_and_peterrec_files() {
    let seqs: Vec<_> = sequence_file(&b"1 1 2 3\n2\t4 5 \n"[..], "Beauty.txt")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs[0].user, "1");
    assert_eq!(seqs[0].items, vec!["1", "2", "3"]);
    assert_eq!(seqs[1].items, vec!["4", "5"]);

    let csv = b"user,item,ts\nalice, x ,5\nbob,y,3\n";
    let i: Vec<Interaction> =
        interactions(&csv[..], "i.csv", CsvOptions::default().with_header(true))
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(i.len(), 2);
    assert_eq!(i[0].item, "x");
    assert_eq!(i[1].timestamp, Some(3));
    let events = b"a,x,5\nb,y,1\na,z,2\na,w,5\n";
    let i: Vec<Interaction> = interactions(&events[..], "e.csv", CsvOptions::default())
        .collect::<Result<_, _>>()
        .unwrap();
    let grouped = group_by_user(i);
    assert_eq!(grouped[0].user, "a");
    assert_eq!(
        grouped[0].items,
        vec!["z", "x", "w"],
        "by time, ties in file order"
    );
    assert_eq!(grouped[1].items, vec!["y"]);
    let tsv = b"a\tb\n";
    let opts = CsvOptions::for_path(Path::new("x.tsv"));
    let i: Vec<Interaction> = interactions(&tsv[..], "x.tsv", opts)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(i[0].timestamp, None);

    let pre: Vec<_> = pretrain_file(&b"0,0,7,8\n9,10,11\n"[..], "pre.csv")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pre[0].items, vec!["7", "8"], "0 is padding");
    assert_eq!(pre[1].line, 2);
    let ft: Vec<_> = finetune_file(&b"0,7,8,,1845,1846\n9,10,,3\n"[..], "ft.csv")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ft[0].items, vec!["7", "8"]);
    assert_eq!(ft[0].targets, vec!["1845", "1846"]);
    assert_eq!(ft[1].targets, vec!["3"]);
}

#[test]
fn error_empty_file() {
    for text in [&b""[..], &b"\n\n  \n"[..]] {
        let err = first_err(ml1m_ratings(text, "ratings.dat"));
        assert!(
            matches!(&err, DataError::EmptyFile { file } if file == Path::new("ratings.dat")),
            "{err}"
        );
        assert!(err.to_string().contains("ratings.dat"));
        assert!(matches!(
            first_err(sequence_file(text, "s.txt")),
            DataError::EmptyFile { .. }
        ));
        assert!(matches!(
            first_err(pretrain_file(text, "p.csv")),
            DataError::EmptyFile { .. }
        ));
        assert!(matches!(
            first_err(interactions(text, "i.csv", CsvOptions::default())),
            DataError::EmptyFile { .. }
        ));
    }
}

#[test]
fn error_empty_user() {
    let err = first_err(sequence_file(&b"1 4 5\n2\n3 6\n"[..], "Beauty.txt"));
    assert_parse(&err, "Beauty.txt", 2, "empty user");
    let err = first_err(pretrain_file(&b"1,2\n0,0,0\n"[..], "pre.csv"));
    assert_parse(&err, "pre.csv", 2, "empty user");
    let err = first_err(interactions(
        &b"a,x\n,y\n"[..],
        "i.csv",
        CsvOptions::default(),
    ));
    assert_parse(&err, "i.csv", 2, "empty user id");
}

#[test]
fn error_wrong_field_count() {
    let err = first_err(ml1m_ratings(&b"1::2::3::4\n1::2::3\n"[..], "ratings.dat"));
    assert_parse(
        &err,
        "ratings.dat",
        2,
        "expected 4 fields separated by \"::\", found 3",
    );
    let err = first_err(ml1m_ratings(&b"1::2::3::4::5\n"[..], "ratings.dat"));
    assert_parse(&err, "ratings.dat", 1, "found 5");
    let err = first_err(ml100k_ratings(&b"1\t2\t3\n"[..], "u.data"));
    assert_parse(&err, "u.data", 1, "found 3");
    let err = first_err(ml100k_users(&b"1|24|M|technician\n"[..], "u.user"));
    assert_parse(&err, "u.user", 1, "expected 5 fields");
    let err = first_err(interactions(
        &b"a,b,c,d\n"[..],
        "i.csv",
        CsvOptions::default(),
    ));
    assert_parse(&err, "i.csv", 1, "found 4");
    let err = first_err(interactions(
        &b"a,b,1\na,c\n"[..],
        "i.csv",
        CsvOptions::default(),
    ));
    assert_parse(&err, "i.csv", 2, "earlier lines have 3");
}

#[test]
fn error_non_numeric_id() {
    let err = first_err(ml1m_ratings(
        &b"1::2::3::4\nx1::2::3::4\n"[..],
        "ratings.dat",
    ));
    assert_parse(
        &err,
        "ratings.dat",
        2,
        "user id \"x1\" is not a non-negative integer",
    );
    let err = first_err(ml1m_ratings(&b"1::-2::3::4\n"[..], "ratings.dat"));
    assert_parse(&err, "ratings.dat", 1, "movie id \"-2\"");
    let err = first_err(ml1m_ratings(&b"1::::3::4\n"[..], "ratings.dat"));
    assert_parse(&err, "ratings.dat", 1, "movie id is empty");
    let err = first_err(ml100k_ratings(&b"1\t2\t3\tnoon\n"[..], "u.data"));
    assert_parse(&err, "u.data", 1, "timestamp \"noon\"");
    let err = first_err(interactions(
        &b"a,b,yesterday\n"[..],
        "i.csv",
        CsvOptions::default(),
    ));
    assert_parse(&err, "i.csv", 1, "timestamp");
}

#[test]
fn error_id_above_u32() {
    let err = first_err(ml1m_ratings(&b"4294967296::2::3::4\n"[..], "ratings.dat"));
    assert_parse(&err, "ratings.dat", 1, "user id 4294967296 is too large");
    // u32::MAX itself is fine.
    let ok: Vec<_> = ml1m_ratings(&b"4294967295::2::3::4\n"[..], "ratings.dat")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ok[0].user, u32::MAX);
    let err = first_err(ml1m_movies(&b"99999999999::T::Drama\n"[..], "movies.dat"));
    assert_parse(&err, "movies.dat", 1, "too large");
    let err = first_err(ml1m_ratings(&b"1::2::300::4\n"[..], "ratings.dat"));
    assert_parse(&err, "ratings.dat", 1, "rating 300 is out of range");
}

#[test]
fn error_bad_bytes() {
    let err = first_err(sequence_file(&b"1 2 3\n2 \xff\xfe 4\n"[..], "Beauty.txt"));
    assert_parse(&err, "Beauty.txt", 2, "invalid UTF-8 at byte 3");
    let err = first_err(pretrain_file(&b"1,\xc3\n"[..], "pre.csv"));
    assert_parse(&err, "pre.csv", 1, "invalid UTF-8");
    // Latin-1 accepts every byte but NUL, which marks a binary file.
    let err = first_err(ml1m_ratings(
        &b"1::2::3::4\n1::2\x00::3::4\n"[..],
        "ratings.dat",
    ));
    assert_parse(&err, "ratings.dat", 2, "NUL");
}

#[test]
fn error_finetune_line_without_separator() {
    let err = first_err(finetune_file(&b"1,2,,5\n1,2,3,5\n"[..], "ft.csv"));
    assert_parse(&err, "ft.csv", 2, "no `,,`");
    let err = first_err(finetune_file(&b"1,2,,\n"[..], "ft.csv"));
    assert_parse(&err, "ft.csv", 1, "empty target");
    let err = first_err(pretrain_file(&b"1,2,,5\n"[..], "pre.csv"));
    assert_parse(&err, "pre.csv", 1, "empty token");
}

#[test]
fn reading_stops_after_the_first_error() {
    let mut it = ml1m_ratings(&b"x::1::1::1\n1::1::1::1\n"[..], "r.dat");
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = peterrec_data::readers::movielens::read_ml1m_ratings("/nonexistent/ratings.dat")
        .unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/ratings.dat"));
}

/// Random bytes and mutated valid lines never make any reader panic.
#[test]
fn no_panic_on_garbage() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let alphabet = b"0123456789:|,\t \n\r-xF\xff\xe9\x00";
    for _ in 0..300 {
        let len = rng.random_range(0..120);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let b = &bytes[..];
        let _ = ml1m_ratings(b, "f").count();
        let _ = ml1m_users(b, "f").count();
        let _ = ml1m_movies(b, "f").count();
        let _ = ml100k_ratings(b, "f").count();
        let _ = ml100k_users(b, "f").count();
        let _ = ml100k_movies(b, "f").count();
        let _ = sequence_file(b, "f").count();
        let _ = interactions(b, "f", CsvOptions::default()).count();
        let _ = pretrain_file(b, "f").count();
        let _ = finetune_file(b, "f").count();
    }
}
