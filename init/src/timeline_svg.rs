//! `init timeline-svg FILE.jsonl`: draws the boot timeline as an SVG Gantt chart. Each `<x>-start` /
//! `<x>-end` pair (same `src` and `name`) is a bar; any other event is a tick on its source's row.

use std::collections::HashMap;
use std::fmt::Write;

/// One timeline line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `CLOCK_BOOTTIME` milliseconds.
    pub ms: u64,
    /// Who wrote it (`init`, `service`).
    pub src: String,
    /// The event.
    pub event: String,
    /// The optional subject (hook path, service name).
    pub name: Option<String>,
}

/// A line that is not a timeline record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Not a flat JSON object of strings and numbers.
    #[error("not a JSON object: {0}")]
    Syntax(&'static str),
    /// A required field is missing or has the wrong type.
    #[error("missing or invalid field {0:?}")]
    Field(&'static str),
}

/// A JSON value of a flat object.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
    Other,
}

struct Cursor<'a> {
    rest: std::str::Chars<'a>,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.rest.clone().next().is_some_and(char::is_whitespace) {
            self.rest.next();
        }
    }
    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest.clone().next()
    }
    fn eat(&mut self, c: char) -> Result<(), RecordError> {
        (self.peek() == Some(c) && self.rest.next().is_some())
            .then_some(())
            .ok_or(RecordError::Syntax("unexpected character"))
    }
    fn string(&mut self) -> Result<String, RecordError> {
        self.eat('"')?;
        let mut out = String::new();
        loop {
            match self
                .rest
                .next()
                .ok_or(RecordError::Syntax("unterminated string"))?
            {
                '"' => return Ok(out),
                '\\' => out.push(self.escape()?),
                c => out.push(c),
            }
        }
    }
    fn escape(&mut self) -> Result<char, RecordError> {
        Ok(
            match self.rest.next().ok_or(RecordError::Syntax("bad escape"))? {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'u' => {
                    let hex: String = (0..4).filter_map(|_| self.rest.next()).collect();
                    let code = u32::from_str_radix(&hex, 16)
                        .map_err(|_| RecordError::Syntax("bad \\u escape"))?;
                    char::from_u32(code).unwrap_or('\u{fffd}')
                }
                c => c,
            },
        )
    }
    fn value(&mut self) -> Result<Value, RecordError> {
        match self.peek() {
            Some('"') => self.string().map(Value::Str),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let text: String = std::iter::from_fn(|| {
                    let c = self
                        .rest
                        .clone()
                        .next()
                        .filter(|c| "+-.eE".contains(*c) || c.is_ascii_digit())?;
                    self.rest.next();
                    Some(c)
                })
                .collect();
                text.parse()
                    .map(Value::Num)
                    .map_err(|_| RecordError::Syntax("bad number"))
            }
            Some(_) => {
                for word in ["true", "false", "null"] {
                    if self.rest.as_str().starts_with(word) {
                        self.rest = self
                            .rest
                            .as_str()
                            .get(word.len()..)
                            .unwrap_or_default()
                            .chars();
                        return Ok(Value::Other);
                    }
                }
                Err(RecordError::Syntax("unsupported value"))
            }
            None => Err(RecordError::Syntax("missing value")),
        }
    }
}

fn object(line: &str) -> Result<HashMap<String, Value>, RecordError> {
    let mut c = Cursor { rest: line.chars() };
    let mut fields = HashMap::new();
    c.eat('{')?;
    if c.peek() == Some('}') {
        c.eat('}')?;
    } else {
        loop {
            let key = c.string()?;
            c.eat(':')?;
            fields.insert(key, c.value()?);
            match c.peek() {
                Some(',') => c.eat(',')?,
                Some('}') => {
                    c.eat('}')?;
                    break;
                }
                _ => return Err(RecordError::Syntax("expected , or }")),
            }
        }
    }
    match c.peek() {
        None => Ok(fields),
        Some(_) => Err(RecordError::Syntax("trailing characters")),
    }
}

/// Parses one JSON line.
pub fn parse_record(line: &str) -> Result<Record, RecordError> {
    let mut f = object(line)?;
    let text = |f: &mut HashMap<String, Value>, k: &'static str| match f.remove(k) {
        Some(Value::Str(s)) => Ok(s),
        _ => Err(RecordError::Field(k)),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = match f.remove("ms") {
        Some(Value::Num(n)) if n >= 0.0 && n.is_finite() => n as u64,
        _ => return Err(RecordError::Field("ms")),
    };
    let src = text(&mut f, "src")?;
    let event = text(&mut f, "event")?;
    let name = text(&mut f, "name").ok();
    Ok(Record {
        ms,
        src,
        event,
        name,
    })
}

/// A bar (span) or a tick (point) to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Row label.
    pub label: String,
    /// Start ms.
    pub start: u64,
    /// End ms (equal to start for ticks).
    pub end: u64,
}

