//! Password hashes as found in `/etc/shadow`: MD5-crypt (`$1$`), SHA-256-crypt (`$5$`), SHA-512-crypt
//! (`$6$`) and yescrypt (`$y$`).

use md5::{Digest, Md5};
use sha_crypt::{PasswordVerifier, ShaCrypt};
use yescrypt::Yescrypt;

/// What a shadow password field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// Starts with `!` or `*`: no password opens the account.
    Locked,
    /// Empty: refused here (busybox `login` would let anyone in).
    Empty,
    Md5,
    Sha256,
    Sha512,
    Yescrypt,
    /// Anything else (DES, bcrypt, garbage): refused.
    Unsupported,
}

impl HashKind {
    /// Classifies a password field.
    pub fn of(hash: &str) -> HashKind {
        if hash.is_empty() {
            HashKind::Empty
        } else if hash.starts_with('!') || hash.starts_with('*') {
            HashKind::Locked
        } else if hash.starts_with("$1$") {
            HashKind::Md5
        } else if hash.starts_with("$5$") {
            HashKind::Sha256
        } else if hash.starts_with("$6$") {
            HashKind::Sha512
        } else if hash.starts_with("$y$") {
            HashKind::Yescrypt
        } else {
            HashKind::Unsupported
        }
    }

    /// Whether some password can match a field of this kind.
    pub fn can_match(self) -> bool {
        matches!(
            self,
            HashKind::Md5 | HashKind::Sha256 | HashKind::Sha512 | HashKind::Yescrypt
        )
    }
}

/// How much work one check may cost. A shadow field asks for its own cost (SHA-crypt `rounds=`,
/// yescrypt's N and r); one beyond these limits never matches instead of stalling the login for
/// minutes or exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLimits {
    /// Most SHA-crypt rounds (the default is 5000).
    pub sha_rounds: u64,
    /// Most yescrypt memory, `128 * r * N` bytes (the default `j9T` uses 16 MiB).
    pub yescrypt_bytes: u64,
}

/// The limits a login uses: 10 million SHA rounds (a few seconds), 1 GiB for yescrypt.
pub const LOGIN_LIMITS: CostLimits = CostLimits {
    sha_rounds: 10_000_000,
    yescrypt_bytes: 1 << 30,
};

/// Crypt's 64-character alphabet value of `c`.
fn decode64(c: u8) -> Option<u64> {
    CRYPT_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|v| v as u64)
}

/// Whether checking `hash` stays within `limits` (always true for kinds without a cost parameter).
pub fn affordable(hash: &str, limits: &CostLimits) -> bool {
    match HashKind::of(hash) {
        HashKind::Sha256 | HashKind::Sha512 => {
            let Some(spec) = hash.get(3..).and_then(|r| r.strip_prefix("rounds=")) else {
                return true;
            };
            let digits = spec.split('$').next().unwrap_or_default();
            digits
                .parse::<u64>()
                .is_ok_and(|rounds| rounds <= limits.sha_rounds)
        }
        HashKind::Yescrypt => {
            // `$y$` flavour, log2(N) - 1, r - 1 (one character each below 47; more means a larger r
            // or extra parameters, which are refused), then `$salt$hash`.
            let params = hash.get(3..).unwrap_or_default().split('$').next();
            let Some(&[_, n, r]) = params.map(str::as_bytes) else {
                return false;
            };
            match (decode64(n), decode64(r)) {
                (Some(n_log2), Some(r)) if n_log2 < 47 && r < 47 => (128 * (r + 1))
                    .checked_shl(u32::try_from(n_log2 + 1).unwrap_or(u32::MAX))
                    .is_some_and(|bytes| bytes <= limits.yescrypt_bytes),
                _ => false,
            }
        }
        _ => true,
    }
}

/// Whether `password` matches the shadow field `hash`. Locked, empty, malformed and unsupported
/// fields never match, nor do fields whose cost is beyond [`LOGIN_LIMITS`].
pub fn verify(password: &[u8], hash: &str) -> bool {
    verify_within(password, hash, &LOGIN_LIMITS)
}

/// [`verify`] with other cost limits (the fuzz target's are lower).
pub fn verify_within(password: &[u8], hash: &str, limits: &CostLimits) -> bool {
    if !affordable(hash, limits) {
        return false;
    }
    match HashKind::of(hash) {
        HashKind::Md5 => {
            md5_crypt(password, hash).is_some_and(|computed| constant_time_eq(&computed, hash))
        }
        HashKind::Sha256 | HashKind::Sha512 => {
            ShaCrypt::default().verify_password(password, hash).is_ok()
        }
        HashKind::Yescrypt => Yescrypt::default().verify_password(password, hash).is_ok(),
        HashKind::Locked | HashKind::Empty | HashKind::Unsupported => false,
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

const MD5_MAGIC: &str = "$1$";
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Computes the full MD5-crypt string for `password` with the salt taken from `setting` (`$1$salt$...`),
/// or `None` when `setting` is not an MD5-crypt string.
pub fn md5_crypt(password: &[u8], setting: &str) -> Option<String> {
    let rest = setting.strip_prefix(MD5_MAGIC)?;
    let salt_field = rest.split('$').next().unwrap_or("");
    // At most 8 salt characters count.
    let salt_end = salt_field
        .char_indices()
        .nth(8)
        .map_or(salt_field.len(), |(i, _)| i);
    let salt = salt_field.get(..salt_end)?.as_bytes();

    let alternate: [u8; 16] = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize()
        .into();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MD5_MAGIC)
        .chain_update(salt);
    for chunk in password.chunks(16) {
        ctx.update(alternate.get(..chunk.len())?);
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(password.get(..1)?);
        }
        bits >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round % 2 == 1 {
            c.update(password);
        } else {
            c.update(digest);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round % 2 == 1 {
            c.update(digest);
        } else {
            c.update(password);
        }
        digest = c.finalize().into();
    }
    let mut out = format!("{MD5_MAGIC}{}$", String::from_utf8_lossy(salt));
    let d = digest;
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        encode64(
            &mut out,
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
        );
    }
    encode64(&mut out, u32::from(d[11]), 2);
    Some(out)
}

