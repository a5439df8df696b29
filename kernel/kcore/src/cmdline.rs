//! The kernel command line.
//!
//! A command line is a sequence of words separated by ASCII whitespace. Each
//! word is either a bare `key` or `key=value`; the value is everything after
//! the first `=` and may itself contain `=`. There is no quoting. When a key
//! appears more than once, the last occurrence wins.
//!
//! ```
//! use kcore::cmdline::Cmdline;
//!
//! let cmd = Cmdline::new("console=serial loglevel=3 quiet loglevel=7");
//! assert_eq!(cmd.get("loglevel"), Some("7"));
//! assert_eq!(cmd.get("quiet"), Some(""));
//! assert!(cmd.has("console"));
//! assert_eq!(cmd.get("missing"), None);
//! ```

use core::str::SplitAsciiWhitespace;

/// A parsed view of a command line. Parsing is lazy and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Cmdline<'a> {
    raw: &'a str,
}

/// One word of a command line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Arg<'a> {
    pub key: &'a str,
    /// `None` for a bare `key`, `Some("")` for `key=`.
    pub value: Option<&'a str>,
}

impl<'a> Arg<'a> {
    fn parse(word: &'a str) -> Self {
        match word.split_once('=') {
            Some((key, value)) => Self { key, value: Some(value) },
            None => Self { key: word, value: None },
        }
    }
}

/// Iterator over the words of a [`Cmdline`], in order.
#[derive(Clone, Debug)]
pub struct Args<'a> {
    words: SplitAsciiWhitespace<'a>,
}

impl<'a> Iterator for Args<'a> {
    type Item = Arg<'a>;

    fn next(&mut self) -> Option<Arg<'a>> {
        self.words.next().map(Arg::parse)
    }
}

impl<'a> Cmdline<'a> {
    pub const fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    /// The command line as given.
    pub const fn as_str(&self) -> &'a str {
        self.raw
    }

    /// All words, in order, including repeated keys.
    pub fn iter(&self) -> Args<'a> {
        Args { words: self.raw.split_ascii_whitespace() }
    }

    /// The value of the last occurrence of `key`; `Some("")` for a bare key.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().filter(|arg| arg.key == key).last().map(|arg| arg.value.unwrap_or(""))
    }

    /// Whether `key` appears at all, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.iter().any(|arg| arg.key == key)
    }

    /// The value of `key` as an unsigned integer: decimal, or hexadecimal
    /// with a `0x` prefix. `None` if absent or not a number.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        let value = self.get(key)?;
        match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    }

    /// The value of `key` as a boolean switch. A bare key, `1`, `on`, `yes`
    /// and `true` mean `true`; `0`, `off`, `no` and `false` mean `false`
    /// (case-insensitive). `None` if absent or anything else.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        const TRUE: [&str; 5] = ["", "1", "on", "yes", "true"];
        const FALSE: [&str; 4] = ["0", "off", "no", "false"];
        if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
            Some(true)
        } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
            Some(false)
        } else {
            None
        }
    }
}

impl<'a> IntoIterator for &Cmdline<'a> {
    type Item = Arg<'a>;
    type IntoIter = Args<'a>;

    fn into_iter(self) -> Args<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for Cmdline<'a> {
    type Item = Arg<'a>;
    type IntoIter = Args<'a>;

    fn into_iter(self) -> Args<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        let c = Cmdline::new("  a=1\tb  c=  d=x=y\n\r e=\"q\" ");
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get("b"), Some(""));
        assert_eq!(c.get("c"), Some(""));
        assert_eq!(c.get("d"), Some("x=y"));
        assert_eq!(c.get("e"), Some("\"q\""));
        assert_eq!(c.get("f"), None);
        assert_eq!(c.get(""), None);
        assert_eq!(c.get("a=1"), None);
        assert!(c.has("b") && c.has("c") && !c.has("x"));
        assert_eq!(c.as_str(), "  a=1\tb  c=  d=x=y\n\r e=\"q\" ");
    }

    #[test]
    fn last_occurrence_wins() {
        let c = Cmdline::new("k=1 k k=3 other=4");
        assert_eq!(c.get("k"), Some("3"));
        let c = Cmdline::new("k=1 k");
        assert_eq!(c.get("k"), Some(""));
    }

    #[test]
    fn iteration_in_order() {
        let c = Cmdline::new("x y=1 z= =w x");
        let args: Vec<_> = c.iter().map(|a| (a.key, a.value)).collect();
        assert_eq!(args, [("x", None), ("y", Some("1")), ("z", Some("")), ("", Some("w")), ("x", None),]);
        assert_eq!((&c).into_iter().count(), 5);
        assert_eq!(c.into_iter().filter(|a| a.key == "x").count(), 2);
        assert_eq!(c.get(""), Some("w"));
    }

    #[test]
    fn empty_lines() {
        for raw in ["", "   ", "\t\n"] {
            let c = Cmdline::new(raw);
            assert_eq!(c.iter().count(), 0);
            assert_eq!(c.get("a"), None);
            assert!(!c.has(""));
        }
        assert_eq!(Cmdline::default().iter().count(), 0);
    }

    #[test]
    fn typed_values() {
        let c =
            Cmdline::new("n=42 h=0x1F H=0XfF bad=12a neg=-1 big=18446744073709551616 nohex=0x on off=OFF weird=maybe");
        assert_eq!(c.get_u64("n"), Some(42));
        assert_eq!(c.get_u64("h"), Some(0x1f));
        assert_eq!(c.get_u64("H"), Some(0xff));
        assert_eq!(c.get_u64("bad"), None);
        assert_eq!(c.get_u64("neg"), None);
        assert_eq!(c.get_u64("big"), None);
        assert_eq!(c.get_u64("nohex"), None);
        assert_eq!(c.get_u64("on"), None);
        assert_eq!(c.get_u64("missing"), None);
        assert_eq!(c.get_bool("on"), Some(true));
        assert_eq!(c.get_bool("off"), Some(false));
        assert_eq!(c.get_bool("n"), None);
        assert_eq!(c.get_bool("weird"), None);
        assert_eq!(c.get_bool("missing"), None);
    }

    #[test]
    fn non_ascii_is_kept_intact() {
        let c = Cmdline::new("名前=値 é\u{a0}x");
        assert_eq!(c.get("名前"), Some("値"));
        // Only ASCII whitespace separates words.
        assert_eq!(c.get("é\u{a0}x"), Some(""));
    }
}
