//! The reader proper: text → forms, following the standard readtable.
//!
//! Recursive descent with an explicit nesting limit, so no input can exhaust
//! the stack. `#+`/`#-` are decided here against the target Lisp's features;
//! a form they drop is read with `*read-suppress*` semantics, as SBCL does
//! (tokens are not interpreted, so `#+(or) foo:bar:baz` is fine).

use super::error::{Found, ReadError, ReadErrorKind, Unclosed};
use super::features::Features;
use super::form::{Datum, Form, Macro, Number};
use super::span::{Position, Span};
use super::token::{self, SymbolContext, TokenChar};

/// How deep lists, vectors and reader macros may nest.
pub const NEST_LIMIT: usize = 200;

/// Reads every form of `text`.
pub fn read_all(text: &str, features: &Features) -> Result<Vec<Form>, ReadError> {
    let mut reader = Reader {
        text,
        pos: Position::START,
        features,
        depth: 0,
        context: SymbolContext::Current,
    };
    let mut forms = Vec::new();
    loop {
        match reader.step(false)? {
            Step::Form(form) => forms.push(form),
            Step::Eof => return Ok(forms),
            Step::Close(at) => {
                return Err(reader.error_at(
                    at,
                    ReadErrorKind::ExpectedForm {
                        after: None,
                        found: Found::Char(')'),
                    },
                ));
            }
            Step::Dot(span) => {
                return Err(ReadError {
                    kind: ReadErrorKind::DotOutsideList,
                    span,
                });
            }
        }
    }
}

/// What the next thing in the text is, once whitespace and comments are gone.
enum Step {
    Form(Form),
    Close(Position),
    Dot(Span),
    Eof,
}

/// A token: its characters and whether any was escaped.
struct Token {
    chars: Vec<TokenChar>,
    span: Span,
}

impl Token {
    fn plain(&self) -> Option<String> {
        self.chars
            .iter()
            .all(|t| !t.escaped)
            .then(|| self.chars.iter().map(|t| t.c).collect())
    }
}

struct Reader<'a> {
    text: &'a str,
    pos: Position,
    features: &'a Features,
    depth: usize,
    context: SymbolContext,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b')
}