/// Appends the `count` low 6-bit groups of `value`, least significant first, in crypt's alphabet.
fn encode64(out: &mut String, mut value: u32, count: usize) {
    for _ in 0..count {
        let index = (value & 0x3f) as usize;
        out.push(char::from(
            CRYPT_ALPHABET.get(index).copied().unwrap_or(b'.'),
        ));
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference hashes made with `openssl passwd` and libxcrypt's crypt(3).
    const MD5_PASSWORD: &str = "$1$abcdefgh$G//4keteveJp0qb8z2DxG/";
    const SHA256_S3CRET: &str = "$5$saltsalt$i1q2ZQzc.tl/BQ6CHiENAcVDvEY6nJ1OWlWXKh94b1.";
    const SHA512_S3CRET: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
    const SHA512_ROUNDS_ABC: &str = "$6$rounds=1000$xyz$KJQDu4xTti2q2aMEtGxVCp.SPlqLzbbJwwDb1.SGg3DHOk9xKqaeDyd2JrwxnVKzNk5uWBgSrFt.aYBhiTKsL0";
    const YESCRYPT_S3CRET: &str =
        "$y$j9T$abcdefghijklmnop$tySFNIfWVy.ymkBDHEMW6bAQ07dlkLVGalgni.VV4l8";

    #[test]
    fn md5_crypt_matches_openssl() {
        let cases = [
            ("password", MD5_PASSWORD),
            ("", "$1$xy$JSgu5Zv4igzK2ULm5nTM30"),
            (
                "a very long password over sixteen chars",
                "$1$12345678$eO654BWYaTMe2rxVgGuht0",
            ),
            ("é", "$1$x$IyT2FJT7pv0vKIR0z/IaI0"),
        ];
        for (password, hash) in cases {
            assert_eq!(
                md5_crypt(password.as_bytes(), hash).as_deref(),
                Some(hash),
                "password {password:?}"
            );
        }
        assert_eq!(md5_crypt(b"x", "$6$abc$def"), None);
    }

    #[test]
    fn verify_accepts_right_and_refuses_wrong_passwords() {
        let cases = [
            ("password", MD5_PASSWORD),
            ("s3cret", SHA256_S3CRET),
            ("s3cret", SHA512_S3CRET),
            ("abc", SHA512_ROUNDS_ABC),
            ("s3cret", YESCRYPT_S3CRET),
        ];
        for (password, hash) in cases {
            assert!(
                verify(password.as_bytes(), hash),
                "right password for {hash}"
            );
            assert!(!verify(b"wrong", hash), "wrong password for {hash}");
            assert!(!verify(b"", hash), "empty password for {hash}");
        }
    }

    #[test]
    fn costs_at_their_extremes() {
        let limits = CostLimits {
            sha_rounds: 1000,
            yescrypt_bytes: 16 << 20,
        };
        assert!(affordable(SHA512_S3CRET, &limits));
        assert!(affordable(SHA512_ROUNDS_ABC, &limits));
        assert!(affordable(YESCRYPT_S3CRET, &limits), "j9T is 16 MiB");
        for hash in [
            "$6$rounds=1001$xyz$abc",
            "$5$rounds=18446744073709551616$xyz$abc",
            "$6$rounds=-1$xyz$abc",
            "$6$rounds=$xyz$abc",
            "$y$jAT$abcdefghijklmnop$x",
            "$y$j9U$abcdefghijklmnop$x",
            "$y$jzT$abcdefghijklmnop$x",
            "$y$j9z$abcdefghijklmnop$x",
            "$y$j9T7$abcdefghijklmnop$x",
            "$y$j9$abcdefghijklmnop$x",
            "$y$",
        ] {
            assert!(!affordable(hash, &limits), "{hash}");
        }
        assert!(affordable(
            "$6$rounds=999999999$x$y",
            &CostLimits {
                sha_rounds: u64::MAX,
                yescrypt_bytes: u64::MAX,
            }
        ));
        assert!(
            !affordable(
                "$y$j.z$x$y",
                &CostLimits {
                    sha_rounds: u64::MAX,
                    yescrypt_bytes: u64::MAX,
                }
            ),
            "r beyond one character"
        );
        // Beyond the limits, even the right password does not match.
        assert!(!verify_within(
            b"abc",
            SHA512_ROUNDS_ABC,
            &CostLimits {
                sha_rounds: 999,
                ..limits
            }
        ));
    }

    #[test]
    fn locked_empty_and_unknown_fields_never_match() {
        let cases = [
            ("*", HashKind::Locked),
            ("!", HashKind::Locked),
            ("!$6$saltsalt$abc", HashKind::Locked),
            ("", HashKind::Empty),
            ("abJnggxhB/yWI", HashKind::Unsupported),
            ("$2b$10$abcdefghijklmnopqrstuv", HashKind::Unsupported),
            ("$6$", HashKind::Sha512),
            ("$6$salt", HashKind::Sha512),
            ("$y$garbage", HashKind::Yescrypt),
            ("$1$", HashKind::Md5),
        ];
        for (hash, kind) in cases {
            assert_eq!(HashKind::of(hash), kind, "hash {hash:?}");
            assert!(!verify(b"", hash), "empty password against {hash:?}");
            assert!(!verify(b"s3cret", hash), "a password against {hash:?}");
        }
    }
}
