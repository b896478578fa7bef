//! Randomized robustness tests for the reader, with no extra crates.
//!
//! A small deterministic PRNG (xorshift64*) with fixed seeds generates inputs
//! from Lisp-significant characters and fragments, and mutates two small conf
//! texts. Whatever the input, `read_all` must return, its error must render,
//! and every span (of the error, or of every form and sub-form) must be a
//! valid, correctly located slice of the text. Inputs the fuzzer (`fuzz/`)
//! found are kept in `REGRESSIONS`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;
use crate::source::Source;

/// xorshift64*: tiny, deterministic, good enough to pick characters.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // The state must never be zero.
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: [u64; 4] = [0x9e37_79b9_7f4a_7c15, 1, 0xdead_beef, 42];
const INPUTS_PER_SEED: usize = 5_000;
const MAX_CHARS: usize = 300;

/// Weighted alphabet: each entry is a set of alternatives and its weight.
const ALPHABET: &[(&[&str], usize)] = &[
    (&["("], 12),
    (&[")"], 12),
    (&[" "], 12),
    (&["\""], 4),
    (&["#"], 6),
    (&["|"], 3),
    (&["\\"], 3),
    (&[";"], 2),
    (&[":"], 4),
    (&["'", "`", ",", ",@", ",."], 4),
    (&["."], 4),
    (&["+", "-", "/"], 4),
    (&["0", "1", "2", "7", "8", "9"], 8),
    (
        &[
            "a", "b", "d", "e", "f", "l", "s", "x", "o", "r", "p", "A", "E", "D", "Z",
        ],
        8,
    ),
    (&["\n"], 3),
    (&["\r", "\r\n", "\t", "\x0c", "\x0b"], 2),
    (&["п", "ж", "Я", "ё", "Ё"], 3),
    (&["€", "😀", "é", "\u{301}", "ß", "ǅ", "ﬀ", "\u{feff}"], 2),
    (&["\x08", "\x7f", "\0", "\x1b"], 1),
    (
        &[
            "#+sbcl",
            "#-sbcl",
            "#+(or)",
            "#+(and)",
            "#-(and sbcl linux)",
            "#+(not sbcl)",
            "#+:unix",
            "#+(or) ",
            "#|",
            "|#",
            "#\\",
            "#P\"",
            "#p",
            "#x",
            "#o",
            "#b",
            "#36r",
            "#1r",
            "#*",
            "#:",
            "#'",
            "#.",
            "#(",
            "#C(",
            "#1=",
            "#1#",
            "#\\Space",
            "#\\U+41",
            "#\\u0",
            "1/2",
            "1/0",
            "1.5d0",
            "1e999",
            ".5",
            "1.",
            ":pid-file",
            "nil",
            "cl:nil",
            "a::b",
            "a:b:c",
            "keyword:x",
            "...",
            " . ",
        ],
        6,
    ),
];

