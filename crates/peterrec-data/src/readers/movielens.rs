//! MovieLens readers: ML-1M (`::`-separated) and ML-100K (tab / `|`-separated), Latin-1 text.
//!
//! | file | format | record |
//! | --- | --- | --- |
//! | ML-1M `ratings.dat` | `UserID::MovieID::Rating::Timestamp` | [`Rating`] |
//! | ML-1M `users.dat` | `UserID::Gender::Age::Occupation::Zip` | [`UserProfile`] |
//! | ML-1M `movies.dat` | `MovieID::Title::Genre1\|Genre2` | [`Movie`] |
//! | ML-100K `u.data` | `user<TAB>item<TAB>rating<TAB>timestamp` | [`Rating`] |
//! | ML-100K `u.user` | `id\|age\|gender\|occupation\|zip` | [`UserProfile`] |
//! | ML-100K `u.item` | `id\|title\|release\|video release\|url\|` + 19 genre flags | [`Movie`] |
//!
//! Profile fields are mapped to class indices while reading, with the class tables of this
//! module (documented, and re-exported, in [`crate::movielens`]): gender F = 0, M = 1; age to
//! the 7 ML-1M buckets ([`AGE_BUCKETS`]); occupation to 0..21 ([`ML1M_OCCUPATIONS`],
//! [`ML100K_OCCUPATIONS`]).
//!
//! A user id on a second line of a users file, or a movie id on a second line of a movies file,
//! is a parse error naming both lines (a user has one profile, a movie one entry). Ratings files
//! list many ratings per user, so ratings are never duplicates of each other.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{open, Encoding, Line, Lines, Records};
use crate::error::Result;

/// Number of age buckets.
pub const NUM_AGE_BUCKETS: usize = 7;
/// Names of the 7 age buckets (ML-1M's ranges).
pub const AGE_BUCKETS: [&str; NUM_AGE_BUCKETS] = [
    "Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+",
];
/// ML-1M age codes, by bucket.
pub const ML1M_AGE_CODES: [u32; NUM_AGE_BUCKETS] = [1, 18, 25, 35, 45, 50, 56];
/// Number of occupation classes (both data sets).
pub const NUM_OCCUPATIONS: usize = 21;
/// ML-1M occupation names, by code (from the ML-1M README).
pub const ML1M_OCCUPATIONS: [&str; NUM_OCCUPATIONS] = [
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];
/// ML-100K occupation words, by class (the order of `u.occupation`).
pub const ML100K_OCCUPATIONS: [&str; NUM_OCCUPATIONS] = [
    "administrator",
    "artist",
    "doctor",
    "educator",
    "engineer",
    "entertainment",
    "executive",
    "healthcare",
    "homemaker",
    "lawyer",
    "librarian",
    "marketing",
    "none",
    "other",
    "programmer",
    "retired",
    "salesman",
    "scientist",
    "student",
    "technician",
    "writer",
];
/// ML-100K genre names, by flag position in `u.item` (the order of `u.genre`).
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];
/// Gender class names.
pub const GENDERS: [&str; 2] = ["F", "M"];

/// Age bucket of an ML-1M age code (1, 18, 25, 35, 45, 50, 56); `None` for other values.
pub fn age_bucket_from_ml1m_code(code: u32) -> Option<u32> {
    ML1M_AGE_CODES
        .iter()
        .position(|&c| c == code)
        .map(|k| k as u32)
}

/// Age bucket of an age in years: `<18` → 0, 18-24 → 1, 25-34 → 2, 35-44 → 3, 45-49 → 4,
/// 50-55 → 5, 56+ → 6.
pub fn age_bucket_from_years(years: u32) -> u32 {
    match years {
        0..=17 => 0,
        18..=24 => 1,
        25..=34 => 2,
        35..=44 => 3,
        45..=49 => 4,
        50..=55 => 5,
        _ => 6,
    }
}

/// Class of an ML-100K occupation word (see [`ML100K_OCCUPATIONS`]).
pub fn ml100k_occupation_index(word: &str) -> Option<u32> {
    ML100K_OCCUPATIONS
        .iter()
        .position(|&w| w == word)
        .map(|k| k as u32)
}

/// One rating event, from ML-1M `ratings.dat` or ML-100K `u.data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rating {
    /// User id as written in the file.
    pub user: u32,
    /// Movie id as written in the file.
    pub item: u32,
    /// Star rating (1..=5 in the official files).
    pub rating: u8,
    /// Unix timestamp in seconds.
    pub timestamp: u64,
}

/// Gender as recorded by MovieLens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `F`, class 0.
    Female,
    /// `M`, class 1.
    Male,
}

impl Gender {
    /// Class index: female 0, male 1.
    pub fn class(self) -> u32 {
        match self {
            Gender::Female => 0,
            Gender::Male => 1,
        }
    }
}

