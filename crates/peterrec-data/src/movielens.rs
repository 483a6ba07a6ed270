//! MovieLens data sets (ML-1M and ML-100K) loaded as a whole, and their label tables.
//!
//! # Profile classes
//!
//! | attribute | classes | mapping |
//! | --- | --- | --- |
//! | gender | 2 | `F` = 0, `M` = 1 |
//! | age | 7 | [`AGE_BUCKETS`]: ML-1M codes 1, 18, 25, 35, 45, 50, 56 → 0..6; ML-100K years mapped to the same ranges (`<18`, 18-24, 25-34, 35-44, 45-49, 50-55, 56+) |
//! | occupation (ML-1M) | 21 | the code 0..20 of `users.dat`, names in [`ML1M_OCCUPATIONS`] |
//! | occupation (ML-100K) | 21 | the index of the word in [`ML100K_OCCUPATIONS`], the order of ML-100K's `u.occupation` (alphabetical): administrator = 0, artist = 1, …, writer = 20 |
//!
//! ML-100K's 21 occupation words do not correspond one-to-one to ML-1M's 21 codes (e.g.
//! "librarian", "entertainment" vs "farmer", "K-12 student"), so each data set keeps its own
//! 21 classes rather than a lossy cross-mapping.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{DataError, Result};
use crate::readers::movielens::{
    read_ml100k_movies, read_ml100k_ratings, read_ml100k_users, read_ml1m_movies,
    read_ml1m_ratings, read_ml1m_users, Movie, Rating, UserProfile,
};
// The class tables live with the readers, which map profile fields to classes while reading;
// they are re-exported here, beside the labels built from them.
pub use crate::readers::movielens::{
    age_bucket_from_ml1m_code, age_bucket_from_years, ml100k_occupation_index, AGE_BUCKETS,
    GENDERS, ML100K_GENRES, ML100K_OCCUPATIONS, ML1M_AGE_CODES, ML1M_OCCUPATIONS, NUM_AGE_BUCKETS,
    NUM_OCCUPATIONS,
};
use crate::sequence::{chronological, UserSequence};
use crate::vocab::Vocab;

/// Which MovieLens release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// MovieLens 1M (`ratings.dat`, `users.dat`, `movies.dat`).
    Ml1m,
    /// MovieLens 100K (`u.data`, `u.user`, `u.item`).
    Ml100k,
}

/// A user-profile attribute used as a classification label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileAttribute {
    /// 2 classes.
    Gender,
    /// 7 age buckets.
    Age,
    /// 21 occupations.
    Occupation,
}

