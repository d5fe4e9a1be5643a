//! `/etc/passwd` and `/etc/shadow` entries.

use std::path::{Path, PathBuf};

/// A problem with the account files.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line for the user has the wrong number of fields or a non-numeric id.
    #[error("{path} line {line}: malformed entry for user {user:?}: {what}")]
    Malformed {
        path: PathBuf,
        line: usize,
        user: String,
        what: &'static str,
    },
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// The password field: `x` when the hash is in the shadow file.
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

impl Account {
    /// The shell to run: the entry's, or `/bin/sh` when it is empty (as `login` does).
    pub fn shell_or_default(&self) -> &str {
        if self.shell.is_empty() {
            "/bin/sh"
        } else {
            &self.shell
        }
    }
}

fn malformed(path: &Path, line: usize, user: &str, what: &'static str) -> AccountError {
    AccountError::Malformed {
        path: path.to_path_buf(),
        line,
        user: user.to_string(),
        what,
    }
}

/// The lines of an account file whose first field is `name`, with their 1-based numbers.
fn lines_for<'a>(contents: &'a str, name: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    contents
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(move |(_, line)| line.split(':').next() == Some(name) && !name.is_empty())
}

/// Finds `name` in the contents of a passwd file (`path` names it in errors). Lines of other users
/// are not looked at, so one broken entry does not lock everybody out.
pub fn find_account(
    contents: &str,
    path: &Path,
    name: &str,
) -> Result<Option<Account>, AccountError> {
    let Some((line, text)) = lines_for(contents, name).next() else {
        return Ok(None);
    };
    let fields: Vec<&str> = text.split(':').collect();
    let [_, password, uid, gid, _gecos, home, shell] = fields.as_slice() else {
        return Err(malformed(
            path,
            line,
            name,
            "expected 7 colon-separated fields",
        ));
    };
    let uid = uid
        .parse()
        .map_err(|_| malformed(path, line, name, "uid is not a number"))?;
    let gid = gid
        .parse()
        .map_err(|_| malformed(path, line, name, "gid is not a number"))?;
    Ok(Some(Account {
        name: name.to_string(),
        password: password.to_string(),
        uid,
        gid,
        home: home.to_string(),
        shell: shell.to_string(),
    }))
}

/// Finds the password hash of `name` in the contents of a shadow file.
pub fn find_shadow_hash(
    contents: &str,
    path: &Path,
    name: &str,
) -> Result<Option<String>, AccountError> {
    let Some((line, text)) = lines_for(contents, name).next() else {
        return Ok(None);
    };
    match text.split(':').nth(1) {
        Some(hash) => Ok(Some(hash.to_string())),
        None => Err(malformed(path, line, name, "no password field")),
    }
}

/// Every `(user, hash)` pair of a shadow file, for the start-up report; lines without a password
/// field are left out.
pub fn shadow_entries(contents: &str) -> Vec<(&str, &str)> {
    contents
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            Some((fields.next()?, fields.next()?))
        })
        .filter(|(user, _)| !user.is_empty() && !user.starts_with('#'))
        .collect()
}

/// The hash that decides a password login: the shadow entry's when the passwd field is `x` (or the
/// shadow file has the user), otherwise the passwd field itself.
pub fn effective_hash(account: &Account, shadow_hash: Option<String>) -> Option<String> {
    match shadow_hash {
        Some(hash) => Some(hash),
        None if account.password == "x" => None,
        None => Some(account.password.clone()),
    }
}

/// Reads a whole account file.
pub fn read(path: &Path) -> Result<String, AccountError> {
    std::fs::read_to_string(path).map_err(|source| AccountError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\n\
        broken:x:abc:0::/:/bin/sh\nshort:x:5\nold:$1$xy$JSgu5Zv4igzK2ULm5nTM30:7:7::/home/old:\n";

    #[test]
    fn finds_users_and_reports_broken_lines() {
        let p = Path::new("/etc/passwd");
        let root = find_account(PASSWD, p, "root").unwrap().unwrap();
        assert_eq!(
            (root.uid, root.gid, root.home.as_str(), root.shell.as_str()),
            (0, 0, "/root", "/bin/sh")
        );
        assert_eq!(find_account(PASSWD, p, "nobody").unwrap(), None);
        assert_eq!(find_account(PASSWD, p, "").unwrap(), None);
        let err = find_account(PASSWD, p, "broken").unwrap_err().to_string();
        assert_eq!(
            err,
            "/etc/passwd line 3: malformed entry for user \"broken\": uid is not a number"
        );
        assert!(
            find_account(PASSWD, p, "short")
                .unwrap_err()
                .to_string()
                .contains("7 colon-separated fields")
        );
        let old = find_account(PASSWD, p, "old").unwrap().unwrap();
        assert_eq!(old.shell_or_default(), "/bin/sh");
    }

    #[test]
    fn shadow_hashes_and_the_effective_hash() {
        let p = Path::new("/etc/shadow");
        let shadow = "root:*::0:::::\nalice:$6$salt$hash:17322:0:::::\r\nbob\n";
        assert_eq!(
            find_shadow_hash(shadow, p, "root").unwrap().as_deref(),
            Some("*")
        );
        assert_eq!(
            find_shadow_hash(shadow, p, "alice").unwrap().as_deref(),
            Some("$6$salt$hash")
        );
        assert!(find_shadow_hash(shadow, p, "bob").is_err());
        assert_eq!(find_shadow_hash(shadow, p, "carol").unwrap(), None);
        assert_eq!(
            shadow_entries(shadow),
            vec![("root", "*"), ("alice", "$6$salt$hash")]
        );

        let root = find_account(PASSWD, Path::new("/etc/passwd"), "root")
            .unwrap()
            .unwrap();
        assert_eq!(
            effective_hash(&root, Some("*".into())).as_deref(),
            Some("*")
        );
        assert_eq!(effective_hash(&root, None), None);
        let old = find_account(PASSWD, Path::new("/etc/passwd"), "old")
            .unwrap()
            .unwrap();
        assert_eq!(
            effective_hash(&old, None).as_deref(),
            Some("$1$xy$JSgu5Zv4igzK2ULm5nTM30")
        );
    }
}
