//! `loa central user …` (people who log in to the console) and `loa central audit` (the
//! audit trail on the terminal). Both work on central's store directly, beside a running
//! central, like `loa central token`.
//!
//! - `user add NAME --role admin|district:AREA|viewer [--password-stdin]`: the password
//!   is asked twice on the terminal (not echoed), or read as one line from stdin.
//! - `user passwd NAME [--password-stdin]`, `user disable NAME`, `user enable NAME`,
//!   `user list`.
//! - `audit [--limit N]`: newest first.

use std::io::{BufRead, IsTerminal, Read, Write};

use clap::Subcommand;

use crate::central::people::{self, Changer, PASSWORD_MAX};
use crate::protocol::text::printable;
use crate::store::{Role, Store};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person who logs in to the console.
    Add {
        /// 1–64 lowercase letters, digits, '.', '-', '_'.
        name: String,
        /// admin, district:AREA (an area path such as district:"Tri Tôn/Ba Chúc"), or viewer.
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
        /// Read the password as one line from standard input instead of asking twice.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (every session of the person ends).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Stop a person logging in (every session of theirs ends).
    Disable { name: String },
    /// Let a disabled person log in again.
    Enable { name: String },
    /// List people: name, role, state, last change.
    List,
}

/// Who is at the terminal, for the audit trail.
fn changer() -> Changer {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        // SAFETY: getuid cannot fail and touches no memory.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }));
    Changer { who: format!("terminal ({})", printable(&user)), from: "terminal".into() }
}

pub fn run(store: &dyn Store, command: UserCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match command {
        UserCommand::Add { name, role, password_stdin } => {
            // Checked before a password is asked for.
            if store.user(&name)?.is_some() {
                return Err(people::PeopleError::Exists(name).into());
            }
            let hash = people::hash_password(&password(password_stdin, &name)?)?;
            people::add(store, &changer(), &name, &role, hash, now)?;
            println!("{name} added ({role}); they log in at the console's /login");
        }
        UserCommand::Passwd { name, password_stdin } => {
            if store.user(&name)?.is_none() {
                return Err(people::PeopleError::NoSuchUser(name).into());
            }
            let hash = people::hash_password(&password(password_stdin, &name)?)?;
            people::set_password(store, &changer(), &name, &hash, now)?;
            println!("{name}: password changed; their sessions ended");
        }
        UserCommand::Disable { name } => {
            people::set_disabled(store, &changer(), &name, true, now)?;
            println!("{name}: disabled; their sessions ended");
        }
        UserCommand::Enable { name } => {
            people::set_disabled(store, &changer(), &name, false, now)?;
            println!("{name}: enabled");
        }
        UserCommand::List => {
            println!("{:<20} {:<32} {:<9} CHANGED", "NAME", "ROLE", "STATE");
            for u in store.users()? {
                let role = u.role.to_string();
                println!(
                    "{:<20} {:<32} {:<9} {}",
                    u.name,
                    printable(&role),
                    if u.disabled { "disabled" } else { "active" },
                    crate::protocol::time_text(u.changed_at)
                );
            }
        }
    }
    Ok(())
}

/// Prints the newest `limit` audit lines.
pub fn audit(store: &dyn Store, limit: usize) -> anyhow::Result<()> {
    if limit == 0 || limit > 10_000 {
        anyhow::bail!("--limit {limit} is out of range: show 1 to 10000 lines");
    }
    println!(
        "{:<27} {:<28} {:<18} {:<36} {:<22} DETAIL",
        "WHEN", "WHO", "ACTION", "SUBJECT", "FROM"
    );
    for e in store.audit_log(limit)? {
        println!(
            "{:<27} {:<28} {:<18} {:<36} {:<22} {}",
            crate::protocol::time_text(e.at),
            printable(&e.who),
            printable(&e.action),
            printable(&e.subject),
            printable(&e.from),
            printable(&e.detail)
        );
    }
    Ok(())
}

/// The new password: one line of stdin, or asked twice on the terminal without echo.
fn password(from_stdin: bool, name: &str) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        // One past the bound is read, so a longer line is refused rather than cut.
        std::io::stdin().lock().take((PASSWORD_MAX + 2) as u64).read_line(&mut line)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line).to_string();
        people::check_password(&line)?;
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
        );
    }
    let first = ask(&format!("password for {name}: "))?;
    people::check_password(&first)?;
    let second = ask("again: ")?;
    if first != second {
        anyhow::bail!("the two passwords differ: nothing changed, try again");
    }
    Ok(first)
}

/// One line from the terminal with echo off (restored however the read ends).
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let _quiet = NoEcho::new();
    let mut line = String::new();
    std::io::stdin().lock().take((PASSWORD_MAX + 2) as u64).read_line(&mut line)?;
    eprintln!();
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns the terminal's echo off while alive.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    fn new() -> Self {
        // SAFETY: termios is plain data; tcgetattr fills it or fails (then nothing changes).
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return NoEcho(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            NoEcho(Some(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
