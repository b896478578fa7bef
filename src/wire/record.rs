//! A record of a started daemon, for `list`: `start` leaves one in the
//! tool's pid directory (`record-HASH`), as a property list the Lisp API
//! can read too: `(:conf "/etc/daemonization/web.conf" :pid-file "/run/daemonization/web.pid")`.

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
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "(:conf {} :pid-file {})",
            lisp_string(&self.conf.display().to_string()),
            lisp_string(&self.pid_file.display().to_string())
        )
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
        let value = |key: &str| {
            items
                .chunks(2)
                .find_map(|pair| match (&pair[0].datum, &pair.get(1)?.datum) {
                    (Datum::Keyword(k), Datum::String(v)) if k == key => Some(PathBuf::from(v)),
                    _ => None,
                })
                .ok_or(NotARecord)
        };
        Ok(Record {
            conf: value("CONF")?,
            pid_file: value("PID-FILE")?,
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
        };
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