/// Two small confs in the style of the original library's, to mutate.
const CONFS: [&str; 2] = [
    r#";;; daemon.conf -- пример
(:main-function #.(lambda () (load "/srv/start.lisp"))
 :pid-file "my-daemon" ; comment
 :exit t
 :name nil
 #+sbcl :user #+sbcl "lispuser"
 #-(or sbcl ccl) :group "none"
 :os-params (:linux-umask #o037 :ratio 1/2 :float 1.5d0)
 #| block #| nested |# comment |#
 :before-parent-exit-fn #'cl-user::stop
 :path #P"/tmp/x" :chars (#\a #\Space #\Я) :vec #(1 2 . 3) :bits #*0101
 :sym |Mixed Case| :esc a\bc :un #:foo)
"#,
    "(:pid-file \"default-pid\"\r\n :pid-file-dir \"pid-files\"\r\n\t:exit t\r\n :os-params (:linux-umask 0) :name \"демон\")\r\n",
];

/// Inputs the fuzzer or these tests once found to misbehave, plus edge cases.
const REGRESSIONS: &[&str] = &[
    "",
    "#",
    "#\\",
    "\\",
    "|",
    "#|",
    "#||",
    "#|#",
    "|#",
    "#+",
    "#+sbcl",
    "#-sbcl",
    "#+(",
    "#+()",
    "#+(and . sbcl) x",
    "#+(not) x",
    "#+\"s\" x",
    "#1r",
    "#0r0",
    "#36r",
    "#99999999999999999999999r1",
    "#x",
    "#x-",
    "#x1/0",
    "#b2",
    "#P",
    "#P1",
    "#P)",
    "#*2",
    "#*",
    "#:a:b",
    "#:",
    "(.",
    "( . a)",
    "(a .)",
    "(a . b c)",
    "(a . .)",
    "..",
    ".",
    ")",
    "#(a . b)",
    "#\\U+D800",
    "#\\U+FFFFFFFFFFFFFFFFFFFF",
    "#\\u",
    "#\\Я",
    "#\\ЯЯ",
    "\"\\",
    "a\\",
    "a|b",
    ":",
    "::",
    ":::a",
    "a:",
    "1/0",
    "-0/00",
    "1e999",
    "1d309",
    "1e99999999999999999999999",
    "-.e1",
    "1.5e+",
    "99999999999999999999999999999999999999999999/3",
    "\r",
    "\r\n)",
    "\n\n\t# ",
    "#\u{3000}",
    "#😀",
    "#5😀",
    "\u{8}",
    "#+(or) \u{8}",
    "'",
    "#'",
    "#.",
    ",@",
    "`(,a ,@b ,.c)",
];

fn features() -> Features {
    Features::sbcl_linux_x86_64()
}

fn random_input(rng: &mut Rng) -> String {
    let total: usize = ALPHABET.iter().map(|(_, w)| w).sum();
    let target = rng.below(MAX_CHARS + 1);
    let mut text = String::new();
    let mut chars = 0;
    while chars < target {
        let mut pick = rng.below(total);
        let (alternatives, _) = ALPHABET
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                if !hit {
                    pick -= w;
                }
                hit
            })
            .expect("pick < total");
        let piece = alternatives[rng.below(alternatives.len())];
        text.push_str(piece);
        chars += piece.chars().count();
    }
    text
}

/// Appends a random, mostly well-formed form: these get past the first
/// token, so spans of nested, commented and conditional forms are checked.
fn random_form(rng: &mut Rng, depth: usize, out: &mut String) {
    const ATOMS: &[&str] = &[
        "foo",
        "Foo-Bar",
        ":pid-file",
        "::k",
        "cl:nil",
        "asdf:load-system",
        "a::b",
        "nil",
        "t",
        "42",
        "-7",
        "+7.",
        "1/2",
        "-3/4",
        "1.5d0",
        ".5",
        "1e10",
        "#o037",
        "#x-1F",
        "#b101",
        "#36rZZ",
        "#\\a",
        "#\\Space",
        "#\\Я",
        "#\\)",
        "\"str\"",
        "\"a\\\"b\"",
        "\"привет\"",
        "#P\"/tmp/x\"",
        "#:foo",
        "#*0101",
        "|Mixed Case|",
        "a\\bc",
        "ё-ж",
        "18446744073709551616",
        "1+",
    ];
    const SPACES: &[&str] = &[
        " ",
        " ",
        "\n",
        "\t",
        "\r\n",
        " ; note\n",
        " #| c #| n |# |# ",
    ];
    const PREFIXES: &[&str] = &[
        "'",
        "`",
        ",",
        ",@",
        "#'",
        "#.",
        "#+sbcl ",
        "#-sbcl ",
        "#+(or) ",
        "#+(and sbcl (not ccl)) ",
        "#-(or linux) ",
    ];
    let space = |rng: &mut Rng| SPACES[rng.below(SPACES.len())];
    match if depth == 0 { 0 } else { rng.below(6) } {
        0..=2 => out.push_str(ATOMS[rng.below(ATOMS.len())]),
        3 => {
            out.push_str(PREFIXES[rng.below(PREFIXES.len())]);
            random_form(rng, depth - 1, out);
        }
        kind => {
            out.push_str(if kind == 4 { "#(" } else { "(" });
            for i in 0..rng.below(5) {
                if i > 0 {
                    out.push_str(space(rng));
                }
                random_form(rng, depth - 1, out);
            }
            if kind == 5 && rng.below(4) == 0 {
                out.push_str(" a . ");
                random_form(rng, depth - 1, out);
            }
            out.push(')');
        }
    }
}

