//! People who log in to the console: their passwords (argon2id, PHC strings) and the
//! changes made to them (`loa central user add|passwd|disable|list`), each written to the
//! audit trail. A person has the same [`Role`] an operator token has, so the console is
//! scoped exactly as the API is.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::protocol::AuditEntry;
use crate::store::{Role, Store, StoreError, User, console::valid_user_name};

/// Shortest password accepted, in characters.
pub const PASSWORD_MIN: usize = 10;
/// Longest password accepted, in bytes (a login form's field is bounded by the same).
pub const PASSWORD_MAX: usize = 256;

/// argon2id with 32 MiB and 3 passes: about 50–100 ms on central's kind of machine
/// (measured in `hashing_costs_tens_of_milliseconds`), slow for a guesser, quick enough
/// for a person. Parameters live in each PHC string, so raising them later needs no
/// migration: old hashes verify with their own.
fn hasher() -> Argon2<'static> {
    let params = Params::new(32 * 1024, 3, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("{0:?} cannot name a person: use 1 to 64 lowercase letters, digits, '.', '-' or '_'")]
    BadName(String),
    #[error("the password is too short: use at least {PASSWORD_MIN} characters")]
    TooShort,
    #[error("the password is too long: use at most {PASSWORD_MAX} bytes")]
    TooLong,
    #[error("a cap-source role is for machines: give a person admin, district:AREA or viewer")]
    MachineRole,
    #[error("there is no person named {0:?}: see `loa central user list`")]
    NoSuchUser(String),
    #[error(
        "a person named {0:?} exists already: change their password with `loa central user passwd`"
    )]
    Exists(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PeopleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UserExists(name) => PeopleError::Exists(name),
            e => PeopleError::Store(e),
        }
    }
}

/// Whether `password` may be set: [`PASSWORD_MIN`] characters to [`PASSWORD_MAX`] bytes.
pub fn check_password(password: &str) -> Result<(), PeopleError> {
    if password.len() > PASSWORD_MAX {
        return Err(PeopleError::TooLong);
    }
    if password.chars().count() < PASSWORD_MIN {
        return Err(PeopleError::TooShort);
    }
    Ok(())
}

/// The PHC string of `password` under a fresh random salt. CPU-bound for tens of
/// milliseconds: async callers run it on the blocking pool ([`hash_off_workers`]).
pub fn hash_password(password: &str) -> Result<String, PeopleError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PeopleError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A string that is not a PHC string
/// (a corrupt row) matches nothing. Passwords past [`PASSWORD_MAX`] are refused before
/// any hashing, so a huge field costs nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    password.len() <= PASSWORD_MAX && hasher().verify_password(password.as_bytes(), phc).is_ok()
}

/// [`verify_password`] on the blocking pool, off the async workers.
pub async fn verify_off_workers(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false)
}

/// [`hash_password`] on the blocking pool, off the async workers.
pub async fn hash_off_workers(password: String) -> Result<String, PeopleError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| PeopleError::Hash(e.to_string()))?
}

/// Who changed people, for the audit trail.
#[derive(Debug, Clone)]
pub struct Changer {
    pub who: String,
    pub from: String,
}

fn audit(
    store: &dyn Store,
    by: &Changer,
    at: DateTime<Utc>,
    action: &str,
    name: &str,
    detail: String,
) {
    let entry = AuditEntry {
        at,
        who: by.who.clone(),
        action: action.into(),
        subject: format!("user {name}"),
        from: by.from.clone(),
        detail,
    };
    if let Err(e) = store.audit(&entry) {
        tracing::error!(action, name, "cannot write the audit trail: {e}");
    }
}

/// Adds a person with a password already hashed ([`hash_password`]).
pub fn add(
    store: &dyn Store,
    by: &Changer,
    name: &str,
    role: &Role,
    password_hash: String,
    at: DateTime<Utc>,
) -> Result<(), PeopleError> {
    if !valid_user_name(name) {
        return Err(PeopleError::BadName(name.to_string()));
    }
    if *role == Role::CapSource {
        return Err(PeopleError::MachineRole);
    }
    let user = User {
        name: name.to_string(),
        role: role.clone(),
        password_hash,
        disabled: false,
        created_at: at,
        changed_at: at,
    };
    store.add_user(&user)?;
    audit(store, by, at, "user.add", name, format!("role {role}"));
    Ok(())
}

