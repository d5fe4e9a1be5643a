//! Entry points for the fuzz targets in `getty/fuzz`: the account and password-hash parsers, fed
//! arbitrary bytes, must return, never panic, and never run a hash costlier than [`FUZZ_LIMITS`].

use std::path::Path;

use crate::accounts;
use crate::crypt::{self, CostLimits};

/// Cost limits while fuzzing: cheap enough for thousands of runs a second.
pub const FUZZ_LIMITS: CostLimits = CostLimits {
    sha_rounds: 5000,
    yescrypt_bytes: 1 << 20,
};

/// `/etc/passwd` and `/etc/shadow` contents, the user name and password taken from the first two
/// lines, and every hash found checked against the password.
pub fn accounts(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let name = lines.next().unwrap_or_default();
    let password = lines.next().unwrap_or_default();
    let path = Path::new("fuzz");
    let account = accounts::find_account(&text, path, name).ok().flatten();
    let shadow = accounts::find_shadow_hash(&text, path, name).ok().flatten();
    if let Some(account) = &account {
        let _ = account.shell_or_default();
        if let Some(hash) = accounts::effective_hash(account, shadow.clone()) {
            let _ = crypt::verify_within(password.as_bytes(), &hash, &FUZZ_LIMITS);
        }
    }
    for (_, hash) in accounts::shadow_entries(&text) {
        hash_field(password.as_bytes(), hash);
    }
    let _ = crate::securetty::SecureTtys::parse(&text).allows(name);
}

/// One shadow password field against one password.
pub fn hash_field(password: &[u8], hash: &str) {
    let _ = crypt::HashKind::of(hash).can_match();
    let _ = crypt::affordable(hash, &crypt::LOGIN_LIMITS);
    let _ = crypt::md5_crypt(password, hash);
    let _ = crypt::verify_within(password, hash, &FUZZ_LIMITS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typical_and_hostile_inputs_return() {
        for input in [
            "alice\ns3cret\nalice:x:1000:1000::/home/alice:/bin/sh\nalice:$6$saltsalt$abc::::::\n",
            "root\n\nroot:$6$rounds=999999999$x$y:0::::::\n",
            "root\n\nroot:$y$jzz$abcdefgh$x:0::::::\nroot:x:0:0::/:\n",
            "root\nx\nroot:$1$:0::::::\nroot::99999999999:0::/:/bin/sh\n",
            "\n\n::::::::\n:\n",
            "",
        ] {
            accounts(input.as_bytes());
        }
        hash_field(b"x", "$5$rounds=18446744073709551616$");
        hash_field(b"x", "$y$");
    }
}
