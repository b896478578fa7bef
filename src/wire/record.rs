//! A record of a started daemon, for `list`: `start` leaves one in the
//! tool's pid directory (`record-HASH`), as a property list the Lisp API
//! can read too: `(:conf "/etc/daemonization/web.conf" :pid-file "/run/daemonization/web.pid" :name "web")`
//! (`:name` when the conf has one).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::reader::{self, Datum, Features, lisp_string};

/// The longest record read.
pub const MAX_RECORD: usize = 16 * 1024;

/// A record: which conf, and its pid file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    /// The daemon's `:name`: shown when the conf is gone (a property-list
    /// conf of the Lisp API is a temporary file).
    pub name: Option<String>,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(:conf {} :pid-file {}",
            lisp_string(&self.conf.display().to_string()),
            lisp_string(&self.pid_file.display().to_string())
        )?;
        if let Some(name) = &self.name {
            write!(f, " :name {}", lisp_string(name))?;
        }
        writeln!(f, ")")
    }
}

/// A text that is not a record.
#[derive(Debug, PartialEq, Eq)]
pub struct NotARecord;

impl FromStr for Record {
    type Err = NotARecord;

    fn from_str(text: &str) -> Result<Record, NotARecord> {
        if text.len() > MAX_RECORD {
            return Err(NotARecord);
        }
        let forms =
            reader::read_all(text, &Features::sbcl_linux_x86_64()).map_err(|_| NotARecord)?;
        let [form] = forms.as_slice() else {
            return Err(NotARecord);
        };
        let Datum::List { items, tail: None } = &form.datum else {
            return Err(NotARecord);
        };
        let text = |key: &str| {
            items
                .chunks(2)
                .find_map(|pair| match (&pair[0].datum, &pair.get(1)?.datum) {
                    (Datum::Keyword(k), Datum::String(v)) if k == key => Some(v.clone()),
                    _ => None,
                })
        };
        let path = |key: &str| text(key).map(PathBuf::from).ok_or(NotARecord);
        Ok(Record {
            conf: path("CONF")?,
            pid_file: path("PID-FILE")?,
            name: text("NAME"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips() {
        let record = Record {
            conf: "/etc/d/web \"1\".conf".into(),
            pid_file: "/run/web.pid".into(),
            name: None,
        };
        let named = Record {
            name: Some("web".into()),
            ..record.clone()
        };
        assert_eq!(named.to_string().parse(), Ok(named));
        assert_eq!(record.to_string().parse(), Ok(record.clone()));
        assert_eq!(
            record.to_string(),
            "(:conf \"/etc/d/web \\\"1\\\".conf\" :pid-file \"/run/web.pid\")\n"
        );
        for bad in [
            "(:conf 1)",
            "",
            "(:conf \"a\" :pid-file \"b\") (x)",
            "(:pid-file \"b\")",
        ] {
            assert_eq!(bad.parse::<Record>(), Err(NotARecord), "{bad:?}");
        }
    }
}