fn structured_input(rng: &mut Rng) -> String {
    let mut text = String::new();
    for _ in 0..1 + rng.below(3) {
        let depth = 1 + rng.below(5);
        random_form(rng, depth, &mut text);
        text.push_str(["\n", " ", "\r\n", ";; end\n"][rng.below(4)]);
    }
    // Most inputs stay well-formed; some get one edit.
    if rng.below(3) == 0 {
        text = mutate(rng, &text);
    }
    text
}

/// The char boundaries of `text`, including its end.
fn boundaries(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect()
}

/// A random edit of `text` at char boundaries: delete, duplicate or move a
/// range, or insert a piece of the alphabet.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let b = boundaries(text);
    let mut i = b[rng.below(b.len())];
    let mut j = b[rng.below(b.len())];
    if i > j {
        std::mem::swap(&mut i, &mut j);
    }
    match rng.below(4) {
        0 => format!("{}{}", &text[..i], &text[j..]),
        1 => format!("{}{}", &text[..j], &text[i..]),
        2 => format!("{}{}{}", &text[..i], &text[j..], &text[i..j]),
        _ => {
            let piece = random_input(&mut Rng::new(rng.next()));
            let piece: String = piece.chars().take(12).collect();
            format!("{}{piece}{}", &text[..i], &text[i..])
        }
    }
}

/// Line and column (1-based, columns in chars) at every byte offset that is
/// a char boundary; `None` inside a character.
fn positions(text: &str) -> Vec<Option<(usize, usize)>> {
    let mut table = vec![None; text.len() + 1];
    let (mut line, mut column) = (1, 1);
    for (i, c) in text.char_indices() {
        table[i] = Some((line, column));
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    table[text.len()] = Some((line, column));
    table
}

/// A span must be a slice of the text whose start is correctly located.
fn check_span(text: &str, table: &[Option<(usize, usize)>], span: Span, what: &str) {
    let (start, end) = (span.start, span.end);
    assert!(start.offset <= end.offset, "{what}: {span:?} in {text:?}");
    assert!(
        text.is_char_boundary(start.offset) && text.is_char_boundary(end.offset),
        "{what}: {span:?} not on char boundaries of {text:?}"
    );
    assert_eq!(
        table[start.offset],
        Some((start.line, start.column)),
        "{what}: wrong line/column at {span:?} in {text:?}"
    );
    let _ = span.text(text);
}

fn check_form(
    text: &str,
    table: &[Option<(usize, usize)>],
    source: &Source,
    form: &Form,
    parent: Span,
) {
    check_span(text, table, form.span, "form");
    assert!(
        parent.start.offset <= form.span.start.offset && form.span.end.offset <= parent.end.offset,
        "sub-form {:?} outside {parent:?} in {text:?}",
        form.span
    );
    let _ = form.text(text);
    let _ = source.render(form.span, form.describe());
    let children: Vec<&Form> = match &form.datum {
        Datum::List { items, tail } => items.iter().chain(tail.as_deref()).collect(),
        Datum::Vector(items) => items.iter().collect(),
        Datum::Macro(_, inner) => vec![inner],
        _ => Vec::new(),
    };
    for child in children {
        check_form(text, table, source, child, form.span);
    }
}

/// Reads `text` and checks everything that must hold whatever the input.
fn check(text: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let table = positions(text);
        let source = Source::new("random.conf", text);
        // Only offsets matter for the containment check of top-level forms.
        let end = Position {
            offset: text.len(),
            ..Position::START
        };
        let whole = Span::new(Position::START, end);
        match read_all(text, &features()) {
            Ok(forms) => {
                let mut previous = 0;
                for form in &forms {
                    assert!(previous <= form.span.start.offset, "forms out of order");
                    previous = form.span.end.offset;
                    check_form(text, &table, &source, form, whole);
                    let _ = form.to_value();
                }
            }
            Err(err) => {
                check_span(text, &table, err.span, "error");
                let message = err.to_string();
                let rendered = source.render(err.span, &message);
                let head = format!(
                    "random.conf:{}:{}: {message}",
                    err.span.start.line, err.span.start.column
                );
                assert!(rendered.starts_with(&head), "{rendered:?}");
            }
        }
    }));
    if outcome.is_err() {
        panic!("the reader or the renderer failed on {text:?}");
    }
}

