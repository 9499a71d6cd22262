//! `loa station enroll`: a station fetches its token, the province's key and central's CA
//! with a one-time code, and proves that the central answering is the one that issued the
//! code before it trusts anything it says (see [`crate::protocol::enrol`]).
//!
//! 1. Offer, over a connection whose certificate is not checked yet: only the code's
//!    `lookup` goes out. The answer must carry a proof made with the code's key over the
//!    station id, the province key and the CA — a rogue server cannot make one.
//! 2. Claim, over a new connection that trusts that CA and nothing else: the token comes
//!    back; the code is used up at central.
//! 3. `station.toml` (0640, group `loa` when it exists) and the CA beside it are written
//!    (a temporary file, fsync, rename); an existing config is kept unless `force`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::ErrorBody;
use crate::protocol::enrol::{self, ClaimRequest, Grant, Offer, OfferRequest};
use crate::signing::PublicKey;

/// How long each enrolment request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why enrolment failed, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error(transparent)]
    Code(#[from] enrol::CodeError),
    #[error(
        "enrolment needs an https:// central URL (got {0}): the code protects the answer, HTTPS the token"
    )]
    NotHttps(String),
    #[error("cannot reach central at {url}: {detail}; check the URL and the network")]
    Unreachable { url: String, detail: String },
    #[error("central refused the code ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the server at {0} is not the central that issued this code (its answer does not carry the code's proof): check the URL; do not use this server"
    )]
    WrongCentral(String),
    #[error("central's answer is not usable: {0}")]
    BadAnswer(String),
    #[error(
        "{0} exists already: pass --force to replace it (the station then uses the new token), or --config another file"
    )]
    Exists(PathBuf),
    #[error(
        "cannot write {path}: {source} (run `sudo loa station enroll …`, or give --config a writable path)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub central: String,
    pub code: String,
    /// Where station.toml goes; the CA is written beside it as `central-ca.pem`.
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// Replace an existing config.
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub station_id: String,
    pub config: PathBuf,
    pub ca_cert: PathBuf,
}

/// The file name of central's CA beside station.toml.
pub const CA_FILE: &str = "central-ca.pem";

async fn post<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &impl serde::Serialize,
) -> Result<T, EnrolError> {
    let response = client.post(url).json(body).send().await.map_err(|e| {
        EnrolError::Unreachable { url: url.to_string(), detail: super::sync::describe_http(&e) }
    })?;
    let status = response.status();
    let bytes =
        super::sync::read_limited(response, enrol::ANSWER_LIMIT).await.map_err(|e| match e {
            super::sync::LimitedError::TooLarge => {
                EnrolError::BadAnswer(format!("an answer over {} bytes", enrol::ANSWER_LIMIT))
            }
            super::sync::LimitedError::Http(e) => EnrolError::Unreachable {
                url: url.to_string(),
                detail: super::sync::describe_http(&e),
            },
        })?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| crate::protocol::text::printable(&b.error))
            .unwrap_or_else(|_| crate::protocol::text::printable(&String::from_utf8_lossy(&bytes)));
        return Err(EnrolError::Refused { status: status.as_u16(), message });
    }
    serde_json::from_slice(&bytes).map_err(|e| EnrolError::BadAnswer(e.to_string()))
}