/// One user's demographic profile, from ML-1M `users.dat` or ML-100K `u.user`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProfile {
    /// User id as written in the file.
    pub user: u32,
    /// Gender.
    pub gender: Gender,
    /// Age as written in the file: the ML-1M bucket code (1, 18, …, 56) or ML-100K years.
    pub age: u32,
    /// Age bucket class 0..7 (`<18`, 18-24, 25-34, 35-44, 45-49, 50-55, 56+).
    pub age_bucket: u32,
    /// Occupation class 0..21 (ML-1M code, or ML-100K word index; see [`ML100K_OCCUPATIONS`]).
    pub occupation: u32,
    /// Zip code, verbatim.
    pub zip: String,
}

/// One movie, from ML-1M `movies.dat` or ML-100K `u.item`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Movie {
    /// Movie id as written in the file.
    pub id: u32,
    /// Title (with year), decoded from Latin-1.
    pub title: String,
    /// Genre names, in file order (ML-100K: names of the set flags, see [`ML100K_GENRES`]).
    pub genres: Vec<String>,
}

fn rating_fields(line: &Line<'_>, [u, i, r, t]: [&str; 4]) -> Result<Rating> {
    let user = line.parse_u32("user id", u)?;
    let item = line.parse_u32("movie id", i)?;
    let rating = line.parse_u32("rating", r)?;
    let rating = u8::try_from(rating)
        .map_err(|_| line.error(format!("rating {rating} is out of range 0..=255")))?;
    let timestamp = line.parse_u64("timestamp", t)?;
    Ok(Rating {
        user,
        item,
        rating,
        timestamp,
    })
}

/// Rejects an id already seen on an earlier line (`what` is `user` or `movie`).
fn check_unique(
    seen: &mut HashMap<u32, usize>,
    line: &Line<'_>,
    what: &str,
    id: u32,
) -> Result<()> {
    if let Some(first) = seen.get(&id) {
        return Err(line.error(format!(
            "duplicate {what}: {what} {id} is already listed on line {first}"
        )));
    }
    seen.insert(id, line.number);
    Ok(())
}

fn parse_gender(line: &Line<'_>, field: &str) -> Result<Gender> {
    match field.trim() {
        "F" | "f" => Ok(Gender::Female),
        "M" | "m" => Ok(Gender::Male),
        other => Err(line.error(format!("gender {other:?} is neither 'F' nor 'M'"))),
    }
}

/// Streams ML-1M `ratings.dat` records.
pub fn ml1m_ratings<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<Rating>> {
    Records::new(Lines::new(reader, file, Encoding::Latin1), |line| {
        let f = line.fields::<4>("::")?;
        rating_fields(&line, f)
    })
}

/// Streams ML-1M `users.dat` records.
pub fn ml1m_users<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<UserProfile>> {
    let mut seen = HashMap::new();
    Records::new(Lines::new(reader, file, Encoding::Latin1), move |line| {
        let [u, g, a, o, z] = line.fields::<5>("::")?;
        let user = line.parse_u32("user id", u)?;
        check_unique(&mut seen, &line, "user", user)?;
        let gender = parse_gender(&line, g)?;
        let age = line.parse_u32("age", a)?;
        let age_bucket = age_bucket_from_ml1m_code(age).ok_or_else(|| {
            line.error(format!(
                "age code {age} is not one of 1, 18, 25, 35, 45, 50, 56"
            ))
        })?;
        let occupation = line.parse_u32("occupation", o)?;
        if occupation as usize >= NUM_OCCUPATIONS {
            return Err(line.error(format!(
                "occupation code {occupation} is out of range 0..=20"
            )));
        }
        Ok(UserProfile {
            user,
            gender,
            age,
            age_bucket,
            occupation,
            zip: z.to_string(),
        })
    })
}

/// Streams ML-1M `movies.dat` records.
pub fn ml1m_movies<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<Movie>> {
    let mut seen = HashMap::new();
    Records::new(Lines::new(reader, file, Encoding::Latin1), move |line| {
        let [i, title, genres] = line.fields::<3>("::")?;
        let id = line.parse_u32("movie id", i)?;
        check_unique(&mut seen, &line, "movie", id)?;
        let genres = genres
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        Ok(Movie {
            id,
            title: title.to_string(),
            genres,
        })
    })
}

/// Streams ML-100K `u.data` records (tab-separated; any run of whitespace is accepted).
pub fn ml100k_ratings<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<Rating>> {
    Records::new(Lines::new(reader, file, Encoding::Latin1), |line| {
        let mut f = [""; 4];
        let mut n = 0usize;
        for (k, field) in line.text.split_whitespace().enumerate() {
            if k < 4 {
                f[k] = field;
            }
            n += 1;
        }
        if n != 4 {
            return Err(line.error(format!(
                "expected 4 tab-separated fields (user, item, rating, timestamp), found {n}"
            )));
        }
        rating_fields(&line, f)
    })
}

