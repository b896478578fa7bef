//! Tokens: the characters between delimiters, turned into numbers or symbols
//! by the rules of CLHS 2.3 (potential numbers, package markers, case folding).

use super::error::ReadErrorKind;
use super::form::{Datum, Number};

/// One token character and whether it was escaped (`\x` or inside `|...|`).
#[derive(Clone, Copy, Debug)]
pub struct TokenChar {
    pub c: char,
    pub escaped: bool,
}

/// Where a symbol token is interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolContext {
    /// The current package (`CL-USER`).
    Current,
    /// Feature expressions are read with `*package*` = KEYWORD.
    Keyword,
}

/// Interprets a token read with `*read-base*` 10.
pub fn interpret(chars: &[TokenChar], context: SymbolContext) -> Result<Datum, ReadErrorKind> {
    if chars.iter().all(|t| !t.escaped) {
        let text: String = chars.iter().map(|t| t.c).collect();
        if let Some(number) = parse_number(&text, 10) {
            return number.map(Datum::Number);
        }
    }
    symbol(chars, context)
}

fn symbol(chars: &[TokenChar], context: SymbolContext) -> Result<Datum, ReadErrorKind> {
    let colons: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, t)| t.c == ':' && !t.escaped)
        .map(|(i, _)| i)
        .collect();
    let raw = || chars.iter().map(|t| t.c).collect::<String>();
    let name = |from: usize, to: usize| fold(&chars[from..to]);
    match colons.as_slice() {
        [] => {
            let name = name(0, chars.len());
            Ok(match context {
                SymbolContext::Keyword => Datum::Keyword(name),
                SymbolContext::Current if name == "NIL" => Datum::Nil,
                SymbolContext::Current => Datum::Symbol(name),
            })
        }
        // `:foo` and `::foo` are keywords.
        [0] | [0, 1] if chars.len() > colons.len() => {
            Ok(Datum::Keyword(name(colons.len(), chars.len())))
        }
        [i] if *i + 1 < chars.len() && *i > 0 => {
            qualified(name(0, *i), ":", name(i + 1, chars.len()))
        }
        [i, j] if *j == i + 1 && *j + 1 < chars.len() && *i > 0 => {
            qualified(name(0, *i), "::", name(j + 1, chars.len()))
        }
        _ => Err(ReadErrorKind::BadPackageMarker(raw())),
    }
}

fn qualified(package: String, marker: &str, name: String) -> Result<Datum, ReadErrorKind> {
    let is_cl = matches!(package.as_str(), "CL" | "COMMON-LISP");
    Ok(if is_cl && name == "NIL" {
        Datum::Nil
    } else if package == "KEYWORD" {
        Datum::Keyword(name)
    } else {
        Datum::Symbol(format!("{package}{marker}{name}"))
    })
}

/// Case folding under `readtable-case` :upcase: unescaped characters are
/// upcased when they have a one-character upper case.
pub fn fold(chars: &[TokenChar]) -> String {
    chars
        .iter()
        .map(|t| if t.escaped { t.c } else { upcase(t.c) })
        .collect()
}

fn upcase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Parses `text` as a number in `base`: `None` if it is not number syntax
/// (so it is a symbol), `Some(Err)` if it is a number the Lisp would reject.
pub fn parse_number(text: &str, base: u32) -> Option<Result<Number, ReadErrorKind>> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let is_digits = |s: &str, base: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(base));
    if is_digits(body, base) {
        return Some(Ok(integer(body, base, negative)));
    }
    if base == 10
        && let Some(digits) = body.strip_suffix('.')
        && is_digits(digits, 10)
    {
        return Some(Ok(integer(digits, 10, negative)));
    }
    if let Some((num, den)) = body.split_once('/')
        && is_digits(num, base)
        && is_digits(den, base)
    {
        if den.chars().all(|c| c == '0') {
            return Some(Err(ReadErrorKind::DivisionByZero(text.to_string())));
        }
        let value = approximate(num, base) / approximate(den, base);
        return Some(Ok(Number::Ratio(if negative { -value } else { value })));
    }
    if base == 10 {
        return parse_float(text, body);
    }
    None
}

fn integer(digits: &str, base: u32, negative: bool) -> Number {
    let exact = digits.chars().try_fold(0u128, |acc, c| {
        acc.checked_mul(u128::from(base))?
            .checked_add(u128::from(c.to_digit(base)?))
    });
    match exact {
        Some(v) if negative && v <= 1u128 << 63 => {
            Number::Integer((v as i128).wrapping_neg() as i64)
        }
        Some(v) if !negative && v <= i64::MAX as u128 => Number::Integer(v as i64),
        Some(v) if !negative && v <= u64::MAX as u128 => Number::Unsigned(v as u64),
        _ => {
            let v = approximate(digits, base);
            Number::BigInteger(if negative { -v } else { v })
        }
    }
}

fn approximate(digits: &str, base: u32) -> f64 {
    digits.chars().fold(0.0, |acc, c| {
        acc * f64::from(base) + f64::from(c.to_digit(base).unwrap_or(0))
    })
}

/// Float syntax (CLHS 2.3.1): `[sign] {digit}* . {digit}+ [exponent]` or
/// `[sign] {digit}+ [. {digit}*] exponent`, exponent markers `e s f d l`.
fn parse_float(text: &str, body: &str) -> Option<Result<Number, ReadErrorKind>> {
    let (mantissa, marker, exponent) = match body.find(|c: char| "esfdlESFDL".contains(c)) {
        Some(i) => (&body[..i], body[i..].chars().next(), &body[i + 1..]),
        None => (body, None, ""),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let has_dot = mantissa.contains('.');
    let mantissa_ok = digits(int)
        && digits(frac)
        && if marker.is_some() {
            !int.is_empty() || !frac.is_empty()
        } else {
            has_dot && !frac.is_empty()
        };
    let exp_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let exponent_ok = marker.is_none() || (!exp_digits.is_empty() && digits(exp_digits));
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    let rust = format!(
        "{}{mantissa}e{}",
        &text[..text.len() - body.len()],
        if marker.is_some() { exponent } else { "0" }
    );
    let value: f64 = rust.parse().ok()?;
    let double = matches!(marker, Some('d' | 'D' | 'l' | 'L'));
    let limit = if double {
        f64::MAX
    } else {
        f64::from(f32::MAX)
    };
    if !value.is_finite() || value.abs() > limit {
        return Some(Err(ReadErrorKind::FloatOutOfRange(text.to_string())));
    }
    Some(Ok(Number::Float(value)))
}

/// The character named by the token after `#\`, as SBCL names them.
pub fn char_named(name: &str) -> Option<char> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(c);
    }
    let upper = name.to_ascii_uppercase();
    let named = match upper.as_str() {
        "SPACE" => ' ',
        "NEWLINE" | "LINEFEED" | "NL" | "LF" => '\n',
        "TAB" => '\t',
        "PAGE" | "FF" => '\x0c',
        "RETURN" | "CR" => '\r',
        "BACKSPACE" | "BS" => '\x08',
        "RUBOUT" | "DEL" | "DELETE" => '\x7f',
        "NUL" | "NULL" => '\0',
        "BELL" | "BEL" => '\x07',
        "ESCAPE" | "ESC" | "ALTMODE" => '\x1b',
        _ => {
            let hex = upper
                .strip_prefix("U+")
                .or_else(|| upper.strip_prefix('U'))?;
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
        }
    };
    Some(named)
}
