//! Fuzzes the conf reader: no input may make `read_all`, error rendering,
//! `Form::to_value` or `Form::text` panic, hang or overflow the stack, and
//! every span must be a valid slice of the text.

#![no_main]

use daemonization::reader::{Datum, Features, Form, Span, read_all};
use daemonization::source::Source;
use libfuzzer_sys::fuzz_target;

fn check_span(span: Span, text: &str) {
    assert!(span.start.offset <= span.end.offset, "{span:?}");
    assert!(text.is_char_boundary(span.start.offset), "{span:?}");
    assert!(text.is_char_boundary(span.end.offset), "{span:?}");
}

/// Checks a form and its sub-forms (nesting is bounded by the reader).
fn visit(form: &Form, text: &str) {
    check_span(form.span, text);
    let _ = form.text(text);
    match &form.datum {
        Datum::List { items, tail } => {
            items.iter().for_each(|f| visit(f, text));
            if let Some(tail) = tail {
                visit(tail, text);
            }
        }
        Datum::Vector(items) => items.iter().for_each(|f| visit(f, text)),
        Datum::Macro(_, inner) => visit(inner, text),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match read_all(text, &Features::sbcl_linux_x86_64()) {
        Ok(forms) => {
            for form in &forms {
                visit(form, text);
                // Dropping a `lexpr::Value` recurses along the list, so a
                // list of ~100k+ items overflows the stack (a lexpr limit);
                // inputs here are far shorter (`-max_len=8192`).
                let _ = form.to_value();
            }
        }
        Err(err) => {
            check_span(err.span, text);
            let source = Source::new("fuzz.conf", text);
            let _ = source.render(err.span, &err.to_string());
        }
    }
});