/// Pairs `-start`/`-end` events into spans; everything else (and unmatched starts) becomes a tick.
pub fn marks(records: &[Record]) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    let mut open: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for r in records {
        let label = |phase: &str| match &r.name {
            Some(n) => format!("{}: {phase} {n}", r.src),
            None => format!("{}: {phase}", r.src),
        };
        if let Some(phase) = r.event.strip_suffix("-start") {
            open.insert(
                (r.src.clone(), phase.to_string(), r.name.clone()),
                out.len(),
            );
            out.push(Mark {
                label: label(phase),
                start: r.ms,
                end: r.ms,
            });
        } else if let Some(phase) = r.event.strip_suffix("-end") {
            match open
                .remove(&(r.src.clone(), phase.to_string(), r.name.clone()))
                .and_then(|i| out.get_mut(i))
            {
                Some(mark) => mark.end = r.ms.max(mark.start),
                None => out.push(Mark {
                    label: label(&r.event),
                    start: r.ms,
                    end: r.ms,
                }),
            }
        } else {
            out.push(Mark {
                label: label(&r.event),
                start: r.ms,
                end: r.ms,
            });
        }
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the chart.
pub fn render(records: &[Record]) -> String {
    const LABEL_W: u64 = 360;
    const CHART_W: u64 = 900;
    const ROW_H: u64 = 18;
    let marks = marks(records);
    let t0 = marks.iter().map(|m| m.start).min().unwrap_or(0);
    let t1 = marks
        .iter()
        .map(|m| m.end)
        .max()
        .unwrap_or(0)
        .max(t0.saturating_add(1));
    let span = u128::from(t1 - t0).max(1);
    // Wide arithmetic: times come from a file and may be anything up to u64::MAX.
    #[allow(clippy::cast_possible_truncation)]
    let x =
        |ms: u64| LABEL_W + (u128::from(ms.saturating_sub(t0)) * u128::from(CHART_W) / span) as u64;
    let height = (marks.len() as u64 + 2) * ROW_H + 10;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"monospace\" font-size=\"11\">",
        LABEL_W + CHART_W + 60
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    // At most about a dozen grid lines, whatever the range.
    let range = t1 - t0;
    let step = [
        10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000,
    ]
    .into_iter()
    .find(|s| range / s <= 12)
    .unwrap_or_else(|| range.div_ceil(12).max(1));
    let mut tick = t0.div_ceil(step).saturating_mul(step);
    while tick <= t1 {
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{ROW_H}\" x2=\"{0}\" y2=\"{height}\" stroke=\"#ddd\"/>",
            x(tick)
        );
        let _ = writeln!(svg, "<text x=\"{}\" y=\"12\">{} ms</text>", x(tick), tick);
        let Some(next) = tick.checked_add(step) else {
            break;
        };
        tick = next;
    }
    for (i, m) in marks.iter().enumerate() {
        let y = (i as u64 + 1) * ROW_H + 4;
        let colour = if m.label.starts_with("init:") {
            "#4477aa"
        } else {
            "#cc6677"
        };
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{}\">{}</text>",
            y + 12,
            xml(&m.label)
        );
        let width = (x(m.end) - x(m.start)).max(2);
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{y}\" width=\"{width}\" height=\"{}\" fill=\"{colour}\"><title>{} {}..{} ms ({} ms)</title></rect>",
            x(m.start),
            ROW_H - 4,
            xml(&m.label),
            m.start,
            m.end,
            m.end - m.start
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Reads a timeline file and renders it; unparsable lines are reported on stderr and skipped.
pub fn render_file(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let mut records = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match parse_record(line) {
            Ok(r) => records.push(r),
            Err(e) => crate::console::line(&format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok(render(&records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64, src: &str, event: &str, name: Option<&str>) -> Record {
        Record {
            ms,
            src: src.into(),
            event: event.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn parses_records() {
        let cases = [
            (
                r#"{"ms":12,"src":"init","event":"boot-end"}"#,
                Ok(rec(12, "init", "boot-end", None)),
            ),
            (
                r#" { "event" : "hook-start", "name":"/etc/init.d/a\"b\u0041", "ms": 3.0, "src":"init", "x": null } "#,
                Ok(rec(3, "init", "hook-start", Some("/etc/init.d/a\"bA"))),
            ),
            (
                r#"{"ms":-1,"src":"init","event":"e"}"#,
                Err(RecordError::Field("ms")),
            ),
            (r#"{"ms":1,"event":"e"}"#, Err(RecordError::Field("src"))),
            (
                r#"{"ms":1,"src":"s","event":"e"} x"#,
                Err(RecordError::Syntax("trailing characters")),
            ),
            (
                r#"{"ms":1,"src":"s""#,
                Err(RecordError::Syntax("expected , or }")),
            ),
            (
                r#"{"ms":1,"src":"s"#,
                Err(RecordError::Syntax("unterminated string")),
            ),
            ("", Err(RecordError::Syntax("unexpected character"))),
            ("[]", Err(RecordError::Syntax("unexpected character"))),
        ];
        for (i, (line, want)) in cases.iter().enumerate() {
            assert_eq!(&parse_record(line), want, "case {i}: {line}");
        }
    }

    #[test]
    fn pairs_spans_by_source_and_name() {
        let records = [
            rec(0, "init", "init", None),
            rec(10, "init", "hook-start", Some("a")),
            rec(12, "service", "start-start", Some("getty")),
            rec(30, "init", "hook-end", Some("a")),
            rec(40, "service", "start-end", Some("getty")),
            rec(50, "init", "mounts-end", None),
        ];
        let m = |label: &str, start, end| Mark {
            label: label.into(),
            start,
            end,
        };
        assert_eq!(
            marks(&records),
            vec![
                m("init: init", 0, 0),
                m("init: hook a", 10, 30),
                m("service: start getty", 12, 40),
                m("init: mounts-end", 50, 50),
            ]
        );
    }

    #[test]
    fn renders_extreme_times() {
        let svg = render(&[
            rec(u64::MAX, "a", "x", None),
            rec(0, "b", "y", None),
            rec(u64::MAX - 1, "c", "z-start", None),
        ]);
        assert!(svg.contains("</svg>"));
        assert!(render(&[rec(u64::MAX, "a", "x", None)]).contains("</svg>"));
    }

    #[test]
    fn renders_an_svg_with_escaped_labels() {
        let svg = render(&[
            rec(5, "init", "hook-start", Some("<x>")),
            rec(25, "init", "hook-end", Some("<x>")),
        ]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("init: hook &lt;x&gt;") && !svg.contains("<x>"));
        assert!(render(&[]).contains("</svg>"));
    }
}