/// Runs the enrolment (see the module docs).
pub async fn enroll(request: &Request) -> Result<Enrolled, EnrolError> {
    let central = request.central.trim_end_matches('/').to_string();
    if !central.starts_with("https://") {
        return Err(EnrolError::NotHttps(central));
    }
    if request.config.exists() && !request.force {
        return Err(EnrolError::Exists(request.config.clone()));
    }
    let code = enrol::normalise(&request.code)?;
    let derived = tokio::task::spawn_blocking(move || enrol::derive(&code))
        .await
        .map_err(|e| EnrolError::BadAnswer(e.to_string()))?;

    // 1. The offer, from whoever answers: checked by its proof, not by TLS.
    let blind = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(TIMEOUT)
        .connect_timeout(super::sync::CONNECT_TIMEOUT)
        .build()
        .map_err(|e| EnrolError::BadAnswer(e.to_string()))?;
    let offer: Offer = post(
        &blind,
        &format!("{central}{}", enrol::OFFER_PATH),
        &OfferRequest { lookup: derived.lookup.clone() },
    )
    .await?;
    if !enrol::verify(&derived.mac_key, &offer) {
        return Err(EnrolError::WrongCentral(central));
    }
    if !valid_station_id(&offer.station_id) {
        return Err(EnrolError::BadAnswer(format!("station id {:?}", offer.station_id)));
    }
    PublicKey::from_hex(&offer.province_key)
        .map_err(|e| EnrolError::BadAnswer(format!("province key: {e}")))?;
    let ca = reqwest::Certificate::from_pem(offer.ca_cert.as_bytes())
        .map_err(|e| EnrolError::BadAnswer(format!("CA certificate: {e}")))?;

    // 2. The claim, to a central proven by the CA the code vouched for.
    let trusted = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(TIMEOUT)
        .connect_timeout(super::sync::CONNECT_TIMEOUT)
        .build()
        .map_err(|e| EnrolError::BadAnswer(e.to_string()))?;
    let grant: Grant = post(
        &trusted,
        &format!("{central}{}", enrol::CLAIM_PATH),
        &ClaimRequest { lookup: derived.lookup, claim: derived.claim },
    )
    .await?;
    if grant.station_id != offer.station_id
        || !grant.token.starts_with("loa_")
        || grant.token.len() > 200
    {
        return Err(EnrolError::BadAnswer("the token granted is not for this station".into()));
    }

    // 3. The files.
    let dir = request.config.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir)
        .map_err(|source| EnrolError::Write { path: dir.clone(), source })?;
    let ca_path = dir.join(CA_FILE);
    write_file(&ca_path, offer.ca_cert.as_bytes(), 0o644)?;
    let text = config_text(&central, &offer, &grant, &request.data_dir);
    write_file(&request.config, text.as_bytes(), 0o640)?;
    Ok(Enrolled { station_id: grant.station_id, config: request.config.clone(), ca_cert: ca_path })
}

fn valid_station_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The station.toml an enrolment writes: everything else keeps its default (see
/// `loa station --print-config`).
pub fn config_text(central: &str, offer: &Offer, grant: &Grant, data_dir: &Path) -> String {
    let toml_str = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# Written by `loa station enroll` on {}. Every other key keeps its default\n\
         # (`loa station --print-config` lists them).\n\
         station_id = {}\n\
         # Central at several machines: central_url = [\"https://a…\", \"https://b…\"],\n\
         # the preferred first (see `loa station --print-config`).\n\
         central_url = {}\n\
         ca_cert = \"{CA_FILE}\"\n\
         token = {}\n\
         province_key = {}\n\
         data_dir = {}\n\
         local_schedules = \"schedules\"\n\
         \n[audio]\nsink = \"default\"\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        toml_str(&offer.station_id),
        toml_str(central),
        toml_str(&grant.token),
        toml_str(&offer.province_key),
        toml_str(&data_dir.display().to_string()),
    )
}

/// Temporary file, fsync, mode, group `loa` when it exists, rename, fsync the directory.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EnrolError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let fail = |source| EnrolError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp-enrol");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    if let Some(gid) = loa_group() {
        // Best effort: the service user reads it through the group.
        let _ = std::os::unix::fs::fchown(&file, None, Some(gid));
    }
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(dir) = path.parent()
        && let Ok(d) =
            std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The gid of group `loa` (made by the Debian package), when this machine has it.
fn loa_group() -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == "loa").then_some(())?;
        f.nth(1)?.parse().ok()
    })
}
