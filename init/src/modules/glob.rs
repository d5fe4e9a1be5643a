//! Shell-style wildcard matching as `fnmatch(3)` without flags does it for `modules.alias`:
//! `*`, `?` and bracket expressions (`[abc]`, `[a-z]`, `[!x]`, `[^x]`).

/// Whether `text` matches `pattern` in full.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    // After a mismatch, retry from the latest `*` with it absorbing one more character.
    let mut resume: Option<(usize, usize)> = None;
    while let Some(&c) = t.get(ti) {
        if p.get(pi) == Some(&b'*') {
            resume = Some((pi + 1, ti));
            pi += 1;
        } else if let Some(next) = single(p, pi, c) {
            pi = next;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = resume {
            pi = star_pi;
            ti = star_ti + 1;
            resume = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Matches one text character against the pattern element at `pi`; returns the index after the element.
fn single(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match *p.get(pi)? {
        b'*' => None,
        b'?' => Some(pi + 1),
        b'[' => match bracket_end(p, pi) {
            Some(end) => in_class(p.get(pi + 1..end - 1)?, c).then_some(end),
            None => (c == b'[').then_some(pi + 1),
        },
        literal => (literal == c).then_some(pi + 1),
    }
}

/// Index just past the `]` closing the bracket expression at `start`; `None` when unclosed.
fn bracket_end(p: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(p.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    let close = p.get(i..)?.iter().position(|&b| b == b']')?;
    Some(i + close + 1)
}

/// Whether `c` is in a bracket expression's body (between `[` and `]`).
fn in_class(class: &[u8], c: u8) -> bool {
    let (negate, body) = match class.split_first() {
        Some((b'!' | b'^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while let Some(&lo) = body.get(i) {
        match (body.get(i + 1), body.get(i + 2)) {
            (Some(b'-'), Some(&hi)) => {
                found |= lo <= c && c <= hi;
                i += 3;
            }
            _ => {
                found |= lo == c;
                i += 1;
            }
        }
    }
    found != negate
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn fnmatch_table() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            (
                "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                true,
            ),
            (
                "pci:v00001AF4d00001041sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                false,
            ),
            ("virtio:d00000001v*", "virtio:d00000001v00001AF4", true),
            ("acpi*:PNP0C0C:*", "acpi:PNP0C0C:", true),
            ("acpi*:LNXPWRBN:*", "acpi:LNXPWRBN:", true),
            ("[abc]x", "bx", true),
            ("[abc]x", "dx", false),
            ("[a-c]x", "cx", true),
            ("[!a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("[]]", "]", true),
            ("[", "[", true),
            ("[ab", "[ab", true),
            ("a**b", "ab", true),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("fs-overlay", "fs-overlay", true),
            ("fs-overla", "fs-overlay", false),
        ];
        for (i, (pattern, text, want)) in cases.iter().enumerate() {
            assert_eq!(
                matches(pattern, text),
                *want,
                "case {i}: {pattern:?} vs {text:?}"
            );
        }
    }
}
