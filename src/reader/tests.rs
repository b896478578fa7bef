//! Table-driven reader tests: inputs → values, and inputs → exact errors.

use lexpr::Value;

use super::*;
use crate::source::Source;

fn read_one(text: &str) -> Form {
    let forms =
        read_all(text, &Features::sbcl_linux_x86_64()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(forms.len(), 1, "{text:?} read as {forms:?}");
    forms.into_iter().next().unwrap()
}

fn sym(name: &str) -> Value {
    Value::symbol(name)
}

#[test]
fn reads_atoms_and_lists_as_sbcl_does() {
    let cases: Vec<(&str, Value)> = vec![
        ("foo", sym("FOO")),
        ("Foo-Bar", sym("FOO-BAR")),
        ("|Foo bar|", sym("Foo bar")),
        ("a\\bc", sym("AbC")),
        ("asdf:load-system", sym("ASDF:LOAD-SYSTEM")),
        ("sb-posix::getpid", sym("SB-POSIX::GETPID")),
        (":pid-file", Value::keyword("PID-FILE")),
        ("keyword:x", Value::keyword("X")),
        ("#:uninterned", sym("#:UNINTERNED")),
        ("nil", Value::Nil),
        ("cl:nil", Value::Nil),
        ("()", Value::Nil),
        ("( ; comment\n )", Value::Nil),
        ("t", sym("T")),
        ("42", Value::from(42i64)),
        ("-7", Value::from(-7i64)),
        ("+7.", Value::from(7i64)),
        ("18446744073709551615", Value::from(u64::MAX)),
        ("#o037", Value::from(31i64)),
        ("#O37", Value::from(31i64)),
        ("#x-1F", Value::from(-31i64)),
        ("#b101", Value::from(5i64)),
        ("#36rZZ", Value::from(1295i64)),
        ("1/2", Value::from(0.5)),
        ("1.5", Value::from(1.5)),
        ("1.5d0", Value::from(1.5)),
        ("-2e3", Value::from(-2000.0)),
        (".5", Value::from(0.5)),
        ("1+", sym("1+")),
        ("+", sym("+")),
        ("1.5e", sym("1.5E")),
        ("\"a\\\"b\\\\c\"", Value::string("a\"b\\c")),
        ("\"привет\"", Value::string("привет")),
        ("#\\a", Value::Char('a')),
        ("#\\A", Value::Char('A')),
        ("#\\Space", Value::Char(' ')),
        ("#\\newline", Value::Char('\n')),
        ("#\\)", Value::Char(')')),
        ("#\\;", Value::Char(';')),
        ("#\\я", Value::Char('я')),
        ("#\\U+41", Value::Char('A')),
        ("(a . b)", Value::cons(sym("A"), sym("B"))),
        (
            "(a b . c)",
            Value::append(vec![sym("A"), sym("B")], sym("C")),
        ),
        ("'x", Value::list(vec![sym("QUOTE"), sym("X")])),
        (
            "`(a ,b ,@c)",
            Value::list(vec![
                sym("QUASIQUOTE"),
                Value::list(vec![
                    sym("A"),
                    Value::list(vec![sym("UNQUOTE"), sym("B")]),
                    Value::list(vec![sym("UNQUOTE-SPLICING"), sym("C")]),
                ]),
            ]),
        ),
        ("#'car", Value::list(vec![sym("FUNCTION"), sym("CAR")])),
        (
            "#.(+ 1 2)",
            Value::list(vec![
                sym("#."),
                Value::list(vec![sym("+"), Value::from(1i64), Value::from(2i64)]),
            ]),
        ),
        (
            "#P\"/tmp/x\"",
            Value::list(vec![sym("#P"), Value::string("/tmp/x")]),
        ),
        (
            "#(1 2)",
            Value::vector(vec![Value::from(1i64), Value::from(2i64)]),
        ),
        (
            "#*101",
            Value::vector(vec![
                Value::from(1i64),
                Value::from(0i64),
                Value::from(1i64),
            ]),
        ),
        (
            "(a #| x #| nested |# y |# b)",
            Value::list(vec![sym("A"), sym("B")]),
        ),
        ("(#+sbcl a #-sbcl b)", Value::list(vec![sym("A")])),
        (
            "(#+(or ecl clisp) a #+(and sbcl linux (not windows)) b)",
            Value::list(vec![sym("B")]),
        ),
        (
            "(#+(or) (foo:bar:baz #\\nonsense 1/0) c)",
            Value::list(vec![sym("C")]),
        ),
        ("(#-sbcl #-sbcl a b c)", Value::list(vec![sym("C")])),
        (
            "(a\r\nb\x0cc\td)",
            Value::list(vec![sym("A"), sym("B"), sym("C"), sym("D")]),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(read_one(text).to_value(), expected, "{text:?}");
    }
}

#[test]
fn spans_cover_the_exact_source_text() {
    let text = "(:main-function #.(lambda () \"a;b\" #\\) #|c|# 1)\n :user \"x\") ; end";
    let form = read_one(text);
    let Datum::List { items, .. } = &form.datum else {
        panic!("not a list")
    };
    assert_eq!(items[1].text(text), "#.(lambda () \"a;b\" #\\) #|c|# 1)");
    assert_eq!(items[3].text(text), "\"x\"");
    assert_eq!(
        items[3].span.start,
        Position {
            offset: 55,
            line: 2,
            column: 8
        }
    );
    assert_eq!(form.text(text), &text[..text.len() - 6]);
    // A form kept by #+ spans the form only, not the conditional.
    let form = read_one("#+sbcl \"a\"");
    assert_eq!(form.text("#+sbcl \"a\""), "\"a\"");
}

#[test]
fn features_are_a_parameter() {
    let ecl = Features::new([":ecl", "unix"]);
    let forms = read_all("(#+sbcl a #+ecl b #+unix c)", &ecl).unwrap();
    assert_eq!(forms[0].to_value(), Value::list(vec![sym("B"), sym("C")]));
}

/// Each row: input, then the whole rendered error for a file named `c.conf`.
#[test]
fn errors_render_exactly() {
    let cases: &[(&str, &str)] = &[
        (
            "(:user \"x\"",
            "c.conf:1:1: expected \")\" to close the list opened at 1:1 but found end of file\n  |\n1 | (:user \"x\"\n  | ^",
        ),
        (
            "(:a\n \"unterminated)",
            "c.conf:2:2: expected \"\\\"\" to close the string opened at 2:2 but found end of file\n  |\n2 |  \"unterminated)\n  |  ^",
        ),
        (
            "(:a 'b ')",
            "c.conf:1:9: expected a form after \"'\" but found \")\"\n  |\n1 | (:a 'b ')\n  |         ^",
        ),
        (
            "(:a #'",
            "c.conf:1:7: expected a form after \"#'\" but found end of file\n  |\n1 | (:a #'\n  |       ^",
        ),
        (
            "(:a 1) )",
            "c.conf:1:8: expected a form but found \")\"\n  |\n1 | (:a 1) )\n  |        ^",
        ),
        (
            "(:a #z)",
            "c.conf:1:5: unknown reader macro \"#z\"\n  |\n1 | (:a #z)\n  |     ^^",
        ),
        (
            "(:a #\\Spacy)",
            "c.conf:1:7: unknown character name \"Spacy\"\n  |\n1 | (:a #\\Spacy)\n  |       ^^^^^",
        ),
        (
            "(:a #x1G)",
            "c.conf:1:5: expected a rational number in base 16 but found \"1G\"\n  |\n1 | (:a #x1G)\n  |     ^^^^",
        ),
        (
            "(:a 1/0)",
            "c.conf:1:5: division by zero in the ratio \"1/0\"\n  |\n1 | (:a 1/0)\n  |     ^^^",
        ),
        (
            "(:a a:b:c)",
            "c.conf:1:5: bad package marker in symbol \"a:b:c\"\n  |\n1 | (:a a:b:c)\n  |     ^^^^^",
        ),
        (
            "(:a . b c)",
            "c.conf:1:9: expected a form before \".\" and exactly one form after it\n  |\n1 | (:a . b c)\n  |         ^",
        ),
        (
            "(:a ..)",
            "c.conf:1:5: a token made only of dots is not allowed\n  |\n1 | (:a ..)\n  |     ^^",
        ),
        (
            "(:a #+sbcl)",
            "c.conf:1:11: expected a form after \"#+\" but found \")\"\n  |\n1 | (:a #+sbcl)\n  |           ^",
        ),
        (
            "(:a #+(xor a) 1)",
            "c.conf:1:7: expected a feature expression (a keyword, or a list starting with and, or, not)\n  |\n1 | (:a #+(xor a) 1)\n  |       ^^^^^^^",
        ),
        (
            "(:a #| never closed",
            "c.conf:1:5: expected \"|#\" to close the comment opened at 1:5 but found end of file\n  |\n1 | (:a #| never closed\n  |     ^",
        ),
        (
            "(:a |abc",
            "c.conf:1:5: expected \"|\" to close the escaped symbol name opened at 1:5 but found end of file\n  |\n1 | (:a |abc\n  |     ^",
        ),
        (
            "(:a #1=(x))",
            "c.conf:1:5: the reader macro \"#=\" is not supported in conf files\n  |\n1 | (:a #1=(x))\n  |     ^^^",
        ),
        (
            "(:a #P 12)",
            "c.conf:1:5: expected a string after \"#P\"\n  |\n1 | (:a #P 12)\n  |     ^^^^^",
        ),
        (
            "(:a 1e999)",
            "c.conf:1:5: the float \"1e999\" is out of range\n  |\n1 | (:a 1e999)\n  |     ^^^^^",
        ),
        (
            "\t(:имя\t1/0)",
            "c.conf:1:8: division by zero in the ratio \"1/0\"\n  |\n1 | \t(:имя\t1/0)\n  | \t     \t^^^",
        ),
    ];
    for (text, expected) in cases {
        let err = read_all(text, &Features::sbcl_linux_x86_64()).expect_err(text);
        let rendered = Source::new("c.conf", *text).render(err.span, &err.to_string());
        assert_eq!(&rendered, expected, "{text:?}");
    }
}

#[test]
fn nesting_is_limited() {
    let deep = "(".repeat(NEST_LIMIT + 1);
    let err = read_all(&deep, &Features::sbcl_linux_x86_64()).unwrap_err();
    assert_eq!(err.kind, ReadErrorKind::TooDeep(NEST_LIMIT));
    let ok = format!("{}{}", "(".repeat(NEST_LIMIT), ")".repeat(NEST_LIMIT));
    assert!(read_all(&ok, &Features::sbcl_linux_x86_64()).is_ok());
}
