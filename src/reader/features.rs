//! Feature lists for `#+` / `#-`.
//!
//! A conf is read as the Lisp that will run the daemon would read it, so
//! `#+sbcl` is decided against that Lisp's `*features*`, passed in as data.

use super::error::ReadErrorKind;
use super::form::{Datum, Form};

/// The `*features*` of one Lisp, as upper-case keyword names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    names: Vec<String>,
}

impl Features {
    /// A feature list from keyword names, in any case, with or without the colon.
    pub fn new<I, S>(names: I) -> Features
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = names
            .into_iter()
            .map(|n| n.as_ref().trim_start_matches(':').to_uppercase())
            .collect();
        Features { names }
    }

    /// The features of SBCL 2.x on Linux x86-64 (Debian's build).
    pub fn sbcl_linux_x86_64() -> Features {
        Features::new([
            "X86-64",
            "GENCGC",
            "64-BIT",
            "ANSI-CL",
            "COMMON-LISP",
            "ELF",
            "IEEE-FLOATING-POINT",
            "LINUX",
            "LITTLE-ENDIAN",
            "PACKAGE-LOCAL-NICKNAMES",
            "SB-CORE-COMPRESSION",
            "SB-LDB",
            "SB-PACKAGE-LOCKS",
            "SB-THREAD",
            "SB-UNICODE",
            "SBCL",
            "UNIX",
        ])
    }

    pub fn contains(&self, keyword: &str) -> bool {
        self.names.iter().any(|n| n == keyword)
    }

    /// Decides a feature expression (read with `*package*` = KEYWORD):
    /// a keyword, or `(and ...)`, `(or ...)`, `(not x)`.
    pub fn eval(&self, expr: &Form) -> Result<bool, ReadErrorKind> {
        match &expr.datum {
            Datum::Keyword(name) => Ok(self.contains(name)),
            // `()` and symbols of another package (`cl-user::foo`) are never features.
            Datum::Nil | Datum::Symbol(_) => Ok(false),
            Datum::List { items, tail: None } => {
                let Some((op, args)) = items.split_first() else {
                    return Err(ReadErrorKind::BadFeatureExpression);
                };
                match &op.datum {
                    Datum::Keyword(op) if op == "AND" => {
                        for arg in args {
                            if !self.eval(arg)? {
                                return Ok(false);
                            }
                        }
                        Ok(true)
                    }
                    Datum::Keyword(op) if op == "OR" => {
                        for arg in args {
                            if self.eval(arg)? {
                                return Ok(true);
                            }
                        }
                        Ok(false)
                    }
                    Datum::Keyword(op) if op == "NOT" && args.len() == 1 => {
                        Ok(!self.eval(&args[0])?)
                    }
                    _ => Err(ReadErrorKind::BadFeatureExpression),
                }
            }
            _ => Err(ReadErrorKind::BadFeatureExpression),
        }
    }
}