fn is_terminating(c: char) -> bool {
    matches!(c, '"' | '\'' | '(' | ')' | ',' | ';' | '`')
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos.offset..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos.offset += c.len_utf8();
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn starts_with(&self, s: &str) -> bool {
        self.text[self.pos.offset..].starts_with(s)
    }

    /// The span of the one character at `at`.
    fn char_span(&self, at: Position) -> Span {
        let len = self.text[at.offset..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        let end = Position {
            offset: at.offset + len,
            line: at.line,
            column: at.column + usize::from(len > 0),
        };
        Span::new(at, end)
    }

    fn error_at(&self, at: Position, kind: ReadErrorKind) -> ReadError {
        ReadError {
            kind,
            span: self.char_span(at),
        }
    }

    fn error_from(&self, start: Position, kind: ReadErrorKind) -> ReadError {
        ReadError {
            kind,
            span: Span::new(start, self.pos),
        }
    }

    fn enter(&mut self, at: Position) -> Result<(), ReadError> {
        self.depth += 1;
        if self.depth > NEST_LIMIT {
            return Err(self.error_at(at, ReadErrorKind::TooDeep(NEST_LIMIT)));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn form(&self, datum: Datum, start: Position) -> Form {
        Form {
            datum,
            span: Span::new(start, self.pos),
        }
    }

    fn step(&mut self, suppress: bool) -> Result<Step, ReadError> {
        loop {
            while self.peek().is_some_and(is_whitespace) {
                self.bump();
            }
            let start = self.pos;
            let Some(c) = self.peek() else {
                return Ok(Step::Eof);
            };
            // The recursive arms yield a `Result`, unwrapped once below: in a
            // debug build every `?` costs stack in this frame, which every
            // nesting level repeats (see `read_dispatch`).
            let form = match c {
                ')' => {
                    self.bump();
                    return Ok(Step::Close(start));
                }
                ';' => {
                    while self.bump().is_some_and(|c| c != '\n') {}
                    continue;
                }
                '(' => self.read_list(start, suppress),
                '\'' => self.read_prefixed(start, 1, Macro::Quote, "'", suppress),
                '`' => self.read_prefixed(start, 1, Macro::Quasiquote, "`", suppress),
                ',' if self.starts_with(",@") => {
                    self.read_prefixed(start, 2, Macro::UnquoteSplicing, ",@", suppress)
                }
                ',' if self.starts_with(",.") => {
                    self.read_prefixed(start, 2, Macro::UnquoteSplicing, ",.", suppress)
                }
                ',' => self.read_prefixed(start, 1, Macro::Unquote, ",", suppress),
                '"' => self.read_string(start),
                '#' => match self.read_dispatch(start, suppress) {
                    Ok(Some(form)) => Ok(form),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
                _ => {
                    let token = self.read_token(start, suppress)?;
                    if token.plain().as_deref() == Some(".") {
                        return Ok(Step::Dot(token.span));
                    }
                    self.token_form(token, suppress)
                }
            };
            return form.map(Step::Form);
        }
    }

    /// Reads the form a prefix (`'`, `#'`, `#+x`, ...) applies to.
    fn read_required(&mut self, after: &'static str, suppress: bool) -> Result<Form, ReadError> {
        let found = match self.step(suppress)? {
            Step::Form(form) => return Ok(form),
            Step::Close(at) => return Err(self.expected_form(at, after, Found::Char(')'))),
            Step::Dot(span) => {
                let kind = ReadErrorKind::ExpectedForm {
                    after: Some(after),
                    found: Found::Dot,
                };
                return Err(ReadError { kind, span });
            }
            Step::Eof => Found::EndOfFile,
        };
        Err(self.expected_form(self.pos, after, found))
    }

    fn expected_form(&self, at: Position, after: &'static str, found: Found) -> ReadError {
        let kind = ReadErrorKind::ExpectedForm {
            after: Some(after),
            found,
        };
        self.error_at(at, kind)
    }

    fn read_prefixed(
        &mut self,
        start: Position,
        prefix_len: usize,
        mac: Macro,
        name: &'static str,
        suppress: bool,
    ) -> Result<Form, ReadError> {
        for _ in 0..prefix_len {
            self.bump();
        }
        self.enter(start)?;
        let inner = self.read_required(name, suppress)?;
        self.leave();
        Ok(self.form(Datum::Macro(mac, Box::new(inner)), start))
    }

    fn read_list(&mut self, open: Position, suppress: bool) -> Result<Form, ReadError> {
        self.bump();
        self.enter(open)?;
        let mut items = Vec::new();
        let mut tail = None;
        loop {
            match self.step(suppress)? {
                Step::Form(form) => items.push(form),
                Step::Close(_) => break,
                Step::Dot(span) => {
                    if items.is_empty() {
                        return Err(ReadError {
                            kind: ReadErrorKind::BadDot,
                            span,
                        });
                    }
                    tail = Some(Box::new(self.read_required(".", suppress)?));
                    match self.step(suppress)? {
                        Step::Close(_) => break,
                        Step::Form(Form { span, .. }) | Step::Dot(span) => {
                            return Err(ReadError {
                                kind: ReadErrorKind::BadDot,
                                span,
                            });
                        }
                        Step::Eof => return Err(self.unclosed(open, Unclosed::List)),
                    }
                }
                Step::Eof => return Err(self.unclosed(open, Unclosed::List)),
            }
        }
        self.leave();
        let datum = if items.is_empty() {
            Datum::Nil
        } else {
            Datum::List { items, tail }
        };
        Ok(self.form(datum, open))
    }

    fn unclosed(&self, open: Position, what: Unclosed) -> ReadError {
        let kind = ReadErrorKind::Unclosed {
            what,
            opened_at: (open.line, open.column),
        };
        self.error_at(open, kind)
    }

    fn read_string(&mut self, open: Position) -> Result<Form, ReadError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.unclosed(open, Unclosed::String)),
                Some('"') => break,
                Some('\\') => match self.bump() {
                    Some(c) => s.push(c),
                    None => return Err(self.unclosed(open, Unclosed::String)),
                },
                Some(c) => s.push(c),
            }
        }
        Ok(self.form(Datum::String(s), open))
    }

    /// Reads a token up to the next whitespace or terminating macro character.
    fn read_token(&mut self, start: Position, suppress: bool) -> Result<Token, ReadError> {
        let mut chars = Vec::new();
        let mut escape_open: Option<Position> = None;
        while let Some(c) = self.peek() {
            let at = self.pos;
            if escape_open.is_none() && (is_whitespace(c) || is_terminating(c)) {
                break;
            }
            self.bump();
            match c {
                '\\' => match self.bump() {
                    Some(c) => chars.push(TokenChar { c, escaped: true }),
                    None => return Err(self.error_at(at, ReadErrorKind::EscapeAtEnd)),
                },
                '|' if escape_open.is_some() => escape_open = None,
                '|' => escape_open = Some(at),
                c if escape_open.is_some() => chars.push(TokenChar { c, escaped: true }),
                '\x08' | '\x7f' if !suppress => {
                    return Err(self.error_at(at, ReadErrorKind::InvalidCharacter(c)));
                }
                c => chars.push(TokenChar { c, escaped: false }),
            }
        }
        if let Some(open) = escape_open {
            return Err(self.unclosed(open, Unclosed::Escape));
        }
        Ok(Token {
            chars,
            span: Span::new(start, self.pos),
        })
    }

    fn token_form(&self, token: Token, suppress: bool) -> Result<Form, ReadError> {
        if suppress {
            return Ok(Form {
                datum: Datum::Nil,
                span: token.span,
            });
        }
        if let Some(plain) = token.plain()
            && !plain.is_empty()
            && plain.chars().all(|c| c == '.')
        {
            return Err(ReadError {
                kind: ReadErrorKind::TooManyDots,
                span: token.span,
            });
        }
        let datum = token::interpret(&token.chars, self.context).map_err(|kind| ReadError {
            kind,
            span: token.span,
        })?;
        Ok(Form {
            datum,
            span: token.span,
        })
    }

    /// `#...`: returns `None` for what reads as nothing (`#|...|#`, a
    /// `#+`/`#-` whose feature test drops the form).
    fn read_dispatch(
        &mut self,
        start: Position,
        suppress: bool,
    ) -> Result<Option<Form>, ReadError> {
        self.bump();
        let mut arg: Option<u64> = None;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.bump();
            arg = Some(
                arg.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(u64::from(d)),
            );
        }
        let sub_at = self.pos;
        let Some(sub) = self.peek() else {
            return Err(self.error_from(start, ReadErrorKind::DispatchWithoutChar));
        };
        if is_whitespace(sub) {
            return Err(self.error_from(start, ReadErrorKind::DispatchWithoutChar));
        }
        self.bump();
        // As in `step`, no `?` in the arms: this frame is on the stack once
        // per nesting level, and must stay small even in a debug build so
        // `NEST_LIMIT` levels fit a 2 MiB thread stack.
        let form = match sub {
            '|' => {
                self.skip_block_comment(start)?;
                return Ok(None);
            }
            '+' | '-' => return self.read_conditional(start, sub == '+', suppress),
            '\'' => self.read_wrapped(start, Macro::Function, "#'", suppress),
            '.' => self.read_wrapped(start, Macro::ReadEval, "#.", suppress),
            'P' | 'p' => self
                .read_wrapped(start, Macro::Pathname, "#P", suppress)
                .and_then(|form| match &form.datum {
                    Datum::Macro(_, inner)
                        if matches!(inner.datum, Datum::String(_)) || suppress =>
                    {
                        Ok(form)
                    }
                    _ => Err(self.error_from(start, ReadErrorKind::PathnameNotString)),
                }),
            'C' | 'c' => self.read_wrapped(start, Macro::Complex, "#C", suppress),
            '\\' => self.read_char(start, suppress),
            '(' => self.read_vector(start, suppress),
            ':' => self
                .read_token(self.pos, suppress)
                .and_then(|token| self.uninterned(start, token, suppress)),
            '*' => self
                .read_token(self.pos, suppress)
                .and_then(|token| self.bit_vector(start, token, suppress)),
            'B' | 'b' => self.read_rational(start, 2, suppress),
            'O' | 'o' => self.read_rational(start, 8, suppress),
            'X' | 'x' => self.read_rational(start, 16, suppress),
            'R' | 'r' => match arg {
                Some(base @ 2..=36) => self.read_rational(start, base as u32, suppress),
                _ if suppress => self.read_rational(start, 10, suppress),
                _ => return Err(self.error_from(start, ReadErrorKind::BadRadix(arg))),
            },
            'A' | 'a' | 'S' | 's' | '=' | '#' => {
                return Err(self.error_from(start, ReadErrorKind::UnsupportedDispatch(sub)));
            }
            _ if suppress => self
                .read_token(self.pos, true)
                .map(|_| self.form(Datum::Nil, start)),
            _ => {
                let kind = ReadErrorKind::UnknownDispatch(sub);
                return Err(ReadError {
                    kind,
                    span: Span::new(start, self.char_span(sub_at).end),
                });
            }
        };
        form.map(Some)
    }

    fn read_wrapped(
        &mut self,
        start: Position,
        mac: Macro,
        name: &'static str,
        suppress: bool,
    ) -> Result<Form, ReadError> {
        self.enter(start)?;
        let inner = self.read_required(name, suppress)?;
        self.leave();
        Ok(self.form(Datum::Macro(mac, Box::new(inner)), start))
    }

    fn skip_block_comment(&mut self, start: Position) -> Result<(), ReadError> {
        let mut depth = 1usize;
        while depth > 0 {
            if self.starts_with("|#") {
                depth -= 1;
                self.bump();
            } else if self.starts_with("#|") {
                depth += 1;
                self.bump();
            }
            if self.bump().is_none() {
                return Err(self.unclosed(start, Unclosed::Comment));
            }
        }
        Ok(())
    }

    /// `#+expr form` / `#-expr form`. The expression is always read and
    /// decided (even inside a dropped form, as SBCL does).
    fn read_conditional(
        &mut self,
        start: Position,
        plus: bool,
        suppress: bool,
    ) -> Result<Option<Form>, ReadError> {
        self.enter(start)?;
        let outer = std::mem::replace(&mut self.context, SymbolContext::Keyword);
        let name = if plus { "#+" } else { "#-" };
        let expr = self.read_required(name, false);
        self.context = outer;
        let expr = expr?;
        let holds = self.features.eval(&expr).map_err(|kind| ReadError {
            kind,
            span: expr.span,
        })?;
        let keep = holds == plus;
        let form = self.read_required(name, suppress || !keep)?;
        self.leave();
        Ok(keep.then_some(form))
    }

    fn read_char(&mut self, start: Position, suppress: bool) -> Result<Form, ReadError> {
        // The first character is taken as is, even a macro character: `#\)`.
        let first_at = self.pos;
        let Some(first) = self.bump() else {
            return Err(self.error_from(start, ReadErrorKind::EscapeAtEnd));
        };
        let rest = self.read_token(self.pos, suppress)?;
        let mut name = first.to_string();
        name.extend(rest.chars.iter().map(|t| t.c));
        match token::char_named(&name) {
            Some(c) => Ok(self.form(Datum::Char(c), start)),
            None if suppress => Ok(self.form(Datum::Nil, start)),
            None => Err(ReadError {
                kind: ReadErrorKind::UnknownCharName(name),
                span: Span::new(first_at, self.pos),
            }),
        }
    }

    fn read_vector(&mut self, start: Position, suppress: bool) -> Result<Form, ReadError> {
        self.enter(start)?;
        let mut items = Vec::new();
        loop {
            match self.step(suppress)? {
                Step::Form(form) => items.push(form),
                Step::Close(_) => break,
                Step::Dot(span) => {
                    return Err(ReadError {
                        kind: ReadErrorKind::BadDot,
                        span,
                    });
                }
                Step::Eof => return Err(self.unclosed(start, Unclosed::Vector)),
            }
        }
        self.leave();
        Ok(self.form(Datum::Vector(items), start))
    }

    fn uninterned(&self, start: Position, token: Token, suppress: bool) -> Result<Form, ReadError> {
        if suppress {
            return Ok(self.form(Datum::Nil, start));
        }
        if token.chars.iter().any(|t| t.c == ':' && !t.escaped) {
            let text = token.chars.iter().map(|t| t.c).collect();
            return Err(self.error_from(start, ReadErrorKind::QualifiedUninterned(text)));
        }
        let name = token::fold(&token.chars);
        Ok(self.form(Datum::Symbol(format!("#:{name}")), start))
    }

    fn bit_vector(&self, start: Position, token: Token, suppress: bool) -> Result<Form, ReadError> {
        let mut bits = Vec::new();
        for t in &token.chars {
            match t.c {
                '0' | '1' => bits.push(Form {
                    datum: Datum::Number(Number::Integer(i64::from(t.c == '1'))),
                    span: token.span,
                }),
                _ if suppress => break,
                _ => {
                    let text = token.chars.iter().map(|t| t.c).collect();
                    return Err(self.error_from(start, ReadErrorKind::BadBitVector(text)));
                }
            }
        }
        Ok(self.form(Datum::Vector(bits), start))
    }

    fn read_rational(
        &mut self,
        start: Position,
        base: u32,
        suppress: bool,
    ) -> Result<Form, ReadError> {
        let token = self.read_token(self.pos, suppress)?;
        if suppress {
            return Ok(self.form(Datum::Nil, start));
        }
        let text = token.plain().unwrap_or_default();
        match token::parse_number(&text, base) {
            Some(Ok(
                n @ (Number::Integer(_)
                | Number::Unsigned(_)
                | Number::BigInteger(_)
                | Number::Ratio(_)),
            )) => Ok(self.form(Datum::Number(n), start)),
            Some(Err(kind)) => Err(self.error_from(start, kind)),
            _ => Err(self.error_from(start, ReadErrorKind::BadRational { base, text })),
        }
    }
}