#[test]
fn random_inputs_never_break_the_reader() {
    for seed in SEEDS {
        let mut rng = Rng::new(seed);
        for _ in 0..INPUTS_PER_SEED {
            check(&random_input(&mut rng));
        }
    }
}

#[test]
fn structured_random_forms_never_break_the_reader() {
    for seed in SEEDS {
        let mut rng = Rng::new(seed ^ 0x5eed);
        for _ in 0..2_000 {
            check(&structured_input(&mut rng));
        }
    }
}

#[test]
fn every_truncation_and_suffix_of_a_conf_is_handled() {
    for conf in CONFS {
        check(conf);
        for i in boundaries(conf) {
            check(&conf[..i]);
            check(&conf[i..]);
        }
    }
}

#[test]
fn mutated_confs_never_break_the_reader() {
    let mut rng = Rng::new(SEEDS[0]);
    for conf in CONFS {
        for _ in 0..2_000 {
            let mut text = mutate(&mut rng, conf);
            for _ in 0..rng.below(3) {
                text = mutate(&mut rng, &text);
            }
            check(&text);
        }
    }
}

#[test]
fn regressions_never_break_the_reader() {
    for text in REGRESSIONS {
        check(text);
    }
}

fn expect_too_deep(text: &str, what: &str) {
    match read_all(text, &features()) {
        Err(ReadError {
            kind: ReadErrorKind::TooDeep(limit),
            span,
        }) => {
            assert_eq!(limit, NEST_LIMIT, "{what}");
            assert!(span.end.offset <= text.len(), "{what}");
            let _ = Source::new("deep.conf", text).render(span, "too deep");
        }
        other => panic!("{what}: expected TooDeep, got {other:?}"),
    }
}

#[test]
fn ten_thousand_open_parens_are_too_deep_not_a_stack_overflow() {
    expect_too_deep(&"(".repeat(10_000), "10,000 \"(\"");
    expect_too_deep(&"#(".repeat(10_000), "10,000 \"#(\"");
    expect_too_deep(
        &format!("#+{}", "(or ".repeat(10_000)),
        "a deep feature expression",
    );
}

#[test]
fn a_hundred_thousand_prefixes_are_too_deep_not_a_stack_overflow() {
    let prefixes = [
        "#+sbcl ",
        "#-sbcl ",
        "#+(or) ",
        "#-(or) ",
        "'",
        "`",
        ",",
        ",@",
        "#'",
        "#.",
        "#P",
        "#C",
        "#+",
        "(#+sbcl '",
    ];
    for prefix in prefixes {
        expect_too_deep(
            &format!("{}x", prefix.repeat(100_000)),
            &format!("100,000 {prefix:?}"),
        );
    }
}

#[test]
fn nesting_up_to_the_limit_reads_on_a_test_thread_stack() {
    // Each case nests `NEST_LIMIT` levels of one construct: the deepest the
    // reader goes, on a test thread's (smaller) stack, in a debug build.
    let cases = [
        ("(", "x", ")"),
        ("#(", "x", ")"),
        ("'", "x", ""),
        ("#+sbcl ", "x", ""),
        ("#-sbcl ", "x", ""),
        ("#+:nope ", "x", ""),
        ("#P", "\"p\"", ""),
        ("#'", "x", ""),
        ("(a . ", "b", ")"),
    ];
    for (open, inner, close) in cases {
        let text = format!(
            "{}{inner}{}",
            open.repeat(NEST_LIMIT),
            close.repeat(NEST_LIMIT)
        );
        match read_all(&text, &features()) {
            Ok(forms) => forms.iter().for_each(|f| drop(f.to_value())),
            Err(e) => assert!(
                !matches!(e.kind, ReadErrorKind::TooDeep(_)),
                "{open:?} x {NEST_LIMIT}: {e}"
            ),
        }
        check(&text);
    }
}
