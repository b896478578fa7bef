//! "Did you mean ...?": the nearest of some names to a mistyped one.

/// The candidate nearest to `word` (case ignored) when it is near enough
/// to be a typo: at most one edit for short words, two for longer ones, or
/// a prefix of at least three letters.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= limit || (word.len() >= 3 && c.to_lowercase().starts_with(&word)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn typos_find_their_word_and_nothing_else_does() {
        let commands = ["start", "stop", "status", "restart", "zap", "kill"];
        assert_eq!(nearest("stauts", commands), Some("status"));
        assert_eq!(nearest("strat", commands), Some("start"));
        assert_eq!(nearest("STOP", commands), Some("stop"));
        assert_eq!(nearest("resta", commands), Some("restart"));
        assert_eq!(nearest("launch", commands), None);
        assert_eq!(nearest("x", commands), None);
        let keys = ["pid-file", "main-function", "pid-file-dir"];
        assert_eq!(nearest("pid-fil", keys), Some("pid-file"));
        assert_eq!(nearest("main-fuction", keys), Some("main-function"));
    }
}
