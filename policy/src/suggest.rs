//! "did you mean `x`?" — the closest known word by edit distance.

/// Levenshtein distance over characters.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known word closest to `word`, if it is close enough to be a likely typo: a
/// case-insensitive match, or within a third of the word's length (at least 1, at most 3).
pub(crate) fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| {
            (
                if k.to_lowercase() == lower {
                    0
                } else {
                    distance(&lower, &k.to_lowercase())
                },
                k,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("effect", "efect"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_picks_typos_only() {
        let keys = ["action", "effect", "mode"];
        assert_eq!(closest("efect", keys), Some("effect"));
        assert_eq!(closest("MODE", keys), Some("mode"));
        assert_eq!(closest("banana", keys), None);
        assert_eq!(closest("SIGTREM", ["SIGTERM", "SIGSTOP"]), Some("SIGTERM"));
    }
}