/// Streams ML-100K `u.user` records; the occupation word is mapped with
/// [`ml100k_occupation_index`] and the age in years with [`age_bucket_from_years`].
pub fn ml100k_users<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<UserProfile>> {
    let mut seen = HashMap::new();
    Records::new(Lines::new(reader, file, Encoding::Latin1), move |line| {
        let [u, a, g, o, z] = line.fields::<5>("|")?;
        let user = line.parse_u32("user id", u)?;
        check_unique(&mut seen, &line, "user", user)?;
        let age = line.parse_u32("age", a)?;
        let gender = parse_gender(&line, g)?;
        let occupation = ml100k_occupation_index(o.trim())
            .ok_or_else(|| line.error(format!("unknown occupation {:?}", o.trim())))?;
        Ok(UserProfile {
            user,
            gender,
            age,
            age_bucket: age_bucket_from_years(age),
            occupation,
            zip: z.to_string(),
        })
    })
}

/// Streams ML-100K `u.item` records (24 `|`-separated fields; genres from the 19 flags).
pub fn ml100k_movies<R: BufRead>(
    reader: R,
    file: impl Into<PathBuf>,
) -> impl Iterator<Item = Result<Movie>> {
    let mut seen = HashMap::new();
    Records::new(Lines::new(reader, file, Encoding::Latin1), move |line| {
        let f = line.fields::<24>("|")?;
        let id = line.parse_u32("movie id", f[0])?;
        check_unique(&mut seen, &line, "movie", id)?;
        let mut genres = Vec::new();
        for (k, flag) in f[5..].iter().enumerate() {
            match flag.trim() {
                "0" => {}
                "1" => genres.push(ML100K_GENRES[k].to_string()),
                other => {
                    return Err(line.error(format!(
                        "genre flag {} ({}) is {other:?}, expected 0 or 1",
                        k + 1,
                        ML100K_GENRES[k]
                    )))
                }
            }
        }
        Ok(Movie {
            id,
            title: f[1].to_string(),
            genres,
        })
    })
}

/// Reads a whole ML-1M `ratings.dat`.
pub fn read_ml1m_ratings(path: impl AsRef<Path>) -> Result<Vec<Rating>> {
    let path = path.as_ref();
    ml1m_ratings(open(path)?, path).collect()
}

/// Reads a whole ML-1M `users.dat`.
pub fn read_ml1m_users(path: impl AsRef<Path>) -> Result<Vec<UserProfile>> {
    let path = path.as_ref();
    ml1m_users(open(path)?, path).collect()
}

/// Reads a whole ML-1M `movies.dat`.
pub fn read_ml1m_movies(path: impl AsRef<Path>) -> Result<Vec<Movie>> {
    let path = path.as_ref();
    ml1m_movies(open(path)?, path).collect()
}

/// Reads a whole ML-100K `u.data`.
pub fn read_ml100k_ratings(path: impl AsRef<Path>) -> Result<Vec<Rating>> {
    let path = path.as_ref();
    ml100k_ratings(open(path)?, path).collect()
}

/// Reads a whole ML-100K `u.user`.
pub fn read_ml100k_users(path: impl AsRef<Path>) -> Result<Vec<UserProfile>> {
    let path = path.as_ref();
    ml100k_users(open(path)?, path).collect()
}

/// Reads a whole ML-100K `u.item`.
pub fn read_ml100k_movies(path: impl AsRef<Path>) -> Result<Vec<Movie>> {
    let path = path.as_ref();
    ml100k_movies(open(path)?, path).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_buckets() {
        let codes: Vec<u32> = [1, 18, 25, 35, 45, 50, 56]
            .iter()
            .map(|&c| age_bucket_from_ml1m_code(c).unwrap())
            .collect();
        assert_eq!(codes, (0..7).collect::<Vec<_>>());
        assert_eq!(age_bucket_from_ml1m_code(17), None);
        let years = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73];
        let b: Vec<u32> = years.iter().map(|&y| age_bucket_from_years(y)).collect();
        assert_eq!(b, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
    }

    #[test]
    fn occupation_words() {
        assert_eq!(ml100k_occupation_index("administrator"), Some(0));
        assert_eq!(ml100k_occupation_index("writer"), Some(20));
        assert_eq!(ml100k_occupation_index("astronaut"), None);
        let mut sorted = ML100K_OCCUPATIONS;
        sorted.sort_unstable();
        assert_eq!(sorted, ML100K_OCCUPATIONS, "alphabetical, as u.occupation");
    }
}
