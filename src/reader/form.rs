//! Forms: the reader's output, a datum plus the span it was read from.
//!
//! The located tree keeps every sub-form's span (the config layer points its
//! errors at the offending value), and converts to a `lexpr::Value` on demand.
//! Read-time evaluation, `#'` and pathnames are kept as recognisable markers;
//! nothing here is ever evaluated.

use lexpr::Value;

use super::span::Span;

/// One form read from the source, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Form {
    pub datum: Datum,
    pub span: Span,
}

/// What a form is, with located sub-forms.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    /// `nil` and `()`.
    Nil,
    /// A symbol other than `nil`; the name is case-folded as CL does
    /// (`foo` → `FOO`); package-qualified names keep their marker
    /// (`ASDF:LOAD-SYSTEM`), uninterned ones are prefixed `#:`.
    Symbol(String),
    /// A keyword, by its case-folded name without the colon (`:pid-file` → `PID-FILE`).
    Keyword(String),
    String(String),
    Char(char),
    Number(Number),
    /// A proper or dotted list.
    List {
        items: Vec<Form>,
        tail: Option<Box<Form>>,
    },
    /// `#(...)` and `#*0101`.
    Vector(Vec<Form>),
    /// A reader macro applied to one form: `'x`, `#'x`, `#.x`, `#P"..."`, ...
    Macro(Macro, Box<Form>),
}

/// Numbers as the Lisp reads them. Integers that do not fit 64 bits and
/// ratios keep their exact text in the source; their `f64` here is an
/// approximation used only by `to_value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Integer(i64),
    Unsigned(u64),
    /// An integer beyond 64 bits, approximated.
    BigInteger(f64),
    /// A ratio such as `1/3`, approximated.
    Ratio(f64),
    Float(f64),
}

/// The reader macros whose form is kept wrapped rather than expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Macro {
    /// `'x` → `(QUOTE x)`
    Quote,
    /// `` `x `` → `(QUASIQUOTE x)`
    Quasiquote,
    /// `,x` → `(UNQUOTE x)`
    Unquote,
    /// `,@x` → `(UNQUOTE-SPLICING x)`
    UnquoteSplicing,
    /// `#'x` → `(FUNCTION x)`
    Function,
    /// `#.x` → `(#. x)`: read-time evaluation, left for the Lisp to do.
    ReadEval,
    /// `#P"x"` → `(#P "x")`
    Pathname,
    /// `#C(a b)` → `(#C (a b))`
    Complex,
}

impl Macro {
    /// The head symbol of the list this macro stands for in a `lexpr::Value`.
    pub fn head(self) -> &'static str {
        match self {
            Macro::Quote => "QUOTE",
            Macro::Quasiquote => "QUASIQUOTE",
            Macro::Unquote => "UNQUOTE",
            Macro::UnquoteSplicing => "UNQUOTE-SPLICING",
            Macro::Function => "FUNCTION",
            Macro::ReadEval => "#.",
            Macro::Pathname => "#P",
            Macro::Complex => "#C",
        }
    }
}

impl Form {
    /// The source text of this form, exactly as written.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        self.span.text(source)
    }

    /// This form as a `lexpr` datum.
    pub fn to_value(&self) -> Value {
        match &self.datum {
            Datum::Nil => Value::Nil,
            Datum::Symbol(name) => Value::symbol(name.as_str()),
            Datum::Keyword(name) => Value::keyword(name.as_str()),
            Datum::String(s) => Value::string(s.as_str()),
            Datum::Char(c) => Value::Char(*c),
            Datum::Number(n) => match *n {
                Number::Integer(i) => Value::from(i),
                Number::Unsigned(u) => Value::from(u),
                Number::BigInteger(f) | Number::Ratio(f) | Number::Float(f) => Value::from(f),
            },
            Datum::List { items, tail } => {
                let items = items.iter().map(Form::to_value);
                match tail {
                    None => Value::list(items),
                    Some(tail) => Value::append(items, tail.to_value()),
                }
            }
            Datum::Vector(items) => Value::vector(items.iter().map(Form::to_value)),
            Datum::Macro(m, form) => Value::list(vec![Value::symbol(m.head()), form.to_value()]),
        }
    }

    /// A short description of what kind of form this is, for messages.
    pub fn describe(&self) -> &'static str {
        match &self.datum {
            Datum::Nil => "nil",
            Datum::Symbol(_) => "a symbol",
            Datum::Keyword(_) => "a keyword",
            Datum::String(_) => "a string",
            Datum::Char(_) => "a character",
            Datum::Number(_) => "a number",
            Datum::List { .. } => "a list",
            Datum::Vector(_) => "a vector",
            Datum::Macro(Macro::ReadEval, _) => "a read-time evaluation",
            Datum::Macro(Macro::Function, _) => "a function form",
            Datum::Macro(Macro::Pathname, _) => "a pathname",
            Datum::Macro(_, _) => "a quoted form",
        }
    }
}
