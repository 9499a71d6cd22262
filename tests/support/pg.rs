//! PostgreSQL for the tests that need the database itself to go away, or to speak only
//! TLS: a server of their own ([`PgServer`]: `initdb` in a temporary directory, on a free
//! port, as the `postgres` user when the tests run as root), which they stop and start
//! again. Tests that only need a database use `loa::testing::database::TestDatabase` on
//! the shared server instead.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL server owned by one test; stopped (immediate) and deleted on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/deps.sh)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program args…`, as the `postgres` user when this process is root (initdb and the
/// server refuse to run as root).
fn as_owner(program: &Path) -> Command {
    let mut command = if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    // The tools change to their working directory, which `postgres` may not enter.
    command.current_dir("/");
    command
}

#[track_caller]
fn run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives `path` to the server's user (when the tests run as root; else it is ours).
fn give_to_owner(path: &Path) {
    if is_root() {
        let out = Command::new("id").args(["-u", "postgres"]).output().expect("id");
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("uid");
        std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
    }
}

/// A temporary directory the server's user owns.
fn owned_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    give_to_owner(dir.path());
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    /// A new, running server.
    pub fn start() -> Self {
        let server = Self::init();
        server.resume();
        server
    }

    /// A new, running server that takes only TLS connections over TCP (`hostssl` from
    /// 127.0.0.1; plain ones are refused by a `hostnossl … reject` line), with a
    /// certificate for `names` (host names or IP addresses) issued by a CA made for it
    /// alone, whose certificate is [`PgServer::ca_file`].
    pub fn start_tls(names: &[&str]) -> Self {
        let server = Self::init();
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test database CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        std::fs::write(server.ca_file(), ca_cert.pem()).expect("write the CA certificate");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server names");
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let data = server.data();
        std::fs::write(data.join("server.crt"), cert.pem()).expect("write server.crt");
        let key_file = data.join("server.key");
        std::fs::write(&key_file, key.serialize_pem()).expect("write server.key");
        use std::os::unix::fs::PermissionsExt;
        // The server refuses a key that others may read.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        give_to_owner(&data.join("server.crt"));
        give_to_owner(&key_file);
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        use std::io::Write;
        writeln!(conf, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'")
            .expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostnossl all all 127.0.0.1/32 reject\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        server.resume();
        server
    }

    /// The certificate of the CA that issued a [`PgServer::start_tls`] server's.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `initdb`: a server, not started.
    fn init() -> Self {
        let dir = owned_dir();
        let bin = bin_dir();
        let data = dir.path().join("data");
        run(as_owner(&bin.join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .arg("--locale=C.UTF-8"));
        Self { dir, bin, port: free_port() }
    }

    /// A streaming standby of this server (PostgreSQL's own replication:
    /// `pg_basebackup -R`), running, read-only until [`PgServer::promote`].
    pub fn standby(&self) -> Self {
        let dir = owned_dir();
        let data = dir.path().join("data");
        let port = self.port.to_string();
        run(as_owner(&self.bin.join("pg_basebackup")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-D",
            data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
        ]));
        let standby = Self { dir, bin: self.bin.clone(), port: free_port() };
        standby.resume();
        standby
    }

    /// Makes a standby the primary (`pg_ctl promote`), waiting until it is.
    pub fn promote(&self) {
        run(as_owner(&self.bin.join("pg_ctl")).args([
            "-D",
            self.data().to_str().unwrap(),
            "-w",
            "promote",
        ]));
    }

    /// `postgres://…/postgres` on this server.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server (fast: open connections are cut, as when the machine goes away).
    pub fn stop(&self) {
        run(as_owner(&self.bin.join("pg_ctl")).args([
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]));
    }

    /// Starts it again on the same port, and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        run(as_owner(&self.bin.join("pg_ctl")).args([
            "-D",
            self.data().to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-t",
            "60",
            "start",
        ]));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
