//! A small XML well-formedness check for the timeline SVG (no XML crate in the workspace): tags nest and
//! close, attribute values are quoted, text has no bare `<` or unknown entity. Returns the element names
//! in document order.

use anyhow::{Result, bail};

fn check_text(text: &str) -> Result<()> {
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        let entity = &rest[i..];
        let end = entity.find(';').unwrap_or(entity.len());
        let name = &entity[1..end];
        let known = ["amp", "lt", "gt", "quot", "apos"].contains(&name)
            || (name.starts_with('#') && name.len() > 1);
        if !known || end == entity.len() {
            bail!("bad entity near {:?}", &entity[..entity.len().min(20)]);
        }
        rest = &entity[end..];
    }
    Ok(())
}

fn check_attributes(tag: &str, attrs: &str) -> Result<()> {
    let mut rest = attrs.trim();
    while !rest.is_empty() {
        let Some((name, value)) = rest.split_once('=') else {
            bail!("attribute without value in <{tag}>: {rest:?}");
        };
        if name.trim().is_empty() || name.trim().contains(char::is_whitespace) {
            bail!("bad attribute name {name:?} in <{tag}>");
        }
        let value = value.trim_start();
        let Some(quote) = value.chars().next().filter(|q| *q == '"' || *q == '\'') else {
            bail!("unquoted attribute {name:?} in <{tag}>");
        };
        let Some(close) = value[1..].find(quote) else {
            bail!("unterminated attribute {name:?} in <{tag}>");
        };
        let v = &value[1..=close];
        if v.contains('<') {
            bail!("'<' in attribute {name:?} of <{tag}>");
        }
        check_text(v)?;
        rest = value[close + 2..].trim_start();
    }
    Ok(())
}

/// Checks `doc` and returns its element names in order.
pub fn elements(doc: &str) -> Result<Vec<String>> {
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = doc.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        let Some(end) = after.find("?>") else {
            bail!("unterminated XML declaration");
        };
        rest = &after[end + 2..];
    }
    loop {
        let Some(open) = rest.find('<') else {
            check_text(rest)?;
            if !rest.trim().is_empty() || !stack.is_empty() {
                bail!("document ends inside {stack:?}");
            }
            return Ok(names);
        };
        let text = &rest[..open];
        check_text(text)?;
        if stack.is_empty() && !text.trim().is_empty() {
            bail!("text outside the root element: {text:?}");
        }
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let Some(end) = after.find("-->") else {
                bail!("unterminated comment");
            };
            rest = &after[end + 3..];
            continue;
        }
        let Some(close) = rest.find('>') else {
            bail!("unterminated tag {:?}", &rest[..rest.len().min(30)]);
        };
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => bail!("</{name}> closes {other:?}"),
            }
            if stack.is_empty() && !rest.trim().is_empty() {
                bail!("content after the root element");
            }
            continue;
        }
        if stack.is_empty() && !names.is_empty() {
            bail!("a second root element <{tag}>");
        }
        let (body, empty) = match tag.strip_suffix('/') {
            Some(body) => (body, true),
            None => (tag, false),
        };
        let (name, attrs) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || ":-_.".contains(c))
        {
            bail!("bad element name {name:?}");
        }
        check_attributes(name, attrs)?;
        names.push(name.to_string());
        if !empty {
            stack.push(name.to_string());
        }
        if stack.is_empty() && !rest.trim().is_empty() {
            bail!("content after the root element");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_documents_pass_and_broken_ones_fail() {
        let good = "<?xml version=\"1.0\"?>\n<svg a=\"1\" b='x &amp; y'><g><rect x=\"0\"/><text>a &lt; b</text></g><!-- c --></svg>\n";
        assert_eq!(
            elements(good).unwrap_or_else(|e| panic!("{e}")),
            ["svg", "g", "rect", "text"]
        );
        for bad in [
            "<svg><g></svg>",
            "<svg a=1></svg>",
            "<svg>a & b</svg>",
            "<svg></svg><svg></svg>",
            "<svg><text>x</text>",
            "<svg a=\"<\"></svg>",
        ] {
            assert!(elements(bad).is_err(), "{bad}");
        }
    }
}