/// Sets a new password (hashed); every session of the person ends.
pub fn set_password(
    store: &dyn Store,
    by: &Changer,
    name: &str,
    password_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), PeopleError> {
    if !store.set_user_password(name, password_hash, at)? {
        return Err(PeopleError::NoSuchUser(name.to_string()));
    }
    audit(store, by, at, "user.passwd", name, "password changed; sessions ended".into());
    Ok(())
}

/// Disables (or enables again) a person; disabling ends every session of theirs.
pub fn set_disabled(
    store: &dyn Store,
    by: &Changer,
    name: &str,
    disabled: bool,
    at: DateTime<Utc>,
) -> Result<(), PeopleError> {
    if !store.set_user_disabled(name, disabled, at)? {
        return Err(PeopleError::NoSuchUser(name.to_string()));
    }
    let (action, detail) = if disabled {
        ("user.disable", "disabled; sessions ended")
    } else {
        ("user.enable", "enabled")
    };
    audit(store, by, at, action, name, detail.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn passwords_hash_verify_and_keep_their_bounds() {
        let phc = hash_password("mật khẩu dài đủ").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=32768,t=3,p=1$"), "{phc}");
        assert!(verify_password("mật khẩu dài đủ", &phc));
        assert!(!verify_password("mật khẩu dài đủ ", &phc));
        assert!(!verify_password("anything-at-all", "not a phc string"));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(phc, hash_password("mật khẩu dài đủ").unwrap());
        // Bounds: one under the minimum, one past the maximum.
        assert!(matches!(hash_password(&"a".repeat(PASSWORD_MIN - 1)), Err(PeopleError::TooShort)));
        assert!(hash_password(&"a".repeat(PASSWORD_MIN)).is_ok());
        assert!(matches!(hash_password(&"a".repeat(PASSWORD_MAX + 1)), Err(PeopleError::TooLong)));
        // A password past the bound never verifies, even against its own prefix's hash.
        let long = "a".repeat(PASSWORD_MAX);
        let phc = hash_password(&long).unwrap();
        assert!(verify_password(&long, &phc));
        assert!(!verify_password(&"a".repeat(PASSWORD_MAX + 1), &phc));
    }

    #[test]
    fn people_changes_are_checked_and_audited() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.sqlite")).unwrap();
        let by = Changer { who: "terminal (root)".into(), from: "terminal".into() };
        let at = Utc::now();
        let role: Role = "district:Tri Tôn/Ba Chúc".parse().unwrap();
        add(&store, &by, "an", &role, "$argon2id$x".into(), at).unwrap();
        assert!(matches!(
            add(&store, &by, "an", &role, "$argon2id$x".into(), at),
            Err(PeopleError::Exists(_))
        ));
        assert!(matches!(
            add(&store, &by, "An Nguyễn", &role, "h".into(), at),
            Err(PeopleError::BadName(_))
        ));
        assert!(matches!(
            add(&store, &by, "feed", &Role::CapSource, "h".into(), at),
            Err(PeopleError::MachineRole)
        ));
        assert!(matches!(
            set_password(&store, &by, "nobody", "h", at),
            Err(PeopleError::NoSuchUser(_))
        ));
        set_password(&store, &by, "an", "$argon2id$y", at).unwrap();
        set_disabled(&store, &by, "an", true, at).unwrap();
        let log = store.audit_log(10).unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["user.disable", "user.passwd", "user.add"]);
        assert!(log.iter().all(|e| e.who == "terminal (root)" && e.subject == "user an"));
        assert_eq!(log[2].detail, "role district:Tri Tôn/Ba Chúc");
    }

    #[test]
    fn hashing_costs_tens_of_milliseconds() {
        // Debug builds run argon2 optimised (Cargo.toml), so this measures what central
        // pays. Bounded loosely both ways: a shared 2-core machine is noisy.
        let start = std::time::Instant::now();
        let phc = hash_password("correct horse battery").unwrap();
        let spent = start.elapsed();
        assert!(verify_password("correct horse battery", &phc));
        assert!(
            spent >= std::time::Duration::from_millis(10),
            "{spent:?}: too cheap for a guesser"
        );
        assert!(spent <= std::time::Duration::from_secs(2), "{spent:?}: too slow for a login");
    }
}
