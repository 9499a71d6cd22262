//! PostgreSQL: the audio library's bytes ([`crate::store::blobs`]), one row per
//! 1 MiB chunk, and a row per file written last in the same transaction, so a file is
//! either wholly held or not at all (a replica killed mid-upload leaves nothing).

use std::io::{Read, Write};

use postgres::Client;

use super::{PgStore, StoreError};
use crate::store::blobs::{AudioBlobs, chunked};

pub(super) const SCHEMA: &str = "
CREATE TABLE audio_blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL
);
CREATE TABLE audio_chunks (
    sha256 TEXT NOT NULL,
    idx BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (sha256, idx)
);
";

fn holds(c: &mut Client, sha256: &str) -> Result<bool, StoreError> {
    Ok(c.query_opt("SELECT 1 FROM audio_blobs WHERE sha256 = $1", &[&sha256])?.is_some())
}

impl AudioBlobs for PgStore {
    fn put_audio_bytes(
        &self,
        sha256: &str,
        file: &mut (dyn Read + Send),
    ) -> Result<(), StoreError> {
        self.run(|c| {
            if holds(c, sha256)? {
                return Ok(());
            }
            let mut tx = c.transaction()?;
            // Two replicas storing the same new file at once: the second waits here and
            // then finds it held.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&sha256])?;
            if tx.query_opt("SELECT 1 FROM audio_blobs WHERE sha256 = $1", &[&sha256])?.is_some() {
                return Ok(());
            }
            let insert =
                tx.prepare("INSERT INTO audio_chunks (sha256, idx, bytes) VALUES ($1, $2, $3)")?;
            let (actual, size) = chunked(file, |index, bytes| {
                tx.execute(&insert, &[&sha256, &index, &bytes])?;
                Ok(())
            })?;
            if actual != sha256 {
                return Err(StoreError::Corrupt(format!(
                    "audio named sha256:{sha256} has sha256 {actual}: not stored"
                )));
            }
            let chunks: i64 = tx
                .query_one("SELECT COUNT(*) FROM audio_chunks WHERE sha256 = $1", &[&sha256])?
                .get(0);
            let size = i64::try_from(size)
                .map_err(|_| StoreError::Corrupt(format!("audio of {size} bytes")))?;
            tx.execute(
                "INSERT INTO audio_blobs (sha256, size, chunks) VALUES ($1, $2, $3)",
                &[&sha256, &size, &chunks],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn read_audio_bytes(
        &self,
        sha256: &str,
        out: &mut (dyn Write + Send),
    ) -> Result<bool, StoreError> {
        self.run(|c| {
            let Some(row) =
                c.query_opt("SELECT chunks FROM audio_blobs WHERE sha256 = $1", &[&sha256])?
            else {
                return Ok(false);
            };
            let chunks: i64 = row.get(0);
            // One chunk per query: memory stays at one chunk whatever the file's size.
            let select =
                c.prepare("SELECT bytes FROM audio_chunks WHERE sha256 = $1 AND idx = $2")?;
            for index in 0..chunks {
                let row = c.query_opt(&select, &[&sha256, &index])?.ok_or_else(|| {
                    StoreError::Corrupt(format!("audio sha256:{sha256} lacks chunk {index}"))
                })?;
                let bytes: &[u8] = row.get(0);
                out.write_all(bytes).map_err(|e| {
                    StoreError::Corrupt(format!("writing audio sha256:{sha256}: {e}"))
                })?;
            }
            Ok(true)
        })
    }

    fn holds_audio(&self, sha256: &str) -> Result<bool, StoreError> {
        self.run(|c| holds(c, sha256))
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::store::blobs::CHUNK_BYTES;
    use crate::testing::database::TestDatabase;

    #[test]
    fn a_file_goes_in_whole_and_comes_back_byte_for_byte() {
        let database = TestDatabase::new();
        let store = PgStore::connect(&database.url).unwrap();
        let bytes: Vec<u8> = (0..CHUNK_BYTES * 2 + 333).map(|i| (i * 7 % 256) as u8).collect();
        let sha = hex::encode(Sha256::digest(&bytes));
        assert!(!store.holds_audio(&sha).unwrap());
        store.put_audio_bytes(&sha, &mut bytes.as_slice()).unwrap();
        store.put_audio_bytes(&sha, &mut bytes.as_slice()).unwrap(); // held: no-op
        assert!(store.holds_audio(&sha).unwrap());
        let mut back = Vec::new();
        assert!(store.read_audio_bytes(&sha, &mut back).unwrap());
        assert_eq!(back, bytes);
        assert!(!store.read_audio_bytes(&"0".repeat(64), &mut Vec::new()).unwrap());
    }

    #[test]
    fn bytes_that_do_not_match_their_name_leave_nothing() {
        let database = TestDatabase::new();
        let store = PgStore::connect(&database.url).unwrap();
        let sha = "a".repeat(64);
        let err = store.put_audio_bytes(&sha, &mut b"not that".as_slice()).unwrap_err();
        assert!(err.to_string().contains("not stored"), "{err}");
        assert!(!store.holds_audio(&sha).unwrap());
        let rows: i64 = store
            .run(|c| Ok(c.query_one("SELECT COUNT(*) FROM audio_chunks", &[])?.get(0)))
            .unwrap();
        assert_eq!(rows, 0, "the rolled-back chunks are gone");
    }
}