impl ProfileAttribute {
    /// Lower-case name (`gender`, `age`, `occupation`).
    pub fn name(self) -> &'static str {
        match self {
            ProfileAttribute::Gender => "gender",
            ProfileAttribute::Age => "age",
            ProfileAttribute::Occupation => "occupation",
        }
    }

    /// Class index of `profile` for this attribute.
    pub fn label(self, profile: &UserProfile) -> u32 {
        match self {
            ProfileAttribute::Gender => profile.gender.class(),
            ProfileAttribute::Age => profile.age_bucket,
            ProfileAttribute::Occupation => profile.occupation,
        }
    }

    /// Class names for this attribute in `variant`.
    pub fn class_names(self, variant: Variant) -> Vec<String> {
        let names: &[&str] = match (self, variant) {
            (ProfileAttribute::Gender, _) => &GENDERS,
            (ProfileAttribute::Age, _) => &AGE_BUCKETS,
            (ProfileAttribute::Occupation, Variant::Ml1m) => &ML1M_OCCUPATIONS,
            (ProfileAttribute::Occupation, Variant::Ml100k) => &ML100K_OCCUPATIONS,
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// A whole MovieLens data set: ratings (in file order), user profiles and movies, checked for
/// consistency (every rating's user has a profile and its movie is listed; no duplicate
/// profile). Read-only, so the chronological histories can be computed once and cached.
#[derive(Debug, Clone)]
pub struct MovieLens {
    variant: Variant,
    ratings: Vec<Rating>,
    users: Vec<UserProfile>,
    movies: Vec<Movie>,
    histories: OnceLock<Vec<(u32, Vec<u32>)>>,
}

impl PartialEq for MovieLens {
    fn eq(&self, other: &Self) -> bool {
        self.variant == other.variant
            && self.ratings == other.ratings
            && self.users == other.users
            && self.movies == other.movies
    }
}

impl MovieLens {
    /// Loads ML-1M from a directory holding `ratings.dat`, `users.dat` and `movies.dat`.
    pub fn load_1m(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Self::new(
            Variant::Ml1m,
            read_ml1m_ratings(dir.join("ratings.dat"))?,
            read_ml1m_users(dir.join("users.dat"))?,
            read_ml1m_movies(dir.join("movies.dat"))?,
        )
        .map_err(|e| in_dir(e, dir))
    }

    /// Loads ML-100K from a directory holding `u.data`, `u.user` and `u.item`.
    pub fn load_100k(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Self::new(
            Variant::Ml100k,
            read_ml100k_ratings(dir.join("u.data"))?,
            read_ml100k_users(dir.join("u.user"))?,
            read_ml100k_movies(dir.join("u.item"))?,
        )
        .map_err(|e| in_dir(e, dir))
    }

    /// Loads either release.
    pub fn load(variant: Variant, dir: impl AsRef<Path>) -> Result<Self> {
        match variant {
            Variant::Ml1m => Self::load_1m(dir),
            Variant::Ml100k => Self::load_100k(dir),
        }
    }

    /// Assembles a data set from records (e.g. read with [`crate::readers::movielens`]),
    /// checking that they are consistent ([`DataError::Inconsistent`] otherwise).
    pub fn new(
        variant: Variant,
        ratings: Vec<Rating>,
        users: Vec<UserProfile>,
        movies: Vec<Movie>,
    ) -> Result<Self> {
        let mut profiles = HashSet::new();
        for p in &users {
            if !profiles.insert(p.user) {
                return Err(DataError::Inconsistent(format!(
                    "user {} has two profiles",
                    p.user
                )));
            }
        }
        let mut listed = HashSet::new();
        for m in &movies {
            if !listed.insert(m.id) {
                return Err(DataError::Inconsistent(format!(
                    "movie {} is listed twice",
                    m.id
                )));
            }
        }
        for r in &ratings {
            if !profiles.contains(&r.user) {
                return Err(DataError::Inconsistent(format!(
                    "user {} has ratings but no profile",
                    r.user
                )));
            }
            if !listed.contains(&r.item) {
                return Err(DataError::Inconsistent(format!(
                    "movie {} is rated but not in the movie list",
                    r.item
                )));
            }
        }
        Ok(MovieLens {
            variant,
            ratings,
            users,
            movies,
            histories: OnceLock::new(),
        })
    }

    /// Which release.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// All ratings, in file order.
    pub fn ratings(&self) -> &[Rating] {
        &self.ratings
    }

    /// All user profiles, in file order.
    pub fn users(&self) -> &[UserProfile] {
        &self.users
    }

    /// All movies, in file order.
    pub fn movies(&self) -> &[Movie] {
        &self.movies
    }

    /// Directory-independent name, `ml-1m` or `ml-100k`.
    pub fn name(&self) -> &'static str {
        match self.variant {
            Variant::Ml1m => "ml-1m",
            Variant::Ml100k => "ml-100k",
        }
    }

    /// Each user's rated movie ids in chronological order (timestamp, then file order),
    /// users sorted by id. Computed once, then cached.
    pub fn histories(&self) -> &[(u32, Vec<u32>)] {
        self.histories.get_or_init(|| {
            let mut h = chronological(self.ratings.iter().map(|r| (r.user, r.item, r.timestamp)));
            h.sort_unstable_by_key(|(u, _)| *u);
            h
        })
    }

    /// Like [`MovieLens::histories`], keeping only the movies for which `keep` is true (users
    /// left without any movie are omitted).
    pub fn histories_where(&self, keep: impl Fn(u32) -> bool) -> Vec<(u32, Vec<u32>)> {
        self.histories()
            .iter()
            .map(|(u, items)| (*u, items.iter().copied().filter(|&m| keep(m)).collect()))
            .filter(|(_, items): &(u32, Vec<u32>)| !items.is_empty())
            .collect()
    }

    /// Pretraining data from all ratings: a vocabulary over movie ids (as decimal strings, in
    /// order of first appearance in the user-sorted chronological histories) and each user's
    /// sequence of at least `min_len` items.
    pub fn pretraining(&self, min_len: usize) -> (Vocab, Vec<UserSequence>) {
        histories_to_sequences(self.histories().iter().cloned(), min_len)
    }

    /// Vocabulary index of every listed movie under `vocab` (`None` when not in it), so that
    /// histories can be encoded without formatting ids again.
    pub fn movie_indices(&self, vocab: &Vocab) -> HashMap<u32, Option<u32>> {
        self.movies
            .iter()
            .map(|m| (m.id, vocab.get(&m.id.to_string())))
            .collect()
    }

    /// Profiles by user id.
    pub fn profiles(&self) -> HashMap<u32, &UserProfile> {
        self.users.iter().map(|p| (p.user, p)).collect()
    }

    /// Movies by id.
    pub fn movie_index(&self) -> HashMap<u32, &Movie> {
        self.movies.iter().map(|m| (m.id, m)).collect()
    }
}

fn in_dir(e: DataError, dir: &Path) -> DataError {
    match e {
        DataError::Inconsistent(m) => DataError::Inconsistent(format!("{}: {m}", dir.display())),
        other => other,
    }
}

/// Turns numeric histories into a vocabulary (first appearance) and sequences of at least
/// `min_len` items; users are named by their decimal id.
pub fn histories_to_sequences(
    histories: impl IntoIterator<Item = (u32, Vec<u32>)>,
    min_len: usize,
) -> (Vocab, Vec<UserSequence>) {
    let mut vocab = Vocab::new();
    let mut seqs = Vec::new();
    let mut index: HashMap<u32, u32> = HashMap::new();
    for (user, items) in histories {
        if items.len() < min_len {
            continue;
        }
        let ids = items
            .iter()
            .map(|&m| {
                *index
                    .entry(m)
                    .or_insert_with(|| vocab.insert(&m.to_string()))
            })
            .collect();
        seqs.push(UserSequence {
            user: user.to_string(),
            items: ids,
        });
    }
    (vocab, seqs)
}
